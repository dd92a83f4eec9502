"""Bars from ticks: one OHLCV bar per period of a timeframe, built as ticks arrive.

A bar covers ``[start, start + timeframe)`` with periods aligned to the Unix epoch (a 1h bar
starts on the hour, a 1d bar at 00:00 UTC), as the imported datasets' bars are. It closes on
the first tick of a later period, or, when no tick comes, once the market clock passes its end
by a bounded delay (:meth:`BarBuilder.on_clock`). A period without any tick has no bar. A tick
older than the forming bar, or than the end of the last bar closed (late, out of order), is
counted and left out: a closed bar never changes, nor is a second bar made for its period. The
builder is deterministic in the ticks it is fed, and its whole state is a few numbers
(:meth:`BarBuilder.state`), so a resumed consumer rebuilds the same bars.

:class:`MarketClock` and :class:`BarTrack` are what the hub's aggregator
(``hub.marketdata.aggregator``) adds around builders: the clock that closes a bar when no tick
comes, and where a builder may start when it did not see a symbol's ticks from their beginning.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple


class Bar(NamedTuple):
    ts: int  # the period's start, ns
    open: float
    high: float
    low: float
    close: float
    volume: float
    ticks: int

    def document(self, symbol: str, timeframe: str, closed: bool) -> dict[str, Any]:
        """The bar as ``bars:{symbol}:{timeframe}`` carries it."""
        return {
            "symbol": symbol,
            "timeframe": timeframe,
            "ts": self.ts,
            "open": self.open,
            "high": self.high,
            "low": self.low,
            "close": self.close,
            "volume": self.volume,
            "ticks": self.ticks,
            "closed": closed,
        }


class BarBuilder:
    """Aggregates one symbol's ticks into bars of ``timeframe_ns``."""

    __slots__ = ("_bar", "closed_until", "delay_ns", "late", "timeframe_ns")

    def __init__(self, timeframe_ns: int, delay_ns: int = 0) -> None:
        if timeframe_ns <= 0:
            raise ValueError(f"timeframe_ns must be positive, got {timeframe_ns}")
        self.timeframe_ns = timeframe_ns
        self.delay_ns = delay_ns
        self.late = 0  # ticks left out for being older than the forming bar
        # The end of the last bar closed: a tick before it is late even with no bar forming.
        self.closed_until: int | None = None
        self._bar: list[Any] | None = None  # [ts, open, high, low, close, volume, ticks]

    @property
    def forming(self) -> Bar | None:
        return None if self._bar is None else Bar(*self._bar)

    def period_start(self, ts_ns: int) -> int:
        return ts_ns - ts_ns % self.timeframe_ns

    def on_tick(self, ts_ns: int, price: float, size: float | None = None) -> Bar | None:
        """Add a tick; returns the bar it closed (the tick opens a later period), else None."""
        bar = self._bar
        volume = 0.0 if size is None or not math.isfinite(size) else float(size)
        if bar is None:
            if self.closed_until is not None and ts_ns < self.closed_until:
                self.late += 1
                return None
        else:
            if ts_ns < bar[0]:
                self.late += 1
                return None
            if ts_ns < bar[0] + self.timeframe_ns:
                bar[2] = max(bar[2], price)
                bar[3] = min(bar[3], price)
                bar[4] = price
                bar[5] += volume
                bar[6] += 1
                return None
        closed = None
        if bar is not None:
            closed = Bar(*bar)
            self.closed_until = bar[0] + self.timeframe_ns
        self._bar = [self.period_start(ts_ns), price, price, price, price, volume, 1]
        return closed

    def on_clock(self, market_now_ns: int) -> Bar | None:
        """Close the forming bar once ``market_now_ns`` is past its end by the delay."""
        bar = self._bar
        if bar is None or market_now_ns < bar[0] + self.timeframe_ns + self.delay_ns:
            return None
        self._bar = None
        self.closed_until = bar[0] + self.timeframe_ns
        return Bar(*bar)

    def close_deadline(self) -> int | None:
        """The market time at which :meth:`on_clock` closes the forming bar (None: none forms)."""
        bar = self._bar
        return None if bar is None else bar[0] + self.timeframe_ns + self.delay_ns

    def state(self) -> dict[str, Any]:
        return {
            "bar": None if self._bar is None else list(self._bar),
            "late": self.late,
            "closed_until": self.closed_until,
        }

    @classmethod
    def restore(
        cls, timeframe_ns: int, state: Mapping[str, Any] | None, delay_ns: int = 0
    ) -> BarBuilder:
        builder = cls(timeframe_ns, delay_ns)
        if state:
            bar = state.get("bar")
            if bar is not None:
                builder._bar = [
                    int(bar[0]), float(bar[1]), float(bar[2]), float(bar[3]), float(bar[4]),
                    float(bar[5]), int(bar[6]),
                ]  # fmt: skip
            builder.late = int(state.get("late", 0))
            closed_until = state.get("closed_until")
            builder.closed_until = None if closed_until is None else int(closed_until)
        return builder


class MarketClock:
    """A symbol's market time: the newest tick's time, running on with the wall clock since
    that tick arrived (``recv_ns``, when the hub stamped it on ingest: a tick read again from
    history after a failover does not restart the clock).

    Only a tick newer than every tick before moves it, so a late or replayed older tick
    never sets it back. No tick yet: no market time.
    """

    __slots__ = ("_anchor_ts", "_anchor_wall")

    def __init__(self) -> None:
        self._anchor_ts: int | None = None
        self._anchor_wall = 0

    def on_tick(self, ts_ns: int, wall_ns: int) -> None:
        if self._anchor_ts is None or ts_ns >= self._anchor_ts:
            self._anchor_ts = ts_ns
            self._anchor_wall = wall_ns

    def now(self, wall_ns: int) -> int | None:
        if self._anchor_ts is None:
            return None
        return self._anchor_ts + max(0, wall_ns - self._anchor_wall)

    def wall_at(self, market_ns: int) -> int | None:
        """The wall time at which the market time reaches ``market_ns`` (None: no tick yet)."""
        if self._anchor_ts is None:
            return None
        return self._anchor_wall + (market_ns - self._anchor_ts)


class BarTrack:
    """One timeframe's builder fed from a stream of numbered ticks that it may join late.

    ``start`` is where its bars begin (the end of the last bar already stored, None: anywhere).
    The first tick it sees decides the rest: a tick numbered 1 begins the stream, so every bar
    from there on is whole; any later number means ticks before it are unknown, so the period
    holding it may be missing some, and bars start at the next period instead (unless the tick
    is older than ``start``: then the stream covers everything from ``start`` on). Ticks before
    the start are skipped.
    """

    __slots__ = ("builder", "joined", "start")

    def __init__(self, builder: BarBuilder, start: int | None = None) -> None:
        self.builder = builder
        self.start = start
        self.joined = False

    def feed(self, seq: int, ts_ns: int, price: float, size: float | None) -> Bar | None:
        if not self.joined:
            self.joined = True
            if seq > 1 and (self.start is None or ts_ns >= self.start):
                self.start = self.builder.period_start(ts_ns) + self.builder.timeframe_ns
        if self.start is not None and ts_ns < self.start:
            return None
        return self.builder.on_tick(ts_ns, price, size)
