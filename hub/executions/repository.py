"""SQL for execution tasks, executions, and their events, trades, equity and checkpoints."""

from __future__ import annotations

from typing import Any

import asyncpg
import numpy as np

from hub.db import Conn
from hub.executions import copyrows
from hub.executions.curvecodec import encode_balances, encode_times
from hub.executions.model import ACTIVE

EXECUTION_COLUMNS = """e.execution_id, e.task_id, e.owner_id, e.execution_number, e.status, e.progress,
    e.processed, e.total, e.job_id, e.stop_requested, e.error_message, e.final_value, e.version,
    e.started_at, e.completed_at, e.created_at, e.updated_at, e.stop_keeps_position,
    t.task_type, t.strategy, t.params, t.symbols, t.timeframe, t.start_at, t.end_at,
    t.initial_capital, t.options, t.exchange, t.account_id, t.mode"""
FROM = "executions e join execution_tasks t using (task_id)"


async def insert_task(conn: Conn, owner_id: str, values: dict[str, Any]) -> int:
    task_id = await conn.fetchval(
        """
        insert into execution_tasks (owner_id, task_type, strategy, params, symbols, timeframe,
                                     start_at, end_at, initial_capital, options, exchange,
                                     account_id, mode, exchange_secret)
        values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
        returning task_id
        """,
        owner_id,
        values["task_type"],
        values["strategy"],
        values["params"],
        values["symbols"],
        values["timeframe"],
        values["start_at"],
        values["end_at"],
        values["initial_capital"],
        values["options"],
        values.get("exchange", ""),
        values.get("account_id"),
        values.get("mode", "backtest"),
        values.get("exchange_secret"),
    )
    return int(task_id)


async def insert_execution(
    conn: Conn, task_id: int, owner_id: str, job_id: str | None, *, total: int = 0
) -> int:
    execution_id = await conn.fetchval(
        """
        insert into executions (task_id, owner_id, execution_number, job_id, total)
        values ($1, $2, coalesce((select max(execution_number) from executions where task_id = $1), 0) + 1, $3, $4)
        returning execution_id
        """,
        task_id,
        owner_id,
        job_id,
        total,
    )
    return int(execution_id)


async def status_of(conn: Conn, execution_id: int) -> str | None:
    value = await conn.fetchval(
        "select status from executions where execution_id = $1", execution_id
    )
    return None if value is None else str(value)


async def current_run(conn: Conn, owner_id: str) -> int | None:
    value = await conn.fetchval(
        "select execution_id from cracktrader_runners where owner_id = $1", owner_id
    )
    return None if value is None else int(value)


async def lock_current_run(conn: Conn, owner_id: str) -> int | None:
    """The user's runner row, locked for this transaction (created empty if missing)."""
    await conn.execute(
        "insert into cracktrader_runners (owner_id) values ($1) on conflict (owner_id) do nothing",
        owner_id,
    )
    value = await conn.fetchval(
        "select execution_id from cracktrader_runners where owner_id = $1 for update", owner_id
    )
    return None if value is None else int(value)


async def set_current_run(conn: Conn, owner_id: str, execution_id: int) -> None:
    await conn.execute(
        """insert into cracktrader_runners (owner_id, execution_id) values ($1, $2)
           on conflict (owner_id) do update set execution_id = excluded.execution_id, updated_at = now()""",
        owner_id,
        execution_id,
    )


async def clear_current_run(conn: Conn, owner_id: str) -> None:
    await conn.execute("delete from cracktrader_runners where owner_id = $1", owner_id)


async def get(conn: Conn, execution_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"select {EXECUTION_COLUMNS} from {FROM} where e.execution_id = $1", execution_id
    )


async def owner(conn: Conn, execution_id: int) -> str | None:
    value = await conn.fetchval(
        "select owner_id from executions where execution_id = $1", execution_id
    )
    return None if value is None else str(value)


async def list_executions(
    conn: Conn,
    *,
    owner_id: str | None,
    status: str | None,
    limit: int,
    offset: int,
    task_type: str | None = None,
) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"""
        select {EXECUTION_COLUMNS} from {FROM}
        where ($1::uuid is null or e.owner_id = $1) and ($2::text is null or e.status = $2)
          and ($5::text is null or t.task_type = $5)
        order by e.execution_id desc limit $3 offset $4
        """,
        owner_id,
        status,
        limit,
        offset,
        task_type,
    )


async def set_status(
    conn: Conn,
    execution_id: int,
    status: str,
    *,
    error: str | None = None,
    final_value: float | None = None,
    when_in: tuple[str, ...] = tuple(ACTIVE),
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"""
        with u as (
            update executions set status = $2, error_message = coalesce($3, error_message),
                final_value = coalesce($4, final_value), version = version + 1, updated_at = now(),
                started_at = case when $2 = 'running' then coalesce(started_at, now()) else started_at end,
                completed_at = case when $2 in ('stopped', 'completed', 'failed') then now() else completed_at end
            where execution_id = $1 and status = any($5::text[])
            returning *
        )
        select {EXECUTION_COLUMNS.replace("e.", "u.")} from u join execution_tasks t using (task_id)
        """,
        execution_id,
        status,
        error,
        final_value,
        list(when_in),
    )


async def set_progress(
    conn: Conn, execution_id: int, processed: int, total: int
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"""
        with u as (
            update executions set processed = $2::bigint, total = $3::bigint,
                progress = case when $3::bigint > 0 then round(($2::bigint * 100.0 / $3::bigint)::numeric, 2) else 0 end,
                version = version + 1, updated_at = now()
            where execution_id = $1
            returning *
        )
        select {EXECUTION_COLUMNS.replace("e.", "u.")} from u join execution_tasks t using (task_id)
        """,
        execution_id,
        processed,
        total,
    )


async def active_live(conn: Conn) -> list[int]:
    """Live executions not yet ended, oldest first."""
    rows = await conn.fetch(
        """
        select e.execution_id from executions e join execution_tasks t using (task_id)
        where e.status in ('created', 'running', 'paused') and t.task_type = 'live'
        order by e.execution_id
        """
    )
    return [r["execution_id"] for r in rows]


async def live_flags(conn: Conn, execution_ids: list[int]) -> list[asyncpg.Record]:
    return await conn.fetch(
        "select execution_id, status, stop_requested from executions where execution_id = any($1)",
        execution_ids,
    )


async def request_live_stop(conn: Conn, execution_id: int, keep_position: bool | None) -> None:
    await conn.execute(
        "update executions set stop_requested = true, stop_keeps_position = $2 where execution_id = $1",
        execution_id,
        keep_position,
    )


async def request_stop(conn: Conn, execution_id: int) -> bool:
    status = await conn.execute(
        "update executions set stop_requested = true, updated_at = now() "
        "where execution_id = $1 and status in ('created', 'running', 'paused')",
        execution_id,
    )
    return str(status).endswith(" 1")


async def stop_requested(conn: Conn, execution_id: int) -> bool:
    return bool(
        await conn.fetchval(
            "select stop_requested from executions where execution_id = $1", execution_id
        )
    )


# -- streams ----------------------------------------------------------------------------


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
