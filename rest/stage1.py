"""Stage1 (seed 000): errors as ``{"error": "..."}``; API keys in ``X-Stage1-Token`` also work."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hub.http import JSONResponse, query_int, require_identity
from hub.openapi import describe
from rest.errors import STAGE1
from rest.models import Job, JobPath, Jobs, JobsQuery


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


def routes() -> list[BaseRoute]:
    wrap = STAGE1.endpoint
    return [
        Route("/api/jobs", wrap(list_jobs), methods=["GET"]),
        Route("/api/jobs/{job_id}", wrap(get_job), methods=["GET"]),
    ]
