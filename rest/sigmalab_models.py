"""What Sigma Lab's research routes take and answer (seed 001), for ``/openapi.json``. Request
bodies are the domain's own models (``hub.research.model``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, RootModel

from hub.http import INT64_MAX
from hub.research.model import ModelId, RiskProfile

PAGE_MAX = 1000
Component = Literal["healthy", "degraded", "unhealthy"]
SortBy = Literal["sharpe", "cum_ret", "max_drawdown", "win_rate", "trades", "created_at"]


class ModelsQuery(BaseModel):
    model_id: str | None = Field(None, max_length=128)
    pack_id: str | None = Field(None, max_length=64)
    limit: int = Field(100, ge=1, le=PAGE_MAX)
    offset: int = Field(0, ge=0, le=INT64_MAX)


class ModelPath(BaseModel):
    model_id: ModelId


class BacktestPath(BaseModel):
    backtest_id: str = Field(max_length=64)


class SweepPath(BaseModel):
    sweep_id: str = Field(max_length=64)


class LeaderboardQuery(BaseModel):
    model_id: str | None = Field(None, max_length=128)
    pack_id: str | None = Field(None, max_length=64)
    tag: str | None = Field(None, max_length=100)
    risk_profile: RiskProfile | None = None
    pass_gate: bool | None = None
    sort_by: SortBy = "sharpe"
    limit: int = Field(100, ge=1, le=PAGE_MAX)
    offset: int = Field(0, ge=0, le=INT64_MAX)


class ExportQuery(BaseModel):
    format: Literal["csv"] = "csv"


class LeaderboardExportQuery(ExportQuery):
    tag: str | None = Field(None, max_length=100)
    model_id: str | None = Field(None, max_length=128)
    pack_id: str | None = Field(None, max_length=64)
    risk_profile: RiskProfile | None = None
    pass_gate: bool | None = None
    sort_by: SortBy = "sharpe"


class HealthQuery(BaseModel):
    ticker: str | None = Field(None, max_length=32)
    pack_id: str | None = Field(None, max_length=64)
    model_id: str | None = Field(None, max_length=128)


class Template(BaseModel):
    template_id: str
    pack_id: str
    description: str
    timeframe: str
    horizon: int
    features: list[str]
    thresholds: dict[str, float]
    allowed_hours: list[int] | None


class Templates(BaseModel):
    items: list[Template]


class ListLineage(BaseModel):
    matrix_sha: str | None
    config_sha: str
    risk_profile: RiskProfile


class ModelItem(BaseModel):
    model_id: str
    pack_id: str
    name: str
    updated_at: datetime
    sharpe: float | None
    cum_ret: float | None
    lineage: ListLineage


class Models(BaseModel):
    items: list[ModelItem]
    total: int
    limit: int
    offset: int


class ModelCreated(BaseModel):
    model_id: str
    pack_id: str
    created_at: datetime
    status: Literal["created"]


class Metrics(BaseModel):
    sharpe: float | None
    cum_ret: float | None
    max_drawdown: float | None
    win_rate: float | None
    trades: int


class Lineage(BaseModel):
    matrix_sha: str | None
    config_sha: str
    created_by: str | None
    created_at: datetime


class ModelDetail(BaseModel):
    model_id: str
    pack_id: str
    template_id: str
    name: str
    risk_profile: RiskProfile
    active: bool
    config: dict[str, Any]
    metrics: Metrics | None
    best_backtest_id: str | None
    trained_versions: int
    lineage: Lineage
    updated_at: datetime


class Matrix(BaseModel):
    matrix_sha: str = Field(description="sha256 of the Parquet file's bytes")
    rows: int
    columns: int
    size_mb: float
    status: Literal["completed"]
    path: str = Field(description="under the data folder's research/")
    model_id: str
    features: list[str]
    column_names: list[str]


class TrainQueued(BaseModel):
    job_id: str
    status: Literal["queued"]
    estimated_time: int = Field(description="seconds, estimated from rows x rounds")
    queue_position: int = Field(description="pending jobs up to this one, itself included")
    model_id: str
    version: int
    version_id: str


class Gate(BaseModel):
    pass_: bool = Field(alias="pass")
    reasons: list[str]


class BacktestStarted(BaseModel):
    backtest_id: str
    model_id: str
    status: Literal["running", "completed", "failed", "cancelled"]
    metrics: dict[str, Any] | None
    estimated_completion: datetime | None
    job_id: str | None
    queue_position: int


class BacktestDetail(BaseModel):
    backtest_id: str
    model_id: str
    kind: Literal["walk_forward", "sweep"]
    status: Literal["running", "completed", "failed", "cancelled"]
    metrics: dict[str, Any] | None
    gate: Gate | None
    config: dict[str, Any]
    matrix_sha: str | None
    run_id: str | None = Field(description="the Stage1 run holding its predictions")
    execution_id: int | None = Field(description="its trades and equity as an execution")
    sweep_id: str | None
    tag: str | None
    risk_profile: RiskProfile
    error: str | None
    job_id: str | None
    created_at: datetime
    completed_at: datetime | None


class SweepState(BaseModel):
    sweep_id: str
    model_id: str
    total_configs: int
    completed_configs: int
    status: Literal["running", "completed", "failed", "cancelled"]
    progress: int = Field(description="whole percent of configs evaluated")
    tag: str | None
    risk_profile: RiskProfile
    backtest_id: str = Field(description="the walk-forward backtest whose predictions it sweeps")
    job_ids: list[str] | None = None


class BoardConfig(BaseModel):
    threshold: float
    allowed_hours: list[int] | None
    top_pct: float | None
    splits: int | None = None


class BoardItem(BaseModel):
    rank: int
    backtest_id: str
    model_id: str
    pack_id: str
    kind: Literal["walk_forward", "sweep"]
    sweep_id: str | None
    tag: str | None
    risk_profile: RiskProfile
    metrics: Metrics | None
    gate: Gate
    config: BoardConfig
    completed_at: datetime | None


class Leaderboard(BaseModel):
    items: list[BoardItem]
    total: int
    limit: int
    offset: int


class Components(BaseModel):
    database: Component
    cache: Component
    worker_queue: Component
    market_data: Component


class SystemHealth(BaseModel):
    status: Component
    timestamp: datetime
    components: Components
    version: str
    ticker: dict[str, Any] | None = None
    pack: dict[str, Any] | None = None
    model: dict[str, Any] | None = None


class ModelDeleted(BaseModel):
    model_id: str
    deleted: Literal[True]
    artifacts_removed: int


class BacktestCsv(RootModel[str]):
    """timestamp,action,price,quantity,pnl,cumulative_pnl: a BUY line at each entry, a SELL
    line with its pnl at each exit."""


class LeaderboardCsv(RootModel[str]):
    """rank,backtest_id,model_id,pack_id,risk_profile,tag,threshold,allowed_hours,top_pct,
    sharpe,cum_ret,max_drawdown,win_rate,trades,gate_pass,gate_reasons."""
