"""SQL for runs, simulations and simulation trades."""

from __future__ import annotations

from typing import Any

import asyncpg

from hub.db import Conn

RUN_COLUMNS = "run_id, dataset_id, fold_count, features, thresholds, created_by, created_at"
SIMULATION_COLUMNS = """simulation_id, run_id, initial_capital, parameters, results, status,
    job_id, created_by, created_at, completed_at"""
TRADE_COLUMNS = (
    "simulation_id",
    "n",
    "trade_id",
    "bar_timestamp",
    "side",
    "size",
    "entry_price",
    "exit_price",
    "pnl",
    "return_pct",
    "metadata",
)


# -- runs ---------------------------------------------------------------------------------


async def insert_run(conn: Conn, values: dict[str, Any], created_by: str) -> asyncpg.Record | None:
    """The new run; None when ``run_id`` is taken."""
    return await conn.fetchrow(
        f"""
        insert into runs (run_id, dataset_id, fold_count, features, thresholds, created_by)
        values ($1, $2, $3, $4, $5, $6)
        on conflict (run_id) do nothing
        returning {RUN_COLUMNS}
        """,
        values["run_id"],
        values["dataset_id"],
        values["fold_count"],
        values["features"],
        values["thresholds"],
        created_by,
    )


async def get_run(conn: Conn, run_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(f"select {RUN_COLUMNS} from runs where run_id = $1", run_id)


async def list_runs(
    conn: Conn, dataset_id: str | None, limit: int, offset: int
) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"""select {RUN_COLUMNS} from runs where ($1::uuid is null or dataset_id = $1)
            order by created_at desc, run_id desc limit $2 offset $3""",
        dataset_id,
        limit,
        offset,
    )


# -- simulations --------------------------------------------------------------------------


async def insert_simulation(
    conn: Conn, values: dict[str, Any], created_by: str
) -> asyncpg.Record | None:
    """The new simulation; None when ``simulation_id`` is taken."""
    return await conn.fetchrow(
        f"""
        insert into simulations (simulation_id, run_id, initial_capital, parameters, created_by)
        values ($1, $2, $3, $4, $5)
        on conflict (simulation_id) do nothing
        returning {SIMULATION_COLUMNS}
        """,
        values["simulation_id"],
        values["run_id"],
        values["initial_capital"],
        values["parameters"],
        created_by,
    )


async def set_job(conn: Conn, simulation_id: str, job_id: str) -> None:
    await conn.execute(
        "update simulations set job_id = $2 where simulation_id = $1", simulation_id, job_id
    )


async def get_simulation(conn: Conn, simulation_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"select {SIMULATION_COLUMNS} from simulations where simulation_id = $1", simulation_id
    )


async def lock_simulation(conn: Conn, simulation_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"select {SIMULATION_COLUMNS} from simulations where simulation_id = $1 for update",
        simulation_id,
    )


async def list_simulations(
    conn: Conn, run_id: str | None, limit: int, offset: int
) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"""select {SIMULATION_COLUMNS} from simulations where ($1::uuid is null or run_id = $1)
            order by created_at desc, simulation_id desc limit $2 offset $3""",
        run_id,
        limit,
        offset,
    )


async def set_status(
    conn: Conn, simulation_id: str, status: str, *, unless: tuple[str, ...] = ()
) -> asyncpg.Record | None:
    """Move the simulation to ``status`` (not from a status in ``unless``)."""
    return await conn.fetchrow(
        f"""update simulations set status = $2,
                   completed_at = case when $2 in ('completed', 'failed', 'cancelled')
                                       then now() end
            where simulation_id = $1 and not (status = any($3::text[]))
            returning {SIMULATION_COLUMNS}""",
        simulation_id,
        status,
        list(unless),
    )


async def complete(
    conn: asyncpg.Connection,
    simulation_id: str,
    results: dict[str, Any],
    trades: list[tuple[Any, ...]],
) -> asyncpg.Record:
    """Trades (in place of any an earlier attempt wrote) and results, in the caller's
    transaction."""
    await conn.execute("delete from simulation_trades where simulation_id = $1", simulation_id)
    if trades:
        await conn.copy_records_to_table(
            "simulation_trades", records=trades, columns=list(TRADE_COLUMNS)
        )
    row = await conn.fetchrow(
        f"""update simulations set results = $2, status = 'completed', completed_at = now()
            where simulation_id = $1 returning {SIMULATION_COLUMNS}""",
        simulation_id,
        results,
    )
    assert row is not None
    return row


async def trades(conn: Conn, simulation_id: str, limit: int, offset: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"""select {", ".join(TRADE_COLUMNS)} from simulation_trades where simulation_id = $1
            order by n limit $2 offset $3""",
        simulation_id,
        limit,
        offset,
    )
