"""Decisions about executions: validate a backtest before anything is written, start it as a
job in one transaction, read its streams back, stop it, and check who may see it."""

from __future__ import annotations

import builtins
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import numpy as np

from hub.auth import Identity
from hub.bus import Bus
from hub.datasets import repository as datasets_repo
from hub.datasets.timeframes import timeframe_ns
from hub.errors import BadRequest, Conflict, Forbidden, NotFound
from hub.executions import repository as repo
from hub.executions.documents import checkpoint_document, iso
from hub.jobs.service import JobService

STATUSES = ("created", "running", "paused", "stopped", "completed", "failed")
ACTIVE = ("created", "running", "paused")
BACKTEST_JOB = "execution.backtest"
CURVE_CACHE_BYTES = 256 * 1024 * 1024
OPTION_KEYS = (
    "fill",
    "fees",
    "slippage",
    "slippage_unit",
    "direction",
    "sizing",
    "size",
    "stop_loss",
    "take_profit",
    "stop_unit",
    "max_bars",
    "allowed_hours",
)


@dataclass
class BacktestRequest:
    """A backtest as every interface asks for one (Cracktrader's BacktestRequest, GraphQL's input)."""

    strategy: str
    params: dict[str, Any]
    symbols: list[str]
    timeframe: str
    start: datetime | None = None
    end: datetime | None = None
    initial_capital: float = 10_000.0
    exchange: str = ""
    options: dict[str, Any] = field(default_factory=dict)


def _ns(value: datetime | None) -> int | None:
    if value is None:
        return None
    value = value if value.tzinfo else value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1_000_000) * 1000


def validate_strategy(strategy: str, params: dict[str, Any], options: dict[str, Any]) -> None:
    """Check the strategy, its parameters and the simulation options on a tiny series, before
    anything is written (the engine raises ValueError naming what is wrong)."""
    from engine.backtest import get_strategy

    try:
        entry = get_strategy(strategy)
    except ValueError as exc:
        raise BadRequest(str(exc), field="strategy_name") from None
    unknown = sorted(set(options) - set(OPTION_KEYS))
    if unknown:
        raise BadRequest(
            f"unknown option {unknown[0]!r}; options are {', '.join(OPTION_KEYS)}", field=unknown[0]
        )
    from engine.sim_options import check_params, sim_config
    from engine.strategies import BarStrategy

    if isinstance(entry, BarStrategy):
        try:
            values = check_params(entry.name, entry.params, params)
            if entry.check is not None:
                entry.check(values)
            sim_config(options)
        except ValueError as exc:
            raise BadRequest(str(exc), field="strategy_params") from None
    else:
        known = {p["name"] for p in entry.params}
        extra = sorted(set(params) - known)
        if extra:
            raise BadRequest(
                f"unknown parameter {extra[0]!r} for strategy {strategy!r}", field="strategy_params"
            )


class ExecutionService:
    def __init__(self, pool: asyncpg.Pool, bus: Bus, jobs: JobService) -> None:
        self.pool = pool
        self.bus = bus
        self.jobs = jobs
        self._curves: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    # -- starting ---------------------------------------------------------------------

    async def start_backtest(
        self, identity: Identity, request: BacktestRequest, *, as_current_run: bool = False
    ) -> asyncpg.Record:
        if not request.symbols or len(request.symbols) != 1:
            raise BadRequest(
                f"symbols must name exactly one dataset symbol, got {request.symbols!r}",
                field="symbols",
            )
        if not math.isfinite(request.initial_capital) or request.initial_capital <= 0:
            raise BadRequest(
                f"initial capital must be positive, got {request.initial_capital}",
                field="initial_cash",
            )
        try:
            timeframe_ns(request.timeframe)
        except ValueError as exc:
            raise BadRequest(str(exc), field="timeframe") from None
        start_ns, end_ns = _ns(request.start), _ns(request.end)
        if start_ns is not None and end_ns is not None and end_ns <= start_ns:
            raise BadRequest(
                "the date range is empty: end_date must be after start_date", field="end_date"
            )
        validate_strategy(request.strategy, request.params, request.options)
        symbol = request.symbols[0]
        dataset = await datasets_repo.get_by_symbol(self.pool, symbol, request.timeframe)
        if dataset is None or not dataset["ohlcv_measurement"]:
            raise BadRequest(f"no {request.timeframe} data for symbol {symbol!r}", field="symbols")
        bars = await datasets_repo.count_bars(
            self.pool, dataset["ohlcv_measurement"], start_ns, end_ns
        )
        if bars == 0:
            raise BadRequest(
                f"no {request.timeframe} bars for {symbol!r} in the date range", field="start_date"
            )
        async with self.pool.acquire() as conn, conn.transaction():
            if as_current_run:
                # One Cracktrader runner per user: the lock makes "is a run active?" and
                # "start this one" a single step.
                current = await repo.lock_current_run(conn, identity.user_id)
                status = None if current is None else await repo.status_of(conn, current)
                if status in ACTIVE:
                    raise Conflict(
                        f"run {current} is still {status}; stop it first",
                        details={"run_id": current},
                    )
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
            execution_id = await repo.insert_execution(
                conn, task_id, identity.user_id, str(job["job_id"])
            )
            await repo.link_job(conn, str(job["job_id"]), execution_id, bars)
            if as_current_run:
                await repo.set_current_run(conn, identity.user_id, execution_id)
        await self.jobs.after_insert(str(job["job_id"]))
        row = await repo.get(self.pool, execution_id)
        assert row is not None
        await self.announce(row)
        return row

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
        self, identity: Identity, *, status: str | None, limit: int, offset: int
    ) -> list[asyncpg.Record]:
        if status is not None and status not in STATUSES:
            raise BadRequest(
                f"status must be one of {', '.join(STATUSES)}, got {status!r}", field="status"
            )
        owner = None if identity.is_admin else identity.user_id
        return await repo.list_executions(
            self.pool, owner_id=owner, status=status, limit=limit, offset=offset
        )

    async def stop(self, identity: Identity, execution_id: int | str) -> asyncpg.Record:
        """Ask a running backtest to stop at its next chunk; one not yet started stops at once."""
        row = await self.get(identity, execution_id)
        if row["status"] not in ACTIVE:
            return row
        await repo.request_stop(self.pool, row["execution_id"])
        if row["status"] == "created":
            stopped = await repo.set_status(
                self.pool, row["execution_id"], "stopped", when_in=("created",)
            )
            if stopped is not None:
                await self.announce(stopped)
                if row["job_id"] is not None:
                    await self.jobs.cancel(identity, str(row["job_id"]))
                return stopped
        current = await repo.get(self.pool, row["execution_id"])
        assert current is not None
        return current

    async def events_page(
        self, execution_id: int, *, since: int, event_type: str | None, limit: int, offset: int
    ) -> tuple[builtins.list[asyncpg.Record], int]:
        return await repo.events_page(
            self.pool, execution_id, since=since, event_type=event_type, limit=limit, offset=offset
        )

    async def trades_page(
        self,
        execution_id: int,
        *,
        since: int,
        instrument: str | None,
        direction: str | None,
        limit: int,
        offset: int,
    ) -> tuple[builtins.list[asyncpg.Record], int]:
        return await repo.trades_page(
            self.pool,
            execution_id,
            since=since,
            instrument=instrument,
            direction=direction,
            limit=limit,
            offset=offset,
        )

    async def latest_checkpoint(self, execution_id: int) -> asyncpg.Record | None:
        return await repo.latest_checkpoint(self.pool, execution_id)

    async def _load_curve(
        self, execution_id: int, since: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
        status = await repo.status_of(self.pool, execution_id)
        finished = status in ("stopped", "completed", "failed")
        chunks = await repo.equity_chunks(self.pool, execution_id, 0 if finished else since)
        if not chunks:
            empty = np.empty(0, dtype=np.int64)
            return empty, empty, np.empty(0), False
        seq = np.concatenate(
            [np.arange(c["first_seq"], c["first_seq"] + c["count"], dtype=np.int64) for c in chunks]
        )
        ts = np.concatenate([np.frombuffer(c["ts"], dtype="<i8") for c in chunks])
        balance = np.concatenate([np.frombuffer(c["balance"], dtype="<f8") for c in chunks])
        return seq, ts, balance, finished

    def _remember(
        self, execution_id: int, curve: tuple[np.ndarray, np.ndarray, np.ndarray]
    ) -> None:
        """Finished curves never change: keep the most recent ones decoded (bounded by bytes)."""
        self._curves[execution_id] = curve
        while (
            sum(sum(a.nbytes for a in c) for c in self._curves.values()) > CURVE_CACHE_BYTES
            and len(self._curves) > 1
        ):
            self._curves.pop(next(iter(self._curves)))

    async def equity(
        self,
        execution_id: int,
        *,
        since: int = 0,
        start_ns: int | None = None,
        end_ns: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sequences, times (ns) and balances of the stored curve after ``since`` within the window."""
        cached = self._curves.get(execution_id)
        if cached is not None:
            seq, ts, balance = cached
        else:
            seq, ts, balance, finished = await self._load_curve(execution_id, since)
            if finished:
                self._remember(execution_id, (seq, ts, balance))
        if not len(seq):
            return seq, ts, balance
        keep = seq > since
        if start_ns is not None:
            keep &= ts >= start_ns
        if end_ns is not None:
            keep &= ts <= end_ns
        if not keep.all():
            seq, ts, balance = seq[keep], ts[keep], balance[keep]
        return seq, ts, balance

    # -- status -----------------------------------------------------------------------

    async def status_document(self, row: asyncpg.Record) -> dict[str, Any]:
        checkpoint = await repo.latest_checkpoint(self.pool, row["execution_id"])
        return status_document(row, checkpoint)

    async def announce(self, row: asyncpg.Record, checkpoint: asyncpg.Record | None = None) -> None:
        """Publish the status; pass the checkpoint just written to spare reading it back."""
        if checkpoint is None:
            doc = await self.status_document(row)
        else:
            doc = status_document(row, checkpoint)
        await self.bus.publish(status_topic(row["execution_id"]), row["version"], doc)


def parse_execution_id(raw: int | str) -> int:
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise NotFound(f"execution {raw!r} not found") from None
    if value <= 0 or value >= 2**63:
        raise NotFound(f"execution {raw!r} not found")
    return value


def status_topic(execution_id: int) -> str:
    return f"execution:{execution_id}:status"


def stream_topic(execution_id: int, stream: str) -> str:
    return f"execution:{execution_id}:{stream}"


def status_document(row: asyncpg.Record, checkpoint: asyncpg.Record | None) -> dict[str, Any]:
    """Seed 003's execution status object."""
    return {
        "execution_id": row["execution_id"],
        "task_type": row["task_type"],
        "task_id": row["task_id"],
        "execution_number": row["execution_number"],
        "status": row["status"],
        "progress": float(row["progress"]),
        "started_at": iso(row["started_at"]),
        "completed_at": iso(row["completed_at"]),
        "error_message": row["error_message"],
        "has_checkpoint": checkpoint is not None,
        "checkpoint": checkpoint_document(checkpoint) if checkpoint is not None else None,
    }
