"""Writing a running execution: its status changes, its chunks, its resume point.

Each change is one transaction holding the rows and the events it causes; the events are
published once it commits. A chunk writes its equity, the trades it closed and their events, a
metrics checkpoint with the engine's resumable state, and the execution's progress.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import asyncpg
import numpy as np

from hub.executions import repository as repo
from hub.executions.curves import Curve, Downsampled, decode
from hub.executions.documents import clean_metrics, equity_jsons, status_document
from hub.executions.model import ACTIVE, ExecutionStatus
from hub.executions.records import Drained, Streams
from hub.executions.streams import repository as streams_repo
from hub.executions.topics import status_topic, stream_topic

if TYPE_CHECKING:
    from hub.bus import Bus


class RunWriter:
    def __init__(self, pool: asyncpg.Pool, bus: Bus) -> None:
        self.pool = pool
        self.bus = bus

    async def streams_from(self, row: asyncpg.Record, checkpoint: asyncpg.Record | None) -> Streams:
        """Where a run picks up: after its checkpoint (what came later is removed, to be
        written again identically), or from the start, keeping the status events published
        before any chunk (a sequence once published never changes content)."""
        execution_id = row["execution_id"]
        async with self.pool.acquire() as conn, conn.transaction():
            if checkpoint is not None:
                await streams_repo.truncate_after(
                    conn,
                    execution_id,
                    checkpoint["last_event_seq"],
                    checkpoint["last_trade_seq"],
                    checkpoint["processed"],
                )
                first_event, first_trade = (
                    checkpoint["last_event_seq"],
                    checkpoint["last_trade_seq"],
                )
            else:
                first_event = await streams_repo.last_status_event(conn, execution_id)
                first_trade = 0
                await streams_repo.truncate_after(conn, execution_id, first_event, 0, 0)
                await streams_repo.delete_checkpoints(conn, execution_id)
        return Streams(execution_id, row["symbols"][0], row["strategy"], first_event, first_trade)

    async def streams_at_end(self, row: asyncpg.Record) -> Streams:
        """A run's streams where they stand, to append to (closing a run after its job)."""
        execution_id = row["execution_id"]
        return Streams(
            execution_id,
            row["symbols"][0],
            row["strategy"],
            await streams_repo.last_sequence(self.pool, "execution_events", execution_id),
            await streams_repo.last_sequence(self.pool, "execution_trades", execution_id),
        )

    async def set_status(
        self,
        streams: Streams,
        status: ExecutionStatus,
        ts_ns: int,
        *,
        error: str | None = None,
        final_value: float | None = None,
        when_in: frozenset[ExecutionStatus] = ACTIVE,
        downsampled: list[Downsampled] | None = None,
    ) -> asyncpg.Record | None:
        """Move the execution to ``status`` if it is in ``when_in``, with a ``status_changed``
        event (and ``error_occurred`` for an error), whatever the streams hold and the curve's
        ``downsampled`` forms; None when it was not in ``when_in``."""
        mark = streams.mark()
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                row = await repo.set_status(
                    conn,
                    streams.execution_id,
                    status,
                    error=error,
                    final_value=final_value,
                    when_in=tuple(when_in),
                )
                if row is None:
                    streams.restore(mark)
                    return None
                streams.event(
                    "status_changed",
                    ts_ns,
                    {"status": status, **({"error": error} if error else {})},
                )
                if error is not None:
                    streams.event("error_occurred", ts_ns, {"message": error})
                drained = streams.take()
                await streams_repo.write_trades(conn, drained.trades_copy())
                await streams_repo.write_events(conn, drained.events_copy())
                if downsampled:
                    await streams_repo.write_downsampled(conn, streams.execution_id, downsampled)
        except BaseException:
            streams.restore(mark)
            raise
        await self.bus.publish_batches(drained.batches())
        await self.announce(row)
        return row

    async def persist(
        self,
        execution_id: int,
        drained: Drained,
        start: int,
        ts: np.ndarray,
        equity: np.ndarray,
        processed: int,
        total: int,
        metrics: dict[str, float],
        state: dict[str, Any] | None,
        timings: dict[str, float],
        *,
        prune: bool = False,
        after: Callable[[], Awaitable[None]] | None = None,
    ) -> bool:
        """Write one drained chunk in one transaction, then publish it; True when a stop was
        requested. On failure the caller rewinds the streams to ``drained.mark``.

        ``after``: the chunk's rows are written at once, then ``after()`` is awaited before its
        checkpoint, progress and commit (the previous chunk committing and publishing, so that
        the two chunks' writes overlap while commits and publishing keep their order); if it
        raises, the transaction rolls back."""
        stop, _ = await self._persist(
            execution_id, drained, start, ts, equity, processed, total, metrics, state, timings,
            prune=prune, after=after,
        )  # fmt: skip
        return stop

    async def _persist(
        self,
        execution_id: int,
        drained: Drained,
        start: int,
        ts: np.ndarray,
        equity: np.ndarray,
        processed: int,
        total: int,
        metrics: dict[str, float],
        state: dict[str, Any] | None,
        timings: dict[str, float],
        *,
        prune: bool = False,
        after: Callable[[], Awaitable[None]] | None = None,
    ) -> tuple[bool, int]:
        tick = time.perf_counter()
        waited = 0.0
        async with self.pool.acquire() as conn, conn.transaction():
            await streams_repo.write_equity(conn, execution_id, start + 1, ts, equity)
            await streams_repo.write_trades(conn, drained.trades_copy())
            await streams_repo.write_events(conn, drained.events_copy())
            if after is not None:
                waiting = time.perf_counter()
                await after()
                waited = time.perf_counter() - waiting
            checkpoint = await streams_repo.write_checkpoint(
                conn,
                execution_id,
                processed,
                clean_metrics(metrics),
                state,
                drained.last_event,
                drained.last_trade,
            )
            if prune:  # a live run checkpoints all day: only the newest is ever read
                await streams_repo.prune_checkpoints(conn, execution_id, checkpoint["id"])
            row = await repo.set_progress(conn, execution_id, processed, total)
        drained.committed[0] = True
        assert row is not None
        written = time.perf_counter()
        timings["write"] = timings.get("write", 0.0) + written - tick - waited
        equity_topic = stream_topic(execution_id, "equity")
        heard = await self.bus.listened([equity_topic, *drained.topics()])
        batches = drained.batches(heard)
        if equity_topic in heard:
            batches.append((equity_topic, start + 1, equity_jsons(ts, equity)))
        await self.bus.publish_batches(batches)
        await self.announce(row, checkpoint)
        timings["publish"] = timings.get("publish", 0.0) + time.perf_counter() - written
        return bool(row["stop_requested"]), int(checkpoint["id"])

    async def persist_now(self, streams: Streams, *args: Any, **kwargs: Any) -> bool:
        """Drain and persist at once (no overlap with the next chunk)."""
        drained = streams.take()
        try:
            return await self.persist(streams.execution_id, drained, *args, **kwargs)
        except BaseException:
            if not drained.committed[0]:
                streams.restore(drained.mark)
            raise

    async def persist_live(
        self,
        streams: Streams,
        equity_seq: int,
        points: list[tuple[int, float]],
        processed: int,
        metrics: dict[str, float],
        state: dict[str, Any],
    ) -> tuple[bool, int]:
        """A live run's persist the chunk's way, writing a new checkpoint row (and removing the
        older ones): its first, or one whose row went missing. Returns whether a stop was
        requested, and the new checkpoint row's id."""
        return await self.persist_drained(
            streams, streams.take(), equity_seq, points, processed, metrics, state
        )

    async def persist_drained(
        self,
        streams: Streams,
        drained: Drained,
        equity_seq: int,
        points: list[tuple[int, float]],
        processed: int,
        metrics: dict[str, float],
        state: dict[str, Any],
    ) -> tuple[bool, int]:
        ts = np.array([p[0] for p in points], dtype=np.int64)
        values = np.array([p[1] for p in points], dtype=np.float64)
        try:
            return await self._persist(
                streams.execution_id, drained, equity_seq, ts, values, processed, 0,
                metrics, state, {}, prune=True,
            )  # fmt: skip
        except BaseException:
            if not drained.committed[0]:
                streams.restore(drained.mark)
            raise

    async def stored_curve(self, execution_id: int) -> Curve:
        """The curve as written so far (a resumed run holds only the bars it simulated)."""
        return decode(await streams_repo.equity_chunks(self.pool, execution_id))

    async def stop_requested(self, execution_id: int) -> bool:
        return await repo.stop_requested(self.pool, execution_id)

    async def announce(self, row: asyncpg.Record, checkpoint: asyncpg.Record | None = None) -> None:
        """Publish the status; pass the checkpoint just written to spare reading it back."""
        if checkpoint is None:
            checkpoint = await streams_repo.latest_checkpoint(self.pool, row["execution_id"])
        doc = status_document(row, checkpoint)
        await self.bus.publish(status_topic(row["execution_id"]), row["version"], doc)
