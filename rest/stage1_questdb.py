"""Stage1's QuestDB endpoints (seed 000), served by the ``ts`` schema of Postgres.

``/api/questdb/query`` and ``/export`` run one read-only query (hub/timeseries/sql.py),
``/measurements`` and ``/measurement/{name}`` describe the schema's tables, and
``/import/async`` streams a CSV to the uploads folder and answers with a ``questdb_import``
job. Errors are Stage1's ``{"error": "..."}``.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import BaseModel, Field, RootModel
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from hub.errors import BadRequest, NotImplementedYet
from hub.http import JSONResponse, read_json_object, require_identity
from hub.jobs.service import JobStatus
from hub.openapi import describe
from hub.timeseries.store import MEASUREMENT
from rest.errors import STAGE1

IMPORT_MESSAGE = "Import job created. Poll /api/jobs/{job_id} for status."


class QuestdbSql(BaseModel):
    sql: str = Field(min_length=1, description="one read-only query over the ts schema")


class QuestdbRows(BaseModel):
    query: str = Field(description="the query that ran (without trailing semicolons)")
    columns: list[str]
    dataset: list[list[Any]] = Field(
        description="the rows, values in column order; times as epoch microseconds"
    )
    count: int = Field(description="rows in dataset")


class QuestdbCsv(RootModel[str]):
    """A header line of the column names, then a row a line; times as epoch microseconds."""


class QuestdbMeasurementName(BaseModel):
    name: str


class QuestdbMeasurements(BaseModel):
    measurements: list[QuestdbMeasurementName]
    count: int


class QuestdbMeasurementsQuery(BaseModel):
    prefix: str | None = Field(None, max_length=63, description="only names starting with it")


class QuestdbMeasurementPath(BaseModel):
    name: str = Field(min_length=1, max_length=63)


class QuestdbMeasurement(BaseModel):
    name: str
    row_count: int
    first_ts: int | None = Field(description="epoch microseconds; null without rows")
    last_ts: int | None = Field(description="epoch microseconds; null without rows")


class QuestdbImport(BaseModel):
    measurement: str = Field(pattern=MEASUREMENT.pattern, description="the target measurement")
    data: str = Field(
        description="the CSV: a header with timestamp_unix or timestamp (epoch s, ms, us or "
        "ns, or ISO 8601), then rows; every other column is a field"
    )
    filename: str | None = Field(None, max_length=255, description="the client's file name")


class QuestdbImportAccepted(BaseModel):
    job_id: uuid.UUID
    status: Literal[JobStatus.PENDING]
    message: str
    poll_url: str


async def _sql_of(request: Request) -> str:
    body = await read_json_object(request)
    sql = body.get("sql")
    if sql is None:
        raise BadRequest("Missing 'sql' parameter", field="sql")
    if not isinstance(sql, str):
        raise BadRequest("sql must be a string", field="sql")
    return sql


@describe(STAGE1, answers={200: QuestdbRows}, errors=[429], body=QuestdbSql)
async def questdb_query(request: Request) -> Response:
    """Execute a read-only SQL query over the ts schema.

    One statement that returns rows (SELECT, WITH, VALUES, TABLE), run as a role that reads
    the ts schema only, in a read-only transaction, under a statement timeout
    (TRADEHUB_SQL_TIMEOUT) and a row cap (TRADEHUB_SQL_MAX_ROWS). Anything else is a 400.
    """
    identity = require_identity(request)
    sql = await _sql_of(request)
    rows = await request.state.timeseries.query(identity, sql)
    return JSONResponse(
        {
            "query": rows.query,
            "columns": rows.columns,
            "dataset": rows.dataset,
            "count": len(rows.dataset),
        }
    )


@describe(STAGE1, answers={200: QuestdbCsv}, media={200: "text/csv"}, errors=[429], body=QuestdbSql)
async def questdb_export(request: Request) -> Response:
    """Export a read-only SQL query's rows as CSV, streamed.

    The rules of /api/questdb/query without its row cap: the rows stream as COPY writes them,
    in constant memory, under TRADEHUB_SQL_EXPORT_TIMEOUT.
    """
    identity = require_identity(request)
    sql = await _sql_of(request)
    export = await request.state.timeseries.export(identity, sql)
    return StreamingResponse(
        export.stream(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="export.csv"'},
    )


@describe(STAGE1, answers={200: QuestdbMeasurements}, query=QuestdbMeasurementsQuery)
async def questdb_measurements(request: Request) -> Response:
    """List the measurements: the tables of the ts schema."""
    identity = require_identity(request)
    prefix = request.query_params.get("prefix") or None
    names = await request.state.timeseries.measurements(identity, prefix)
    return JSONResponse({"measurements": [{"name": name} for name in names], "count": len(names)})


@describe(STAGE1, answers={200: QuestdbMeasurement}, errors=[404], path=QuestdbMeasurementPath)
async def questdb_measurement(request: Request) -> Response:
    """Get a measurement's row count and first and last times."""
    identity = require_identity(request)
    found = await request.state.timeseries.measurement(identity, request.path_params["name"])
    return JSONResponse(found)


@describe(STAGE1, answers={}, errors=[501])
async def questdb_import_direct(request: Request) -> Response:
    """Direct import: not implemented (use /api/questdb/import/async), as the seed says."""
    require_identity(request)
    raise NotImplementedYet("Direct import is not implemented: use POST /api/questdb/import/async")


@describe(STAGE1, answers={202: QuestdbImportAccepted}, errors=[403, 429], body=QuestdbImport)
async def questdb_import_async(request: Request) -> Response:
    """Import CSV data into a measurement asynchronously (a questdb_import job).

    The body is read as it arrives, its CSV written to the uploads folder of the data folder,
    never held whole (TRADEHUB_IMPORT_MAX_BYTES bounds it: 413 beyond). Poll
    /api/jobs/{job_id}: the job creates or extends ts.<measurement> in one transaction.
    """
    identity = require_identity(request)
    declared = request.headers.get("content-length")
    size = int(declared) if declared is not None and declared.isdigit() else None
    row = await request.state.timeseries.import_stream(identity, request.stream(), size)
    job_id = str(row["job_id"])
    answer = {
        "job_id": job_id,
        "status": row["status"],
        "message": IMPORT_MESSAGE,
        "poll_url": f"/api/jobs/{job_id}",
    }
    return JSONResponse(answer, status_code=202)


def routes() -> list[BaseRoute]:
    wrap = STAGE1.endpoint
    return [
        Route("/api/questdb/query", wrap(questdb_query), methods=["POST"]),
        Route("/api/questdb/export", wrap(questdb_export), methods=["POST"]),
        Route("/api/questdb/measurements", wrap(questdb_measurements), methods=["GET"]),
        Route("/api/questdb/measurement/{name}", wrap(questdb_measurement), methods=["GET"]),
        Route("/api/questdb/import", wrap(questdb_import_direct), methods=["POST"]),
        Route("/api/questdb/import/async", wrap(questdb_import_async), methods=["POST"]),
    ]
