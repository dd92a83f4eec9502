"""Bars from ticks: one aggregator per symbol across every hub process, held by a lease in Redis.

Each hub process runs :class:`BarAggregators`. Every ``SCAN_INTERVAL`` (and at once when a
subscription here wants a new pair) it reads which (symbol, timeframe) pairs are wanted
(``hub.marketdata.barstate``: subscribers' and live runs' wishes, plus ``TRADEHUB_BARS``),
takes the lease of each wanted symbol nobody holds, renews its own, and lets go of symbols
nobody wants any more. For a symbol it holds, a :class:`SymbolBars` reads ``ticks:{symbol}``
through the bus and feeds every wanted timeframe's :class:`~hub.marketdata.bars.BarBuilder`.

What goes out on ``bars:{symbol}:{timeframe}``: each closed bar at once (stored in
``ts.live_bars`` first, then published, as every service publishes after commit), and the
forming bar at most every 250 ms per topic (``symbolbars.FORMING_INTERVAL``), so a symbol
ticking 10,000 times a second costs four publications a second per timeframe. A bar closes on the first tick of a
later period, or by the clock: once the symbol's market time (its newest tick's time, running
on with the wall clock since that tick arrived) passes the bar's end by
``TRADEHUB_BAR_CLOSE_DELAY`` (2 s), so that a tick that was on its way still counts.

Crash safety: when a hub dies its leases expire after ``LEASE_SECONDS`` and another hub takes
them. The new holder starts each timeframe at the end of its last stored bar and reads the
symbol's tick history that Redis keeps (``ticks:{symbol}`` is a recent topic), so it closes, and
stores, the bars the old one had not (a bar already stored is kept as it is) and rebuilds the
forming bar. A period that began before the oldest tick Redis still holds is skipped rather
than stored short (:class:`~hub.marketdata.bars.BarTrack`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import TYPE_CHECKING, Any

from hub import leases
from hub.marketdata.barstate import REFRESH_SECONDS, StatePublisher, parse_pairs, split_pair
from hub.marketdata.symbolbars import SymbolBars

if TYPE_CHECKING:
    from hub.domains import Resources
    from hub.marketdata.barstate import Wishes

log = logging.getLogger("tradehub.bars")

LEASE_SECONDS = 3.0
SCAN_INTERVAL = 0.5


class BarAggregators:
    """This process's aggregators, one per symbol whose lease it holds."""

    def __init__(self, resources: Resources, wishes: Wishes) -> None:
        settings = resources.settings
        self.resources = resources
        self.wishes = wishes
        self.always = parse_pairs(settings.bars)
        self.delay_ns = round(settings.bar_close_delay * 1e9)
        self.publisher = StatePublisher(resources.redis, resources.keys)
        self.owner_id = uuid.uuid4().hex
        self.symbols: dict[str, SymbolBars] = {}
        self._task: asyncio.Task[None] | None = None
        self._poke = asyncio.Event()
        self._renew = resources.redis.register_script(leases.RENEW)
        self._release = resources.redis.register_script(leases.RELEASE)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._scan_forever(), name="bars-scan")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for symbol in list(self.symbols):
            await self._drop(symbol, release=True)

    def poke(self) -> None:
        """A pair was wanted here: scan now rather than at the next interval."""
        self._poke.set()

    async def _scan_forever(self) -> None:
        loop = asyncio.get_running_loop()
        refresh_at = 0.0
        while True:
            self._poke.clear()
            try:
                if loop.time() >= refresh_at:
                    refresh_at = loop.time() + REFRESH_SECONDS
                    await self._renew_local_wishes()
                await self._scan()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("bars scan failed; trying again")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(SCAN_INTERVAL):
                    await self._poke.wait()

    async def _renew_local_wishes(self) -> None:
        """Want again what this process's subscribers read, as long as they read it."""
        pairs = [
            split_pair(t.removeprefix("bars:")) for t in self.resources.bus.local_topics("bars:")
        ]
        refused = await self.wishes.want(pairs)
        if refused:
            log.warning("bars not built: too many pairs wanted", extra={"refused": len(refused)})

    async def _wanted(self) -> dict[str, set[str]]:
        wanted = await self.wishes.wanted()
        for symbol, timeframes in self.always.items():
            wanted.setdefault(symbol, set()).update(timeframes)
        return wanted

    async def _scan(self) -> None:
        wanted = await self._wanted()
        held = list(self.symbols.items())
        renewed: list[Any] = []
        if held:
            async with self.resources.redis.pipeline(transaction=False) as pipe:
                for symbol, _ in held:
                    await self._renew(
                        keys=[self.resources.keys.bars_lease(symbol)],
                        args=[self.owner_id, int(LEASE_SECONDS * 1000)],
                        client=pipe,
                    )
                renewed = await pipe.execute()
        for (symbol, bars), kept in zip(held, renewed, strict=True):
            timeframes = wanted.get(symbol)
            if not kept or bars.finished or not timeframes:
                await self._drop(symbol, release=bool(kept))
            else:
                await bars.follow(timeframes)
        for symbol, timeframes in wanted.items():
            if symbol not in self.symbols:
                await self._try_take(symbol, timeframes)

    async def _try_take(self, symbol: str, timeframes: set[str]) -> None:
        taken = await self.resources.redis.set(
            self.resources.keys.bars_lease(symbol),
            self.owner_id,
            nx=True,
            px=int(LEASE_SECONDS * 1000),
        )
        if not taken:
            return
        bars = SymbolBars(self, symbol)
        self.symbols[symbol] = bars
        try:
            await bars.start(timeframes)
        except Exception:
            log.exception("bars of %s failed to start", symbol)
            await self._drop(symbol, release=True)
            return
        log.info("building bars of %s", symbol, extra={"symbol": symbol})

    async def _drop(self, symbol: str, *, release: bool) -> None:
        bars = self.symbols.pop(symbol, None)
        if bars is not None:
            await bars.stop()
        if release:
            await self._release(keys=[self.resources.keys.bars_lease(symbol)], args=[self.owner_id])
