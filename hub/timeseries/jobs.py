"""The ``questdb_import`` job: an uploaded CSV loaded into ``ts.<measurement>``, all or nothing.

The whole load is one transaction that also records the import (``timeseries_imports``): a
failure, a cancel or a worker killed mid-way leaves the measurement as it was, and the job
re-runs from the file; a re-run after that transaction committed finds the record and loads
nothing twice. The file is removed when the job completes, fails or is cancelled.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from hub.auth import Identity
from hub.jobs.registry import JobType
from hub.timeseries import csvimport
from hub.timeseries import repository as repo
from hub.timeseries.store import MEASUREMENT

if TYPE_CHECKING:
    import asyncpg
    import pyarrow as pa

    from hub.domains import Resources
    from hub.jobs.context import JobContext
    from hub.timeseries.service import TimeseriesService


class CsvImportPayload(BaseModel):
    """What Stage1 shows in a job's ``payload``: the measurement and the uploaded file."""

    model_config = ConfigDict(extra="forbid")

    measurement: str = Field(pattern=MEASUREMENT.pattern)
    file_path: str = Field(min_length=1, max_length=4096)
    filename: str | None = Field(default=None, max_length=255)
    rows: int = Field(default=0, ge=0, description="the rows the upload holds (its lines)")


async def import_csv(ctx: JobContext, payload: CsvImportPayload) -> dict[str, Any]:
    service: TimeseriesService = ctx.service("timeseries")
    path = service.upload_path(payload.file_path)
    pool = ctx.resources.pool
    done = await repo.import_done(pool, ctx.job_id)
    if done is not None:  # an earlier attempt committed, then its worker died
        service.discard_upload(payload.file_path)
        return done
    if not path.exists():
        raise csvimport.ImportFailed(
            f"the uploaded file {path.name} is gone: hubs and workers must share "
            "TRADEHUB_DATA_DIR (the uploads folder is in it)"
        )
    owner = await ctx.jobs.owner(ctx.job_id)
    await ctx.log("importing", measurement=payload.measurement, file=path.name)

    async def progress(rows: int) -> None:
        await ctx.progress(rows, max(payload.rows, rows))

    overrides: dict[str, pa.DataType] = {}
    while True:
        try:
            async with pool.acquire() as conn, conn.transaction():
                loaded = await csvimport.load(
                    conn,
                    path,
                    payload.measurement,
                    owner=owner,
                    overrides=overrides,
                    progress=progress,
                )
                result = {
                    "success": True,
                    "message": "CSV imported successfully",
                    "measurement": payload.measurement,
                    **loaded,
                }
                await repo.record_import(conn, ctx.job_id, payload.measurement, result)
            break
        except csvimport.Widen as widen:
            if overrides.get(widen.column) == widen.type:
                raise csvimport.ImportFailed(f"column {widen.column!r} cannot be read") from None
            overrides[widen.column] = widen.type
            await ctx.log(
                "starting over with a wider type", column=widen.column, type=str(widen.type)
            )
    # Committed: the count is final (the line count was an estimate), and a cancel now would
    # come too late, so the progress is written without a cancel point.
    await ctx.jobs.progress(ctx.job_id, result["rows"], result["rows"], attempt=ctx.attempt)
    service.discard_upload(payload.file_path)
    await ctx.log("imported", rows=result["rows"])
    return result


async def check_import(resources: Resources, identity: Identity, payload: CsvImportPayload) -> None:
    service: TimeseriesService = resources.service("timeseries")
    await service.check_import(identity, payload.measurement, payload.file_path)


async def discard_upload(resources: Resources, row: asyncpg.Record) -> None:
    """A failed or cancelled import leaves no file behind."""
    service: TimeseriesService = resources.service("timeseries")
    file_path = (row["payload"] or {}).get("file_path")
    if isinstance(file_path, str):
        service.discard_upload(file_path)


QUESTDB_IMPORT = JobType(
    name="questdb_import",
    payload=CsvImportPayload,
    handler="hub.timeseries.jobs:import_csv",
    check=check_import,
    on_ended=discard_upload,
    description="Load an uploaded CSV into a time-series measurement (Stage1's async import)",
    max_tries=3,
)
