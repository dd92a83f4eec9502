"""The research domain's vocabulary: templates in packs, risk profiles with their gates, and
what a client may send to create a model, build a matrix, train, backtest and sweep."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from hub.datasets.model import Symbol, Timeframe

RiskProfile = Literal["Conservative", "Balanced", "Aggressive"]
RISK_PROFILES: tuple[str, ...] = ("Conservative", "Balanced", "Aggressive")
Hour = Annotated[int, Field(ge=0, le=23)]
Hours = Annotated[list[Hour], Field(min_length=1, max_length=24)]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]
ModelId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")]
FeatureName = Annotated[str, StringConstraints(min_length=1, max_length=40)]
Sha = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{6,64}$")]


@dataclass(frozen=True)
class Template:
    """A built-in model template: its pack and the defaults a model created from it starts with."""

    template_id: str
    pack_id: str
    description: str
    asset: str  # the id's second part: equity, options
    timeframe: str  # the dataset granularity its models read
    horizon: int  # bars of the forward return it predicts
    horizon_label: str  # the id's third part: 5d, 0d
    frequency: str  # the id's last part: daily, intraday
    features: tuple[str, ...]
    entry: float
    exit: float
    allowed_hours: tuple[int, ...] | None

    def defaults(self) -> dict[str, Any]:
        return {
            "timeframe": self.timeframe,
            "horizon": self.horizon,
            "features": list(self.features),
            "thresholds": {"entry": self.entry, "exit": self.exit},
            "allowed_hours": None if self.allowed_hours is None else list(self.allowed_hours),
        }


BASE_FEATURES = ("close", "volume", "returns")
TEMPLATES: dict[str, Template] = {
    t.template_id: t
    for t in (
        Template(
            "swingsigma_default",
            "swingsigma",
            "Swing trades on daily bars: the 5-day forward return",
            "equity",
            "1d",
            5,
            "5d",
            "daily",
            (*BASE_FEATURES, "returns_5", "RSI", "MACD", "BB", "SMA_50", "EMA_20", "ATR"),
            0.6,
            0.4,
            None,
        ),
        Template(
            "zerosigma_default",
            "zerosigma",
            "Same-day (0DTE) trades on hourly bars: the 4-hour forward return",
            "options",
            "1h",
            4,
            "0d",
            "intraday",
            (*BASE_FEATURES, "RSI", "MACD", "BB", "ATR", "stoch", "volume_z"),
            0.55,
            0.45,
            (9, 10, 11, 12, 13, 14, 15),
        ),
    )
}


@dataclass(frozen=True)
class Gate:
    """What a backtest must reach to pass under a risk profile."""

    min_sharpe: float
    min_trades: int
    max_drawdown: float  # the deepest drawdown allowed, a negative fraction
    min_win_rate: float

    def judge(self, metrics: dict[str, Any]) -> list[str]:
        """Why ``metrics`` fail the gate (nothing: it passes)."""
        reasons = []
        sharpe, trades = metrics.get("sharpe"), metrics.get("trades") or 0
        drawdown, win_rate = metrics.get("max_drawdown"), metrics.get("win_rate")
        if sharpe is None or sharpe < self.min_sharpe:
            reasons.append(f"sharpe {_shown(sharpe)} below {self.min_sharpe}")
        if trades < self.min_trades:
            reasons.append(f"trades {trades} below {self.min_trades}")
        if drawdown is None or drawdown < self.max_drawdown:
            reasons.append(f"max_drawdown {_shown(drawdown)} deeper than {self.max_drawdown}")
        if win_rate is None or win_rate < self.min_win_rate:
            reasons.append(f"win_rate {_shown(win_rate)} below {self.min_win_rate}")
        return reasons


def _shown(value: Any) -> str:
    return "n/a" if value is None else f"{value:.4g}"


GATES: dict[str, Gate] = {
    "Conservative": Gate(min_sharpe=1.0, min_trades=30, max_drawdown=-0.10, min_win_rate=0.50),
    "Balanced": Gate(min_sharpe=0.75, min_trades=20, max_drawdown=-0.20, min_win_rate=0.45),
    "Aggressive": Gate(min_sharpe=0.5, min_trades=10, max_drawdown=-0.35, min_win_rate=0.0),
}


def canonical_sha(value: Any) -> str:
    """sha256 of ``value`` as canonical JSON (sorted keys): the same config, the same sha."""
    return hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).hexdigest()


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Thresholds(Strict):
    entry: Probability
    exit: Probability


class ModelConfig(Strict):
    """A model's config; what is left out comes from its template."""

    ticker: Symbol = Field(description="a dataset symbol")
    timeframe: Timeframe | None = Field(None, description="default: the template's")
    indicators: list[FeatureName] | None = Field(
        None, max_length=64, description="added to close, volume and returns"
    )
    features: list[FeatureName] | None = Field(
        None, max_length=64, description="every feature, in place of the template's"
    )
    horizon: int | None = Field(None, ge=1, le=1000, description="bars of the forward return")
    thresholds: Thresholds | None = None
    allowed_hours: Hours | None = None


class CreateModel(Strict):
    template_id: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=200)
    risk_profile: RiskProfile = "Balanced"
    config: ModelConfig


class ConfigPatch(Strict):
    """What an admin may change in a model's config."""

    thresholds: Thresholds | None = None
    allowed_hours: Hours | None = None
    horizon: int | None = Field(None, ge=1, le=1000)
    features: list[FeatureName] | None = Field(None, min_length=1, max_length=64)


class PatchModel(Strict):
    config: ConfigPatch | None = None
    name: str | None = Field(None, min_length=1, max_length=200)
    risk_profile: RiskProfile | None = None
    active: bool | None = None


class BuildMatrix(Strict):
    model_id: ModelId
    start_date: dt.date = Field(strict=False)
    end_date: dt.date = Field(strict=False)
    features: list[FeatureName] | None = Field(
        None, min_length=1, max_length=64, description="default: the model's"
    )


class TrainConfig(Strict):
    """LightGBM's settings: ``epochs`` boosting rounds at ``learning_rate``; gradient boosting
    fits every row each round, so ``batch_size`` is the fewest rows a leaf may hold
    (``min_data_in_leaf``)."""

    learning_rate: float = Field(0.05, gt=0, le=1)
    epochs: int = Field(100, ge=1, le=5000)
    batch_size: int = Field(20, ge=1, le=100_000)
    num_leaves: int = Field(15, ge=2, le=1024)


class Train(Strict):
    model_id: ModelId
    matrix_sha: Sha
    allowed_hours: Hours | None = None
    config: TrainConfig = Field(default_factory=lambda: TrainConfig.model_validate({}))


class BacktestConfig(Strict):
    kind: Literal["thresholds"] = "thresholds"
    value: Probability | None = Field(None, description="entry threshold; default the model's")
    allowed_hours: Hours | None = None
    splits: int = Field(5, ge=1, le=50)
    top_pct: float | None = Field(None, gt=0, le=100)
    learning_rate: float = Field(0.05, gt=0, le=1)
    epochs: int = Field(100, ge=1, le=2000)


class Backtest(Strict):
    model_id: ModelId
    config: BacktestConfig = Field(default_factory=lambda: BacktestConfig.model_validate({}))
    matrix_sha: Sha | None = Field(None, description="default: the model's newest matrix")
    start_date: dt.date | None = Field(None, strict=False)
    end_date: dt.date | None = Field(None, strict=False)
    tag: str | None = Field(None, min_length=1, max_length=100)


class SweepGrid(Strict):
    thresholds: list[Probability] = Field(min_length=1, max_length=50)
    allowed_hours: list[Hours] | None = Field(None, min_length=1, max_length=24)
    top_pct: list[Annotated[float, Field(gt=0, le=100)]] | None = Field(
        None, min_length=1, max_length=20
    )


class Sweep(Strict):
    model_id: ModelId
    risk_profile: RiskProfile | None = None
    sweep: SweepGrid
    tag: str | None = Field(None, min_length=1, max_length=100)
    backtest_id: str | None = Field(
        None, max_length=64, description="whose predictions; default the model's newest"
    )
