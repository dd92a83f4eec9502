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
from collections.abc import Mapping
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
# cold million-bar load. A bar strategy reads fewer (``bar_columns``).
BAR_COLUMNS = ("ts", "open", "high", "low", "close")
MIN_CHUNK = 20_000
MAX_CHUNK = 250_000
CHUNKS = 10
RUNNING = frozenset({ExecutionStatus.CREATED})
IN_FLIGHT = 2  # chunks written at once: Postgres stores one while the next is copied in

# A chunk being written: its task (True when a stop was asked), what it drained, its last time.
Flight = list[tuple["asyncio.Task[bool]", Drained, int]]


def chunk_size(total: int) -> int:
    return int(min(MAX_CHUNK, max(MIN_CHUNK, -(-total // CHUNKS))))


def bar_columns(strategy: str, options: Mapping[str, Any]) -> tuple[str, ...]:
    """The columns a run of ``strategy`` with ``options`` reads: a bar strategy's signals come
    from the close (or, with a ``column`` parameter, from any column), its fills and stops from
    the prices its options use (the engine's own rule); other strategies read every price. A
    fill at the close with no stops reads two columns of five, from Postgres on a cold load and
    in the copy the engine makes of cached (read-only) bars."""
    from engine.backtest import _price_columns, get_strategy
    from engine.sim_options import sim_config
    from engine.strategies import BarStrategy

    entry = get_strategy(strategy)
    if not isinstance(entry, BarStrategy) or any(p["name"] == "column" for p in entry.params):
        return BAR_COLUMNS
    needed = {"ts", *_price_columns(sim_config(options)[0])}
    return tuple(c for c in BAR_COLUMNS if c in needed)


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
        clock = time.perf_counter()
        loading = asyncio.create_task(self._bars())  # while the streams are set up
        loading.add_done_callback(_retrieved)
        try:
            streams = await self.writer.streams_from(row, self.checkpoint if resumable else None)
        except BaseException:
            loading.cancel()
            raise
        self.resumed = resumable
        try:
            bars = await loading
            self.timings["load"] = time.perf_counter() - clock
            total = len(bars["ts"])
            self.last_ts = int(bars["ts"][0]) if total else 0
            starting = None
            if isinstance(entry, BarStrategy):  # the engine prepares while the status is written
                starting = asyncio.create_task(asyncio.to_thread(self._start, bars, resumable))
                starting.add_done_callback(_retrieved)
            if row["status"] == ExecutionStatus.CREATED:
                await self.status(streams, ExecutionStatus.RUNNING, self.last_ts, when_in=RUNNING)
            if await self.writer.stop_requested(self.execution_id):
                await self.status(streams, ExecutionStatus.STOPPED, self.last_ts)
                return {"execution_id": self.execution_id, "status": "stopped"}
            configured = getattr(self.ctx.resources.settings, "backtest_chunk_bars", None)
            size = int(configured) if configured else chunk_size(total)
            if starting is not None:
                final = await self._run_chunks(streams, await starting, size, total)
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
            bar_columns(row["strategy"], self._options()),
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

    async def _persist(
        self,
        drained: Drained,
        chunk: Any,
        total: int,
        state: Any,
        previous: asyncio.Task[bool] | None,
    ) -> bool:
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
            after=None if previous is None else lambda: _behind(previous),
        )
        tick = time.perf_counter()
        await self.ctx.progress(chunk.stop, total)
        self.timings["publish"] += time.perf_counter() - tick
        return stop

    def _start(self, bars: dict[str, np.ndarray], resumable: bool) -> Any:
        """The engine's chunked run on ``bars`` (checked, its signals computed), from the
        checkpoint when ``resumable``."""
        from engine.backtest import start_backtest
        from engine.simulate import state_from_dict

        checkpoint = self.checkpoint
        state = state_from_dict(checkpoint["state"]) if resumable and checkpoint else None
        return start_backtest(
            bars, self.row["strategy"], self.row["params"], state=state, **self._options()
        )

    async def _run_chunks(self, streams: Streams, run: Any, size: int, total: int) -> float | None:
        """Simulate, build records and persist chunk by chunk. Building a chunk's records (in a
        thread) overlaps the writes before it, and up to ``IN_FLIGHT`` chunks are written at
        once, on connections of their own: each writes its rows at once, then waits for the
        chunk before it to commit and publish before its checkpoint, progress and commit, so
        commits and what is published keep their order. Returns the final value, or None when
        a stop ended the run."""
        from engine.simulate import state_to_dict

        flight: Flight = []  # oldest first
        try:
            while not run.done:
                tick = time.perf_counter()
                chunk = await asyncio.to_thread(run.step, size)
                self.timings["engine"] += time.perf_counter() - tick
                self.curve.append((chunk.ts, chunk.equity))
                if run.done and not self.resumed:  # while the last chunks are written
                    self.downsampling = asyncio.create_task(self._downsampled())
                    self.downsampling.add_done_callback(_retrieved)
                mark = streams.mark()
                tick = time.perf_counter()
                await asyncio.to_thread(_records, streams, chunk.trades, run)
                self.timings["records"] += time.perf_counter() - tick
                engine_state = jsonable_state(state_to_dict(run.state))
                while len(flight) >= IN_FLIGHT:
                    if await self._settle_oldest(flight, streams, mark):
                        await self.status(streams, ExecutionStatus.STOPPED, self.last_ts)
                        return None
                drained = streams.take()
                previous = flight[-1][0] if flight else None
                task = asyncio.create_task(
                    self._persist(drained, chunk, total, engine_state, previous)
                )
                end = int(chunk.ts[-1]) if len(chunk.ts) else self.last_ts
                flight.append((task, drained, end))
            while flight:
                if await self._settle_oldest(flight, streams, streams.mark()):
                    await self.status(streams, ExecutionStatus.STOPPED, self.last_ts)
                    return None
        finally:
            if flight:  # the run failed or was cancelled with chunks in flight
                self.last_ts = flight[0][2]
                for task, _, _ in flight:
                    task.cancel()
                await _rewind(flight, streams, streams.mark())
        return float(run.metrics().get("total_pnl", 0.0)) + float(self.row["initial_capital"])

    async def _settle_oldest(self, flight: Flight, streams: Streams, mark: tuple[int, int]) -> bool:
        """Wait for the oldest chunk in flight to commit and publish; True when it asked to
        stop. On a stop or a failure the later chunks roll back, and the streams are rewound
        to the first chunk that did not commit (``mark`` when all did): what was simulated
        after the stop is not kept, and what never committed takes no sequence."""
        task, _, end = flight[0]
        self.last_ts = end  # the market time reached, once this chunk settles
        try:
            stop = await task
        except BaseException:
            await _rewind(flight, streams, mark)
            raise
        flight.pop(0)
        if stop:
            await _rewind(flight, streams, mark)
        return stop

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


class ChunkAborted(Exception):
    """The chunk before this one did not commit, or asked to stop: this one rolls back."""


async def _behind(previous: asyncio.Task[bool]) -> None:
    """Wait for the chunk before to commit and publish; raise if it failed or asked to stop.
    (``asyncio.wait``: a cancelled waiter leaves the earlier chunk be.)"""
    await asyncio.wait([previous])
    if previous.cancelled() or previous.exception() is not None or previous.result():
        raise ChunkAborted


async def _rewind(flight: Flight, streams: Streams, mark: tuple[int, int]) -> None:
    """Let the chunks in flight end (they roll back, waiting for one that failed or stopped),
    then rewind the streams to the first that did not commit (``mark`` when all did)."""
    for task, _, _ in flight:
        with contextlib.suppress(BaseException):
            await asyncio.wait([task])
        if task.done():
            _retrieved(task)  # its failure is the one being handled, or a roll-back after it
    uncommitted = [drained for _, drained, _ in flight if not drained.committed[0]]
    streams.restore(uncommitted[0].mark if uncommitted else mark)
    flight.clear()
