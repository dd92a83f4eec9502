"""SQL for datasets and their OHLCV measurements in the ``ts`` schema."""

from __future__ import annotations

import re
from typing import Any

import asyncpg
import numpy as np

from hub import pgcopy
from hub.datasets.barcopy import BarsSink
from hub.db import Conn

MEASUREMENT = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
OHLCV_COLUMNS = ["ts", "open", "high", "low", "close", "volume"]
OHLCV_TYPES = ["timestamptz", "float8", "float8", "float8", "float8", "float8"]
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
    bars stored in those table pages, in the order they are stored: unsorted, possibly."""
    where = []
    if start_ns is not None:
        where.append(f"ts >= to_timestamp({int(start_ns)}::float8 / 1e9)")
    if end_ns is not None:
        where.append(f"ts < to_timestamp({int(end_ns)}::float8 / 1e9)")
    order = "order by ts"
    if pages is not None:
        order = ""
        where.append(f"ctid >= '({int(pages[0])},0)'::tid")
        if pages[1] is not None:
            where.append(f"ctid < '({int(pages[1])},0)'::tid")
    clause = f"where {' and '.join(where)}" if where else ""
    limit_sql = f"limit {int(limit)}" if limit is not None else ""
    if sink is None:
        sink = BarsSink(expected=limit or 0)
    columns = ", ".join(sink.columns)
    query = f"select {columns} from {table(measurement)} {clause} {order} {limit_sql}"
    await conn.copy_from_query(query, output=sink, format="binary")
    return sink.result()


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
    value = await conn.fetchval(
        f"select count(*) from {table(measurement)} "
        "where ($1::float8 is null or ts >= to_timestamp($1::float8 / 1e9)) "
        "and ($2::float8 is null or ts < to_timestamp($2::float8 / 1e9))",
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
