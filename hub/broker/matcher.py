"""The paper matcher: one per symbol across every hub process, held by a lease in Redis.

Each hub process runs :class:`Matchers`. Every ``SCAN_INTERVAL``, and whenever an order is
placed, it looks for symbols with open orders (to match) or open positions (to mark), takes the
lease of each one nobody holds, renews its own, and lets go of those with neither. For a symbol it holds, a :class:`SymbolMatcher` loads the open orders from
Postgres, reads the symbol's ticks in order, and applies :func:`hub.broker.matching.decide` to
each order for each tick. Orders placed or cancelled in another process reach it on the internal
``book:{symbol}`` topic (which no client may subscribe to).

Crash safety: when a hub dies, its leases expire after ``LEASE_SECONDS`` and another hub takes
them, reloads the open orders from Postgres, and resumes the ticks after the last one the
previous matcher is known to have handled (the cursor, saved every ``CURSOR_INTERVAL`` and when
a matcher stops; a fill's transaction does not wait for it). Replaying a tick is
harmless: an order never fills on a tick ingested before it was accepted, updates are
conditional on the order's version, and a fill is unique per order and tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import asyncpg

from hub import leases
from hub.broker import repository as repo
from hub.broker.book import Book
from hub.broker.matching import BookOrder, Tick, decide
from hub.broker.model import OPEN_STATUSES, OrderStatus
from hub.broker.paper import book_order
from hub.broker.topics import book_payload, book_topic
from hub.subscription import Event, SubscriptionClosed

if TYPE_CHECKING:
    from hub.broker.service import BrokerService
    from hub.domains import Resources

log = logging.getLogger("tradehub.matcher")

LEASE_SECONDS = 3.0
SCAN_INTERVAL = 0.5
CURSOR_INTERVAL = 1.0


def expired(orders: Iterable[BookOrder], now_ns: int) -> list[BookOrder]:
    """The orders whose time (a DAY order's UTC day) is over at ``now_ns``."""
    return [o for o in orders if o.expires_ns is not None and o.expires_ns <= now_ns]


class Matchers:
    """This process's matchers, one per symbol whose lease it holds."""

    def __init__(self, resources: Resources, service: BrokerService) -> None:
        self.resources = resources
        self.service = service
        self.owner_id = uuid.uuid4().hex
        self.symbols: dict[str, SymbolMatcher] = {}
        self._task: asyncio.Task[None] | None = None
        self._renew = resources.redis.register_script(leases.RENEW)
        self._release = resources.redis.register_script(leases.RELEASE)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._scan_forever(), name="matcher-scan")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for symbol in list(self.symbols):
            await self._drop(symbol, release=True)

    async def changed(self, row: Any, stored: list[tuple[int, bytes]]) -> None:
        """An order of ``row['symbol']`` was written in this process: tell its matcher."""
        symbol = row["symbol"]
        matcher = self.symbols.get(symbol)
        if matcher is None and row["status"] in OPEN_STATUSES:
            matcher = await self._try_take(symbol)
        if matcher is not None:
            await matcher.update(book_payload(row), row)
        else:
            await self.resources.bus.publish_recent(book_topic(symbol), book_payload(row))

    # -- leases -----------------------------------------------------------------------

    async def _scan_forever(self) -> None:
        while True:
            try:
                await self._scan()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("matcher scan failed; trying again")
            await asyncio.sleep(SCAN_INTERVAL)

    async def _scan(self) -> None:
        keys = self.resources.keys
        watched = set(await repo.watched_symbols(self.resources.pool))
        for symbol, matcher in list(self.symbols.items()):
            idle = symbol not in watched and not len(matcher.book) and not matcher.holders
            kept = await self._renew(
                keys=[keys.matcher_lease(symbol)], args=[self.owner_id, int(LEASE_SECONDS * 1000)]
            )
            if not kept or matcher.finished or idle:
                # Lost, broken, or nothing left to match or mark: let go (a new order takes it
                # again).
                await self._drop(symbol, release=bool(kept))
        for symbol in watched:
            if symbol not in self.symbols:
                await self._try_take(symbol)

    async def _try_take(self, symbol: str) -> SymbolMatcher | None:
        taken = await self.resources.redis.set(
            self.resources.keys.matcher_lease(symbol),
            self.owner_id,
            nx=True,
            px=int(LEASE_SECONDS * 1000),
        )
        if not taken:
            return None
        matcher = SymbolMatcher(self, symbol)
        self.symbols[symbol] = matcher
        try:
            await matcher.start()
        except Exception:
            log.exception("matcher for %s failed to start", symbol)
            await self._drop(symbol, release=True)
            return None
        log.info("matching %s", symbol, extra={"symbol": symbol})
        return matcher

    async def _drop(self, symbol: str, *, release: bool) -> None:
        matcher = self.symbols.pop(symbol, None)
        if matcher is not None:
            await matcher.stop()
        if release:
            await self._release(
                keys=[self.resources.keys.matcher_lease(symbol)], args=[self.owner_id]
            )


class SymbolMatcher:
    def __init__(self, matchers: Matchers, symbol: str) -> None:
        self.matchers = matchers
        self.symbol = symbol
        self.service = matchers.service
        self.broker = matchers.service.paper
        self.pool = matchers.resources.pool
        self.bus = matchers.resources.bus
        self.book = Book()
        self.terms: dict[str, tuple[float, float]] = {}  # account -> (slippage bps, fee rate)
        self.holders: set[str] = set()
        self.finished = False
        self._tasks: list[asyncio.Task[None]] = []
        self._subscriptions: list[Any] = []
        self._lock = asyncio.Lock()  # one change at a time: a tick, or an order's news
        self._saved: tuple[str, int] | None = None
        self._seen: tuple[str, int] | None = None

    async def start(self) -> None:
        cursor = await repo.cursor(self.pool, self.symbol)
        self._saved = cursor
        # Without a cursor (nobody has matched this symbol for a full second yet, or ever), read
        # all the history Redis keeps: a tick older than an order never fills it, so this only
        # costs time, and it covers a matcher that died before saving its first cursor.
        ticks = self.bus.subscribe(
            f"ticks:{self.symbol}",
            0 if cursor is None else cursor[1],
            epoch=None if cursor is None else cursor[0],
        )
        book = self.bus.subscribe(book_topic(self.symbol))
        self._subscriptions = [ticks, book]
        try:
            await ticks.open()
            await book.open()
            for row in await repo.open_orders(self.pool, symbol=self.symbol):
                await self._hold(row)
            self.holders = set(await repo.holders(self.pool, self.symbol))
        except BaseException:
            await self._close_subscriptions()
            raise
        self._tasks = [
            asyncio.create_task(self._read_ticks(ticks), name=f"ticks-{self.symbol}"),
            asyncio.create_task(self._read_book(book), name=f"book-{self.symbol}"),
            asyncio.create_task(self._housekeeping(), name=f"expiry-{self.symbol}"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._close_subscriptions()
        await self._save_cursor()

    async def _close_subscriptions(self) -> None:
        """Detach from the bus (a cancelled reader does not do it by itself)."""
        for subscription in self._subscriptions:
            await subscription.aclose()
        self._subscriptions = []

    async def _hold(self, row: Any) -> None:
        account_id = row["account_id"]
        if account_id not in self.terms:
            account = await repo.account(self.pool, account_id)
            self.terms[account_id] = (
                (0.0, 0.0) if account is None else (account["slippage_bps"], account["fee_rate"])
            )
        if row["status"] in OPEN_STATUSES:
            self.book.put(book_order(row, *self.terms[account_id]))
        else:
            self.book.remove(row["order_id"])

    async def update(self, news: dict[str, Any], row: Any = None) -> None:
        """An order changed (placed, cancelled): take ``row`` (written in this process) or
        re-read it, unless the book already holds that version."""
        held = self.book.get(news["order_id"])
        if held is not None and held.version >= news["version"]:
            return
        if held is None and news["status"] not in OPEN_STATUSES:
            return
        async with self._lock:
            if row is None:
                row = await repo.order(self.pool, news["order_id"])
            if row is not None:
                current = self.book.get(row["order_id"])
                if current is None or current.version < row["version"]:
                    await self._hold(row)

    async def _read_book(self, book: Any) -> None:
        try:
            async for event in book:
                await self.update(event.data())
        except SubscriptionClosed:
            self.finished = True  # the scan drops this matcher and a hub takes the symbol again

    async def _read_ticks(self, ticks: Any) -> None:
        try:
            async for event in ticks:
                async with self._lock:
                    try:
                        await self._on_tick(event)
                    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                        # The database blipped: this tick is replayed by whoever matches next.
                        log.exception(
                            "matching %s failed at tick %d; handing over", self.symbol, event.seq
                        )
                        self.finished = True
                        return
        except SubscriptionClosed as closed:
            log.warning("tick stream of %s ended: %s", self.symbol, closed)
            self.finished = True

    async def _on_tick(self, event: Event) -> None:
        data = event.data()
        price = float(data["price"])
        reached = self.book.reached(price)
        if not reached:  # the usual tick: nothing to fill or trigger, only marks to refresh
            self._touch_holders()
            self._seen = (event.epoch, event.seq)
            return
        tick = Tick(
            seq=event.seq,
            epoch=event.epoch,
            ts=int(data.get("ts") or 0),
            price=price,
            size=data.get("size"),
            bid=data.get("bid"),
            ask=data.get("ask"),
            recv_ns=int(data.get("recv_ns") or 0),
        )
        for order in reached:
            decision = decide(order, tick)
            if decision.rest:
                order.marketable = False
                self.book.put(order)
                await repo.rests(self.pool, order.order_id)
            if decision.fills:
                row = await self.broker.fill(order, decision, tick)
                if row is not None:
                    self.holders.add(order.account_id)
            elif decision.cancel:
                row = await self.broker.close(
                    order,
                    OrderStatus.CANCELLED,
                    f"{order.time_in_force.value}: not filled by the next tick",
                )
            elif decision.triggered and not order.triggered:
                row = await self.broker.trigger(order)
            else:
                continue
            await self._refresh(order.order_id, row)
        self._touch_holders()
        # Only now is the tick handled: a matcher stopped halfway through it leaves the cursor
        # before it, and whoever matches next replays it.
        self._seen = (event.epoch, event.seq)

    def _touch_holders(self) -> None:
        """A tick moved the mark: the holders' positions and balances are due (throttled)."""
        touch = self.service.throttle.touch
        for account_id in self.holders:
            touch(account_id)

    async def _refresh(self, order_id: int, row: Any) -> None:
        if row is None:  # changed under us: read what it is now
            row = await repo.order(self.pool, order_id)
        if row is None:
            self.book.remove(order_id)
        else:
            await self._hold(row)

    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(CURSOR_INTERVAL)
            now = time.time_ns()
            async with self._lock:
                for order in expired(self.book, now):
                    row = await self.broker.close(
                        order, OrderStatus.EXPIRED, "day order: the UTC day ended"
                    )
                    await self._refresh(order.order_id, row)
                await self._save_cursor()
                # Accounts whose position went flat no longer need this symbol's marks.
                self.holders = set(await repo.holders(self.pool, self.symbol))

    async def _save_cursor(self) -> None:
        seen = self._seen
        if seen is not None and seen != self._saved:
            await repo.save_cursor(self.pool, self.symbol, *seen)
            self._saved = seen
