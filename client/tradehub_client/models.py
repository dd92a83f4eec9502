"""Typed answers of the REST families the client speaks (seed 003's executions, seed 002's
ORCA trading, the token route) and of the ``/ws`` feed. Unknown fields are kept, not refused:
a newer hub may add some."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field


class Model(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


M = TypeVar("M", bound=BaseModel)


class AccessToken(Model):
    access_token: str
    token_type: str
    expires_in: int


# -- executions (seed 003, /api/trading/executions/{id}/...) ---------------------------------


class Checkpoint(Model):
    id: int
    processed: int
    total_return: Decimal | None = None
    total_pnl: Decimal | None = None
    realized_pnl: Decimal | None = None
    unrealized_pnl: Decimal | None = None
    total_trades: int = 0
    winning_trades: int = 0
    losing_trades: int = 0
    win_rate: Decimal | None = None
    max_drawdown: Decimal | None = None
    sharpe_ratio: Decimal | None = None
    profit_factor: Decimal | None = None
    average_win: Decimal | None = None
    average_loss: Decimal | None = None
    created_at: datetime | None = None


class ExecutionHeader(Model):
    execution_id: int
    task_type: str
    task_id: int


class ExecutionState(ExecutionHeader):
    execution_number: int
    status: str
    progress: float
    started_at: datetime | None = None
    completed_at: datetime | None = None
    error_message: str | None = None
    has_checkpoint: bool
    checkpoint: Checkpoint | None = None


class LatestMetrics(ExecutionHeader):
    has_checkpoint: bool
    checkpoint: Checkpoint | None = None


class Page(Model):
    count: int
    next: str | None = None
    previous: str | None = None


class ExecutionEvent(Model):
    sequence: int
    event_type: str
    strategy_type: str
    timestamp: datetime
    event: dict[str, Any]
    created_at: datetime


class ExecutionEvents(ExecutionHeader, Page):
    events: list[ExecutionEvent]


class Trade(Model):
    instrument: str
    direction: str
    entry_time: datetime
    entry_price: Decimal | None = None
    units: float
    exit_time: datetime | None = None
    exit_price: Decimal | None = None
    pnl: Decimal | None = None
    pips: Decimal | None = None
    details: dict[str, Any] = Field(default_factory=dict)


class SequencedTrade(Model):
    sequence: int
    trade: Trade
    created_at: datetime


class ExecutionTrades(ExecutionHeader, Page):
    trades: list[SequencedTrade]


class EquityPoint(Model):
    sequence: int
    timestamp: datetime
    balance: float


class ExecutionEquity(ExecutionHeader, Page):
    equity_curve: list[EquityPoint]
    granularity_seconds: float | None = None


# -- ORCA trading (seed 002, /api/v1/trading/...) ---------------------------------------------


class TradingAnswer(Model):
    count: int
    cached: bool
    timestamp: float


class TradingAccount(Model):
    name: str
    id: str
    active: bool


class TradingAccounts(TradingAnswer):
    accounts: list[TradingAccount]


class TradingPosition(Model):
    id: str
    account_id: str
    instrument: str
    quantity: float
    side: str  # long, short
    avg_price: float
    unrealized_pnl: float


class TradingPositions(TradingAnswer):
    positions: list[TradingPosition]


class TradingPositionIds(TradingAnswer):
    position_ids: list[str]


class TradingOrder(Model):
    order_id: str
    account_id: str
    instrument: str
    side: str  # Buy, Sell
    quantity: float
    price: float | None = None
    status: str  # Working, Pending, PartiallyFilled
    order_type: str  # Market, Limit, Stop, StopLimit


class TradingOrders(TradingAnswer):
    orders: list[TradingOrder]


class TradingOrderIds(TradingAnswer):
    order_ids: list[str]


class TradingBalance(Model):
    account_id: str
    account_name: str
    balance: float
    net_liquidating_value: float
    cash_balance: float
    open_pl: float
    realized_pl: float


class TradingBalances(TradingAnswer):
    balances: list[TradingBalance]
    total_balance: float


class SnapshotMetadata(Model):
    response_time_ms: float
    timestamp: float
    datetime_: str = Field(alias="datetime")


class TradingSnapshot(Model):
    accounts: TradingAccounts | None = None
    positions: TradingPositions | None = None
    orders: TradingOrders | None = None
    balances: TradingBalances | None = None
    metadata: SnapshotMetadata


class TradingHealth(Model):
    status: str
    timestamp: float
    datetime_: str = Field(alias="datetime")
    checks: dict[str, str]
    response_time_ms: float


# -- the /ws feed ---------------------------------------------------------------------------


class FeedEvent(Model):
    """One event of a channel: ``seq`` is its sequence in the topic, ``epoch`` the history it
    belongs to (recent topics only)."""

    channel: str
    seq: int
    epoch: str | None = None
    data: Any = None

    def parse(self, model: type[M]) -> M:
        """``data`` as one of ``tradehub_client.payloads`` (``Tick``, ``OrderEvent``...)."""
        return model.model_validate(self.data)


class OrderAck(Model):
    """``order_accepted`` or ``order_cancelled``: the hub's order id and its status."""

    op: str
    order_id: str
    status: str
    id: str | None = None  # the client order id (place) or the op's id (cancel)
