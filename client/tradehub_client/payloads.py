"""Typed ``data`` of the ``/ws`` channels a bot follows most: ``FeedEvent.parse(Tick)``. The
fields are the hub's documents as the bus carries them (times of ticks and fills in epoch
nanoseconds, the broker's times ISO 8601); unknown fields are kept."""

from __future__ import annotations

from datetime import datetime

from tradehub_client.models import Model


class Tick(Model):
    """``ticks:{symbol}``."""

    symbol: str
    ts: int  # epoch ns, market time
    price: float
    size: float | None = None
    bid: float | None = None
    ask: float | None = None


class Bar(Model):
    """``bars:{symbol}:{timeframe}``: the forming bar, then the same bar ``closed``."""

    symbol: str
    timeframe: str
    ts: int  # epoch ns, the bar's open time
    open: float
    high: float
    low: float
    close: float
    volume: float | None = None
    ticks: int = 0
    closed: bool = False


class BrokerOrder(Model):
    order_id: str
    account_id: str
    client_order_id: str
    symbol: str
    side: str  # buy, sell
    type: str  # market, limit, stop, stop_limit
    quantity: float
    price: float | None = None
    stop_price: float | None = None
    time_in_force: str
    status: str
    reject_reason: str | None = None
    filled_quantity: float = 0
    average_price: float | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    expires_at: datetime | None = None


class Fill(Model):
    fill_id: str
    quantity: float
    price: float
    fee: float
    realized_pnl: float
    ts: int  # epoch ns of the filling tick


class OrderEvent(Model):
    """``account:{id}:orders``: what happened (``created``, ``filled``, ``partially_filled``,
    ``cancelled``, ``rejected``, ``expired``), the order after it, and the fill if any."""

    event: str
    order: BrokerOrder
    fill: Fill | None = None


class BrokerPosition(Model):
    position_id: str
    account_id: str
    symbol: str
    quantity: float  # signed: below zero is short
    average_price: float
    realized_pnl: float
    last_price: float | None = None
    unrealized_pnl: float
    market_value: float | None = None


class PositionsState(Model):
    """``account:{id}:positions``: every open position, after each change."""

    account_id: str
    positions: list[BrokerPosition]


class BalancesState(Model):
    """``account:{id}:balances``."""

    account_id: str
    currency: str
    initial_balance: float
    cash: float
    balance: float
    net_liquidating_value: float
    open_pnl: float
    realized_pnl: float
    fees_paid: float
