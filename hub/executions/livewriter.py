"""Group commit for a worker's live runs: the bars that close together are written together.

Live runs' 1-second (or 1-minute) bars close at the same instant across every run a worker
hosts. Written one by one, K runs cost K round trips and K transactions, queued behind each
other on one event loop, so the last run's signal waits for all the others'. The writer instead
takes every persist queued while the previous write was in flight and writes them in one
statement (:func:`hub.executions.liverepo.persist_bars`), then publishes all their events,
equity points and statuses in one Redis pipeline. An idle writer writes a lone persist at once:
grouping adds no delay, it only shares the wait.

A batch that fails is written again run by run, so one run's conflict (a run whose lease moved
to another worker mid-write) fails only that run. A run without its checkpoint row yet (its
first persist) takes the chunk path (:meth:`RunWriter.persist_live`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from engine.records import Direction, TradeStatus
from hub.executions import liverepo
from hub.executions.curvecodec import encode_balances, encode_times
from hub.executions.documents import EXIT_REASONS, clean_metrics, equity_jsons, status_document
from hub.executions.liverepo import BarRows
from hub.executions.topics import status_topic, stream_topic
from hub.times import datetime_of_ns

if TYPE_CHECKING:
    import asyncpg

    from hub.executions.records import Batch, Drained, Streams
    from hub.executions.runs import RunWriter

log = logging.getLogger("tradehub.live")

MAX_BATCH = 500


@dataclass
class _Pending:
    rows: BarRows
    drained: Drained
    points: list[tuple[int, float]]
    equity_seq: int
    done: asyncio.Future[asyncpg.Record | None]


class LiveWriter:
    def __init__(self, runs: RunWriter) -> None:
        self.runs = runs
        self.pool = runs.pool
        self.bus = runs.bus
        self._queue: list[_Pending] = []
        self._task: asyncio.Task[None] | None = None

    async def persist(
        self,
        streams: Streams,
        checkpoint_id: int | None,
        equity_seq: int,
        points: list[tuple[int, float]],
        processed: int,
        metrics: dict[str, float],
        state: dict[str, Any],
    ) -> tuple[bool, int]:
        """Write a run's bar (or flush) with the others closing now; returns whether a stop was
        requested, and the run's checkpoint row id. On failure the streams are rewound."""
        if checkpoint_id is None:
            return await self.runs.persist_live(
                streams, equity_seq, points, processed, metrics, state
            )
        drained = streams.take()
        try:
            rows = _rows(streams, drained, checkpoint_id, equity_seq, points, processed)
            rows.metrics = orjson.dumps(clean_metrics(metrics)).decode()
            rows.state = orjson.dumps(state).decode()
            done: asyncio.Future[asyncpg.Record | None] = asyncio.get_running_loop().create_future()
            self._queue.append(_Pending(rows, drained, points, equity_seq, done))
            if self._task is None or self._task.done():
                self._task = asyncio.create_task(self._drain(), name="live-writer")
            row = await asyncio.shield(done)
        except BaseException:
            if not drained.committed[0]:
                streams.restore(drained.mark)
            raise
        if row is None:  # the checkpoint row is gone and nothing was written: the long way
            return await self.runs.persist_drained(
                streams, drained, equity_seq, points, processed, metrics, state
            )
        return bool(row["stop_requested"]), checkpoint_id

    async def close(self) -> None:
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task

    async def _drain(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
            written = await self._write(batch)
            published: list[Batch] = []
            for item in batch:
                row = written.get(item.rows.execution_id)
                if isinstance(row, BaseException):
                    if not item.done.done():
                        item.done.set_exception(row)
                    continue
                if row is not None:
                    item.drained.committed[0] = True
                    published.extend(_batches(item, row))
            await self.bus.publish_batches(published)
            for item in batch:
                if not item.done.done():
                    item.done.set_result(written.get(item.rows.execution_id))

    async def _write(self, batch: list[_Pending]) -> dict[int, Any]:
        """Each run's row, None (its checkpoint row is gone), or the exception it met."""
        try:
            async with self.pool.acquire() as conn:
                return dict(await liverepo.persist_bars(conn, [i.rows for i in batch]))
        except Exception as exc:  # noqa: BLE001 - handed to the run, which retries from its checkpoint
            if len(batch) == 1:
                return {batch[0].rows.execution_id: exc}
            log.warning("a batch of %d live bars failed; writing them one by one", len(batch))
        out: dict[int, Any] = {}
        for item in batch:
            out.update(await self._write([item]))
        return out


def _rows(
    streams: Streams,
    drained: Drained,
    checkpoint_id: int,
    equity_seq: int,
    points: list[tuple[int, float]],
    processed: int,
) -> BarRows:
    execution_id = streams.execution_id
    equity = None
    if points:
        times = np.array([p[0] for p in points], dtype=np.int64)
        values = np.array([p[1] for p in points], dtype=np.float64)
        equity = (equity_seq + 1, len(points), encode_times(times), encode_balances(values))
    rows = BarRows(
        execution_id, checkpoint_id, processed, "", "", drained.last_event, drained.last_trade,
        equity,
    )  # fmt: skip
    for block in drained.events:
        stamps = block.ts_ns.tolist()
        for k, (kind, body) in enumerate(zip(block.types, block.bodies, strict=True)):
            rows.events.append(
                (block.first_seq + k, kind, streams.strategy, datetime_of_ns(int(stamps[k])),
                 body.decode())
            )  # fmt: skip
    for trades in drained.trades:
        details = trades.details
        for k, r in enumerate(trades.records.tolist()):
            record = dict(zip(trades.records.dtype.names or (), r, strict=True))
            detail = details[k] if details is not None else {"layer_number": record["layer"]}
            rows.trades.append(
                (
                    execution_id,
                    trades.first_seq + k,
                    streams.instrument,
                    "long" if record["direction"] == Direction.Long else "short",
                    "open" if record["status"] == TradeStatus.Open else "closed",
                    record["entry_index"],
                    record["exit_index"],
                    datetime_of_ns(record["entry_ts"]),
                    datetime_of_ns(record["exit_ts"]),
                    record["entry_price"],
                    record["exit_price"],
                    record["units"],
                    record["pnl"],
                    record["return"],
                    record["fees"],
                    EXIT_REASONS.get(record["exit_reason"], "signal"),
                    orjson.dumps(detail).decode(),
                )
            )
    return rows


def _batches(item: _Pending, row: asyncpg.Record) -> list[Batch]:
    """What the bus carries for one written run: its events and trades, equity, status."""
    execution_id = item.rows.execution_id
    out = item.drained.batches()
    if item.points:
        times = np.array([p[0] for p in item.points], dtype=np.int64)
        values = np.array([p[1] for p in item.points], dtype=np.float64)
        out.append(
            (stream_topic(execution_id, "equity"), item.equity_seq + 1, equity_jsons(times, values))
        )
    doc = status_document(row, liverepo.checkpoint_of(row))
    out.append((status_topic(execution_id), row["version"], [orjson.dumps(doc)]))
    return out
