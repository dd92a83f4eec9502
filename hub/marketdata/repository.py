"""SQL for stored ticks (each symbol's partition of ``ts.ticks``, the COPY, reading back) and
for the bars built from them (``ts.live_bars``)."""

from __future__ import annotations

import re
from datetime import datetime

import asyncpg
import numpy as np

from hub import pgcopy
from hub.db import Conn
from hub.marketdata.bars import Bar
from hub.times import datetime_of_ns

MEASUREMENT = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
# The columns a COPY writes, in the order hub.marketdata.ingest encodes them.
TICK_COLUMNS = ["symbol", "ts", "ts_ns", "price", "size", "bid", "ask", "recv_ns", "n"]


def table(measurement: str) -> str:
    if not MEASUREMENT.match(measurement):
        raise ValueError(f"invalid measurement name {measurement!r}")
    return f'ts."{measurement}"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


async def reserve_numbers(conn: Conn) -> int:
    """The first of the numbers this batch's ticks take (the sequence steps by the most ticks
    a batch holds, so a batch numbers its ticks first, first + 1, ...)."""
    return int(await conn.fetchval("select nextval('tick_batches')"))


async def add_symbols(
    conn: Conn, symbols: list[str], measurements: list[str]
) -> list[asyncpg.Record]:
    """Record the symbols that have no partition yet; returns those this call recorded (a
    concurrent writer recording the same symbol waits for this transaction, then skips it).
    In symbol order, so that two batches never wait for each other's symbols crosswise. The
    conflict names no index: a measurement is made from its symbol, so a concurrent writer may
    hit either unique index first, and both mean the same symbol."""
    return await conn.fetch(
        """
        insert into tick_symbols (symbol, measurement)
        select symbol, measurement from unnest($1::text[], $2::text[]) as s (symbol, measurement)
        order by symbol
        on conflict do nothing
        returning symbol, measurement
        """,
        symbols,
        measurements,
    )


async def create_partition(conn: Conn, symbol: str, measurement: str) -> None:
    """The symbol's own table, attached to ``ts.ticks``. Created apart and then attached: an
    attach locks the parent only against other attaches (SHARE UPDATE EXCLUSIVE), where
    ``create table ... partition of`` would stop every reader and writer of ``ts.ticks``."""
    await conn.execute(
        f"create table {table(measurement)} (like ts.ticks including defaults including constraints)"
    )
    await conn.execute(
        f"alter table ts.ticks attach partition {table(measurement)} "
        f"for values in ({_literal(symbol)})"
    )


async def copy_ticks(conn: asyncpg.Connection, payload: bytes) -> None:
    await conn.copy_to_table(
        "ticks",
        schema_name="ts",
        source=memoryview(payload),  # a buffer is sent as is (a file is read in a thread)
        columns=TICK_COLUMNS,
        format="binary",
    )


async def has_symbol(conn: Conn, symbol: str) -> bool:
    return bool(await conn.fetchval("select 1 from tick_symbols where symbol = $1", symbol))


async def count_ticks(conn: Conn, symbol: str, start_ns: int | None, end_ns: int | None) -> int:
    value = await conn.fetchval(
        """
        select count(*) from ts.ticks
        where symbol = $1 and ($2::bigint is null or ts_ns >= $2)
          and ($3::bigint is null or ts_ns < $3)
        """,
        symbol,
        start_ns,
        end_ns,
    )
    return int(value or 0)


async def read_ticks(
    conn: Conn,
    symbol: str,
    start_ns: int | None,
    end_ns: int | None,
    after: tuple[int, int] | None,
    limit: int,
) -> list[asyncpg.Record]:
    """Up to ``limit`` ticks of ``symbol`` in ``[start, end)`` after the tick ``after``
    (its ``(ts_ns, n)``), in time order and, at equal times, in the order they came."""
    return await conn.fetch(
        """
        select ts_ns, n, price, size, bid, ask from ts.ticks
        where symbol = $1 and ($2::bigint is null or ts_ns >= $2)
          and ($3::bigint is null or ts_ns < $3)
          and ($4::bigint is null or (ts_ns, n) > ($4, $5::bigint))
        order by ts_ns, n
        limit $6
        """,
        symbol,
        start_ns,
        end_ns,
        None if after is None else after[0],
        None if after is None else after[1],
        limit,
    )


# -- bars built from ticks (ts.live_bars) -------------------------------------------------


async def last_bar_starts(conn: Conn, symbol: str, timeframes: list[str]) -> dict[str, datetime]:
    """The start of the last stored bar of each of ``symbol``'s ``timeframes`` that has any
    (one index probe each)."""
    rows = await conn.fetch(
        """
        select t.timeframe,
               (select b.ts from ts.live_bars b
                where b.symbol = $1 and b.timeframe = t.timeframe
                order by b.ts desc limit 1) as ts
        from unnest($2::text[]) as t (timeframe)
        """,
        symbol,
        timeframes,
    )
    return {r["timeframe"]: r["ts"] for r in rows if r["ts"] is not None}


async def store_bars(conn: Conn, symbol: str, bars: list[tuple[str, Bar]]) -> None:
    """Closed bars of ``symbol`` (``(timeframe, bar)`` each) in one statement; a bar already
    stored stays as it is."""
    await conn.execute(
        """
        insert into ts.live_bars (symbol, timeframe, ts, open, high, low, close, volume, ticks)
        select $1, b.* from unnest(
            $2::text[], $3::timestamptz[], $4::float8[], $5::float8[], $6::float8[],
            $7::float8[], $8::float8[], $9::int4[]
        ) as b
        on conflict do nothing
        """,
        symbol,
        [timeframe for timeframe, _ in bars],
        [datetime_of_ns(bar.ts) for _, bar in bars],
        [bar.open for _, bar in bars],
        [bar.high for _, bar in bars],
        [bar.low for _, bar in bars],
        [bar.close for _, bar in bars],
        [bar.volume for _, bar in bars],
        [bar.ticks for _, bar in bars],
    )


# -- ticks stored from a file (hub/marketdata/upload.py) ----------------------------------


async def lock_symbol(conn: Conn, symbol: str) -> None:
    """Hold ``symbol``'s upload lock until the transaction ends: two uploads of one symbol
    check for duplicates and write one after the other, so neither misses the other's ticks."""
    await conn.execute(
        "select pg_advisory_xact_lock(hashtextextended('tradehub.ticks:' || $1, 0))", symbol
    )


async def reserve_many(conn: Conn, count: int) -> list[int]:
    """``count`` first numbers, each for up to ``MAX_TICKS`` ticks (as :func:`reserve_numbers`)."""
    rows = await conn.fetch(
        "select nextval('tick_batches') as n from generate_series(1, $1)", count
    )
    return sorted(int(r["n"]) for r in rows)


async def stored_duplicates(
    conn: asyncpg.Connection,
    symbol: str,
    ts_ns: np.ndarray,
    price: np.ndarray,
    size: np.ndarray,
) -> np.ndarray:
    """The indices of the given ticks of which ``symbol`` already has one stored with the same
    time, price and size (a NaN size is one not known, which equals a stored NULL). In a
    transaction: the ticks' keys go by binary COPY into a table dropped at commit, and are
    matched against the stored ticks of their time range only (an index range scan)."""
    if not len(ts_ns):
        return np.empty(0, dtype=np.intp)
    await conn.execute(
        "create temp table upload_keys (i int8, ts_ns int8, price float8, size float8) "
        "on commit drop"
    )
    keys = pgcopy.encode(
        [
            (np.arange(len(ts_ns), dtype=np.int64), "int8"),
            (ts_ns, "int8"),
            (price, "float8"),
            (size, "float8"),
        ]
    )
    await conn.copy_to_table("upload_keys", source=memoryview(keys), format="binary")
    found = await conn.fetchval(
        """
        select array_agg(k.i) from upload_keys k
        where exists (
            select 1 from ts.ticks t
            where t.symbol = $1 and t.ts_ns between $2 and $3
              and t.ts_ns = k.ts_ns and t.price = k.price
              and t.size is not distinct from nullif(k.size, 'NaN'::float8)
        )
        """,
        symbol,
        int(ts_ns.min()),
        int(ts_ns.max()),
    )
    return np.asarray(found or [], dtype=np.intp)
