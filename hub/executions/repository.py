"""SQL for execution tasks, executions and each user's current run: the rows whose status and
progress an execution moves through. What a run writes (events, trades, equity, checkpoints) is
in ``hub.executions.streams.repository``."""

from __future__ import annotations

from typing import Any

import asyncpg

from hub.db import Conn
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
