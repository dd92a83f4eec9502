"""SQL for the datasets catalogue: Stage1's dataset objects (listed, created, edited), the
row count and first and last times of their measurements, and a ticker's datasets across its
timeframes (research's health route)."""

from __future__ import annotations

from typing import Any

import asyncpg

from hub.datasets.model import MeasurementStats
from hub.datasets.repository import (
    DATASET_COLUMNS,
    INTEGER_TYPES,
    MEASUREMENT,
    TIME_COLUMNS,
    TIMESTAMP_TYPES,
    table,
)
from hub.db import Conn


async def list_datasets(conn: Conn, limit: int, offset: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"select {DATASET_COLUMNS} from datasets "
        "order by created_at desc, dataset_id desc limit $1 offset $2",
        limit,
        offset,
    )


async def lock_dataset(conn: Conn, dataset_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"select {DATASET_COLUMNS} from datasets where dataset_id = $1 for update", dataset_id
    )


async def clashing(
    conn: Conn, dataset_id: str, slug: str, symbol: str, granularity: str
) -> asyncpg.Record | None:
    """Another dataset holding ``slug``, or ``symbol`` at ``granularity``."""
    return await conn.fetchrow(
        """select dataset_id, dataset_slug, symbol, granularity from datasets
           where dataset_id <> $1 and (dataset_slug = $2 or (symbol = $3 and granularity = $4))
           limit 1""",
        dataset_id,
        slug,
        symbol,
        granularity,
    )


async def insert_dataset(
    conn: Conn, dataset_id: str, values: dict[str, Any], created_by: str | None
) -> asyncpg.Record:
    row = await conn.fetchrow(
        f"""
        insert into datasets (dataset_id, dataset_slug, symbol, granularity, source,
                              ohlcv_measurement, indicator_measurement, metadata, created_by)
        values ($1, $2, $3, $4, $5, $6, $7, $8, $9)
        returning {DATASET_COLUMNS}
        """,
        dataset_id,
        values["dataset_slug"],
        values["symbol"],
        values["granularity"],
        values.get("source") or "",
        values.get("ohlcv_measurement"),
        values.get("indicator_measurement"),
        values.get("metadata") or {},
        created_by,
    )
    assert row is not None
    return row


async def update_dataset(conn: Conn, dataset_id: str, values: dict[str, Any]) -> asyncpg.Record:
    """Set the catalogue fields of ``values`` (names from :data:`EDITABLE` only)."""
    names = [name for name in EDITABLE if name in values]
    sets = ", ".join(f"{name} = ${i}" for i, name in enumerate(names, start=2))
    row = await conn.fetchrow(
        f"update datasets set {sets + ', ' if sets else ''}updated_at = now() "
        f"where dataset_id = $1 returning {DATASET_COLUMNS}",
        dataset_id,
        *(values[name] for name in names),
    )
    assert row is not None
    return row


EDITABLE = (
    "dataset_slug",
    "symbol",
    "granularity",
    "source",
    "ohlcv_measurement",
    "indicator_measurement",
    "metadata",
)


def _time_expression(name: str, column: str | None, kind: str | None, aggregate: str) -> str:
    """SQL for the ``aggregate`` (min or max) of a time column, as epoch microseconds: a
    subquery of its own, which an index on the column answers without a scan."""
    if column is None or kind is None:
        return "null::int8"
    quoted = '"' + column.replace('"', '""') + '"'
    found = f"(select {aggregate}({quoted}) from {table(name)})"
    if kind in TIMESTAMP_TYPES:
        return f"(extract(epoch from {found}) * 1000000)::int8"
    if kind in INTEGER_TYPES:  # already epoch microseconds, as Stage1 reports times
        return f"{found}::int8"
    return "null::int8"


async def time_columns(conn: Conn, names: list[str]) -> dict[str, tuple[str | None, str | None]]:
    """The measurements of ``names`` that exist in ``ts``, each with its time column and that
    column's type (None when it has none)."""
    rows = await conn.fetch(
        """
        select c.relname::text as name, a.attname::text as time_column,
               format_type(a.atttypid, a.atttypmod) as time_type
        from pg_class c
        join pg_namespace s on s.oid = c.relnamespace and s.nspname = 'ts'
        left join lateral (
            select attname, atttypid, atttypmod from pg_attribute
            where attrelid = c.oid and attnum > 0 and not attisdropped
              and attname::text = any($2::text[])
            order by array_position($2::text[], attname::text)
            limit 1
        ) a on true
        where c.relname::text = any($1::text[]) and c.relkind in ('r', 'p', 'v', 'm', 'f')
        """,
        names,
        list(TIME_COLUMNS),
    )
    return {row["name"]: (row["time_column"], row["time_type"]) for row in rows}


async def measurement_stats(conn: Conn, names: list[str]) -> dict[str, MeasurementStats]:
    """Row count and first and last times of each measurement of ``names`` that exists, in one
    query; a missing one is left out."""
    wanted = sorted({name for name in names if MEASUREMENT.match(name)})
    if not wanted:
        return {}
    found = await time_columns(conn, wanted)
    if not found:
        return {}
    parts = []
    for i, (name, (column, kind)) in enumerate(sorted(found.items()), start=1):
        first = _time_expression(name, column, kind, "min")
        last = _time_expression(name, column, kind, "max")
        parts.append(
            f"select ${i}::text as name, (select count(*) from {table(name)}) as n, "
            f"{first} as first_us, {last} as last_us"
        )
    rows = await conn.fetch(" union all ".join(parts), *sorted(found))
    return {
        row["name"]: MeasurementStats(int(row["n"]), row["first_us"], row["last_us"])
        for row in rows
    }


async def store_stats(
    conn: Conn, dataset_id: str, ohlcv: MeasurementStats, indicator: MeasurementStats
) -> asyncpg.Record | None:
    """Keep ``ohlcv`` and ``indicator`` with the dataset when they differ from what it keeps
    (bumping ``updated_at``, which keys the bars cache); None when nothing changed."""
    return await conn.fetchrow(
        f"""
        update datasets set ohlcv_row_count = $2, ohlcv_first_ts = $3, ohlcv_last_ts = $4,
               indicator_row_count = $5, indicator_first_ts = $6, indicator_last_ts = $7,
               updated_at = now()
        where dataset_id = $1
          and (ohlcv_row_count, ohlcv_first_ts, ohlcv_last_ts, indicator_row_count,
               indicator_first_ts, indicator_last_ts)
              is distinct from ($2::int8, $3::int8, $4::int8, $5::int8, $6::int8, $7::int8)
        returning {DATASET_COLUMNS}
        """,
        dataset_id,
        ohlcv.rows,
        ohlcv.first_us,
        ohlcv.last_us,
        indicator.rows,
        indicator.first_us,
        indicator.last_us,
    )


async def ticker_series(conn: Conn, ticker: str) -> list[asyncpg.Record]:
    """The ticker's datasets with bars (one a timeframe), as the health route judges them."""
    return await conn.fetch(
        """select granularity, ohlcv_first_ts, ohlcv_last_ts, ohlcv_row_count from datasets
           where symbol = $1 and ohlcv_measurement is not null order by granularity""",
        ticker,
    )
