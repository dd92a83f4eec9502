"""Replaying stored market data onto ``ticks:{symbol}``: what a replay takes, how a bar becomes
four ticks, and how ticks are paced at a multiple of real time.

A dataset's bar becomes four ticks a quarter of its timeframe apart: the open at the bar's
time, then the two extremes in the order the bar's path most likely took (a bar that closed
at or above its open most likely fell to its low before rising to its high: open, low, high,
close; one that closed below its open: open, high, low, close), then the close. Each tick
carries a quarter of the bar's volume as its size, and no quote.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from hub.marketdata.ticks import Ticks
from hub.times import EARLIEST, LATEST, aware, ns_of
from hub.topics import SYMBOL

if TYPE_CHECKING:
    from hub.bus import Bus
    from hub.jobs.context import JobContext

MAX_SPEED = 1_000_000_000.0
# Ticks published in one Redis call (one message per call to each subscriber, which holds at
# most TRADEHUB_BUS_QUEUE_SIZE, 2,048 by default, unread), and the longest a replay goes
# without a look at its job row (progress reported, a cancel honoured).
SLICE_TICKS = 1_000
CHECK_SECONDS = 0.5


class ReplayPayload(BaseModel):
    """A ``marketdata.replay`` job: a dataset's bars, or a symbol's stored ticks, in a window."""

    model_config = ConfigDict(extra="forbid")

    dataset_id: uuid.UUID | None = Field(None, description="replay this dataset's bars")
    symbol: str | None = Field(
        None, pattern=f"^{SYMBOL}$", description="replay this symbol's stored ticks"
    )
    start: datetime | None = Field(None, description="from this time on (inclusive)")
    end: datetime | None = Field(None, description="before this time (exclusive)")
    speed: float | None = Field(
        None,
        ge=0,
        le=MAX_SPEED,
        allow_inf_nan=False,
        description="null or 0: as fast as possible; else a multiple of real time (60: an "
        "hour of market time in a minute)",
    )

    @model_validator(mode="after")
    def _one_source_and_a_window(self) -> ReplayPayload:
        if (self.dataset_id is None) == (self.symbol is None):
            raise ValueError("give either dataset_id or symbol, not both or neither")
        for name in ("start", "end"):
            value = getattr(self, name)
            if value is not None and not EARLIEST <= aware(value) < LATEST:
                raise ValueError(f"{name} must be between {EARLIEST.date()} and {LATEST.date()}")
        if self.start is not None and self.end is not None and aware(self.end) <= aware(self.start):
            raise ValueError("end must be after start")
        return self

    @property
    def start_ns(self) -> int | None:
        return None if self.start is None else ns_of(self.start)

    @property
    def end_ns(self) -> int | None:
        return None if self.end is None else ns_of(self.end)

    @property
    def paced(self) -> bool:
        return bool(self.speed)


def bar_ticks(symbol: str, bars: dict[str, np.ndarray], step_ns: int) -> Ticks:
    """Four ticks per bar (see the module's docstring), in time order."""
    opens, highs, lows, closes = bars["open"], bars["high"], bars["low"], bars["close"]
    rising = closes >= opens
    prices = np.stack(
        [opens, np.where(rising, lows, highs), np.where(rising, highs, lows), closes], axis=1
    ).ravel()
    offsets = np.array([0, step_ns // 4, step_ns // 2, 3 * step_ns // 4], dtype=np.int64)
    ts = (bars["ts"].astype(np.int64)[:, None] + offsets[None, :]).ravel()
    size = np.repeat(bars["volume"] / 4.0, 4)
    none = np.full(len(ts), np.nan)
    return Ticks([symbol] * len(ts), ts, prices, size, none, none)


async def publish(bus: Bus, symbol: str, ticks: Ticks) -> None:
    """Ticks onto ``ticks:{symbol}`` in one Redis call, stamped with the time they went out."""
    topic = f"ticks:{symbol}"
    await bus.publish_recent_batch([(topic, p) for p in ticks.payloads(time.time_ns())])


async def pace(
    ctx: JobContext,
    bus: Bus,
    symbol: str,
    chunks: AsyncIterator[Ticks],
    total: int,
    speed: float | None,
) -> int:
    """Publish every tick of ``chunks`` (in time order), each no sooner than its distance in
    market time from the first tick, divided by ``speed``, after the first went out (all at
    once for no speed); report progress, where a cancel stops the replay, at least every
    :data:`CHECK_SECONDS`. Returns how many ticks went out."""
    loop = asyncio.get_running_loop()
    done = 0
    await ctx.progress(0, total)
    checked = loop.time()
    origin: tuple[int, float] | None = None  # (market ns, loop time) of the first tick
    async for chunk in chunks:
        start, n = 0, len(chunk)
        while start < n:
            stop = min(n, start + SLICE_TICKS)
            if speed:
                now = loop.time()
                if origin is None:
                    origin = (int(chunk.ts_ns[start]), now)
                due = origin[0] + int((now - origin[1]) * speed * 1e9)
                stop = min(stop, int(np.searchsorted(chunk.ts_ns, due, side="right")))
                if stop <= start:
                    wait = (int(chunk.ts_ns[start]) - origin[0]) / 1e9 / speed - (now - origin[1])
                    await asyncio.sleep(min(max(wait, 0.0), CHECK_SECONDS))
                    if loop.time() - checked >= CHECK_SECONDS:
                        await ctx.progress(done, total)
                        checked = loop.time()
                    continue
            await publish(bus, symbol, chunk.part(start, stop))
            done += stop - start
            start = stop
            if loop.time() - checked >= CHECK_SECONDS:
                await ctx.progress(done, total)
                checked = loop.time()
    await ctx.progress(done, total)
    return done
