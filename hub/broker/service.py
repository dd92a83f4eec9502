"""The broker service: every interface (GraphQL, /ws, ORCA REST) places, cancels and reads
through it. It checks ownership and rate, asks the account's broker to decide and write, tells
the symbol's matcher, and keeps the positions and balances state topics current (at most
``STATE_RATE`` documents a second per account, always ending on the latest state)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import asyncpg
import orjson
from redis.exceptions import RedisError

from hub.broker import repository as repo
from hub.broker.documents import balances_document, positions_document
from hub.broker.matching import Tick
from hub.broker.model import OPEN_STATUSES, AccountRequest, OrderRequest, OrderStatus, OrderType
from hub.broker.paper import PaperBroker
from hub.broker.topics import (
    balances_topic,
    book_payload,
    book_topic,
    orders_topic,
    positions_topic,
)
from hub.errors import BadRequest, Conflict, Forbidden, NotFound, RateLimited

if TYPE_CHECKING:
    from hub.auth import Identity
    from hub.broker.matcher import Matchers
    from hub.domains import Resources

log = logging.getLogger("tradehub.broker")

STATE_INTERVAL = 0.1  # seconds between two state documents of one account (10 a second)
MAX_PAGE = 1000
MAX_CACHED_ACCOUNTS = 100_000
RUNNER_BALANCE = 10_000.0  # a runner's paper account (Cracktrader's, ORCA's bots') by default


@dataclass(frozen=True, slots=True)
class StaticAccount:
    account_id: str
    owner: str
    broker: str
    active: bool
    max_orders_per_second: int


class Broker(Protocol):
    """What a broker implementation does; ``paper`` is the first (an exchange adapter would be
    the next, behind the same methods)."""

    name: str

    async def create_account(self, owner: str, request: AccountRequest) -> asyncpg.Record: ...

    async def place(
        self, request: OrderRequest, reference: float, client_order_id: str
    ) -> tuple[asyncpg.Record, bool]: ...

    async def cancel(self, order_id: int, reason: str = "cancelled") -> asyncpg.Record: ...


class StateThrottle:
    """Publish an account's state at most once per ``interval``; the last touch always wins."""

    def __init__(self, publish: Any, interval: float = STATE_INTERVAL) -> None:
        self.publish = publish
        self.interval = interval
        self._last: dict[str, float] = {}
        self._waiting: dict[str, asyncio.TimerHandle | asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._running: set[str] = set()  # accounts whose documents are being published
        self._again: set[str] = set()  # touched meanwhile: publish once more when done

    def touch(self, account_id: str) -> None:
        if account_id in self._waiting:
            return
        if account_id in self._running:
            self._again.add(account_id)
            return
        loop = asyncio.get_running_loop()
        delay = self._last.get(account_id, 0.0) + self.interval - loop.time()
        if delay <= 0:
            self._start(account_id)
        else:
            self._waiting[account_id] = loop.call_later(delay, self._start, account_id)

    def _start(self, account_id: str) -> None:
        self._waiting.pop(account_id, None)
        self._last[account_id] = asyncio.get_running_loop().time()
        self._running.add(account_id)
        task = asyncio.create_task(self.publish(account_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda _: self._finished(account_id))

    def _finished(self, account_id: str) -> None:
        self._running.discard(account_id)
        if account_id in self._again:
            self._again.discard(account_id)
            self.touch(account_id)

    async def close(self) -> None:
        for waiting in self._waiting.values():
            if isinstance(waiting, asyncio.TimerHandle):
                waiting.cancel()
        self._waiting.clear()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


class BrokerService:
    def __init__(self, resources: Resources) -> None:
        self.resources = resources
        self.pool = resources.pool
        self.bus = resources.bus
        self.redis = resources.redis
        self.keys = resources.keys
        self.paper = PaperBroker(self.pool, self.bus, self._changed)
        self.brokers: dict[str, Broker] = {"paper": self.paper}
        self.throttle = StateThrottle(self.publish_state)
        # Accounts never change owner, broker or rate: what placing an order checks, per id.
        self._accounts: dict[str, StaticAccount] = {}
        self._terms: dict[str, tuple[float, float]] = {}  # account id: (slippage bps, fee rate)
        self.matchers: Matchers | None = None  # set by the domain's start hook (hub and worker)

    # -- accounts ---------------------------------------------------------------------

    async def create_account(self, identity: Identity, request: AccountRequest) -> asyncpg.Record:
        row = await self.brokers["paper"].create_account(identity.user_id, request)
        self.throttle.touch(row["account_id"])
        return row

    async def runner_account(
        self, identity: Identity, name: str, initial_balance: float | None
    ) -> asyncpg.Record:
        """The caller's account called ``name``, opened on first use with ``initial_balance``
        (``RUNNER_BALANCE`` when None); two first uses at once open it once."""
        rows = await repo.accounts(self.pool, identity.user_id, None, name)
        if rows:
            return rows[0]
        request = AccountRequest(
            name=name,
            initial_balance=RUNNER_BALANCE if initial_balance is None else initial_balance,
        )
        try:
            return await self.create_account(identity, request)
        except Conflict:
            rows = await repo.accounts(self.pool, identity.user_id, None, name)
            if not rows:
                raise
            return rows[0]

    async def account(self, identity: Identity, account_id: str) -> asyncpg.Record:
        """The account, if the caller owns it (or is an admin): 404 unknown, 403 someone else's."""
        row = await repo.account(self.pool, account_id) if isinstance(account_id, str) else None
        if row is None:
            raise NotFound(f"no account {str(account_id)[:64]!r}", field="account_id")
        if not identity.is_admin and str(row["owner"]) != identity.user_id:
            raise Forbidden(f"account {account_id!r} is not yours", field="account_id")
        return row

    async def accounts(
        self, identity: Identity, account_ids: list[str] | None = None, name: str | None = None
    ) -> list[asyncpg.Record]:
        """The caller's own accounts (an admin's too: ORCA's list is per user), filtered."""
        if account_ids:
            for account_id in account_ids:
                await self.account(identity, account_id)
        return await repo.accounts(self.pool, identity.user_id, account_ids or None, name)

    # -- orders -----------------------------------------------------------------------

    async def place(self, identity: Identity, request: OrderRequest) -> tuple[asyncpg.Record, bool]:
        """Place an order; returns it and whether it is new (a resent ``client_order_id`` is not).
        A risk or cash refusal is a stored order with status ``rejected``."""
        account = await self._static(identity, request.account_id)
        if not account.active:
            raise Forbidden(f"account {request.account_id!r} is not active", field="account_id")
        last = await self._rate_and_last_price(account, request.symbol)
        client_order_id = request.client_order_id or uuid.uuid4().hex
        return await self.brokers[account.broker].place(request, last, client_order_id)

    async def place_at_tick(
        self, identity: Identity, request: OrderRequest, tick: Tick
    ) -> asyncpg.Record:
        """Place a market order decided at ``tick`` and fill it on that tick, as if it had
        reached the book just before the tick: a live run's order, decided at the close of a bar
        that ``tick`` proved closed (the bar's information was complete before the tick). The
        whole remainder fills (the tick's size does not bound it). Live runs place at most two
        orders per closed bar, so these are not counted against the account's order rate. A
        resent ``client_order_id`` returns the first order as it stands (one still working fills
        on ``tick``). The order, its fill and their events are one transaction: no matcher ever
        sees the order working."""
        if request.type is not OrderType.MARKET:
            raise BadRequest("only a market order fills at a given tick", field="type")
        account = await self._static(identity, request.account_id)
        if not account.active:
            raise Forbidden(f"account {request.account_id!r} is not active", field="account_id")
        terms = await self.account_terms(request.account_id)
        client_order_id = request.client_order_id or uuid.uuid4().hex
        row, stored, left_working = await self.paper.place_filled(
            request, tick, client_order_id, terms
        )
        if stored:
            topic = orders_topic(row["account_id"])
            await self.bus.publish_many([(topic, seq, data) for seq, data in stored])
            self.throttle.touch(row["account_id"])
        if left_working:  # not filled here: the symbol's matcher takes it from now
            await self._changed(row, [], False)
        return row

    async def account_terms(self, account_id: str) -> tuple[float, float]:
        """The account's (slippage in basis points, fee rate): fixed when it was opened."""
        terms = self._terms.get(account_id)
        if terms is None:
            row = await repo.account(self.pool, account_id)
            if row is None:
                raise NotFound(f"no account {account_id!r}", field="account_id")
            terms = self._terms[account_id] = (row["slippage_bps"], row["fee_rate"])
        return terms

    async def cancel_client_orders(
        self, identity: Identity, account_id: str, prefix: str
    ) -> list[asyncpg.Record]:
        """Cancel the account's open orders whose client order id starts with ``prefix`` (a
        live run's own orders)."""
        await self._static(identity, account_id)
        out = []
        for row in await repo.open_orders_with_prefix(self.pool, account_id, prefix):
            with contextlib.suppress(Conflict):
                out.append(await self.brokers["paper"].cancel(row["order_id"]))
        return out

    async def _static(self, identity: Identity, account_id: str) -> StaticAccount:
        """What never changes about an account (owner, broker, rate), checked for the caller and
        kept in this process, so placing an order reads no account row before its transaction."""
        found = self._accounts.get(account_id)
        if found is None:
            row = await self.account(identity, account_id)
            found = StaticAccount(
                account_id,
                str(row["owner"]),
                row["broker"],
                row["active"],
                row["max_orders_per_second"],
            )
            if len(self._accounts) >= MAX_CACHED_ACCOUNTS:
                self._accounts.clear()
            self._accounts[account_id] = found
        elif not identity.is_admin and found.owner != identity.user_id:
            raise Forbidden(f"account {account_id!r} is not yours", field="account_id")
        return found

    async def _rate_and_last_price(self, account: StaticAccount, symbol: str) -> float:
        """Count the order against the account's rate and read the symbol's last price, in one
        Redis round trip; 429 past the rate, 400 for a symbol without market data."""
        second = int(time.time())
        key = self.keys.rate_limit("orders", f"{account.account_id}:{second}")
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.incr(key)
            pipe.expire(key, 2)
            pipe.xrevrange(self.keys.topic_history(f"ticks:{symbol}"), count=1)
            count, _, last = await pipe.execute()
        limit = account.max_orders_per_second
        if int(count) > limit:
            raise RateLimited(
                f"the account may place {limit} orders a second",
                headers={
                    "Retry-After": "1",
                    "X-RateLimit-Limit": str(limit),
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Reset": str(second + 1),
                },
            )
        if not last:
            raise BadRequest(
                f"unknown symbol {symbol!r}: the hub has no market data for it", field="symbol"
            )
        return float(orjson.loads(last[0][1][b"d"])["price"])

    async def order(self, identity: Identity, order_id: Any) -> asyncpg.Record:
        number = _order_number(order_id)
        row = await repo.order(self.pool, number)
        if row is None:
            raise NotFound(f"no order {order_id!r}", field="order_id")
        await self.account(identity, row["account_id"])
        return row

    async def cancel(self, identity: Identity, order_id: Any) -> asyncpg.Record:
        row = await self.order(identity, order_id)
        account = await repo.account(self.pool, row["account_id"])
        assert account is not None
        return await self.brokers[account["broker"]].cancel(row["order_id"])

    async def cancel_all(self, identity: Identity, account_id: str) -> list[asyncpg.Record]:
        account = await self.account(identity, account_id)
        cancelled = []
        for row in await repo.open_orders(self.pool, account_id=account_id):
            try:
                cancelled.append(await self.brokers[account["broker"]].cancel(row["order_id"]))
            except Exception as exc:  # filled meanwhile: nothing left to cancel
                if getattr(exc, "status_code", None) != 409:
                    raise
        return cancelled

    async def orders(
        self,
        identity: Identity,
        account_ids: list[str],
        statuses: list[OrderStatus] | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[asyncpg.Record]:
        if not 1 <= limit <= MAX_PAGE:
            raise BadRequest(f"limit must be between 1 and {MAX_PAGE}", field="limit")
        if offset < 0:
            raise BadRequest("offset must not be negative", field="offset")
        for account_id in account_ids:
            await self._static(identity, account_id)
        return await repo.orders(
            self.pool, account_ids, [s.value for s in statuses] if statuses else None, limit, offset
        )

    async def open_orders(self, identity: Identity, account_ids: list[str]) -> list[asyncpg.Record]:
        rows = await self.orders(identity, account_ids, sorted(OPEN_STATUSES), MAX_PAGE)
        return sorted(rows, key=lambda row: row["order_id"])

    # -- positions and balances -------------------------------------------------------

    async def marks(self, symbols: list[str]) -> dict[str, float]:
        """Each symbol's last tick price (what positions are marked to), in one round trip."""
        if not symbols:
            return {}
        async with self.redis.pipeline(transaction=False) as pipe:
            for symbol in symbols:
                pipe.xrevrange(self.keys.topic_history(f"ticks:{symbol}"), count=1)
            replies = await pipe.execute()
        return {
            symbol: float(orjson.loads(entries[0][1][b"d"])["price"])
            for symbol, entries in zip(symbols, replies, strict=True)
            if entries
        }

    async def positions(self, identity: Identity, account_ids: list[str]) -> list[dict[str, Any]]:
        """One positions document per account (its positions marked to the last tick)."""
        for account_id in account_ids:
            await self._static(identity, account_id)
        rows = await repo.positions(self.pool, account_ids)
        marks = await self.marks(sorted({row["symbol"] for row in rows}))
        return [
            positions_document(a, [row for row in rows if row["account_id"] == a], marks)
            for a in account_ids
        ]

    async def balances(self, identity: Identity, account_ids: list[str]) -> list[dict[str, Any]]:
        rows = {row["account_id"]: row for row in await repo.accounts(self.pool, None, account_ids)}
        documents = await self.positions(identity, account_ids)
        return [balances_document(rows[doc["account_id"]], doc) for doc in documents]

    async def state_documents(
        self, account_id: str, *, bump: bool = False
    ) -> tuple[int, bytes, bytes] | None:
        """(version, positions JSON, balances JSON) of an account; ``bump`` takes a new version
        with the same statement that reads the account and its positions, so the account row is
        locked for one statement only (a fill waiting to settle never waits on Redis). The marks
        are read after: the throttle publishes one account's documents one at a time, so a
        later version never carries older marks from this process."""
        if bump:
            rows = await repo.bump_state_with_positions(self.pool, account_id)
            if not rows:
                return None
            account = rows[0]
            held: list[Any] = [
                {
                    "account_id": account_id,
                    "symbol": row["symbol"],
                    "position_id": row["position_id"],
                    "quantity": row["quantity"],
                    "average_price": row["average_price"],
                    "realized_pnl": row["position_realized_pnl"],
                }
                for row in rows
                if row["symbol"] is not None
            ]
        else:
            found = await repo.account(self.pool, account_id)
            if found is None:
                return None
            account = found
            held = await repo.positions(self.pool, [account_id])
        marks = await self.marks(sorted({row["symbol"] for row in held}))
        positions = positions_document(account_id, held, marks)
        balances = balances_document(account, positions)
        return account["state_version"], orjson.dumps(positions), orjson.dumps(balances)

    async def publish_state(self, account_id: str) -> None:
        try:
            found = await self.state_documents(account_id, bump=True)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, RedisError):
            # The next fill or mark publishes again; a subscriber meanwhile keeps the last state.
            log.warning("state of %s not published", account_id, exc_info=True)
            return
        if found is None:
            return
        version, positions, balances = found
        await self.bus.publish_many(
            [
                (positions_topic(account_id), version, positions),
                (balances_topic(account_id), version, balances),
            ]
        )

    # -- after each commit ------------------------------------------------------------

    async def _changed(
        self, row: asyncpg.Record, stored: list[tuple[int, bytes]], matched: bool
    ) -> None:
        account_id = row["account_id"]
        topic = orders_topic(account_id)
        await self.bus.publish_many([(topic, seq, data) for seq, data in stored])
        # The symbol's matcher already holds what it changed itself (``matched``); anything else
        # reaches it here, or, from a worker or CLI, on the book topic.
        if not matched and self.matchers is not None:
            await self.matchers.changed(row, stored)
        elif not matched:
            await self.bus.publish_recent(book_topic(row["symbol"]), book_payload(row))
        self.throttle.touch(account_id)

    async def close(self) -> None:
        await self.throttle.close()


def _order_number(order_id: Any) -> int:
    text = str(order_id)
    if not text.isdigit() or len(text) > 18:
        raise BadRequest(f"order_id must be a number; got {text[:40]!r}", field="order_id")
    return int(text)
