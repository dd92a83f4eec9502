"""GraphQL for time series: ``measurements``, ``measurement``, ``sql`` and ``importCsv``."""

from __future__ import annotations

from datetime import datetime, timedelta

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from hub.gql.context import Context
from hub.jobs.gql import Job
from hub.timeseries.sql import EPOCH


@strawberry.type(description="A measurement: a table of the ts schema.")
class Measurement:
    name: str


@strawberry.type(description="A measurement's rows and the times of its first and last.")
class MeasurementStats:
    name: str
    row_count: float  # Float: row counts can exceed GraphQL's 32-bit Int
    first_ts: datetime | None
    last_ts: datetime | None


@strawberry.type(description="What a read-only SQL query answered: times as epoch microseconds.")
class SqlResult:
    query: str
    columns: list[str]
    rows: JSON = strawberry.field(description="One array of values per row, in column order.")
    count: int


def _time(microseconds: int | None) -> datetime | None:
    return None if microseconds is None else EPOCH + timedelta(microseconds=microseconds)


async def resolve_measurements(
    info: Info[Context, None], prefix: str | None = None
) -> list[Measurement]:
    ctx = info.context
    names = await ctx.state.timeseries.measurements(ctx.require_identity(), prefix)
    return [Measurement(name=name) for name in names]


async def resolve_measurement(info: Info[Context, None], name: str) -> MeasurementStats:
    ctx = info.context
    found = await ctx.state.timeseries.measurement(ctx.require_identity(), name)
    return MeasurementStats(
        name=found["name"],
        row_count=found["row_count"],
        first_ts=_time(found["first_ts"]),
        last_ts=_time(found["last_ts"]),
    )


async def resolve_sql(info: Info[Context, None], query: str) -> SqlResult:
    ctx = info.context
    rows = await ctx.state.timeseries.query(ctx.require_identity(), query)
    return SqlResult(
        query=rows.query, columns=rows.columns, rows=rows.dataset, count=len(rows.dataset)
    )


async def import_csv(
    info: Info[Context, None], measurement: str, data: str, filename: str | None = None
) -> Job:
    ctx = info.context
    row = await ctx.state.timeseries.import_text(
        ctx.require_identity(), measurement, data, filename
    )
    return Job.from_row(row)


@strawberry.type
class Query:
    measurements: list[Measurement] = strawberry.field(
        resolver=resolve_measurements,
        description="The measurements (tables of the ts schema) whose names start with prefix.",
    )
    measurement: MeasurementStats = strawberry.field(
        resolver=resolve_measurement, description="A measurement's row count and time span."
    )
    sql: SqlResult = strawberry.field(
        resolver=resolve_sql,
        description="A read-only SQL query over the ts schema (one SELECT, a statement "
        "timeout and a row cap; the rules of POST /api/questdb/query).",
    )


@strawberry.type
class Mutation:
    import_csv: Job = strawberry.mutation(
        resolver=import_csv,
        description="Import a CSV into a measurement as a questdb_import job (Stage1's async "
        "import: a header with timestamp_unix or timestamp, then rows).",
    )
