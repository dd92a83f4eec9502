"""The broker domain's words: sides, order types, times in force, statuses, and an order request.

Validation here is about the request's shape (a limit order needs a price, a quantity is
positive). Whether the account may place it (risk limits, cash) is the broker's decision, and a
refusal there is a *rejected order*, stored and streamed like any other.
"""

from __future__ import annotations

import enum
import math
import re
from dataclasses import dataclass
from typing import Any

from hub.errors import BadRequest
from hub.topics import SYMBOL

_SYMBOL = re.compile(SYMBOL)
_CLIENT_ORDER_ID = re.compile(r"[\x21-\x7e]{1,64}")
MAX_QUANTITY = 1e12
MAX_PRICE = 1e12


class Side(enum.StrEnum):
    BUY = "buy"
    SELL = "sell"


class OrderType(enum.StrEnum):
    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"
    STOP_LIMIT = "stop_limit"


class TimeInForce(enum.StrEnum):
    GTC = "gtc"  # good till cancelled
    IOC = "ioc"  # immediate or cancel: what the next tick cannot fill is cancelled
    FOK = "fok"  # fill or kill: the next tick fills all of it, or it is cancelled
    DAY = "day"  # expires at the end of the UTC day it was placed


class OrderStatus(enum.StrEnum):
    PENDING = "pending"  # a stop order waiting for its trigger
    WORKING = "working"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    EXPIRED = "expired"


OPEN_STATUSES = frozenset({OrderStatus.PENDING, OrderStatus.WORKING, OrderStatus.PARTIALLY_FILLED})


def _enum(kind: type[enum.StrEnum], value: Any, field: str) -> Any:
    if isinstance(value, kind):
        return value
    try:
        return kind(str(value).lower())
    except ValueError:
        allowed = ", ".join(member.value for member in kind)
        raise BadRequest(
            f"{field} must be one of {allowed}; got {str(value)[:40]!r}", field=field
        ) from None


def _number(value: Any, field: str, *, upper: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRequest(f"{field} must be a number", field=field)
    number = float(value)
    if not math.isfinite(number) or number <= 0 or number > upper:
        raise BadRequest(
            f"{field} must be above 0 and at most {upper:g}; got {value!r}", field=field
        )
    return number


def checked_symbol(symbol: Any) -> str:
    if not isinstance(symbol, str) or _SYMBOL.fullmatch(symbol) is None:
        raise BadRequest(
            f"invalid symbol {str(symbol)[:40]!r}: 1-32 letters, digits and / _ . : -",
            field="symbol",
        )
    return symbol


@dataclass(frozen=True)
class OrderRequest:
    """A new order as every interface hands it to the broker service (already in domain words)."""

    account_id: str
    symbol: str
    side: Side
    type: OrderType
    quantity: float
    price: float | None = None
    stop_price: float | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    client_order_id: str | None = None

    @classmethod
    def parse(
        cls,
        *,
        account_id: Any,
        symbol: Any,
        side: Any,
        type: Any,
        quantity: Any,
        price: Any = None,
        stop_price: Any = None,
        time_in_force: Any = None,
        client_order_id: Any = None,
    ) -> OrderRequest:
        """Check the request's shape; a :class:`BadRequest` names the first wrong field."""
        if not isinstance(account_id, str) or not account_id:
            raise BadRequest("account_id is required", field="account_id")
        order_type = _enum(OrderType, type, "type")
        request = cls(
            account_id=account_id,
            symbol=checked_symbol(symbol),
            side=_enum(Side, side, "side"),
            type=order_type,
            quantity=_number(quantity, "quantity", upper=MAX_QUANTITY),
            price=None if price is None else _number(price, "price", upper=MAX_PRICE),
            stop_price=(
                None if stop_price is None else _number(stop_price, "stop_price", upper=MAX_PRICE)
            ),
            time_in_force=(
                TimeInForce.GTC
                if time_in_force is None
                else _enum(TimeInForce, time_in_force, "time_in_force")
            ),
            client_order_id=client_order_id,
        )
        if client_order_id is not None and (
            not isinstance(client_order_id, str)
            or _CLIENT_ORDER_ID.fullmatch(client_order_id) is None
        ):
            raise BadRequest(
                "client_order_id must be 1-64 printable ASCII characters without spaces",
                field="client_order_id",
            )
        needs_price = order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT)
        if needs_price and request.price is None:
            raise BadRequest(f"a {order_type.value} order needs a price", field="price")
        if not needs_price and request.price is not None:
            raise BadRequest(f"a {order_type.value} order takes no price", field="price")
        needs_stop = order_type in (OrderType.STOP, OrderType.STOP_LIMIT)
        if needs_stop and request.stop_price is None:
            raise BadRequest(f"a {order_type.value} order needs a stop_price", field="stop_price")
        if not needs_stop and request.stop_price is not None:
            raise BadRequest(f"a {order_type.value} order takes no stop_price", field="stop_price")
        return request


@dataclass(frozen=True)
class AccountRequest:
    """A new paper account."""

    name: str
    currency: str = "USD"
    initial_balance: float = 100_000.0
    fee_rate: float = 0.0
    slippage_bps: float = 0.0
    max_order_quantity: float | None = None
    max_position: float | None = None
    max_order_notional: float | None = None
    max_orders_per_second: int = 10

    def __post_init__(self) -> None:
        if (
            not isinstance(self.name, str)
            or not 1 <= len(self.name) <= 64
            or not self.name.isprintable()
        ):
            raise BadRequest("name must be 1-64 printable characters", field="name")
        if not isinstance(self.currency, str) or re.fullmatch(r"[A-Z]{3}", self.currency) is None:
            raise BadRequest("currency must be three capital letters (USD)", field="currency")
        for field, upper in (
            ("initial_balance", 1e15),
            ("fee_rate", 0.5),
            ("slippage_bps", 1000.0),
        ):
            value = getattr(self, field)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or not 0 <= value <= upper
            ):
                raise BadRequest(f"{field} must be between 0 and {upper:g}", field=field)
        for field in ("max_order_quantity", "max_position", "max_order_notional"):
            value = getattr(self, field)
            if value is not None:
                _number(value, field, upper=1e15)
        per_second = self.max_orders_per_second
        if (
            isinstance(per_second, bool)
            or not isinstance(per_second, int)
            or not 1 <= per_second <= 10_000
        ):
            raise BadRequest(
                "max_orders_per_second must be an integer from 1 to 10000",
                field="max_orders_per_second",
            )
