"""Stage1 (seed 000): errors as ``{"error": "..."}``; API keys in ``X-Stage1-Token`` also work.

Jobs and datasets here; runs, predictions and simulations in ``rest.stage1_runs``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hub.datasets.model import DatasetSpec
from hub.http import JSONResponse, query_int, require_identity
from hub.openapi import describe
from rest import stage1_runs
from rest.errors import STAGE1
from rest.models import Job, JobPath, Jobs, JobsQuery
from rest.stage1_models import DatasetPath, DatasetSaved, PageQuery, Stage1Dataset, Stage1Datasets
from rest.stage1_runs import body_of, page_of


def stage1_time(value: datetime | None) -> str | None:
    """Stage1's timestamps: UTC, seconds, no offset ("2025-11-10T01:30:00")."""
    if value is None:
        return None
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="seconds")


def _json_string(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def job_object(row: Any) -> dict[str, Any]:
    return {
        "job_id": str(row["job_id"]),
        "job_type": row["job_type"],
        "status": row["status"],
        "payload": _json_string(row["payload"]),
        "progress": row["progress"],
        "total": row["total"],
        "result": _json_string(row["result"]),
        "error": row["error"],
        "created_at": stage1_time(row["created_at"]),
        "updated_at": stage1_time(row["updated_at"]),
        "started_at": stage1_time(row["started_at"]),
        "completed_at": stage1_time(row["completed_at"]),
    }


@describe(STAGE1, answers={200: Jobs}, query=JobsQuery)
async def list_jobs(request: Request) -> Response:
    """List jobs (yours; every job for an admin), newest first."""
    identity = require_identity(request)
    limit = query_int(request, "limit", 50, minimum=1, maximum=1000)
    offset = query_int(request, "offset", 0, minimum=0)
    job_type = request.query_params.get("job_type") or None
    rows, _ = await request.state.jobs.list(identity, job_type=job_type, limit=limit, offset=offset)
    jobs = [job_object(row) for row in rows]
    return JSONResponse({"jobs": jobs, "count": len(jobs)})


@describe(STAGE1, answers={200: Job}, errors=[403, 404], path=JobPath)
async def get_job(request: Request) -> Response:
    """Get job status by ID."""
    identity = require_identity(request)
    row = await request.state.jobs.get(identity, request.path_params["job_id"])
    return JSONResponse(job_object(row))


def dataset_object(row: Any) -> dict[str, Any]:
    return {
        "dataset_id": str(row["dataset_id"]),
        "dataset_slug": row["dataset_slug"],
        "symbol": row["symbol"],
        "granularity": row["granularity"],
        "source": row["source"],
        "ohlcv_measurement": row["ohlcv_measurement"],
        "indicator_measurement": row["indicator_measurement"],
        "ohlcv_row_count": row["ohlcv_row_count"],
        "indicator_row_count": row["indicator_row_count"],
        "ohlcv_first_ts": row["ohlcv_first_ts"],
        "ohlcv_last_ts": row["ohlcv_last_ts"],
        "indicator_first_ts": row["indicator_first_ts"],
        "indicator_last_ts": row["indicator_last_ts"],
        "metadata": row["metadata"],
    }


@describe(STAGE1, answers={200: Stage1Datasets}, query=PageQuery)
async def list_datasets(request: Request) -> Response:
    """List datasets, newest first, with their measurements' row counts and first/last times.

    The counts and times (epoch microseconds) are counted from the measurements when asked.
    """
    require_identity(request)
    limit, offset = page_of(request)
    rows = await request.state.datasets.catalogue(limit, offset)
    datasets = [dataset_object(row) for row in rows]
    return JSONResponse({"datasets": datasets, "count": len(datasets)})


@describe(STAGE1, answers={200: Stage1Dataset}, errors=[404], path=DatasetPath)
async def get_dataset(request: Request) -> Response:
    """Get a dataset by ID."""
    require_identity(request)
    row = await request.state.datasets.describe(request.path_params["dataset_id"])
    return JSONResponse(dataset_object(row))


@describe(STAGE1, answers={201: DatasetSaved}, errors=[403, 409], body=DatasetSpec)
async def save_dataset(request: Request) -> Response:
    """Create a dataset, or update the one with this dataset_id.

    Any user creates; only the creator or an admin updates, and the fields sent replace the
    stored ones. The slug, and the symbol at its granularity, are unique (409).
    """
    identity = require_identity(request)
    spec = await body_of(request, DatasetSpec)
    row, created = await request.state.datasets.save(identity, spec)
    message = "Dataset created successfully" if created else "Dataset updated successfully"
    answer = {"success": True, "message": message, "dataset_id": str(row["dataset_id"])}
    return JSONResponse(answer, status_code=201)


def routes() -> list[BaseRoute]:
    wrap = STAGE1.endpoint
    return [
        Route("/api/jobs", wrap(list_jobs), methods=["GET"]),
        Route("/api/jobs/{job_id}", wrap(get_job), methods=["GET"]),
        Route("/api/datasets", wrap(list_datasets), methods=["GET"]),
        Route("/api/datasets", wrap(save_dataset), methods=["POST"]),
        Route("/api/datasets/{dataset_id}", wrap(get_dataset), methods=["GET"]),
        *stage1_runs.routes(),
    ]
