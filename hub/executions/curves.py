"""An execution's equity curve as it is read: whole from its stored chunks, windowed, and
downsampled with LTTB (which keeps the first and last point and the shape).

Finished curves never change, so the hub keeps the most recent ones decoded (bounded by bytes).
A completed run also stores its curve downsampled to ``STORED_SIZES`` points, computed by the
worker from the same arrays with the same function (:func:`downsample`) when the run completes:
a request for the whole curve (no ``since``, no window) at one of those sizes reads those few
kilobytes instead of the whole curve, and gets the same points it would compute.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from hub.executions import repository as repo
from hub.executions.curvecodec import decode_balances, decode_times
from hub.executions.model import ExecutionStatus
from hub.executions.streams import repository as streams_repo

if TYPE_CHECKING:
    import asyncpg

Curve = tuple[np.ndarray, np.ndarray, np.ndarray]  # sequences, ns times, balances
Downsampled = tuple[int, np.ndarray, np.ndarray, np.ndarray]  # (max_points, *Curve)

STORED_SIZES = (500, 1000, 2000)  # 1,000: GraphQL's default; 500: REST's default page
CACHE_BYTES = 256 * 1024 * 1024


def downsample(curve: Curve, max_points: int | None) -> Curve:
    """At most ``max_points`` points of ``curve`` by LTTB (the whole curve when it has no more)."""
    seq, ts, balance = curve
    if max_points is None or len(ts) <= max_points:
        return curve
    if max_points == 2:  # LTTB's buckets need a third point; two are the ends
        picked = np.array([0, len(ts) - 1])
    else:
        from engine import lttb

        picked = lttb(ts.astype(np.float64), balance, max_points)
    return seq[picked], ts[picked], balance[picked]


def stored_sizes(curve: Curve) -> list[Downsampled]:
    """The downsamples a completed run stores: one per size the curve is longer than
    (``downsample`` for each, its float times computed once)."""
    from engine import lttb

    seq, ts, balance = curve
    x = ts.astype(np.float64)
    out = []
    for m in STORED_SIZES:
        if len(ts) > m:
            picked = lttb(x, balance, m)
            out.append((m, seq[picked], ts[picked], balance[picked]))
    return out


def decode(chunks: list[asyncpg.Record]) -> Curve:
    """A curve from its stored chunks."""
    if not chunks:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty, np.empty(0)
    seq = np.concatenate(
        [np.arange(c["first_seq"], c["first_seq"] + c["count"], dtype=np.int64) for c in chunks]
    )
    ts = np.concatenate([decode_times(c["ts"], c["count"]) for c in chunks])
    balance = np.concatenate([decode_balances(c["balance"]) for c in chunks])
    return seq, ts, balance


class Curves:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self._finished: dict[int, Curve] = {}

    async def _load(self, execution_id: int, since: int) -> tuple[Curve, bool]:
        status = await repo.status_of(self.pool, execution_id)
        finished = status is not None and ExecutionStatus(status).terminal
        chunks = await streams_repo.equity_chunks(self.pool, execution_id, 0 if finished else since)
        return decode(chunks), finished and bool(chunks)

    def _remember(self, execution_id: int, curve: Curve) -> None:
        self._finished[execution_id] = curve
        while (
            sum(sum(a.nbytes for a in c) for c in self._finished.values()) > CACHE_BYTES
            and len(self._finished) > 1
        ):
            self._finished.pop(next(iter(self._finished)))

    async def read(
        self,
        execution_id: int,
        *,
        since: int,
        start_ns: int | None,
        end_ns: int | None,
        max_points: int | None,
    ) -> Curve:
        """The points after ``since`` within the window, downsampled to ``max_points``."""
        whole = since == 0 and start_ns is None and end_ns is None
        if whole and max_points in STORED_SIZES:
            assert max_points is not None
            stored = await streams_repo.downsampled(self.pool, execution_id, max_points)
            if stored is not None:
                return (
                    np.frombuffer(stored["seq"], dtype="<i8"),
                    np.frombuffer(stored["ts"], dtype="<i8"),
                    np.frombuffer(stored["balance"], dtype="<f8"),
                )
        curve = self._finished.get(execution_id)
        if curve is None:
            curve, finished = await self._load(execution_id, since)
            if finished:
                self._remember(execution_id, curve)
        seq, ts, balance = curve
        if len(seq):
            keep = seq > since
            if start_ns is not None:
                keep &= ts >= start_ns
            if end_ns is not None:
                keep &= ts <= end_ns
            if not keep.all():
                curve = seq[keep], ts[keep], balance[keep]
        return downsample(curve, max_points)
