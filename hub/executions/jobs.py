"""The ``execution.backtest`` job: run the engine in chunks from a thread, persist and publish.

After every chunk one transaction writes the chunk's equity, the trades it closed, their events,
a metrics checkpoint with the engine's resumable state, and the execution's progress; the
events are published once it commits. A stop request is honoured at the next chunk. A run that
lost its worker resumes from its last checkpoint: what was written after it is removed and
written again, identically (the engine is deterministic).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from datetime import UTC, datetime
from typing import Any, NamedTuple

import asyncpg
import numpy as np
import orjson
from pydantic import BaseModel

from engine.records import Direction, TradeStatus
from hub.datasets import repository as datasets_repo
from hub.executions import repository as repo
from hub.executions.documents import (
    EXIT_REASONS,
    clean_metrics,
    equity_jsons,
    event_json,
    iso_ns,
    iso_times,
    num,
    trade_doc,
    trade_json,
    utc_datetimes,
)
from hub.executions.service import ExecutionService, status_topic, stream_topic
from hub.jobs.registry import JobType, register
from hub.jobs.runner import TRANSIENT, ClaimLost, JobCancelled, JobContext

log = logging.getLogger("tradehub.executions")

MIN_CHUNK = 20_000
MAX_CHUNK = 250_000
CHUNKS = 10


class BacktestPayload(BaseModel):
    task_id: int
    execution_id: int | None = None


def jsonable_state(state: dict[str, Any]) -> dict[str, Any]:
    """The engine's state for a jsonb column: NaN and infinities as strings (``float()`` reads
    them back), since JSON has no such numbers."""
    out: dict[str, Any] = {}
    for key, value in state.items():
        if isinstance(value, dict):
            out[key] = jsonable_state(value)
        elif isinstance(value, float) and not math.isfinite(value):
            out[key] = repr(value)
        else:
            out[key] = value
    return out


def chunk_size(total: int) -> int:
    return int(min(MAX_CHUNK, max(MIN_CHUNK, -(-total // CHUNKS))))


def _dt(ns: int) -> datetime:
    return datetime.fromtimestamp(ns // 1_000_000_000, tz=UTC).replace(
        microsecond=(ns % 1_000_000_000) // 1000
    )


class Drained(NamedTuple):
    mark: tuple[int, int]
    events: list[tuple[Any, ...]]
    trades: list[tuple[Any, ...]]
    batches: list[tuple[str, int, list[bytes]]]
    last_event: int
    last_trade: int
    committed: list[bool]  # set once its transaction commits: a committed chunk is never rewound


class Streams:
    """One execution's sequences and what a chunk adds to each stream."""

    def __init__(
        self, execution_id: int, instrument: str, strategy: str, event_seq: int, trade_seq: int
    ) -> None:
        self.execution_id = execution_id
        self.instrument = instrument
        self.strategy = strategy
        self.event_seq = event_seq
        self.trade_seq = trade_seq
        self.event_rows: list[tuple[Any, ...]] = []
        self.event_payloads: list[bytes] = []
        self.trade_rows: list[tuple[Any, ...]] = []
        self.trade_payloads: list[bytes] = []
        self.first_event = event_seq + 1
        self.first_trade = trade_seq + 1

    def event(
        self,
        event_type: str,
        ts_ns: int,
        body: dict[str, Any],
        *,
        stamp: tuple[str, datetime] | None = None,
    ) -> None:
        self.event_seq += 1
        encoded = orjson.dumps(body)
        iso_text, when = stamp if stamp is not None else (iso_ns(ts_ns), _dt(ts_ns))
        self.event_rows.append((self.event_seq, event_type, self.strategy, when, encoded.decode()))
        self.event_payloads.append(event_json(event_type, self.strategy, iso_text, encoded))

    def add_trades(self, records: np.ndarray, details: list[dict[str, Any]] | None = None) -> None:
        """The trades a chunk closed (or the last, open one): rows, payloads, and four events each
        (the entry's signal and fill, the exit's signal and fill; an open trade has no exit yet).
        Times are formatted for the whole chunk at once."""
        if not len(records):
            return
        entry_iso, exit_iso = iso_times(records["entry_ts"]), iso_times(records["exit_ts"])
        entry_dt, exit_dt = utc_datetimes(records["entry_ts"]), utc_datetimes(records["exit_ts"])
        columns = {
            name: records[name].tolist()
            for name in (
                "direction",
                "status",
                "entry_price",
                "exit_price",
                "units",
                "pnl",
                "return",
                "fees",
                "exit_reason",
                "entry_index",
                "exit_index",
                "layer",
                "entry_ts",
                "exit_ts",
            )
        }
        for i in range(len(records)):
            direction = "long" if columns["direction"][i] == Direction.Long else "short"
            status = "open" if columns["status"][i] == TradeStatus.Open else "closed"
            exit_reason = EXIT_REASONS.get(columns["exit_reason"][i], "signal")
            doc = trade_doc(
                instrument=self.instrument,
                direction=direction,
                status=status,
                entry_ts=entry_iso[i],
                entry_price=columns["entry_price"][i],
                units=columns["units"][i],
                exit_ts=exit_iso[i],
                exit_price=columns["exit_price"][i],
                pnl=columns["pnl"][i],
                fees=columns["fees"][i],
                ret=columns["return"][i],
                exit_reason=exit_reason,
                entry_index=columns["entry_index"][i],
                exit_index=columns["exit_index"][i],
                details=details[i]
                if details is not None
                else {"layer_number": columns["layer"][i]},
            )
            self.trade_seq += 1
            self.trade_rows.append(
                (
                    self.trade_seq,
                    self.instrument,
                    direction,
                    status,
                    doc["entry_index"],
                    doc["exit_index"],
                    entry_dt[i],
                    exit_dt[i],
                    columns["entry_price"][i],
                    columns["exit_price"][i],
                    columns["units"][i],
                    columns["pnl"][i],
                    columns["return"][i],
                    columns["fees"][i],
                    exit_reason,
                    doc["details"],
                )
            )
            self.trade_payloads.append(trade_json(doc))
            entry_side, exit_side = ("buy", "sell") if direction == "long" else ("sell", "buy")
            entry_stamp, exit_stamp = (entry_iso[i], entry_dt[i]), (exit_iso[i], exit_dt[i])
            layer = doc["details"].get("layer_number", 0)
            self.event(
                "strategy_signal",
                columns["entry_ts"][i],
                {"signal": entry_side, "layer_number": layer, "price": doc["entry_price"]},
                stamp=entry_stamp,
            )
            self.event(
                "trade_executed",
                columns["entry_ts"][i],
                {
                    "direction": direction,
                    "units": doc["units"],
                    "price": doc["entry_price"],
                    "action": "open",
                },
                stamp=entry_stamp,
            )
            if status == "closed":
                self.event(
                    "strategy_signal",
                    columns["exit_ts"][i],
                    {"signal": exit_side, "reason": exit_reason, "price": doc["exit_price"]},
                    stamp=exit_stamp,
                )
                self.event(
                    "trade_executed",
                    columns["exit_ts"][i],
                    {
                        "direction": direction,
                        "units": doc["units"],
                        "price": doc["exit_price"],
                        "action": "close",
                        "pnl": doc["pnl"],
                    },
                    stamp=exit_stamp,
                )

    def rewind(self) -> None:
        """Forget what was added since the last drain whose transaction failed: sequences
        are only taken by what is written."""
        self.event_seq, self.trade_seq = self.first_event - 1, self.first_trade - 1

    def mark(self) -> tuple[int, int]:
        return self.first_event, self.first_trade

    def restore(self, mark: tuple[int, int]) -> None:
        self.first_event, self.first_trade = mark
        self.rewind()
        self.event_rows, self.event_payloads, self.trade_rows, self.trade_payloads = [], [], [], []

    def take(self) -> Drained:
        """Everything added since the last take, with the sequences it ends at."""
        mark = self.mark()
        events, trades, batches = self.drain()
        return Drained(mark, events, trades, batches, self.event_seq, self.trade_seq, [False])

    def drain(
        self,
    ) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[str, int, list[bytes]]]]:
        batches = [
            (stream_topic(self.execution_id, "events"), self.first_event, self.event_payloads),
            (stream_topic(self.execution_id, "trades"), self.first_trade, self.trade_payloads),
        ]
        events, trades = self.event_rows, self.trade_rows
        self.event_rows, self.event_payloads, self.trade_rows, self.trade_payloads = [], [], [], []
        self.first_event, self.first_trade = self.event_seq + 1, self.trade_seq + 1
        return events, trades, batches


class BacktestJob:
    def __init__(self, ctx: JobContext, execution_id: int) -> None:
        self.ctx = ctx
        self.pool: asyncpg.Pool = ctx.pool
        self.bus = ctx.extras["bus"]
        self.executions = ExecutionService(self.pool, self.bus, ctx.service)
        self.execution_id = execution_id
        self.last_ts = 0  # the market time reached, for status events
        self.timings: dict[str, float] = {
            "load": 0.0,
            "engine": 0.0,
            "records": 0.0,
            "write": 0.0,
            "publish": 0.0,
        }

    async def status(
        self,
        status: str,
        streams: Streams,
        ts_ns: int,
        *,
        error: str | None = None,
        final_value: float | None = None,
        when_in: tuple[str, ...] = ("created", "running", "paused"),
    ) -> None:
        mark = streams.mark()
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                row = await repo.set_status(
                    conn,
                    self.execution_id,
                    status,
                    error=error,
                    final_value=final_value,
                    when_in=when_in,
                )
                if row is None:
                    streams.restore(mark)
                    return
                streams.event(
                    "status_changed",
                    ts_ns,
                    {"status": status, **({"error": error} if error else {})},
                )
                if error is not None:
                    streams.event("error_occurred", ts_ns, {"message": error})
                events, trades, batches = streams.drain()
                await repo.write_trades(conn, self.execution_id, trades)
                await repo.write_events(conn, self.execution_id, events)
        except BaseException:
            streams.restore(mark)
            raise
        await self.bus.publish_batches(batches)
        await self.executions.announce(row)

    async def persist(
        self,
        drained: Drained,
        start: int,
        ts: np.ndarray,
        equity: np.ndarray,
        processed: int,
        total: int,
        metrics: dict[str, float],
        state: dict[str, Any] | None,
    ) -> bool:
        """Write one drained chunk in one transaction, then publish it; True when a stop was
        requested. On failure the caller rewinds the streams to ``drained.mark``."""
        tick = time.perf_counter()
        if len(ts):
            self.last_ts = int(ts[-1])
        async with self.pool.acquire() as conn, conn.transaction():
            await repo.write_equity(conn, self.execution_id, start + 1, ts, equity)
            await repo.write_trades(conn, self.execution_id, drained.trades)
            await repo.write_events(conn, self.execution_id, drained.events)
            checkpoint = await repo.write_checkpoint(
                conn,
                self.execution_id,
                processed,
                clean_metrics(metrics),
                state,
                drained.last_event,
                drained.last_trade,
            )
            row = await repo.set_progress(conn, self.execution_id, processed, total)
        drained.committed[0] = True
        assert row is not None
        written = time.perf_counter()
        self.timings["write"] += written - tick
        batches = list(drained.batches)
        equity_topic = stream_topic(self.execution_id, "equity")
        heard = await self.bus.listened([equity_topic, *(topic for topic, _, _ in batches)])
        if equity_topic in heard:
            batches.append((equity_topic, start + 1, equity_jsons(ts, equity)))
        await self.bus.publish_batches([b for b in batches if b[0] in heard])
        await self.executions.announce(row, checkpoint)
        await self.ctx.progress(processed, total)
        self.timings["publish"] += time.perf_counter() - written
        return bool(row["stop_requested"])

    async def persist_now(self, streams: Streams, *args: Any) -> bool:
        """Drain and persist at once (no overlap with the next chunk)."""
        drained = streams.take()
        try:
            return await self.persist(drained, *args)
        except BaseException:
            if not drained.committed[0]:
                streams.restore(drained.mark)
            raise


class BarsCache:
    """Bars a worker loaded recently, by dataset, window and the dataset's last change: sweeps
    and repeated backtests on one dataset read it from Postgres once. Bounded by bytes."""

    def __init__(self, max_bytes: int = 512 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self._entries: dict[tuple[Any, ...], dict[str, np.ndarray]] = {}

    def get(self, key: tuple[Any, ...]) -> dict[str, np.ndarray] | None:
        found = self._entries.pop(key, None)
        if found is not None:
            self._entries[key] = found  # most recent last
        return found

    def put(self, key: tuple[Any, ...], bars: dict[str, np.ndarray]) -> None:
        self._entries[key] = bars
        while (
            len(self._entries) > 1
            and sum(a.nbytes for entry in self._entries.values() for a in entry.values())
            > self.max_bytes
        ):
            self._entries.pop(next(iter(self._entries)))


async def load_bars(
    pool: asyncpg.Pool, row: asyncpg.Record, cache: BarsCache | None = None
) -> dict[str, np.ndarray]:
    dataset = await datasets_repo.get_by_symbol(pool, row["symbols"][0], row["timeframe"])
    if dataset is None or not dataset["ohlcv_measurement"]:
        raise ValueError(f"no {row['timeframe']} data for symbol {row['symbols'][0]!r}")
    key = (
        dataset["dataset_id"],
        dataset["updated_at"],
        dataset["ohlcv_row_count"],
        row["start_at"],
        row["end_at"],
    )
    cached = cache.get(key) if cache is not None else None
    if cached is not None:
        return cached
    bars = await _read_bars(pool, dataset, row)
    if cache is not None:
        for array in bars.values():
            array.flags.writeable = False  # shared by later runs: nobody may change it
        cache.put(key, bars)
    return bars


async def _read_bars(
    pool: asyncpg.Pool, dataset: asyncpg.Record, row: asyncpg.Record
) -> dict[str, np.ndarray]:

    def ns(value: datetime | None) -> int | None:
        return None if value is None else int(value.timestamp() * 1_000_000) * 1000

    async with pool.acquire() as conn:
        return await datasets_repo.read_bars(
            conn, dataset["ohlcv_measurement"], ns(row["start_at"]), ns(row["end_at"]), None
        )


async def run_backtest_job(ctx: JobContext, payload: BacktestPayload) -> dict[str, Any]:
    from engine.backtest import get_strategy, start_backtest
    from engine.simulate import state_from_dict
    from engine.strategies import BarStrategy

    execution_id = payload.execution_id
    if execution_id is None:
        raise ValueError("the job's payload names no execution")
    job = BacktestJob(ctx, execution_id)
    row = await repo.get(job.pool, execution_id)
    if row is None:
        raise ValueError(f"execution {execution_id} does not exist")
    if row["status"] in ("stopped", "completed", "failed"):
        return {"execution_id": execution_id, "status": row["status"]}
    instrument = row["symbols"][0]
    checkpoint = await repo.latest_checkpoint(job.pool, execution_id)
    entry = get_strategy(row["strategy"])
    resumable = (
        checkpoint is not None
        and checkpoint["state"] is not None
        and isinstance(entry, BarStrategy)
    )
    async with job.pool.acquire() as conn, conn.transaction():
        if resumable:
            assert checkpoint is not None
            await repo.truncate_after(
                conn,
                execution_id,
                checkpoint["last_event_seq"],
                checkpoint["last_trade_seq"],
                checkpoint["processed"],
            )
            first_event, first_trade = checkpoint["last_event_seq"], checkpoint["last_trade_seq"]
        else:
            # Start over, but keep what was published before any chunk (the "running" event):
            # a sequence once published never changes content.
            first_event = await repo.last_status_event(conn, execution_id)
            first_trade = 0
            await repo.truncate_after(conn, execution_id, first_event, 0, 0)
            await repo.delete_checkpoints(conn, execution_id)
    streams = Streams(execution_id, instrument, row["strategy"], first_event, first_trade)
    options = {**row["options"], "initial_capital": float(row["initial_capital"])}
    clock = time.perf_counter()
    try:
        bars = await load_bars(job.pool, row, ctx.extras.get("bars_cache"))
        job.timings["load"] = time.perf_counter() - clock
        total = len(bars["ts"])
        first_ts = int(bars["ts"][0]) if total else 0
        job.last_ts = first_ts
        if row["status"] == "created":
            await job.status("running", streams, first_ts, when_in=("created",))
        if await repo.stop_requested(job.pool, execution_id):
            await job.status("stopped", streams, first_ts)
            return {"execution_id": execution_id, "status": "stopped"}
        configured = getattr(ctx.extras.get("settings"), "backtest_chunk_bars", None)
        size = int(configured) if configured else chunk_size(total)
        if isinstance(entry, BarStrategy):
            state = state_from_dict(checkpoint["state"]) if resumable and checkpoint else None
            run = await asyncio.to_thread(
                start_backtest, bars, row["strategy"], row["params"], state=state, **options
            )
            stopped_at = await _run_chunks(job, streams, run, size, total)
            if stopped_at is not None:
                return {"execution_id": execution_id, "status": "stopped", "processed": stopped_at}
            final: float | None = float(run.metrics().get("total_pnl", 0.0)) + float(
                row["initial_capital"]
            )
        else:
            final = await _run_whole(job, streams, entry.name, bars, row, options, size, total)
            if final is None:
                return {"execution_id": execution_id, "status": "stopped"}
        await job.status(
            "completed", streams, int(bars["ts"][-1]) if total else 0, final_value=final
        )
        return {
            "execution_id": execution_id,
            "status": "completed",
            "bars": total,
            "final_value": num(final),
            "seconds": {
                **{k: round(v, 4) for k, v in job.timings.items()},
                "total": round(time.perf_counter() - clock, 4),
            },
        }
    except ClaimLost:
        raise  # a newer attempt owns the execution now: write nothing
    except JobCancelled:
        await asyncio.shield(job.status("stopped", streams, job.last_ts))
        raise
    except TRANSIENT:
        if ctx.attempt >= 3:
            await asyncio.shield(
                job.status(
                    "failed",
                    streams,
                    job.last_ts,
                    error="gave up after repeated connection failures",
                )
            )
        raise
    except Exception as exc:
        message = f"{type(exc).__name__}: {exc}" if not isinstance(exc, ValueError) else str(exc)
        await asyncio.shield(job.status("failed", streams, job.last_ts, error=message))
        raise


async def _run_chunks(
    job: BacktestJob, streams: Streams, run: Any, size: int, total: int
) -> int | None:
    """Simulate, build records and persist chunk by chunk, overlapping the database write of
    one chunk with building the next one's records (in a thread: the write waits on Postgres).
    Returns the bars processed when a stop ended the run, else None."""
    from engine.simulate import state_to_dict

    pending: asyncio.Task[bool] | None = None
    pending_drained: Drained | None = None
    processed = 0
    try:
        while not run.done:
            tick = time.perf_counter()
            chunk = await asyncio.to_thread(run.step, size)
            job.timings["engine"] += time.perf_counter() - tick
            mark = streams.mark()
            tick = time.perf_counter()
            await asyncio.to_thread(_records, streams, chunk.trades, run)
            job.timings["records"] += time.perf_counter() - tick
            state = jsonable_state(state_to_dict(run.state))
            if pending is not None:
                stop = await _settle(pending, streams, pending_drained)
                pending = None
                if stop:
                    streams.restore(mark)  # simulated, but not kept: the run stops before it
                    await job.status("stopped", streams, job.last_ts)
                    return processed
            drained = streams.take()
            pending_drained = drained
            processed = chunk.stop
            pending = asyncio.create_task(
                job.persist(
                    drained,
                    chunk.start,
                    chunk.ts,
                    chunk.equity,
                    chunk.stop,
                    total,
                    chunk.metrics,
                    state,
                )
            )
        if pending is not None:
            await _settle(pending, streams, pending_drained)
            pending = None
        return None
    finally:
        if pending is not None and not pending.done():
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending


def _records(streams: Streams, trades: np.ndarray, run: Any) -> None:
    streams.add_trades(trades)
    if run.done:
        streams.add_trades(run.open_trade())


async def _settle(pending: asyncio.Task[bool], streams: Streams, drained: Drained | None) -> bool:
    try:
        return await pending
    except BaseException:
        # Rewind only what never committed; what did keeps its sequences.
        if drained is not None and not drained.committed[0]:
            streams.restore(drained.mark)
        raise


async def _run_whole(
    job: BacktestJob,
    streams: Streams,
    strategy: str,
    bars: dict[str, np.ndarray],
    row: asyncpg.Record,
    options: dict[str, Any],
    size: int,
    total: int,
) -> float | None:
    """Strategies with their own simulator run in one pass; the result is persisted in chunks."""
    from engine.backtest import run_backtest

    result = await asyncio.to_thread(run_backtest, bars, strategy, row["params"], **options)
    raw_counts = result.extras.get("retracement_count")
    counts = None if raw_counts is None else np.asarray(raw_counts)
    order = np.argsort(
        np.where(result.trades["exit_index"] < 0, total, result.trades["exit_index"]), kind="stable"
    )
    trades = result.trades[order]
    exit_at = np.where(trades["exit_index"] < 0, total - 1, trades["exit_index"])
    for start in range(0, total, size):
        stop = min(total, start + size)
        closing = np.nonzero((exit_at >= start) & (exit_at < stop))[0]
        details: list[dict[str, Any]] = []
        for k in closing:
            detail = {"layer_number": int(trades[k]["layer"])}
            if counts is not None:
                detail["retracement_count"] = int(counts[order[k]])
            details.append(detail)
        streams.add_trades(trades[closing], details)
        metrics = result.metrics if stop == total else {"processed": float(stop)}
        if (
            await job.persist_now(
                streams,
                start,
                bars["ts"][start:stop],
                result.equity[start:stop],
                stop,
                total,
                metrics,
                None,
            )
            and stop < total
        ):
            await job.status("stopped", streams, int(bars["ts"][stop - 1]))
            return None
    return float(result.equity[-1]) if total else float(row["initial_capital"])


async def execution_job_ended(jobs: Any, job_row: asyncpg.Record) -> None:
    """A backtest job ended FAILED or CANCELLED without its handler closing the execution (a
    cancel while pending, a lost worker on its last try): close it now, with its events."""
    payload = job_row["payload"] or {}
    execution_id = payload.get("execution_id")
    if execution_id is None:
        return
    row = await repo.get(jobs.pool, int(execution_id))
    if row is None or row["status"] not in ("created", "running", "paused"):
        return
    ctx = JobContext(
        job_id=str(job_row["job_id"]),
        service=jobs,
        pool=jobs.pool,
        attempt=0,
        extras={"bus": jobs.bus},
    )
    job = BacktestJob(ctx, int(execution_id))
    streams = Streams(
        int(execution_id),
        row["symbols"][0],
        row["strategy"],
        await repo.last_sequence(jobs.pool, "execution_events", int(execution_id)),
        await repo.last_sequence(jobs.pool, "execution_trades", int(execution_id)),
    )
    cancelled = job_row["status"] == "CANCELLED"
    await job.status(
        "stopped" if cancelled else "failed",
        streams,
        time.time_ns() // 1_000_000_000 * 1_000_000_000,
        error=None if cancelled else (job_row["error"] or "the job running this execution failed"),
    )


register(
    JobType(
        name="execution.backtest",
        payload=BacktestPayload,
        handler="hub.executions.jobs:run_backtest_job",
        description="Run a backtest execution: the engine in chunks, persisted and streamed",
        max_tries=3,
        on_ended="hub.executions.jobs:execution_job_ended",
    )
)

__all__ = ["BacktestPayload", "chunk_size", "iso_ns", "run_backtest_job", "status_topic"]
