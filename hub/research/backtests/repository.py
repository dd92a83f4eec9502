"""SQL for research's backtests and sweeps: a backtest's row from insert to completion, a
sweep's configs (one backtest each) and its end, and the leaderboard over completed backtests."""

from __future__ import annotations

from typing import Any

import asyncpg

from hub.db import Conn

BACKTEST_COLUMNS = """backtest_id, kind, model_id, sweep_id, n, matrix_sha, run_id, execution_id, config,
    start_date, end_date, risk_profile, tag, status, metrics, gate_pass, gate_reasons, error,
    job_id, created_by, created_at, completed_at"""
SORTS = {
    "sharpe": "(b.metrics->>'sharpe')::float8",
    "cum_ret": "(b.metrics->>'cum_ret')::float8",
    "max_drawdown": "(b.metrics->>'max_drawdown')::float8",
    "win_rate": "(b.metrics->>'win_rate')::float8",
    "trades": "(b.metrics->>'trades')::float8",
    "created_at": "extract(epoch from b.completed_at)",
}


# -- backtests ----------------------------------------------------------------------------


async def insert_backtest(conn: Conn, values: dict[str, Any], created_by: str) -> asyncpg.Record:
    row = await conn.fetchrow(
        f"""insert into research.backtests (backtest_id, kind, model_id, sweep_id, n, matrix_sha,
                run_id, config, start_date, end_date, risk_profile, tag, created_by)
            values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
            returning {BACKTEST_COLUMNS}""",
        values["backtest_id"],
        values["kind"],
        values["model_id"],
        values.get("sweep_id"),
        values.get("n"),
        values.get("matrix_sha"),
        values.get("run_id"),
        values["config"],
        values.get("start_date"),
        values.get("end_date"),
        values["risk_profile"],
        values.get("tag"),
        created_by,
    )
    assert row is not None
    return row


async def insert_sweep_configs(conn: asyncpg.Connection, rows: list[tuple[Any, ...]]) -> None:
    await conn.copy_records_to_table(
        "backtests",
        schema_name="research",
        records=rows,
        columns=[
            "backtest_id", "kind", "model_id", "sweep_id", "n", "matrix_sha", "run_id",
            "config", "risk_profile", "tag", "created_by",
        ],
    )  # fmt: skip


async def get_backtest(conn: Conn, backtest_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"select {BACKTEST_COLUMNS} from research.backtests where backtest_id = $1", backtest_id
    )


async def newest_walk_forward(conn: Conn, model_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"""select {BACKTEST_COLUMNS} from research.backtests
            where model_id = $1 and kind = 'walk_forward' and status = 'completed'
            order by completed_at desc limit 1""",
        model_id,
    )


async def set_execution(conn: Conn, backtest_id: str, execution_id: int) -> None:
    await conn.execute(
        "update research.backtests set execution_id = $2 where backtest_id = $1",
        backtest_id,
        execution_id,
    )


async def complete_backtest(
    conn: Conn,
    backtest_id: str,
    metrics: dict[str, Any],
    passed: bool,
    reasons: list[str],
    run_id: str | None = None,
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"""update research.backtests set metrics = $2, gate_pass = $3, gate_reasons = $4,
                   run_id = coalesce($5, run_id), status = 'completed', completed_at = now()
            where backtest_id = $1 and status = 'running' returning {BACKTEST_COLUMNS}""",
        backtest_id,
        metrics,
        passed,
        reasons,
        run_id,
    )  # fmt: skip


async def end_backtests(
    conn: Conn,
    *,
    backtest_id: str | None = None,
    job_id: str | None = None,
    status: str,
    error: str | None,
) -> list[asyncpg.Record]:
    """Close the running backtests of ``backtest_id`` or of ``job_id`` as failed/cancelled."""
    return await conn.fetch(
        f"""update research.backtests set status = $3, error = $4, completed_at = now()
            where status = 'running' and (backtest_id = $1 or job_id = $2::uuid)
            returning {BACKTEST_COLUMNS}""",
        backtest_id,
        job_id,
        status,
        error,
    )  # fmt: skip


def _filters(filters: dict[str, Any]) -> tuple[str, list[Any]]:
    clauses = ["b.status = 'completed'"]
    args: list[Any] = []
    for name, column in (
        ("model_id", "b.model_id"), ("pack_id", "m.pack_id"), ("tag", "b.tag"),
        ("risk_profile", "b.risk_profile"), ("pass_gate", "b.gate_pass"),
        ("sweep_id", "b.sweep_id"),
    ):  # fmt: skip
        if filters.get(name) is not None:
            args.append(filters[name])
            clauses.append(f"{column} = ${len(args)}")
    return " and ".join(clauses), args


async def leaderboard(
    conn: Conn, filters: dict[str, Any], sort_by: str, limit: int, offset: int
) -> tuple[list[asyncpg.Record], int]:
    where, args = _filters(filters)
    order = SORTS[sort_by]  # larger is better for each (a drawdown is negative)
    rows = await conn.fetch(
        f"""select {", ".join("b." + c.strip() for c in BACKTEST_COLUMNS.split(","))},
                   m.pack_id
            from research.backtests b join research.models m using (model_id)
            where {where}
            order by {order} desc nulls last, b.backtest_id
            limit ${len(args) + 1} offset ${len(args) + 2}""",
        *args,
        limit,
        offset,
    )
    total = await conn.fetchval(
        f"""select count(*) from research.backtests b join research.models m using (model_id)
            where {where}""",
        *args,
    )
    return rows, int(total)


# -- sweeps -------------------------------------------------------------------------------


SWEEP_COLUMNS = """sweep_id, model_id, source_backtest_id, risk_profile, grid, tag,
    total_configs, status, created_by, created_at, completed_at"""


async def insert_sweep(conn: Conn, values: dict[str, Any], created_by: str) -> None:
    await conn.execute(
        """insert into research.sweeps (sweep_id, model_id, source_backtest_id, risk_profile,
               grid, tag, total_configs, created_by)
           values ($1, $2, $3, $4, $5, $6, $7, $8)""",
        values["sweep_id"],
        values["model_id"],
        values["source_backtest_id"],
        values["risk_profile"],
        values["grid"],
        values["tag"],
        values["total_configs"],
        created_by,
    )


async def get_sweep(conn: Conn, sweep_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"""select {SWEEP_COLUMNS},
               (select count(*) from research.backtests b
                 where b.sweep_id = s.sweep_id and b.status <> 'running') as done
            from research.sweeps s where sweep_id = $1""",
        sweep_id,
    )


async def sweep_configs(conn: Conn, sweep_id: str, first: int, last: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"""select {BACKTEST_COLUMNS} from research.backtests
            where sweep_id = $1 and n between $2 and $3 order by n""",
        sweep_id,
        first,
        last,
    )


async def set_chunk_job(conn: Conn, sweep_id: str, first: int, last: int, job_id: str) -> None:
    await conn.execute(
        """update research.backtests set job_id = $4
           where sweep_id = $1 and n between $2 and $3""",
        sweep_id,
        first,
        last,
        job_id,
    )


async def finish_sweep_if_done(conn: Conn, sweep_id: str) -> asyncpg.Record | None:
    """Mark the sweep completed (or failed) once no config of it is running; the sweep when
    this call ended it."""
    return await conn.fetchrow(
        f"""update research.sweeps s set completed_at = now(),
                   status = case when exists (select 1 from research.backtests b
                                              where b.sweep_id = s.sweep_id
                                                and b.status <> 'completed')
                                 then 'failed' else 'completed' end
            where sweep_id = $1 and status = 'running'
              and not exists (select 1 from research.backtests b
                              where b.sweep_id = s.sweep_id and b.status = 'running')
            returning {SWEEP_COLUMNS}""",
        sweep_id,
    )


async def lock_sweep(conn: Conn, sweep_id: str) -> None:
    await conn.execute("select 1 from research.sweeps where sweep_id = $1 for update", sweep_id)
