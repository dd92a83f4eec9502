"""What the REST families take and answer, as the seeds show it, for ``/openapi.json``.

The routes build plain dicts; these models only describe them (and schemathesis checks every
answer against them). Parameters are typed, ranged and defaulted as the routes enforce them.
Times are RFC 3339 with ``Z`` (``format: date-time``) except where a seed shows another form:
Stage1's zone-less seconds and ORCA's health stamp are plain strings.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from hub.executions.model import Direction, EventType, ExecutionStatus
from hub.http import INT64_MAX
from hub.jobs.service import JobStatus

# -- health (Stage1 seed 000, ORCA seed 002, Cracktrader seed 004) --------------------------

Check = Literal["healthy", "unhealthy"]
HealthStatus = Literal["healthy", "degraded", "unhealthy"]


class HealthChecks(BaseModel):
    postgres: Check
    redis: Check


class Alive(BaseModel):
    status: Literal["ok"]


class Ready(BaseModel):
    status: Literal["ready"]


class NotReady(BaseModel):
    status: Literal["not ready"]
    failed: list[Literal["postgres", "redis"]]
    checks: HealthChecks


class Health(BaseModel):
    """Postgres down is ``unhealthy`` (503); Redis down is ``degraded``."""

    status: HealthStatus
    timestamp: str = Field(description="UTC: Stage1's 2025-11-10T01:30:00Z, ORCA's no-zone form")
    uptime: int = Field(description="seconds since the process started")
    checks: HealthChecks


# -- tokens (Sigma Lab seed 001) ----------------------------------------------------------


class TokenRequest(BaseModel):
    username: str = Field(min_length=1)
    password: str = Field(min_length=1)


class AccessToken(BaseModel):
    access_token: str = Field(description="a JWT, to send as Authorization: Bearer")
    token_type: Literal["bearer"]
    expires_in: int = Field(description="seconds")


# -- jobs (Stage1 seed 000) ---------------------------------------------------------------


class JobsQuery(BaseModel):
    job_type: str | None = Field(None, description="only jobs of this type")
    limit: int = Field(50, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=INT64_MAX)


class JobPath(BaseModel):
    job_id: uuid.UUID


class Job(BaseModel):
    job_id: uuid.UUID
    job_type: str
    status: JobStatus
    payload: str = Field(description="the job's payload, as a JSON string")
    progress: int
    total: int
    result: str | None = Field(description="the job's result, as a JSON string")
    error: str | None
    created_at: str = Field(description="UTC seconds, no zone: 2025-11-10T01:30:00")
    updated_at: str
    started_at: str | None
    completed_at: str | None


class Jobs(BaseModel):
    jobs: list[Job]
    count: int


# -- executions (seed 003) ----------------------------------------------------------------


class ExecutionPath(BaseModel):
    execution_id: int = Field(ge=1, le=INT64_MAX)


class Incremental(BaseModel):
    since_sequence: int = Field(0, ge=0, le=INT64_MAX, description="only items after this one")
    page: int = Field(1, ge=1, le=10_000_000)
    page_size: int = Field(1000, ge=1, le=1000)


class EventsQuery(Incremental):
    event_type: EventType | None = None


class TradesQuery(Incremental):
    instrument: str | None = None
    direction: Direction | None = None


class EquityQuery(Incremental):
    page_size: int = Field(500, ge=1, le=1000)
    start_time: datetime | None = None
    end_time: datetime | None = Field(None, description="not before start_time")
    max_points: int | None = Field(
        None, ge=2, le=1_000_000, description="downsample (LTTB) to at most this many points"
    )


class Checkpoint(BaseModel):
    """Seed 003's metrics checkpoint: values as two-decimal strings ("12.50")."""

    id: int
    processed: int
    total_return: str
    total_pnl: str
    realized_pnl: str
    unrealized_pnl: str
    total_trades: int
    winning_trades: int
    losing_trades: int
    win_rate: str
    max_drawdown: str
    max_drawdown_pct: str
    sharpe_ratio: str
    sortino_ratio: str
    calmar_ratio: str
    profit_factor: str
    average_win: str
    average_loss: str
    exposure: str
    created_at: datetime


class ExecutionHeader(BaseModel):
    execution_id: int
    task_type: str
    task_id: int


class ExecutionState(ExecutionHeader):
    execution_number: int
    status: ExecutionStatus
    progress: float = Field(description="percent")
    started_at: datetime | None
    completed_at: datetime | None
    error_message: str | None
    has_checkpoint: bool
    checkpoint: Checkpoint | None


class Page(BaseModel):
    count: int
    next: str | None = Field(description="the next page's URL")
    previous: str | None


class Event(BaseModel):
    sequence: int
    event_type: EventType
    strategy_type: str
    timestamp: datetime
    event: dict[str, Any]
    created_at: datetime


class Events(ExecutionHeader, Page):
    events: list[Event]


class Trade(BaseModel):
    """Prices and money as decimal strings holding every significant digit."""

    instrument: str
    direction: Direction
    status: str
    entry_time: datetime
    entry_price: str | None
    units: float
    exit_time: datetime
    exit_price: str | None
    pnl: str | None
    pips: str | None
    fees: str | None
    return_: str | None = Field(alias="return")
    exit_reason: str
    entry_index: int
    exit_index: int
    details: dict[str, Any]


class SequencedTrade(BaseModel):
    sequence: int
    trade: Trade
    created_at: datetime


class Trades(ExecutionHeader, Page):
    trades: list[SequencedTrade]


class EquityPoint(BaseModel):
    sequence: int
    timestamp: datetime
    balance: float


class Equity(ExecutionHeader, Page):
    equity_curve: list[EquityPoint]
    granularity_seconds: float | None = Field(description="between points, when downsampled")


class LatestMetrics(ExecutionHeader):
    has_checkpoint: bool
    checkpoint: Checkpoint | None


# -- Cracktrader (seed 004) ---------------------------------------------------------------


class RunnerMetrics(BaseModel):
    uptime_seconds: int
    bus_connected: bool
    local_subscribers: int


class CracktraderHealth(BaseModel):
    status: HealthStatus
    checks: HealthChecks
    metrics: RunnerMetrics
    timestamp: datetime


class RunStatus(BaseModel):
    """The caller's current run; ``idle`` with nulls when there is none."""

    run_id: int | None
    status: ExecutionStatus | Literal["idle"]
    mode: Literal["backtest"] | None
    start_time: datetime | None
    end_time: datetime | None
    runtime_seconds: float | None
    cash: float | None
    value: float | None
    pnl: float | None
    trade_count: int
    error: str | None


class RunTrade(Trade):
    sequence: int


class CurvePoint(BaseModel):
    timestamp: datetime
    value: float


class RunnerHealth(BaseModel):
    status: HealthStatus
    checks: HealthChecks


class DetailedStatus(RunStatus):
    recent_trades: list[RunTrade]
    equity_curve: list[CurvePoint]
    performance_metrics: Checkpoint | None
    health: RunnerHealth


class RunAnswer(BaseModel):
    run_id: int | None
    status: ExecutionStatus | Literal["idle", "stopping"]
    message: str


class RunConfig(BaseModel):
    strategy_name: str
    strategy_params: dict[str, Any]
    symbols: list[str]
    timeframe: str
    start_date: datetime | None
    end_date: datetime | None
    initial_cash: float
    exchange: str
    options: dict[str, Any]


class Results(BaseModel):
    run_id: int
    config: RunConfig
    status: ExecutionStatus
    start_time: datetime | None
    end_time: datetime | None
    trades: list[RunTrade]
    equity_curve: list[CurvePoint]
    performance_metrics: Checkpoint | None
    final_value: float
    error: str | None


class Strategy(BaseModel):
    name: str
    description: str
    params: list[dict[str, Any]] = Field(description="name, type, default, bounds, description")


class Strategies(BaseModel):
    strategies: list[Strategy]


class Exchange(BaseModel):
    id: str
    name: str
    sandbox: bool
    notes: str


class Exchanges(BaseModel):
    exchanges: list[Exchange]
