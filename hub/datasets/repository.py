"""SQL for datasets' OHLCV measurements in the ``ts`` schema: their tables, bars written and
read by binary COPY, and a dataset's row by symbol. The catalogue (Stage1's dataset objects,
their measurements' stats, a ticker's series) is ``hub.datasets.catalogue.repository``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import asyncpg
import numpy as np

from hub import pgcopy
from hub.datasets.barcopy import BarsSink
from hub.db import Conn

MEASUREMENT = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
OHLCV_COLUMNS = ["ts", "open", "high", "low", "close", "volume"]
OHLCV_TYPES = ["timestamptz", "float8", "float8", "float8", "float8", "float8"]
# Where a measurement keeps its time, in order of preference: the ts schema's own tables use
# ``ts``; a table loaded from elsewhere may call it ``timestamp`` or ``time``.
TIME_COLUMNS = ("ts", "timestamp", "time")
TIMESTAMP_TYPES = ("timestamp with time zone", "timestamp without time zone")
INTEGER_TYPES = ("bigint", "integer")
DATASET_COLUMNS = """dataset_id, dataset_slug, symbol, granularity, source, ohlcv_measurement,
    indicator_measurement, ohlcv_row_count, indicator_row_count, ohlcv_first_ts, ohlcv_last_ts,
    indicator_first_ts, indicator_last_ts, metadata, created_by, created_at, updated_at"""


def table(measurement: str) -> str:
    if not MEASUREMENT.match(measurement):
        raise ValueError(f"invalid measurement name {measurement!r}")
    return f'ts."{measurement}"'


async def upsert_dataset(
    conn: Conn, values: dict[str, Any], created_by: str | None
) -> asyncpg.Record:
    row = await conn.fetchrow(
        f"""
        insert into datasets (dataset_slug, symbol, granularity, source, ohlcv_measurement,
                              indicator_measurement, metadata, created_by)
        values ($1, $2, $3, $4, $5, $6, $7, $8)
        on conflict (symbol, granularity) do update set
            source = excluded.source,
            ohlcv_measurement = coalesce(excluded.ohlcv_measurement, datasets.ohlcv_measurement),
            indicator_measurement = coalesce(excluded.indicator_measurement, datasets.indicator_measurement),
            metadata = datasets.metadata || excluded.metadata,
            updated_at = now()
        returning {DATASET_COLUMNS}
        """,
        values["dataset_slug"],
        values["symbol"],
        values["granularity"],
        values.get("source", ""),
        values.get("ohlcv_measurement"),
        values.get("indicator_measurement"),
        values.get("metadata", {}),
        created_by,
    )
    assert row is not None
    return row


async def get_by_symbol(conn: Conn, symbol: str, granularity: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"select {DATASET_COLUMNS} from datasets where symbol = $1 and granularity = $2",
        symbol,
        granularity,
    )


async def symbols(conn: Conn, granularity: str | None) -> list[str]:
    rows = await conn.fetch(
        """select distinct symbol from datasets
           where ohlcv_measurement is not null and ($1::text is null or granularity = $1)
           order by symbol""",
        granularity,
    )
    return [row["symbol"] for row in rows]


async def get(conn: Conn, dataset_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"select {DATASET_COLUMNS} from datasets where dataset_id = $1", dataset_id
    )


async def ensure_ohlcv_table(conn: Conn, measurement: str) -> None:
    await conn.execute(
        f"""
        create table if not exists {table(measurement)} (
            ts     timestamptz primary key,
            open   float8 not null,
            high   float8 not null,
            low    float8 not null,
            close  float8 not null,
            volume float8 not null
        )
        """
    )


async def delete_range(conn: Conn, measurement: str, start_ns: int, end_ns: int) -> None:
    await conn.execute(
        f"delete from {table(measurement)} where ts >= to_timestamp($1::float8 / 1e9) "
        "and ts < to_timestamp($2::float8 / 1e9)",
        start_ns,
        end_ns,
    )


async def copy_bars(
    conn: asyncpg.Connection, measurement: str, bars: dict[str, np.ndarray]
) -> None:
    payload = pgcopy.encode([(bars[c], t) for c, t in zip(OHLCV_COLUMNS, OHLCV_TYPES, strict=True)])
    await conn.copy_to_table(
        measurement,
        schema_name="ts",
        source=memoryview(payload),  # a buffer is sent as is (a file is read in a thread)
        columns=OHLCV_COLUMNS,
        format="binary",
    )


async def read_bars(
    conn: asyncpg.Connection,
    measurement: str,
    start_ns: int | None,
    end_ns: int | None,
    limit: int | None,
    *,
    pages: tuple[int, int | None] | None = None,
    sink: BarsSink | None = None,
) -> dict[str, np.ndarray]:
    """Bars in ``[start, end)`` as int64-ns / float64 arrays, through binary COPY, decoded by
    ``sink`` (which columns, where to, and about how many). With ``pages`` (first, end or None), only the
    bars stored in those table pages, in the order they are stored: unsorted, possibly. Any
    measurement with a time column and the columns asked for is read (:func:`bar_source`)."""
    if sink is None:
        sink = BarsSink(expected=limit or 0)
    source = await bar_source(conn, measurement, sink.columns)
    where = list(source.where)
    if start_ns is not None:
        where.append(f"{source.time} >= to_timestamp({int(start_ns)}::float8 / 1e9)")
    if end_ns is not None:
        where.append(f"{source.time} < to_timestamp({int(end_ns)}::float8 / 1e9)")
    order = f"order by {source.time}"
    if pages is not None:
        order = ""
        where.append(f"ctid >= '({int(pages[0])},0)'::tid")
        if pages[1] is not None:
            where.append(f"ctid < '({int(pages[1])},0)'::tid")
    clause = f"where {' and '.join(where)}" if where else ""
    limit_sql = f"limit {int(limit)}" if limit is not None else ""
    columns = ", ".join([source.time] + [source.values[c] for c in sink.columns[1:]])
    query = f"select {columns} from {table(measurement)} {clause} {order} {limit_sql}"
    await conn.copy_from_query(query, output=sink, format="binary")
    return sink.result()


class BarLayoutError(ValueError):
    """A measurement whose bars cannot be read: no time column, a column missing or not a
    number."""


@dataclass(frozen=True)
class BarSource:
    """How to read a measurement's bars so that binary COPY sends every row in the layout the
    sink decodes: SQL for the time (a ``timestamptz``), for each value (a ``float8``, never
    NULL: NaN), and conditions leaving out rows without a time."""

    time: str
    values: dict[str, str]
    where: tuple[str, ...] = ()


NATIVE_BARS = BarSource("ts", {c: c for c in OHLCV_COLUMNS[1:]})
_NUMBER_TYPES = ("double precision", "real", "bigint", "integer", "smallint", "numeric")


async def bar_source(conn: Conn, measurement: str, columns: tuple[str, ...]) -> BarSource:
    """How to read ``columns`` (``ts`` first) of ``ts.<measurement>``: a dataset's own table
    as it is; one loaded from elsewhere (a CSV import, line protocol, a dataset naming any
    measurement) by its time column (:data:`TIME_COLUMNS`: a timestamp, or an integer of
    epoch microseconds) and its numeric columns as float8. Raises :class:`BarLayoutError`
    naming what it lacks; a missing table reads as a dataset's (the read then names it)."""
    rows = await conn.fetch(
        """select attname::text as name, format_type(atttypid, atttypmod) as type,
                  attnotnull as not_null
           from pg_attribute where attrelid = to_regclass($1) and attnum > 0
                and not attisdropped""",
        table(measurement),
    )
    if not rows:
        return NATIVE_BARS
    types = {row["name"]: (row["type"], row["not_null"]) for row in rows}
    time_column = next(
        (
            c
            for c in TIME_COLUMNS
            if c in types and types[c][0] in (*TIMESTAMP_TYPES, *INTEGER_TYPES)
        ),
        None,
    )
    if time_column is None:
        raise BarLayoutError(
            f"ts.{measurement} has no time column ({', '.join(TIME_COLUMNS)}: a timestamp, "
            "or an integer of epoch microseconds)"
        )
    kind, not_null = types[time_column]
    quoted = _quoted(time_column)
    if kind == "timestamp with time zone":
        time = quoted
    elif kind == "timestamp without time zone":
        time = f"({quoted} at time zone 'UTC')"
    else:
        time = f"(timestamptz 'epoch' + {quoted} * interval '1 microsecond')"
    values: dict[str, str] = {}
    lacking = []
    for column in columns[1:]:
        found = types.get(column)
        if found is None or not (found[0] in _NUMBER_TYPES or found[0].startswith("numeric(")):
            lacking.append(column if found is None else f"{column} ({found[0]})")
        elif found == ("double precision", True):
            values[column] = _quoted(column)
        else:
            values[column] = f"coalesce({_quoted(column)}::float8, 'NaN'::float8)"
    if lacking:
        raise BarLayoutError(
            f"ts.{measurement} has no numeric {', '.join(lacking)} column for its bars"
        )
    return BarSource(time, values, () if not_null else (f"{quoted} is not null",))


def _quoted(column: str) -> str:
    return '"' + column.replace('"', '""') + '"'


async def share_snapshot(exporter: asyncpg.Connection, importer: asyncpg.Connection) -> None:
    """Make ``importer``'s transaction (repeatable read, nothing run in it yet) see what
    ``exporter``'s does."""
    snapshot = await exporter.fetchval("select pg_export_snapshot()")
    await importer.execute(f"set transaction snapshot '{snapshot}'")


async def table_pages(conn: Conn, measurement: str) -> int:
    """How many pages the measurement's table has now."""
    value = await conn.fetchval(
        "select pg_relation_size($1::regclass) / current_setting('block_size')::int",
        table(measurement),
    )
    return int(value or 0)


async def count_bars(conn: Conn, measurement: str, start_ns: int | None, end_ns: int | None) -> int:
    source = await bar_source(conn, measurement, ("ts",))
    value = await conn.fetchval(
        f"select count(*) from {table(measurement)} "
        f"where ($1::float8 is null or {source.time} >= to_timestamp($1::float8 / 1e9)) "
        f"and ($2::float8 is null or {source.time} < to_timestamp($2::float8 / 1e9))",
        None if start_ns is None else float(start_ns),
        None if end_ns is None else float(end_ns),
    )
    return int(value or 0)


async def refresh_stats(conn: Conn, dataset_id: str, measurement: str) -> asyncpg.Record:
    row = await conn.fetchrow(
        f"""
        with s as (
            select count(*) as n,
                   (extract(epoch from min(ts)) * 1000000)::bigint as first_us,
                   (extract(epoch from max(ts)) * 1000000)::bigint as last_us
            from {table(measurement)}
        )
        update datasets d set ohlcv_row_count = s.n, ohlcv_first_ts = s.first_us,
               ohlcv_last_ts = s.last_us, updated_at = now()
        from s where d.dataset_id = $1
        returning {", ".join("d." + c.strip() for c in DATASET_COLUMNS.split(","))}
        """,
        dataset_id,
    )
    assert row is not None
    return row
