"""One symbol's bars, built by the hub process that holds the symbol's lease
(:class:`hub.marketdata.aggregator.BarAggregators`).

Two tasks: the reader feeds each tick of ``ticks:{symbol}`` to every wanted timeframe's
:class:`~hub.marketdata.bars.BarTrack` (synchronously, most often straight from the bus reader,
so a burst of ticks costs no task switch per tick), and the pump stores what closed, publishes it
and the forming bars that are due, and closes by the clock the bars no tick closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from typing import TYPE_CHECKING, Any

import asyncpg
import orjson
from redis.exceptions import RedisError

from hub.datasets.timeframes import timeframe_ns
from hub.marketdata import repository as repo
from hub.marketdata.bars import Bar, BarBuilder, BarTrack, MarketClock
from hub.subscription import Event, SubscriptionClosed
from hub.times import ns_of

if TYPE_CHECKING:
    from hub.marketdata.aggregator import BarAggregators
    from hub.subscription import Subscription

log = logging.getLogger("tradehub.bars")

FORMING_INTERVAL = 0.25  # seconds between two publications of a topic's forming bar
MAX_IDLE = 1.0  # the pump looks at the clock at least this often
STOP_TIMEOUT = 5.0

Tick = tuple[int, float, float | None, int]  # ts, price, size, the wall time it arrived


def tick_of(data: Any, now_ns: int) -> Tick | None:
    """A tick as ``ticks:{symbol}`` carries it, or None when it has no usable time or price."""
    if not isinstance(data, dict):
        return None
    ts, price, size, recv = data.get("ts"), data.get("price"), data.get("size"), data.get("recv_ns")
    if not isinstance(ts, int) or isinstance(ts, bool) or not isinstance(price, int | float):
        return None
    if not math.isfinite(price):
        return None
    return (
        ts,
        float(price),
        float(size) if isinstance(size, int | float) else None,
        recv if isinstance(recv, int) and not isinstance(recv, bool) else now_ns,
    )


class SymbolBars:
    """One symbol's timeframes: ticks in (the reader), bars out (the pump)."""

    def __init__(self, owner: BarAggregators, symbol: str) -> None:
        self.symbol = symbol
        self.topic = f"ticks:{symbol}"
        self.pool = owner.resources.pool
        self.bus = owner.resources.bus
        self.publisher = owner.publisher
        self.delay_ns = owner.delay_ns
        self.tracks: dict[str, BarTrack] = {}
        self.clock = MarketClock()
        self.last_seq = 0  # the last tick fed to every track
        self.finished = False
        self._closed: list[tuple[str, Bar]] = []  # closed, not yet stored and published
        self._dirty: set[str] = set()  # timeframes whose forming bar may have changed
        self._sent_at: dict[str, float] = {}  # when each forming bar last went out
        self._sent: dict[str, Bar] = {}  # and what it was
        self._wake = asyncio.Event()
        # Held while a timeframe joins (its history is read and fed): no tick in between.
        self._lock = asyncio.Lock()
        self._subscription: Subscription | None = None
        self._tasks: list[asyncio.Task[None]] = []

    # -- life -------------------------------------------------------------------------

    async def start(self, timeframes: set[str]) -> None:
        starts = await self._stored_ends(sorted(timeframes))
        for timeframe in sorted(timeframes):
            self.tracks[timeframe] = self._track(timeframe, starts.get(timeframe))
        # From the start of the history Redis keeps: each track skips what is stored already.
        subscription = self._subscription = self.bus.subscribe(self.topic, 0)
        try:
            await subscription.open()
        except BaseException:
            await subscription.aclose()
            raise
        subscription.deliver_directly(self._direct)
        self._tasks = [
            asyncio.create_task(self._read(subscription), name=f"bars-ticks-{self.symbol}"),
            asyncio.create_task(self._pump(), name=f"bars-pump-{self.symbol}"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._subscription is not None:
            await self._subscription.aclose()
        try:
            async with asyncio.timeout(STOP_TIMEOUT):
                await self._flush()  # what closed is stored (whoever holds the symbol next)
        except Exception as exc:  # noqa: BLE001 - the next holder rebuilds it from history
            log.warning("bars of %s not flushed at stop: %s", self.symbol, exc)

    async def follow(self, timeframes: set[str]) -> None:
        """Build exactly ``timeframes`` from now on."""
        for timeframe in set(self.tracks) - timeframes:
            del self.tracks[timeframe]
            self._dirty.discard(timeframe)
            self._sent.pop(timeframe, None)
            self._sent_at.pop(timeframe, None)
        added = sorted(timeframes - set(self.tracks))
        if not added:
            return
        async with self._lock:
            starts = await self._stored_ends(added)
            history = await self.bus.recent_after(self.topic, 0, self.bus.recent_maxlen)
            tracks = {tf: self._track(tf, starts.get(tf)) for tf in added}
            now = time.time_ns()
            for seq, data_json in history:
                if seq > self.last_seq:
                    break
                tick = tick_of(orjson.loads(data_json), now)
                if tick is not None:
                    self._feed(tracks, seq, tick)
            self.tracks.update(tracks)
            self._dirty.update(tracks)
            self._wake.set()

    def _track(self, timeframe: str, start: int | None) -> BarTrack:
        return BarTrack(BarBuilder(timeframe_ns(timeframe), self.delay_ns), start)

    async def _stored_ends(self, timeframes: list[str]) -> dict[str, int]:
        starts = await repo.last_bar_starts(self.pool, self.symbol, timeframes)
        return {tf: ns_of(ts) + timeframe_ns(tf) for tf, ts in starts.items()}

    # -- ticks in ---------------------------------------------------------------------

    def _direct(self, event: Event) -> bool:
        """The bus reader's hand-over of a live tick while the reader waits (no queueing)."""
        if self._lock.locked():
            return False
        self._on_tick(event)
        return True

    async def _read(self, subscription: Subscription) -> None:
        try:
            async for event in subscription:
                async with self._lock:
                    self._on_tick(event)
        except SubscriptionClosed as closed:
            log.warning("tick stream of %s ended: %s", self.symbol, closed)
            self.finished = True  # the scan drops it; whoever takes it rebuilds from history

    def _on_tick(self, event: Event) -> None:
        self.last_seq = event.seq
        try:
            tick = tick_of(event.data(), time.time_ns())
        except orjson.JSONDecodeError:
            tick = None
        if tick is None:
            return
        self.clock.on_tick(tick[0], tick[3])
        was_dirty = bool(self._dirty)
        closed = self._feed(self.tracks, event.seq, tick)
        self._dirty.update(self.tracks)
        if closed or not was_dirty:
            self._wake.set()

    def _feed(self, tracks: dict[str, BarTrack], seq: int, tick: Tick) -> bool:
        ts, price, size, _ = tick
        closed_any = False
        for timeframe, track in tracks.items():
            closed = track.feed(seq, ts, price, size)
            if closed is not None:
                self._closed.append((timeframe, closed))
                closed_any = True
        return closed_any

    # -- bars out ---------------------------------------------------------------------

    async def _pump(self) -> None:
        try:
            while True:
                wait = self._next_due()
                if wait > 0:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(wait):
                            await self._wake.wait()
                self._wake.clear()
                self._close_by_clock()
                await self._flush()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            # Not stored: whoever takes the symbol next closes these bars again from history.
            log.exception("storing bars of %s failed; handing over", self.symbol)
            self.finished = True

    def _next_due(self) -> float:
        """Seconds until the pump has something to do (a closed bar: now)."""
        if self._closed:
            return 0.0
        due = MAX_IDLE
        now = asyncio.get_running_loop().time()
        for timeframe in self._dirty:
            due = min(due, self._sent_at.get(timeframe, -math.inf) + FORMING_INTERVAL - now)
        wall = time.time_ns()
        for track in self.tracks.values():
            deadline = track.builder.close_deadline()
            at = None if deadline is None else self.clock.wall_at(deadline)
            if at is not None:
                due = min(due, (at - wall) / 1e9)
        return max(due, 0.0)

    def _close_by_clock(self) -> None:
        market_now = self.clock.now(time.time_ns())
        if market_now is None:
            return
        for timeframe, track in self.tracks.items():
            closed = track.builder.on_clock(market_now)
            if closed is not None:
                self._closed.append((timeframe, closed))

    async def _flush(self) -> None:
        """Store and publish what closed, then each forming bar that is due, in that order."""
        closed, self._closed = self._closed, []
        items: list[tuple[str, bytes]] = []
        symbol = self.symbol
        if closed:
            await repo.store_bars(self.pool, symbol, closed)
            items += [
                (f"bars:{symbol}:{tf}", orjson.dumps(bar.document(symbol, tf, True)))
                for tf, bar in closed
            ]
        # A bar closed while storing goes out first, next time: so does its successor.
        waiting = {tf for tf, _ in self._closed}
        just_closed = {tf for tf, _ in closed}
        now = asyncio.get_running_loop().time()
        for timeframe in sorted(self._dirty):
            track = self.tracks.get(timeframe)
            if track is None:
                self._dirty.discard(timeframe)
                continue
            if timeframe in waiting or (
                timeframe not in just_closed
                and now - self._sent_at.get(timeframe, -math.inf) < FORMING_INTERVAL
            ):
                continue
            self._dirty.discard(timeframe)
            bar = track.builder.forming
            if bar is None or bar == self._sent.get(timeframe):
                continue
            items.append(
                (f"bars:{symbol}:{timeframe}", orjson.dumps(bar.document(symbol, timeframe, False)))
            )
            self._sent[timeframe] = bar
            self._sent_at[timeframe] = now
        if not items:
            return
        try:
            await self.publisher.publish(items)
        except (OSError, RedisError) as exc:
            # Stored all the same; subscribers see the next bar (Redis is down for them too).
            log.warning("bars of %s stored but not published: %s", symbol, exc)
