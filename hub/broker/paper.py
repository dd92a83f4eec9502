"""The paper broker: orders matched against the hub's own market data, in Postgres.

Every change (a new order, a fill, a cancel, an expiry) is one transaction that also appends the
event to the account's durable ``account:{id}:orders`` topic; the events are published after
commit. Order updates are conditional on the order's version, and a fill is unique per order and
tick, so a fill is never applied twice, whoever (which matcher) tries.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import asyncpg
import orjson

from hub.broker import repository as repo
from hub.broker.documents import order_event
from hub.broker.ledger import EPSILON, Position, apply_fill
from hub.broker.matching import BookOrder, Decision, Tick, decide
from hub.broker.model import (
    AccountRequest,
    OrderRequest,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
)
from hub.broker.topics import orders_topic
from hub.errors import Conflict, NotFound
from hub.eventlog import EventLog

if TYPE_CHECKING:
    from hub.bus import Bus


def end_of_utc_day(now: datetime) -> datetime:
    return datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)


def book_order(row: Any, slippage_bps: float, fee_rate: float) -> BookOrder:
    expires = row["expires_at"]
    return BookOrder(
        order_id=row["order_id"],
        account_id=row["account_id"],
        symbol=row["symbol"],
        side=Side(row["side"]),
        type=OrderType(row["type"]),
        quantity=row["quantity"],
        filled_quantity=row["filled_quantity"],
        price=row["price"],
        stop_price=row["stop_price"],
        time_in_force=TimeInForce(row["time_in_force"]),
        triggered=row["triggered"],
        marketable=row["marketable"],
        accepted_ns=row["accepted_ns"],
        version=row["version"],
        expires_ns=None if expires is None else int(expires.timestamp() * 1e9),
        slippage_bps=slippage_bps,
        average_price=row["average_price"],
        fee_rate=fee_rate,
    )


def risk_refusal(account: Any, request: OrderRequest, reference: float, held: float) -> str | None:
    """Why the account may not place ``request`` (None: it may). ``reference`` prices it: the
    limit price, or the last tick's price for market and stop orders."""
    signed = request.quantity if request.side is Side.BUY else -request.quantity
    notional = request.quantity * reference
    if (
        account["max_order_quantity"] is not None
        and request.quantity > account["max_order_quantity"]
    ):
        return f"risk limit: quantity {request.quantity:g} is above max_order_quantity {account['max_order_quantity']:g}"
    if account["max_order_notional"] is not None and notional > account["max_order_notional"]:
        return f"risk limit: notional {notional:.2f} is above max_order_notional {account['max_order_notional']:g}"
    if (
        account["max_position"] is not None
        and abs(held + signed) > account["max_position"] + EPSILON
    ):
        return f"risk limit: the position would reach {held + signed:g}, beyond max_position {account['max_position']:g}"
    if request.side is Side.BUY and held >= 0:
        cost = notional * (1 + account["fee_rate"])
        if cost > account["cash"] + EPSILON:
            return f"insufficient cash: the order costs {cost:.2f}, cash is {account['cash']:.2f}"
    return None


class PaperBroker:
    name = "paper"

    def __init__(
        self,
        pool: asyncpg.Pool,
        bus: Bus,
        on_change: Callable[[Any, list[tuple[int, bytes]], bool], Awaitable[None]],
    ) -> None:
        self.pool = pool
        self.bus = bus
        # Told after each commit: the order as written, its events to publish, and whether the
        # symbol's matcher made the change (it already knows).
        self.on_change = on_change

    async def create_account(self, owner: str, request: AccountRequest) -> asyncpg.Record:
        values = {
            "name": request.name,
            "currency": request.currency,
            "initial_balance": float(request.initial_balance),
            "fee_rate": float(request.fee_rate),
            "slippage_bps": float(request.slippage_bps),
            "max_order_quantity": request.max_order_quantity,
            "max_position": request.max_position,
            "max_order_notional": request.max_order_notional,
            "max_orders_per_second": request.max_orders_per_second,
        }
        row = await repo.insert_account(self.pool, owner, values)
        if row is None:
            raise Conflict(f"you already have an account named {request.name!r}", field="name")
        return row

    async def place(
        self, request: OrderRequest, reference: float, client_order_id: str
    ) -> tuple[asyncpg.Record, bool]:
        """The order (stored working, pending or rejected) and whether this call created it; a
        resent ``client_order_id`` returns the first order and writes nothing."""
        row, new, stored = await self.place_quietly(request, reference, client_order_id)
        if new:
            await self.on_change(row, stored, False)
        return row, new

    async def place_quietly(
        self, request: OrderRequest, reference: float, client_order_id: str
    ) -> tuple[asyncpg.Record, bool, list[tuple[int, bytes]]]:
        """:meth:`place` without telling anyone: the caller publishes the stored events."""
        async with self.pool.acquire() as conn, conn.transaction():
            return await self._place_in(conn, request, reference, client_order_id)

    async def place_filled(
        self,
        request: OrderRequest,
        tick: Tick,
        client_order_id: str,
        terms: tuple[float, float],
    ) -> tuple[asyncpg.Record, list[tuple[int, bytes]], bool]:
        """Place a market order and fill it on ``tick`` in one transaction (a live run's order:
        see :meth:`BrokerService.place_at_tick`); a resent ``client_order_id`` whose order is
        still working fills now. Returns the order, the events to publish, and whether the
        symbol's matcher must hear of it (an order left working)."""
        async with self.pool.acquire() as conn, conn.transaction():
            row, new, stored = await self._place_in(conn, request, tick.price, client_order_id)
            if row["status"] != OrderStatus.WORKING or row["type"] != OrderType.MARKET:
                return row, stored, False
            order = book_order(row, *terms)
            order.accepted_ns = min(order.accepted_ns, tick.recv_ns)
            decision = decide(order, replace(tick, size=None))
            filled = await self._fill_in(conn, order, decision, tick) if decision.fills else None
            if filled is None:
                return row, stored, new
            return filled[0], stored + filled[1], False

    async def _place_in(
        self,
        conn: asyncpg.Connection,
        request: OrderRequest,
        reference: float,
        client_order_id: str,
    ) -> tuple[asyncpg.Record, bool, list[tuple[int, bytes]]]:
        account = await repo.account(conn, request.account_id, lock=True)
        if account is None:
            raise NotFound(f"no account {request.account_id!r}", field="account_id")
        found = await repo.placing(conn, request.account_id, client_order_id, request.symbol)
        assert found is not None
        if found["existing"] is not None:
            existing = await repo.order(conn, found["existing"])
            assert existing is not None
            return existing, False, []
        held = found["held"] or 0.0
        limit = (
            request.price if request.type in (OrderType.LIMIT, OrderType.STOP_LIMIT) else None
        )
        refusal = risk_refusal(account, request, limit or reference, held)
        status = (
            OrderStatus.REJECTED
            if refusal
            else (
                OrderStatus.PENDING
                if request.type in (OrderType.STOP, OrderType.STOP_LIMIT)
                else OrderStatus.WORKING
            )
        )
        marketable = (
            request.type is OrderType.LIMIT
            and limit is not None
            and (limit >= reference if request.side is Side.BUY else limit <= reference)
        )
        expires = (
            end_of_utc_day(datetime.now(UTC))
            if request.time_in_force is TimeInForce.DAY
            else None
        )
        row = await repo.insert_order(
            conn,
            {
                "account_id": request.account_id,
                "client_order_id": client_order_id,
                "symbol": request.symbol,
                "side": request.side.value,
                "type": request.type.value,
                "quantity": request.quantity,
                "price": request.price,
                "stop_price": request.stop_price,
                "time_in_force": request.time_in_force.value,
                "status": status.value,
                "reject_reason": refusal,
                "marketable": marketable,
                "accepted_ns": time.time_ns(),
                "expires_at": expires,
            },
        )
        event = "rejected" if refusal else "created"
        stored = await EventLog.append(
            conn, orders_topic(request.account_id), [order_event(event, row)]
        )
        return row, True, stored

    async def cancel(self, order_id: int, reason: str = "cancelled") -> asyncpg.Record:
        async with self.pool.acquire() as conn, conn.transaction():
            row = await repo.order(conn, order_id, lock=True)
            if row is None:
                raise NotFound(f"no order {order_id}", field="order_id")
            if row["status"] not in {
                s.value
                for s in (OrderStatus.PENDING, OrderStatus.WORKING, OrderStatus.PARTIALLY_FILLED)
            }:
                raise Conflict(
                    f"order {order_id} is {row['status']}; only open orders can be cancelled",
                    field="order_id",
                )
            row = await repo.update_order(
                conn,
                order_id,
                row["version"],
                {"status": "cancelled", "reject_reason": None if reason == "cancelled" else reason},
            )
            assert row is not None  # the row is locked
            stored = await EventLog.append(
                conn, orders_topic(row["account_id"]), [order_event("cancelled", row)]
            )
        await self.on_change(row, stored, False)
        return row

    async def close(
        self, order: BookOrder, status: OrderStatus, reason: str | None
    ) -> asyncpg.Record | None:
        """Cancel (IOC, FOK) or expire (DAY) a working order from the matcher; None: it changed."""
        async with self.pool.acquire() as conn, conn.transaction():
            row = await repo.update_order(
                conn,
                order.order_id,
                order.version,
                {"status": status.value, "reject_reason": reason},
            )
            if row is None:
                return None
            stored = await EventLog.append(
                conn, orders_topic(row["account_id"]), [order_event(status.value, row)]
            )
        await self.on_change(row, stored, True)
        return row

    async def trigger(self, order: BookOrder) -> asyncpg.Record | None:
        """A stop-limit whose stop was reached but which did not fill: now a working limit."""
        async with self.pool.acquire() as conn, conn.transaction():
            row = await repo.update_order(
                conn, order.order_id, order.version, {"triggered": True, "status": "working"}
            )
            if row is None:
                return None
            stored = await EventLog.append(
                conn, orders_topic(row["account_id"]), [order_event("triggered", row)]
            )
        await self.on_change(row, stored, True)
        return row

    async def fill(self, order: BookOrder, decision: Decision, tick: Tick) -> asyncpg.Record | None:
        """Apply one fill (and the IOC remainder's cancel) in one transaction: the order, the
        fill row, cash, fees, the position, and the matcher's cursor. None: the order changed
        under us (cancelled, or filled by another matcher) and nothing was written."""
        try:
            return await self._fill(order, decision, tick)
        except _AlreadyFilled:
            return None

    async def _fill(
        self, order: BookOrder, decision: Decision, tick: Tick
    ) -> asyncpg.Record | None:
        async with self.pool.acquire() as conn, conn.transaction():
            done = await self._fill_in(conn, order, decision, tick)
            if done is None:
                return None
            row, stored = done
        await self.on_change(row, stored, True)
        return row

    async def _fill_in(
        self, conn: asyncpg.Connection, order: BookOrder, decision: Decision, tick: Tick
    ) -> tuple[asyncpg.Record, list[tuple[int, bytes]]] | None:
        """One fill written on ``conn`` (in the caller's transaction): the order, the fill row,
        cash, fees, the position and the events; None when the order changed under us."""
        signed = decision.quantity if order.side is Side.BUY else -decision.quantity
        filled = order.filled_quantity + decision.quantity
        average = (
            order.filled_quantity * (order.average_price or 0.0)
            + decision.quantity * decision.price
        ) / filled
        done = order.quantity - filled <= EPSILON
        status = (
            OrderStatus.FILLED
            if done
            else (OrderStatus.CANCELLED if decision.cancel else OrderStatus.PARTIALLY_FILLED)
        )
        fee = abs(decision.quantity * decision.price) * order.fee_rate
        row = await repo.fill_order(
            conn,
            order.order_id,
            order.version,
            {
                "filled_quantity": order.quantity if done else filled,
                "average_price": average,
                "status": status.value,
                "triggered": order.triggered or decision.triggered,
            },
            (decision.quantity, decision.price, fee, tick.epoch, tick.seq, tick.ts),
        )
        if row is None:
            return None  # the order changed under us: nothing written
        fill_id = row["fill_id"]
        if fill_id is None:
            raise _AlreadyFilled  # this tick filled it before: roll the update back
        before = (
            Position()
            if row["held_quantity"] is None
            else Position(row["held_quantity"], row["held_average"], row["held_realized"])
        )
        after, realized = apply_fill(before, signed, decision.price)
        fill = {
            "fill_id": str(fill_id),
            "quantity": decision.quantity,
            "price": decision.price,
            "fee": fee,
            "realized_pnl": realized,
            "tick_seq": tick.seq,
            "ts": tick.ts,
        }
        event = status.value if status is not OrderStatus.CANCELLED else "partially_filled"
        items = [order_event(event, row, fill)]
        if status is OrderStatus.CANCELLED:
            items.append(order_event("cancelled", row))
        encoded = [orjson.dumps(item) for item in items]
        sequences = await repo.settle_fill(
            conn,
            order.account_id,
            order.symbol,
            after,
            cash=-signed * decision.price - fee,
            realized=realized,
            fee=fee,
            topic=orders_topic(order.account_id),
            events=encoded,
        )
        stored = list(zip(sequences, encoded, strict=True))
        return row, stored


class _AlreadyFilled(Exception):
    pass
