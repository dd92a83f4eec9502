"""SQL for what an execution writes as it runs: its events, trades and equity (appended by
sequence, read back as pages or after a sequence), the checkpoints a lost run resumes from, and a
finished curve's downsampled copies. The execution rows themselves are in ``repository``."""

from __future__ import annotations

from typing import Any

import asyncpg
import numpy as np

from hub.db import Conn
from hub.executions import copyrows
from hub.executions.curvecodec import encode_balances, encode_times


async def write_events(conn: asyncpg.Connection, payload: bytes | None) -> None:
    """``payload``: binary COPY of ``copyrows.EVENT_COLUMNS`` (``copyrows.events_copy``)."""
    if payload is not None:
        await conn.copy_to_table(
            "execution_events",
            source=memoryview(payload),  # a buffer is sent as is (a file is read in a thread)
            columns=copyrows.EVENT_COLUMNS,
            format="binary",
        )


async def write_trades(conn: asyncpg.Connection, payload: bytes | None) -> None:
    """``payload``: binary COPY of ``copyrows.TRADE_COLUMNS`` (``copyrows.trades_copy``)."""
    if payload is not None:
        await conn.copy_to_table(
            "execution_trades",
            source=memoryview(payload),  # a buffer is sent as is (a file is read in a thread)
            columns=copyrows.TRADE_COLUMNS,
            format="binary",
        )


async def write_equity(
    conn: asyncpg.Connection, execution_id: int, first_seq: int, ts: np.ndarray, balance: np.ndarray
) -> None:
    if len(ts):
        await conn.execute(
            "insert into execution_equity (execution_id, first_seq, count, ts, balance) values ($1, $2, $3, $4, $5)",
            execution_id,
            first_seq,
            len(ts),
            encode_times(ts),
            encode_balances(balance),
        )


async def write_checkpoint(
    conn: asyncpg.Connection,
    execution_id: int,
    processed: int,
    metrics: dict[str, Any],
    state: dict[str, Any] | None,
    last_event_seq: int,
    last_trade_seq: int,
) -> asyncpg.Record:
    row = await conn.fetchrow(
        """
        insert into execution_checkpoints (execution_id, processed, metrics, state, last_event_seq, last_trade_seq)
        values ($1, $2, $3, $4, $5, $6)
        returning id, execution_id, processed, metrics, state, last_event_seq, last_trade_seq, created_at
        """,
        execution_id,
        processed,
        metrics,
        state,
        last_event_seq,
        last_trade_seq,
    )
    assert row is not None
    return row


async def prune_checkpoints(conn: Conn, execution_id: int, newest: int) -> None:
    await conn.execute(
        "delete from execution_checkpoints where execution_id = $1 and id < $2",
        execution_id,
        newest,
    )


async def delete_checkpoints(conn: Conn, execution_id: int) -> None:
    await conn.execute("delete from execution_checkpoints where execution_id = $1", execution_id)


async def events_after(
    conn: Conn, execution_id: int, after: int, limit: int
) -> list[asyncpg.Record]:
    return await conn.fetch(
        """select sequence, event_type, strategy_type, ts, event::text as event from execution_events
           where execution_id = $1 and sequence > $2 order by sequence limit $3""",
        execution_id,
        after,
        limit,
    )


async def trades_after(
    conn: Conn, execution_id: int, after: int, limit: int
) -> list[asyncpg.Record]:
    return await conn.fetch(
        "select * from execution_trades where execution_id = $1 and sequence > $2 order by sequence limit $3",
        execution_id,
        after,
        limit,
    )


async def latest_checkpoint(conn: Conn, execution_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(
        """
        select id, execution_id, processed, metrics, state, last_event_seq, last_trade_seq, created_at
        from execution_checkpoints where execution_id = $1 order by id desc limit 1
        """,
        execution_id,
    )


async def truncate_after(
    conn: asyncpg.Connection, execution_id: int, event_seq: int, trade_seq: int, processed: int
) -> None:
    """Forget what a lost run wrote after its last checkpoint (it will be written again)."""
    await conn.execute(
        "delete from execution_events where execution_id = $1 and sequence > $2",
        execution_id,
        event_seq,
    )
    await conn.execute(
        "delete from execution_trades where execution_id = $1 and sequence > $2",
        execution_id,
        trade_seq,
    )
    await conn.execute(
        "delete from execution_equity where execution_id = $1 and first_seq > $2",
        execution_id,
        processed,
    )


async def last_status_event(conn: Conn, execution_id: int) -> int:
    """The sequence of the last status change before any chunk was written (0 if none)."""
    value = await conn.fetchval(
        """
        select coalesce(max(sequence), 0) from execution_events e
        where execution_id = $1 and event_type = 'status_changed'
          and not exists (select 1 from execution_events x where x.execution_id = $1
                          and x.sequence < e.sequence and x.event_type <> 'status_changed')
        """,
        execution_id,
    )
    return int(value or 0)


async def events_page(
    conn: Conn, execution_id: int, *, since: int, event_type: str | None, limit: int, offset: int
) -> tuple[list[asyncpg.Record], int]:
    where = "execution_id = $1 and sequence > $2 and ($3::text is null or event_type = $3)"
    rows = await conn.fetch(
        f"""select sequence, event_type, strategy_type, ts, event::text as event, created_at
            from execution_events where {where} order by sequence limit $4 offset $5""",
        execution_id,
        since,
        event_type,
        limit,
        offset,
    )
    count = await conn.fetchval(
        f"select count(*) from execution_events where {where}", execution_id, since, event_type
    )
    return rows, int(count)


async def trades_page(
    conn: Conn,
    execution_id: int,
    *,
    since: int,
    instrument: str | None,
    direction: str | None,
    limit: int,
    offset: int,
) -> tuple[list[asyncpg.Record], int]:
    where = (
        "execution_id = $1 and sequence > $2 and ($3::text is null or instrument = $3) "
        "and ($4::text is null or direction = $4)"
    )
    rows = await conn.fetch(
        f"select * from execution_trades where {where} order by sequence limit $5 offset $6",
        execution_id,
        since,
        instrument,
        direction,
        limit,
        offset,
    )
    count = await conn.fetchval(
        f"select count(*) from execution_trades where {where}",
        execution_id,
        since,
        instrument,
        direction,
    )
    return rows, int(count)


async def last_sequence(conn: Conn, table: str, execution_id: int) -> int:
    if table == "execution_equity":
        value = await conn.fetchval(
            "select max(first_seq + count - 1) from execution_equity where execution_id = $1",
            execution_id,
        )
    else:
        value = await conn.fetchval(
            f"select max(sequence) from {table} where execution_id = $1", execution_id
        )
    return int(value or 0)


async def equity_chunks(
    conn: Conn, execution_id: int, after: int = 0, limit: int | None = None
) -> list[asyncpg.Record]:
    """The stored chunks holding points after ``after`` (only those covering the next
    ``limit`` points, when given)."""
    return await conn.fetch(
        """select first_seq, count, ts, balance from execution_equity
           where execution_id = $1 and first_seq + count - 1 > $2
             and ($3::bigint is null or first_seq <= $2 + $3)
           order by first_seq""",
        execution_id,
        after,
        limit,
    )


async def write_downsampled(
    conn: asyncpg.Connection,
    execution_id: int,
    curves: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]],
) -> None:
    """``curves``: (max_points, sequences, ns times, balances) of a finished curve's LTTB."""
    await conn.executemany(
        """insert into execution_equity_lttb (execution_id, max_points, seq, ts, balance)
           values ($1, $2, $3, $4, $5)
           on conflict (execution_id, max_points) do update
           set seq = excluded.seq, ts = excluded.ts, balance = excluded.balance""",
        [
            (
                execution_id,
                max_points,
                np.ascontiguousarray(seq, dtype="<i8").tobytes(),
                np.ascontiguousarray(ts, dtype="<i8").tobytes(),
                np.ascontiguousarray(balance, dtype="<f8").tobytes(),
            )
            for max_points, seq, ts, balance in curves
        ],
    )


async def downsampled(conn: Conn, execution_id: int, max_points: int) -> asyncpg.Record | None:
    return await conn.fetchrow(
        """select seq, ts, balance from execution_equity_lttb
           where execution_id = $1 and max_points = $2""",
        execution_id,
        max_points,
    )
