"""One attempt at running a backtest execution: the engine in chunks from a thread, each chunk
persisted (through :class:`RunWriter`) and published, a stop honoured at the next chunk.

A run that lost its worker resumes from its last checkpoint: what was written after it is
removed and written again, identically (the engine is deterministic). The database write of one
chunk overlaps building the next chunk's records.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from typing import TYPE_CHECKING, Any

import asyncpg
import numpy as np

from hub.executions.curves import Downsampled, stored_sizes
from hub.executions.documents import num
from hub.executions.model import ExecutionStatus
from hub.executions.records import Drained, Streams
from hub.jobs.context import TRANSIENT, ClaimLost, JobCancelled, JobContext
from hub.times import ns_of

if TYPE_CHECKING:
    from hub.datasets.service import DatasetService
    from hub.executions.runs import RunWriter

# What the engine reads of a bar: volume only rides along, and reading it costs a sixth of a
# cold million-bar load.
BAR_COLUMNS = ("ts", "open", "high", "low", "close")
MIN_CHUNK = 20_000
MAX_CHUNK = 250_000
CHUNKS = 10
RUNNING = frozenset({ExecutionStatus.CREATED})


def chunk_size(total: int) -> int:
    return int(min(MAX_CHUNK, max(MIN_CHUNK, -(-total // CHUNKS))))


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


class BacktestRun:
    def __init__(
        self,
        ctx: JobContext,
        writer: RunWriter,
        datasets: DatasetService,
        row: asyncpg.Record,
        checkpoint: asyncpg.Record | None,
    ) -> None:
        self.ctx = ctx
        self.writer = writer
        self.datasets = datasets
        self.row = row
        self.execution_id: int = row["execution_id"]
        self.checkpoint = checkpoint
        self.last_ts = 0  # the market time reached, for status events
        self.curve: list[tuple[np.ndarray, np.ndarray]] = []  # (ts, equity) of each chunk
        self.resumed = False  # then self.curve misses what earlier attempts wrote
        self.downsampling: asyncio.Task[list[Downsampled]] | None = None
        self.timings: dict[str, float] = {
            "load": 0.0,
            "engine": 0.0,
            "records": 0.0,
            "write": 0.0,
            "publish": 0.0,
        }

    async def status(
        self, streams: Streams, status: ExecutionStatus, ts_ns: int, **kw: Any
    ) -> None:
        await self.writer.set_status(streams, status, ts_ns, **kw)

    async def run(self) -> dict[str, Any]:
        from engine.backtest import get_strategy
        from engine.strategies import BarStrategy

        row = self.row
        entry = get_strategy(row["strategy"])
        resumable = self.checkpoint is not None and self.checkpoint["state"] is not None
        resumable = resumable and isinstance(entry, BarStrategy)
        streams = await self.writer.streams_from(row, self.checkpoint if resumable else None)
        self.resumed = resumable
        clock = time.perf_counter()
        try:
            bars = await self._bars()
            self.timings["load"] = time.perf_counter() - clock
            total = len(bars["ts"])
            self.last_ts = int(bars["ts"][0]) if total else 0
            if row["status"] == ExecutionStatus.CREATED:
                await self.status(streams, ExecutionStatus.RUNNING, self.last_ts, when_in=RUNNING)
            if await self.writer.stop_requested(self.execution_id):
                await self.status(streams, ExecutionStatus.STOPPED, self.last_ts)
                return {"execution_id": self.execution_id, "status": "stopped"}
            configured = getattr(self.ctx.resources.settings, "backtest_chunk_bars", None)
            size = int(configured) if configured else chunk_size(total)
            if isinstance(entry, BarStrategy):
                final = await self._run_chunks(streams, bars, size, total, resumable)
            else:
                final = await self._run_whole(streams, entry.name, bars, size, total)
            if final is None:
                return {"execution_id": self.execution_id, "status": "stopped"}
            end_ts = int(bars["ts"][-1]) if total else 0
            await self.status(
                streams,
                ExecutionStatus.COMPLETED,
                end_ts,
                final_value=final,
                downsampled=await (self.downsampling or self._downsampled()),
            )
            return {
                "execution_id": self.execution_id,
                "status": "completed",
                "bars": total,
                "final_value": num(final),
                "seconds": {
                    **{k: round(v, 4) for k, v in self.timings.items()},
                    "total": round(time.perf_counter() - clock, 4),
                },
            }
        except ClaimLost:
            raise  # a newer attempt owns the execution now: write nothing
        except JobCancelled:
            await asyncio.shield(self.status(streams, ExecutionStatus.STOPPED, self.last_ts))
            raise
        except TRANSIENT:
            if self.ctx.attempt >= 3:
                failure = "gave up after repeated connection failures"
                await asyncio.shield(
                    self.status(streams, ExecutionStatus.FAILED, self.last_ts, error=failure)
                )
            raise
        except Exception as exc:
            message = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
            await asyncio.shield(
                self.status(streams, ExecutionStatus.FAILED, self.last_ts, error=message)
            )
            raise

    async def _bars(self) -> dict[str, np.ndarray]:
        row = self.row
        dataset = await self.datasets.find(row["symbols"][0], row["timeframe"])
        if dataset is None:
            raise ValueError(f"no {row['timeframe']} data for symbol {row['symbols'][0]!r}")
        return await self.datasets.bars(
            dataset,
            None if row["start_at"] is None else ns_of(row["start_at"]),
            None if row["end_at"] is None else ns_of(row["end_at"]),
            BAR_COLUMNS,
        )

    async def _downsampled(self) -> list[Downsampled]:
        """The finished curve's stored downsamples, from the chunks this attempt simulated
        (or, for a resumed run, as stored)."""
        if self.resumed:
            return await asyncio.to_thread(
                stored_sizes, await self.writer.stored_curve(self.execution_id)
            )
        # Joined in the thread too: copying a million points blocks the loop for tens of ms,
        # while the last chunk's write waits on it.
        return await asyncio.to_thread(_downsampled_chunks, self.curve)

    def _options(self) -> dict[str, Any]:
        return {**self.row["options"], "initial_capital": float(self.row["initial_capital"])}

    async def _persist(self, drained: Drained, chunk: Any, total: int, state: Any) -> bool:
        if len(chunk.ts):
            self.last_ts = int(chunk.ts[-1])
        stop = await self.writer.persist(
            self.execution_id,
            drained,
            chunk.start,
            chunk.ts,
            chunk.equity,
            chunk.stop,
            total,
            chunk.metrics,
            state,
            self.timings,
        )
        tick = time.perf_counter()
        await self.ctx.progress(chunk.stop, total)
        self.timings["publish"] += time.perf_counter() - tick
        return stop

    async def _run_chunks(
        self,
        streams: Streams,
        bars: dict[str, np.ndarray],
        size: int,
        total: int,
        resumable: bool,
    ) -> float | None:
        """Simulate, build records and persist chunk by chunk, overlapping the database write
        of one chunk with building the next one's records (in a thread: the write waits on
        Postgres). Returns the final value, or None when a stop ended the run."""
        from engine.backtest import start_backtest
        from engine.simulate import state_from_dict, state_to_dict

        state = state_from_dict(self.checkpoint["state"]) if resumable and self.checkpoint else None
        run = await asyncio.to_thread(
            start_backtest,
            bars,
            self.row["strategy"],
            self.row["params"],
            state=state,
            **self._options(),
        )
        pending: asyncio.Task[bool] | None = None
        pending_drained: Drained | None = None
        try:
            while not run.done:
                tick = time.perf_counter()
                chunk = await asyncio.to_thread(run.step, size)
                self.timings["engine"] += time.perf_counter() - tick
                self.curve.append((chunk.ts, chunk.equity))
                if run.done and not self.resumed:  # while the last chunk is written
                    self.downsampling = asyncio.create_task(self._downsampled())
                    self.downsampling.add_done_callback(_retrieved)
                mark = streams.mark()
                tick = time.perf_counter()
                await asyncio.to_thread(_records, streams, chunk.trades, run)
                self.timings["records"] += time.perf_counter() - tick
                engine_state = jsonable_state(state_to_dict(run.state))
                if pending is not None:
                    stop = await _settle(pending, streams, pending_drained)
                    pending = None
                    if stop:
                        streams.restore(mark)  # simulated, but not kept: the run stops before it
                        await self.status(streams, ExecutionStatus.STOPPED, self.last_ts)
                        return None
                drained = pending_drained = streams.take()
                pending = asyncio.create_task(self._persist(drained, chunk, total, engine_state))
            if pending is not None:
                await _settle(pending, streams, pending_drained)
                pending = None
        finally:
            if pending is not None and not pending.done():
                pending.cancel()
                with contextlib.suppress(BaseException):
                    await pending
        return float(run.metrics().get("total_pnl", 0.0)) + float(self.row["initial_capital"])

    async def _run_whole(
        self,
        streams: Streams,
        strategy: str,
        bars: dict[str, np.ndarray],
        size: int,
        total: int,
    ) -> float | None:
        """Strategies with their own simulator run in one pass; the result is persisted in
        chunks."""
        from engine.backtest import run_backtest

        result = await asyncio.to_thread(
            run_backtest, bars, strategy, self.row["params"], **self._options()
        )
        raw_counts = result.extras.get("retracement_count")
        counts = None if raw_counts is None else np.asarray(raw_counts)
        exits = result.trades["exit_index"]
        order = np.argsort(np.where(exits < 0, total, exits), kind="stable")
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
            self.last_ts = int(bars["ts"][stop - 1])
            self.curve.append((bars["ts"][start:stop], result.equity[start:stop]))
            stopped = await self.writer.persist_now(
                streams,
                start,
                bars["ts"][start:stop],
                result.equity[start:stop],
                stop,
                total,
                metrics,
                None,
                self.timings,
            )
            await self.ctx.progress(stop, total)
            if stopped and stop < total:
                await self.status(streams, ExecutionStatus.STOPPED, self.last_ts)
                return None
        return float(result.equity[-1]) if total else float(self.row["initial_capital"])


def _downsampled_chunks(chunks: list[tuple[np.ndarray, np.ndarray]]) -> list[Downsampled]:
    """``stored_sizes`` of the curve the ``(ts, equity)`` chunks make, numbered from 1."""
    ts = np.concatenate([t for t, _ in chunks]) if chunks else np.empty(0, "i8")
    equity = np.concatenate([e for _, e in chunks]) if chunks else np.empty(0)
    return stored_sizes((np.arange(1, len(ts) + 1, dtype=np.int64), ts, equity))


def _retrieved(task: asyncio.Task[Any]) -> None:
    """Mark a side task's failure as seen (the run that needed it has failed already)."""
    if not task.cancelled():
        task.exception()


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
