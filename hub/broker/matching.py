"""The paper broker's matching rules, as pure functions of one working order and one tick.

The rules (the README repeats them):

- A market order fills at the next tick of its symbol: at the ask for a buy and the bid for a
  sell when the tick carries them, else at the tick's price, moved against the trader by the
  account's slippage (``price * (1 ± bps / 10_000)``).
- A resting limit order fills at its limit price when a tick trades at or through it (a buy when
  the price is at or below the limit, a sell at or above).
- A limit order that was marketable when it arrived (a buy limit at or above the last price, a
  sell limit at or below) fills at the next tick's price (ask or bid when carried), provided that
  price is still within the limit; otherwise it rests as an ordinary limit order.
- A stop triggers when a tick trades at or through its stop price (a buy stop at or above, a sell
  stop at or below); a stop then fills on that same tick as a market order, and a stop-limit
  becomes a limit order that fills on that tick at the tick's price when it is within the limit,
  and otherwise rests.
- A tick with a ``size`` fills at most that quantity; without one it fills the whole remainder.
- IOC: the first tick that reaches the order fills what it can and the rest is cancelled. FOK:
  that tick fills all of it, or the order is cancelled with nothing filled.
- A tick ingested before the order was accepted never fills it.
"""

from __future__ import annotations

from dataclasses import dataclass

from hub.broker.model import OrderType, Side, TimeInForce


@dataclass(slots=True)
class Tick:
    seq: int
    epoch: str
    ts: int
    price: float
    size: float | None = None
    bid: float | None = None
    ask: float | None = None
    recv_ns: int = 0


@dataclass(slots=True)
class BookOrder:
    """A working order as the matcher holds it (the columns matching needs)."""

    order_id: int
    account_id: str
    symbol: str
    side: Side
    type: OrderType
    quantity: float
    filled_quantity: float
    price: float | None
    stop_price: float | None
    time_in_force: TimeInForce
    triggered: bool
    marketable: bool
    accepted_ns: int
    version: int
    expires_ns: int | None
    slippage_bps: float
    average_price: float | None = None
    fee_rate: float = 0.0

    @property
    def remaining(self) -> float:
        return self.quantity - self.filled_quantity


@dataclass(frozen=True, slots=True)
class Decision:
    """What one tick does to one order. ``quantity`` 0 with ``cancel``: cancelled unfilled."""

    quantity: float = 0.0
    price: float = 0.0
    triggered: bool = False  # the stop triggered on this tick
    cancel: bool = False  # what is left after this tick is cancelled (IOC, FOK)
    rest: bool = False  # a marketable limit that missed: it rests from now on

    @property
    def fills(self) -> bool:
        return self.quantity > 0


NOTHING = Decision()


def touches(side: Side, price: float, level: float) -> bool:
    """A tick trades at or through ``level`` for an order on ``side`` (a limit's fill rule)."""
    return price <= level if side is Side.BUY else price >= level


def stop_reached(side: Side, price: float, stop: float) -> bool:
    return price >= stop if side is Side.BUY else price <= stop


def quote(side: Side, tick: Tick) -> float:
    """The price a marketable order meets: the ask for a buy, the bid for a sell, else the trade."""
    if side is Side.BUY:
        return tick.ask if tick.ask is not None else tick.price
    return tick.bid if tick.bid is not None else tick.price


def slipped(side: Side, price: float, bps: float) -> float:
    return price * (1 + bps / 10_000) if side is Side.BUY else price * (1 - bps / 10_000)


def decide(order: BookOrder, tick: Tick) -> Decision:
    if tick.recv_ns < order.accepted_ns:
        return NOTHING
    triggered = False
    if order.type in (OrderType.STOP, OrderType.STOP_LIMIT) and not order.triggered:
        assert order.stop_price is not None
        if not stop_reached(order.side, tick.price, order.stop_price):
            return NOTHING
        triggered = True

    price: float | None
    rest = False
    if order.type in (OrderType.MARKET, OrderType.STOP):
        price = slipped(order.side, quote(order.side, tick), order.slippage_bps)
    else:
        limit = order.price
        assert limit is not None
        if order.marketable or triggered:
            at = quote(order.side, tick)
            price = at if touches(order.side, at, limit) else None
            rest = price is None and order.marketable
        else:
            price = limit if touches(order.side, tick.price, limit) else None

    immediate = order.time_in_force in (TimeInForce.IOC, TimeInForce.FOK)
    if price is None:
        return Decision(triggered=triggered, cancel=immediate, rest=rest)
    remaining = order.remaining
    quantity = remaining if tick.size is None else min(remaining, tick.size)
    if quantity <= 0:
        return Decision(triggered=triggered, cancel=immediate)
    if order.time_in_force is TimeInForce.FOK and quantity < remaining:
        return Decision(triggered=triggered, cancel=True)
    return Decision(
        quantity=quantity,
        price=price,
        triggered=triggered,
        cancel=immediate and quantity < remaining,
    )
