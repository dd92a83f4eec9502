"""Typed results of the documents in ``graphql/operations/``: Python names in snake_case, the
hub's camelCase on the wire. Each model holds the fields its documents select."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class GqlModel(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True, alias_generator=to_camel)


class Me(GqlModel):
    user_id: str
    username: str
    role: str


class Health(GqlModel):
    status: str
    postgres: bool
    redis: bool
    uptime_seconds: int


class Account(GqlModel):
    id: str
    name: str
    broker: str
    currency: str
    active: bool
    initial_balance: float
    fee_rate: float
    slippage_bps: float
    max_order_quantity: float | None = None
    max_position: float | None = None
    max_order_notional: float | None = None
    max_orders_per_second: int
    created_at: datetime


class Order(GqlModel):
    id: str
    account_id: str
    client_order_id: str
    symbol: str
    side: str
    type: str
    quantity: float
    price: float | None = None
    stop_price: float | None = None
    time_in_force: str
    status: str
    reject_reason: str | None = None
    filled_quantity: float
    average_price: float | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    expires_at: datetime | None = None


class Position(GqlModel):
    id: str
    symbol: str
    quantity: float
    average_price: float
    realized_pnl: float
    last_price: float | None = None
    unrealized_pnl: float
    market_value: float | None = None


class Positions(GqlModel):
    sequence: int
    account_id: str
    positions: list[Position]


class Balances(GqlModel):
    sequence: int
    account_id: str
    currency: str
    initial_balance: float
    cash: float
    balance: float
    net_liquidating_value: float
    open_pnl: float
    realized_pnl: float
    fees_paid: float


class Job(GqlModel):
    job_id: str
    job_type: str
    status: str
    payload: Any = None
    progress: float = 0
    total: float = 0
    result: Any = None
    error: str | None = None
    attempts: int = 0
    created_at: datetime | None = None
    updated_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None


class JobSummary(GqlModel):
    job_id: str
    job_type: str
    status: str


class JobPage(GqlModel):
    count: int
    items: list[JobSummary]


class JobCancel(GqlModel):
    job_id: str
    status: str
    cancel_requested: bool


class CheckpointSummary(GqlModel):
    processed: float
    metrics: dict[str, Any]


class EventSummary(GqlModel):
    sequence: int
    event_type: str
    event: Any


class TradeSummary(GqlModel):
    sequence: int
    direction: str
    pnl: float | None = None
    fees: float | None = None


class EquityPoint(GqlModel):
    sequence: int
    timestamp: datetime
    balance: float


class Execution(GqlModel):
    execution_id: str
    execution_number: int
    strategy: str
    status: str
    progress: float
    processed: float
    total: float
    final_value: float | None = None
    latest_checkpoint: CheckpointSummary | None = None
    events: list[EventSummary] = []
    trades: list[TradeSummary] = []
    equity: list[EquityPoint] = []


class BacktestStarted(GqlModel):
    execution_id: str
    status: str
    total: float


class LiveStarted(GqlModel):
    execution_id: str
    task_type: str
    mode: str
    account_id: str | None = None
    status: str


class ExecutionStopped(GqlModel):
    execution_id: str
    status: str


class Candle(GqlModel):
    ts: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float | None = None
