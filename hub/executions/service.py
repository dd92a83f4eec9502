"""Decisions about executions: validate a backtest before anything is written, start it as a
job in one transaction, run it, read its streams back, stop it, and check who may see it.

Errors name the domain's fields (``strategy``, ``params``, ``symbols``, ``timeframe``,
``start``, ``end``, ``initial_capital``, ``options``); each interface maps them to its words.
"""

from __future__ import annotations

import builtins
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import asyncpg
import numpy as np

from hub.auth import Identity
from hub.datasets.timeframes import timeframe_ns
from hub.errors import BadRequest, Conflict, Forbidden, NotFound
from hub.executions import repository as repo
from hub.executions.curves import Curves
from hub.executions.documents import status_document
from hub.executions.livestart import checked_task
from hub.executions.model import (
    ACTIVE,
    OPTION_KEYS,
    BacktestRequest,
    ExecutionStatus,
    LiveRequest,
)
from hub.executions.pipeline import BacktestRun
from hub.executions.runs import RunWriter
from hub.executions.streams import repository as streams_repo
from hub.times import checked_ns, ns_of

if TYPE_CHECKING:
    from hub.datasets.service import DatasetService
    from hub.domains import Resources
    from hub.executions.livehost import LiveHost
    from hub.jobs.context import JobContext
    from hub.jobs.service import JobService

BACKTEST_JOB = "execution.backtest"
MAX_CURVE_POINTS = 1_000_000


@dataclass(frozen=True)
class RunSummary:
    """What Cracktrader's status and results report about a run, derived from its metrics."""

    cash: float
    value: float
    pnl: float
    final_value: float
    trade_count: int
    runtime_seconds: float | None


def validate_strategy(strategy: str, params: dict[str, Any], options: dict[str, Any]) -> None:
    """Check the strategy, its parameters and the simulation options on a tiny series, before
    anything is written (the engine raises ValueError naming what is wrong)."""
    from engine.backtest import get_strategy

    try:
        entry = get_strategy(strategy)
    except ValueError as exc:
        raise BadRequest(str(exc), field="strategy") from None
    unknown = sorted(set(options) - set(OPTION_KEYS))
    if unknown:
        raise BadRequest(
            f"unknown option {unknown[0]!r}; options are {', '.join(OPTION_KEYS)}",
            field=unknown[0],
        )
    from engine.sim_options import check_params, sim_config
    from engine.strategies import BarStrategy

    if isinstance(entry, BarStrategy):
        try:
            values = check_params(entry.name, entry.params, params)
            if entry.check is not None:
                entry.check(values)
        except ValueError as exc:
            raise BadRequest(str(exc), field="params") from None
        try:
            sim_config(options)
        except ValueError as exc:
            raise BadRequest(str(exc), field="options") from None
    else:
        known = {p["name"] for p in entry.params}
        extra = sorted(set(params) - known)
        if extra:
            raise BadRequest(
                f"unknown parameter {extra[0]!r} for strategy {strategy!r}", field="params"
            )


def parse_execution_id(raw: int | str) -> int:
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise NotFound(f"execution {raw!r} not found") from None
    if value <= 0 or value >= 2**63:
        raise NotFound(f"execution {raw!r} not found")
    return value


class ExecutionService:
    def __init__(self, resources: Resources) -> None:
        self.resources = resources
        self.pool: asyncpg.Pool = resources.pool
        self.bus = resources.bus
        self.jobs: JobService = resources.service("jobs")
        self.datasets: DatasetService = resources.service("datasets")
        self.runs = RunWriter(self.pool, self.bus)
        self.curves = Curves(self.pool)
        self.live_host: LiveHost | None = None  # a worker's, set by the domain's start hook

    # -- starting ---------------------------------------------------------------------

    async def start_backtest(
        self, identity: Identity, request: BacktestRequest, *, as_current_run: bool = False
    ) -> asyncpg.Record:
        if not request.symbols or len(request.symbols) != 1:
            raise BadRequest(
                f"symbols must name exactly one dataset symbol, got {request.symbols!r}",
                field="symbols",
                details={"supported_symbols": await self.datasets.symbols(request.timeframe)},
            )
        if not math.isfinite(request.initial_capital) or request.initial_capital <= 0:
            raise BadRequest(
                f"initial capital must be positive, got {request.initial_capital}",
                field="initial_capital",
            )
        try:
            timeframe_ns(request.timeframe)
        except ValueError as exc:
            raise BadRequest(str(exc), field="timeframe") from None
        start_ns = checked_ns(request.start, "start")
        end_ns = checked_ns(request.end, "end")
        if start_ns is not None and end_ns is not None and end_ns <= start_ns:
            raise BadRequest(
                "the date range is empty: the end must be after the start", field="end"
            )
        validate_strategy(request.strategy, request.params, request.options)
        symbol = request.symbols[0]
        dataset = await self.datasets.find(symbol, request.timeframe)
        if dataset is None:
            raise BadRequest(
                f"symbol {symbol!r} is not supported: no {request.timeframe} data for it",
                field="symbols",
                details={"supported_symbols": await self.datasets.symbols(request.timeframe)},
            )
        bars = await self.datasets.count_bars(dataset, start_ns, end_ns)
        if bars == 0:
            raise BadRequest(
                f"no {request.timeframe} bars for {symbol!r} in the date range", field="start"
            )
        async with self.pool.acquire() as conn, conn.transaction():
            if as_current_run:
                await self._check_runner_idle(conn, identity)
            task_id = await repo.insert_task(
                conn,
                identity.user_id,
                {
                    "task_type": "backtest",
                    "strategy": request.strategy,
                    "params": request.params,
                    "symbols": request.symbols,
                    "timeframe": request.timeframe,
                    "start_at": request.start,
                    "end_at": request.end,
                    "initial_capital": float(request.initial_capital),
                    "options": request.options,
                    "exchange": request.exchange,
                },
            )
            job = await self.jobs.insert(
                conn, identity, BACKTEST_JOB, {"task_id": task_id}, total=bars
            )
            job_id = str(job["job_id"])
            execution_id = await repo.insert_execution(
                conn, task_id, identity.user_id, job_id, total=bars
            )
            await self.jobs.add_to_payload(conn, job_id, execution_id=execution_id)
            if as_current_run:
                await repo.set_current_run(conn, identity.user_id, execution_id)
        await self.jobs.after_insert(job_id)
        row = await repo.get(self.pool, execution_id)
        assert row is not None
        await self.runs.announce(row)
        return row

    async def start_live(
        self, identity: Identity, request: LiveRequest, *, as_current_run: bool = False
    ) -> asyncpg.Record:
        """Create a live run (status ``created``); a worker's live host takes it within a beat."""
        values = await checked_task(
            identity,
            request,
            self.resources.service("broker"),
            self.resources.service("marketdata"),
            self.datasets,
        )
        async with self.pool.acquire() as conn, conn.transaction():
            if as_current_run:
                await self._check_runner_idle(conn, identity)
            task_id = await repo.insert_task(conn, identity.user_id, values)
            execution_id = await repo.insert_execution(conn, task_id, identity.user_id, None)
            if as_current_run:
                await repo.set_current_run(conn, identity.user_id, execution_id)
        row = await repo.get(self.pool, execution_id)
        assert row is not None
        await self.runs.announce(row)
        return row

    async def _check_runner_idle(self, conn: asyncpg.Connection, identity: Identity) -> None:
        """One Cracktrader runner per user: the lock makes "is a run active?" and "start this
        one" a single step."""
        current = await repo.lock_current_run(conn, identity.user_id)
        status = None if current is None else await repo.status_of(conn, current)
        if status in ACTIVE:
            raise Conflict(
                f"run {current} is still {status}; stop it first", details={"run_id": current}
            )

    async def current_run(self, identity: Identity) -> asyncpg.Record | None:
        """Cracktrader's current run of ``identity`` (its latest, until reset)."""
        execution_id = await repo.current_run(self.pool, identity.user_id)
        return None if execution_id is None else await self.get(identity, execution_id)

    async def reset_current_run(self, identity: Identity) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            execution_id = await repo.lock_current_run(conn, identity.user_id)
            if execution_id is not None:
                status = await repo.status_of(conn, execution_id)
                if status in ACTIVE:
                    raise Conflict(
                        f"run {execution_id} is still {status}; stop it first",
                        details={"run_id": execution_id},
                    )
            await repo.clear_current_run(conn, identity.user_id)

    # -- running (in a worker) --------------------------------------------------------

    async def run_backtest(self, ctx: JobContext, execution_id: int) -> dict[str, Any]:
        row = await repo.get(self.pool, execution_id)
        if row is None:
            raise ValueError(f"execution {execution_id} does not exist")
        if ExecutionStatus(row["status"]).terminal:
            return {"execution_id": execution_id, "status": row["status"]}
        checkpoint = await streams_repo.latest_checkpoint(self.pool, execution_id)
        return await BacktestRun(ctx, self.runs, self.datasets, row, checkpoint).run()

    async def job_ended(self, job_row: asyncpg.Record) -> None:
        """A backtest job ended FAILED or CANCELLED without its handler closing the execution
        (a cancel while pending, a lost worker on its last try): close it now, with its events."""
        execution_id = (job_row["payload"] or {}).get("execution_id")
        if execution_id is None:
            return
        row = await repo.get(self.pool, int(execution_id))
        if row is None or row["status"] not in ACTIVE:
            return
        cancelled = job_row["status"] == "CANCELLED"
        streams = await self.runs.streams_at_end(row)
        await self.runs.set_status(
            streams,
            ExecutionStatus.STOPPED if cancelled else ExecutionStatus.FAILED,
            ns_of(datetime.now(UTC).replace(microsecond=0)),
            error=None if cancelled else (job_row["error"] or "the job running it failed"),
        )

    # -- reading ----------------------------------------------------------------------

    async def get(self, identity: Identity, execution_id: int | str) -> asyncpg.Record:
        number = parse_execution_id(execution_id)
        row = await repo.get(self.pool, number)
        if row is None:
            raise NotFound(f"execution {execution_id} not found")
        if not identity.is_admin and str(row["owner_id"]) != identity.user_id:
            raise Forbidden("you do not have access to this execution")
        return row

    async def list(
        self,
        identity: Identity,
        *,
        status: str | None,
        limit: int,
        offset: int,
        task_type: str | None = None,
    ) -> builtins.list[asyncpg.Record]:
        if status is not None and status not in set(ExecutionStatus):
            raise BadRequest(
                f"status must be one of {', '.join(ExecutionStatus)}, got {status!r}",
                field="status",
            )
        if task_type is not None and task_type not in ("backtest", "live"):
            raise BadRequest(
                f"task type must be backtest or live, got {task_type!r}", field="task_type"
            )
        owner = None if identity.is_admin else identity.user_id
        return await repo.list_executions(
            self.pool,
            owner_id=owner,
            status=status,
            limit=limit,
            offset=offset,
            task_type=task_type,
        )

    async def stop(
        self, identity: Identity, execution_id: int | str, *, keep_position: bool | None = None
    ) -> asyncpg.Record:
        """Ask a running backtest to stop at its next chunk, a live run at its host's next beat
        (cancelling its working orders and, unless ``keep_position`` or its ``close_on_stop``
        option says otherwise, closing its position); one not yet started stops at once."""
        row = await self.get(identity, execution_id)
        if row["status"] not in ACTIVE:
            return row
        if row["task_type"] == "live":
            await repo.request_live_stop(self.pool, row["execution_id"], keep_position)
        else:
            await repo.request_stop(self.pool, row["execution_id"])
        if row["status"] == ExecutionStatus.CREATED:
            stopped = await repo.set_status(
                self.pool, row["execution_id"], ExecutionStatus.STOPPED, when_in=("created",)
            )
            if stopped is not None:
                await self.runs.announce(stopped)
                if row["job_id"] is not None:
                    await self.jobs.cancel(identity, str(row["job_id"]))
                return stopped
        current = await repo.get(self.pool, row["execution_id"])
        assert current is not None
        return current

    async def events_page(
        self, execution_id: int, *, since: int, event_type: str | None, limit: int, offset: int
    ) -> tuple[builtins.list[asyncpg.Record], int]:
        return await streams_repo.events_page(
            self.pool, execution_id, since=since, event_type=event_type, limit=limit, offset=offset
        )

    async def trades_page(
        self,
        execution_id: int,
        *,
        since: int = 0,
        instrument: str | None = None,
        direction: str | None = None,
        limit: int,
        offset: int,
    ) -> tuple[builtins.list[asyncpg.Record], int]:
        return await streams_repo.trades_page(
            self.pool,
            execution_id,
            since=since,
            instrument=instrument,
            direction=direction,
            limit=limit,
            offset=offset,
        )

    async def newest_trades(self, execution_id: int, limit: int) -> builtins.list[asyncpg.Record]:
        """The last ``limit`` trades, oldest of them first."""
        _, count = await self.trades_page(execution_id, limit=1, offset=0)
        rows, _ = await self.trades_page(execution_id, limit=limit, offset=max(0, count - limit))
        return rows

    async def latest_checkpoint(self, execution_id: int) -> asyncpg.Record | None:
        return await streams_repo.latest_checkpoint(self.pool, execution_id)

    async def status_document(self, row: asyncpg.Record) -> dict[str, Any]:
        checkpoint = await streams_repo.latest_checkpoint(self.pool, row["execution_id"])
        return status_document(row, checkpoint)

    def summary(self, row: asyncpg.Record, checkpoint: asyncpg.Record | None) -> RunSummary:
        """Cash (capital plus realised profit), value (plus open profit), profit, final value
        and trade count as of the checkpoint; the runtime from start to end (or now)."""
        metrics = checkpoint["metrics"] if checkpoint is not None else {}
        capital = float(row["initial_capital"])
        pnl = float(metrics.get("total_pnl") or 0.0)
        started, ended = row["started_at"], row["completed_at"]
        runtime = None
        if started is not None:
            runtime = round(((ended or datetime.now(UTC)) - started).total_seconds(), 3)
        final = row["final_value"]
        return RunSummary(
            cash=capital + float(metrics.get("realized_pnl") or 0.0),
            value=capital + pnl,
            pnl=pnl,
            final_value=float(final) if final is not None else capital + pnl,
            trade_count=int(metrics.get("total_trades") or 0),
            runtime_seconds=runtime,
        )

    # -- the equity curve -------------------------------------------------------------

    async def equity(
        self,
        execution_id: int,
        *,
        since: int = 0,
        start_ns: int | None = None,
        end_ns: int | None = None,
        max_points: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sequences, times (ns) and balances of the stored curve after ``since`` within the
        window, downsampled (LTTB, which keeps the first and last point and the shape) to at
        most ``max_points`` points when given; a completed run's whole curve at one of
        ``curves.STORED_SIZES`` is read as the run stored it."""
        if max_points is not None and not 2 <= max_points <= MAX_CURVE_POINTS:
            raise BadRequest(
                f"max_points must be between 2 and {MAX_CURVE_POINTS}, got {max_points}",
                field="max_points",
            )
        return await self.curves.read(
            execution_id, since=since, start_ns=start_ns, end_ns=end_ns, max_points=max_points
        )
