"""A walk-forward backtest's trades and equity as an execution, so that seed 003's routes
(``/api/trading/executions/{id}/...``) and the executions' GraphQL read it like any backtest.

Written the way the executions pipeline writes a strategy with its own simulator: a task and
an execution owned by the backtest's creator, its status moved to running, its trades (with
their events) and equity persisted in chunks, then completed with its final value.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import numpy as np

from hub.research.backtests import repository as backtests_repo

if TYPE_CHECKING:
    import asyncpg

    from hub.research.service import ResearchService

CHUNK = 50_000


def _moment(ns: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ns / 1e9, tz=dt.UTC)


async def record_execution(
    service: ResearchService,
    backtest: asyncpg.Record,
    model: asyncpg.Record,
    data: dict[str, np.ndarray],
    params: dict[str, Any],
    result: Any,
) -> int:
    """The execution of ``result`` (the engine's run of ``params`` on ``data``); made once: a
    re-run of the job finds it."""
    from hub.executions import repository as erepo
    from hub.executions.model import ExecutionStatus

    owner = str(backtest["created_by"])
    writer = service.resources.service("executions").runs
    if backtest["execution_id"] is not None:  # an earlier attempt of the job wrote it...
        earlier = await erepo.get(service.pool, int(backtest["execution_id"]))
        if earlier is not None and earlier["status"] == ExecutionStatus.COMPLETED:
            return int(earlier["execution_id"])
        if earlier is not None:  # ...or began to: closed as failed, and written again whole
            streams = await writer.streams_at_end(earlier)
            await writer.set_status(
                streams, ExecutionStatus.FAILED, int(data["ts"][0]),
                error="its research backtest's job was retried",
            )  # fmt: skip
    ts = data["ts"]
    total = len(ts)
    async with service.pool.acquire() as conn, conn.transaction():
        task_id = await erepo.insert_task(
            conn,
            owner,
            {
                "task_type": "backtest",
                "strategy": "threshold",
                "params": {**params, "research_backtest_id": backtest["backtest_id"]},
                "symbols": [model["ticker"]],
                "timeframe": model["timeframe"],
                "start_at": _moment(int(ts[0])),
                "end_at": _moment(int(ts[-1])),
                "initial_capital": 10_000.0,
                "options": {},
            },
        )
        execution_id = await erepo.insert_execution(conn, task_id, owner, None, total=total)
        await backtests_repo.set_execution(conn, backtest["backtest_id"], execution_id)
    row = await erepo.get(service.pool, execution_id)
    assert row is not None
    streams = await writer.streams_from(row, None)
    await writer.set_status(
        streams, ExecutionStatus.RUNNING, int(ts[0]), when_in=frozenset({ExecutionStatus.CREATED})
    )
    trades = result.trades
    exits = trades["exit_index"]
    trades = trades[np.argsort(np.where(exits < 0, total, exits), kind="stable")]
    exit_at = np.where(trades["exit_index"] < 0, total - 1, trades["exit_index"])
    timings = {"load": 0.0, "engine": 0.0, "records": 0.0, "write": 0.0, "publish": 0.0}
    for start in range(0, total, CHUNK):
        stop = min(total, start + CHUNK)
        streams.add_trades(trades[(exit_at >= start) & (exit_at < stop)])
        metrics = result.metrics if stop == total else {"processed": float(stop)}
        await writer.persist_now(
            streams, start, ts[start:stop], result.equity[start:stop], stop, total, metrics,
            None, timings,
        )  # fmt: skip
    await writer.set_status(
        streams, ExecutionStatus.COMPLETED, int(ts[-1]), final_value=float(result.equity[-1])
    )
    return execution_id
