"""GraphQL for the broker: accounts, orders, positions and balances; placing and cancelling;
and the ``orders``, ``positions`` and ``balances`` subscriptions (every item with its sequence)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncGenerator
from datetime import datetime
from functools import partial
from typing import Any

import orjson
import strawberry
from strawberry.types import Info

from hub.broker.model import AccountRequest, OrderRequest, OrderStatus, OrderType, Side, TimeInForce
from hub.broker.topics import balances_topic, orders_topic, positions_topic
from hub.errors import fields_named
from hub.gql.context import Context
from hub.gql.streams import stream_topic
from hub.subscription import Event
from hub.times import datetime_of_ns

strawberry.enum(Side)
strawberry.enum(OrderType)
strawberry.enum(TimeInForce)
strawberry.enum(OrderStatus)

INPUT_FIELDS = {
    "account_id": "accountId",
    "stop_price": "stopPrice",
    "time_in_force": "timeInForce",
    "client_order_id": "clientOrderId",
    "initial_balance": "initialBalance",
    "fee_rate": "feeRate",
    "slippage_bps": "slippageBps",
    "max_order_quantity": "maxOrderQuantity",
    "max_position": "maxPosition",
    "max_order_notional": "maxOrderNotional",
    "max_orders_per_second": "maxOrdersPerSecond",
    "order_id": "id",
}


@strawberry.type(description="A broker account (paper: filled against the hub's market data).")
class Account:
    id: strawberry.ID
    name: str
    broker: str
    currency: str
    active: bool
    initial_balance: float
    fee_rate: float
    slippage_bps: float
    max_order_quantity: float | None
    max_position: float | None
    max_order_notional: float | None
    max_orders_per_second: int
    created_at: datetime

    @classmethod
    def from_row(cls, row: Any) -> Account:
        return cls(
            id=strawberry.ID(row["account_id"]),
            name=row["name"],
            broker=row["broker"],
            currency=row["currency"],
            active=row["active"],
            initial_balance=row["initial_balance"],
            fee_rate=row["fee_rate"],
            slippage_bps=row["slippage_bps"],
            max_order_quantity=row["max_order_quantity"],
            max_position=row["max_position"],
            max_order_notional=row["max_order_notional"],
            max_orders_per_second=row["max_orders_per_second"],
            created_at=row["created_at"],
        )


@strawberry.type
class Order:
    id: strawberry.ID
    account_id: strawberry.ID
    client_order_id: str
    symbol: str
    side: Side
    type: OrderType
    quantity: float
    price: float | None
    stop_price: float | None
    time_in_force: TimeInForce
    status: OrderStatus
    reject_reason: str | None
    filled_quantity: float
    average_price: float | None
    created_at: datetime | None
    updated_at: datetime | None
    expires_at: datetime | None

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Order:
        def when(value: str | None) -> datetime | None:
            return None if value is None else datetime.fromisoformat(value)

        return cls(
            id=strawberry.ID(doc["order_id"]),
            account_id=strawberry.ID(doc["account_id"]),
            client_order_id=doc["client_order_id"],
            symbol=doc["symbol"],
            side=Side(doc["side"]),
            type=OrderType(doc["type"]),
            quantity=doc["quantity"],
            price=doc["price"],
            stop_price=doc["stop_price"],
            time_in_force=TimeInForce(doc["time_in_force"]),
            status=OrderStatus(doc["status"]),
            reject_reason=doc["reject_reason"],
            filled_quantity=doc["filled_quantity"],
            average_price=doc["average_price"],
            created_at=when(doc["created_at"]),
            updated_at=when(doc["updated_at"]),
            expires_at=when(doc["expires_at"]),
        )

    @classmethod
    def from_row(cls, row: Any) -> Order:
        from hub.broker.documents import order_document

        return cls.from_doc(order_document(row))


@strawberry.type
class Fill:
    id: strawberry.ID
    quantity: float
    price: float
    fee: float
    realized_pnl: float
    ts: datetime = strawberry.field(description="the filling tick's time")


@strawberry.type(
    description="One entry of an account's order log: what happened, and the order after it."
)
class OrderUpdate:
    sequence: int
    event: str
    order: Order
    fill: Fill | None


@strawberry.type
class Position:
    id: strawberry.ID
    symbol: str
    quantity: float
    average_price: float
    realized_pnl: float
    last_price: float | None
    unrealized_pnl: float
    market_value: float | None


@strawberry.type(description="An account's positions; `sequence` is the state's version.")
class Positions:
    sequence: int
    account_id: strawberry.ID
    positions: list[Position]


@strawberry.type(
    description="Balance = initial + realized - fees; net liquidating value adds open P&L."
)
class Balances:
    sequence: int
    account_id: strawberry.ID
    currency: str
    initial_balance: float
    cash: float
    balance: float
    net_liquidating_value: float
    open_pnl: float
    realized_pnl: float
    fees_paid: float


def _positions(sequence: int, doc: dict[str, Any]) -> Positions:
    return Positions(
        sequence=sequence,
        account_id=strawberry.ID(doc["account_id"]),
        positions=[
            Position(
                id=strawberry.ID(p["position_id"]),
                symbol=p["symbol"],
                quantity=p["quantity"],
                average_price=p["average_price"],
                realized_pnl=p["realized_pnl"],
                last_price=p["last_price"],
                unrealized_pnl=p["unrealized_pnl"],
                market_value=p["market_value"],
            )
            for p in doc["positions"]
        ],
    )


def _balances(sequence: int, doc: dict[str, Any]) -> Balances:
    return Balances(
        sequence=sequence,
        account_id=strawberry.ID(doc["account_id"]),
        currency=doc["currency"],
        initial_balance=doc["initial_balance"],
        cash=doc["cash"],
        balance=doc["balance"],
        net_liquidating_value=doc["net_liquidating_value"],
        open_pnl=doc["open_pnl"],
        realized_pnl=doc["realized_pnl"],
        fees_paid=doc["fees_paid"],
    )


def _order_update(event: Event) -> OrderUpdate:
    doc = event.data()
    fill = doc["fill"]
    return OrderUpdate(
        sequence=event.seq,
        event=doc["event"],
        order=Order.from_doc(doc["order"]),
        fill=None
        if fill is None
        else Fill(
            id=strawberry.ID(fill["fill_id"]),
            quantity=fill["quantity"],
            price=fill["price"],
            fee=fill["fee"],
            realized_pnl=fill["realized_pnl"],
            ts=datetime_of_ns(fill["ts"]),
        ),
    )


# -- queries ----------------------------------------------------------------------------


async def resolve_accounts(info: Info[Context, None]) -> list[Account]:
    ctx = info.context
    return [
        Account.from_row(row) for row in await ctx.state.broker.accounts(ctx.require_identity())
    ]


async def resolve_account(info: Info[Context, None], id: strawberry.ID) -> Account:
    ctx = info.context
    with fields_named({"account_id": "id"}):
        return Account.from_row(await ctx.state.broker.account(ctx.require_identity(), str(id)))


async def resolve_orders(
    info: Info[Context, None],
    account_id: strawberry.ID,
    status: list[OrderStatus] | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[Order]:
    ctx = info.context
    with fields_named(INPUT_FIELDS):
        rows = await ctx.state.broker.orders(
            ctx.require_identity(), [str(account_id)], status or None, limit, offset
        )
    return [Order.from_row(row) for row in rows]


async def _state(info: Info[Context, None], account_id: strawberry.ID) -> tuple[int, bytes, bytes]:
    """The account's state version with its positions and balances documents (owner only)."""
    ctx = info.context
    with fields_named(INPUT_FIELDS):
        account = await ctx.state.broker.account(ctx.require_identity(), str(account_id))
    found = await ctx.state.broker.state_documents(account["account_id"])
    assert found is not None  # the account exists: it was just read
    return found  # type: ignore[no-any-return]


async def resolve_positions(info: Info[Context, None], account_id: strawberry.ID) -> Positions:
    version, positions, _ = await _state(info, account_id)
    return _positions(version, orjson.loads(positions))


async def resolve_balances(info: Info[Context, None], account_id: strawberry.ID) -> Balances:
    version, _, balances = await _state(info, account_id)
    return _balances(version, orjson.loads(balances))


@strawberry.type
class Query:
    accounts: list[Account] = strawberry.field(resolver=resolve_accounts)
    account: Account = strawberry.field(resolver=resolve_account)
    orders: list[Order] = strawberry.field(resolver=resolve_orders)
    positions: Positions = strawberry.field(resolver=resolve_positions)
    balances: Balances = strawberry.field(resolver=resolve_balances)


# -- mutations --------------------------------------------------------------------------


@strawberry.input
class CreatePaperAccountInput:
    name: str
    currency: str = "USD"
    initial_balance: float = 100_000.0
    fee_rate: float = 0.0
    slippage_bps: float = 0.0
    max_order_quantity: float | None = None
    max_position: float | None = None
    max_order_notional: float | None = None
    max_orders_per_second: int = 10


@strawberry.input
class PlaceOrderInput:
    account_id: strawberry.ID
    symbol: str
    side: Side
    type: OrderType
    quantity: float
    price: float | None = None
    stop_price: float | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    client_order_id: str | None = None


async def create_paper_account(
    info: Info[Context, None], input: CreatePaperAccountInput
) -> Account:
    ctx = info.context
    identity = ctx.require_identity()
    with fields_named(INPUT_FIELDS):
        request = AccountRequest(**dataclasses.asdict(input))
        return Account.from_row(await ctx.state.broker.create_account(identity, request))


async def place_order(info: Info[Context, None], input: PlaceOrderInput) -> Order:
    """Place an order. A resent `clientOrderId` returns the first order; a risk or cash refusal
    returns the order with status REJECTED and its `rejectReason`."""
    ctx = info.context
    identity = ctx.require_identity()
    with fields_named(INPUT_FIELDS):
        request = OrderRequest.parse(
            account_id=str(input.account_id),
            symbol=input.symbol,
            side=input.side,
            type=input.type,
            quantity=input.quantity,
            price=input.price,
            stop_price=input.stop_price,
            time_in_force=input.time_in_force,
            client_order_id=input.client_order_id,
        )
        row, _ = await ctx.state.broker.place(identity, request)
    return Order.from_row(row)


async def cancel_order(info: Info[Context, None], id: strawberry.ID) -> Order:
    ctx = info.context
    with fields_named(INPUT_FIELDS):
        return Order.from_row(await ctx.state.broker.cancel(ctx.require_identity(), str(id)))


async def cancel_all_orders(info: Info[Context, None], account_id: strawberry.ID) -> list[Order]:
    ctx = info.context
    with fields_named(INPUT_FIELDS):
        rows = await ctx.state.broker.cancel_all(ctx.require_identity(), str(account_id))
    return [Order.from_row(row) for row in rows]


@strawberry.type
class Mutation:
    create_paper_account: Account = strawberry.mutation(resolver=create_paper_account)
    place_order: Order = strawberry.mutation(resolver=place_order)
    cancel_order: Order = strawberry.mutation(resolver=cancel_order)
    cancel_all_orders: list[Order] = strawberry.mutation(resolver=cancel_all_orders)


# -- subscriptions ----------------------------------------------------------------------


async def orders(
    info: Info[Context, None], account_id: strawberry.ID, since_sequence: int | None = None
) -> AsyncGenerator[OrderUpdate, None]:
    """Every change of the account's orders, in order, from `sinceSequence` (exclusive)."""
    async for event in stream_topic(info, orders_topic(str(account_id)), since_sequence):
        yield event.keyed(event.memo("orders", partial(_order_update, event)))


async def positions(
    info: Info[Context, None], account_id: strawberry.ID
) -> AsyncGenerator[Positions, None]:
    """The account's positions now, then each change (marks at most 10 a second)."""
    async for event in stream_topic(info, positions_topic(str(account_id)), None):
        yield event.keyed(event.memo("positions", partial(_positions, event.seq, event.data())))


async def balances(
    info: Info[Context, None], account_id: strawberry.ID
) -> AsyncGenerator[Balances, None]:
    async for event in stream_topic(info, balances_topic(str(account_id)), None):
        yield event.keyed(event.memo("balances", partial(_balances, event.seq, event.data())))


@strawberry.type
class Subscription:
    orders: OrderUpdate = strawberry.subscription(resolver=orders)  # type: ignore[assignment]
    positions: Positions = strawberry.subscription(resolver=positions)  # type: ignore[assignment]
    balances: Balances = strawberry.subscription(resolver=balances)  # type: ignore[assignment]
