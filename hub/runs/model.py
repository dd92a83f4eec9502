"""The runs domain's vocabulary: a walk-forward run, a simulation of it and its parameters."""

from __future__ import annotations

import enum
import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator
from pydantic.json_schema import SkipJsonSchema

from hub.datasets.model import Id, omittable

MAX_THRESHOLDS = 64
MAX_FEATURES = 10_000

FeatureName = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Finite = Annotated[float, Field(allow_inf_nan=False)]
Hour = Annotated[int, Field(ge=0, le=23)]


def not_null(value: Any) -> Any:
    """An id may be left out, never sent as null."""
    if value is None:
        raise ValueError("must not be null; leave it out instead")
    return value


class SimulationStatus(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


def predictions_measurement(run_id: str | uuid.UUID) -> str:
    """Where a run's predictions live in the ``ts`` schema: ``wf_`` and the run's id with its
    dashes as underscores (a measurement name is lower-case letters, digits and ``_``)."""
    return "wf_" + str(uuid.UUID(str(run_id))).replace("-", "_")


class RunSpec(BaseModel):
    """A walk-forward run as Stage1's ``POST /api/runs`` takes it."""

    model_config = ConfigDict(extra="forbid", strict=True)

    run_id: Id | SkipJsonSchema[None] = omittable("omitted: a new run with a new id")
    dataset_id: Id
    fold_count: int = Field(ge=0, le=1_000_000)
    features: list[FeatureName] = Field(
        default_factory=list, max_length=MAX_FEATURES, description="feature names"
    )
    thresholds: list[Finite] = Field(
        default_factory=list,
        max_length=MAX_THRESHOLDS,
        description="the run's thresholds; its predictions carry threshold_0..n-1",
    )

    _id = field_validator("run_id", mode="before")(not_null)


class SimulationParameters(BaseModel):
    """The ``threshold`` strategy's parameters and the simulator's options, in one object.

    The entry threshold is ``threshold``, or the run's threshold at ``threshold_index``, or
    ``entry_threshold`` (with ``exit_threshold``); with none of them, the run's first
    threshold. ``threshold`` and ``threshold_index`` hold a long while the prediction is at or
    above the threshold and exit as soon as it falls below; ``exit_threshold`` exits at or below
    a lower level instead (a band). Everything else is :func:`engine.backtest.run_backtest`'s.
    """

    model_config = ConfigDict(extra="forbid", strict=True)

    threshold: float | None = Field(None, allow_inf_nan=False)
    threshold_index: int | None = Field(None, ge=0, lt=MAX_THRESHOLDS)
    entry_threshold: float | None = Field(None, allow_inf_nan=False)
    exit_threshold: float | None = Field(None, allow_inf_nan=False)
    top_pct: float | None = Field(None, ge=0, le=100)
    allowed_hours: list[Hour] | None = Field(None, min_length=1, max_length=24)
    fill: Literal["close", "next_open"] | None = None
    fees: float | None = Field(None, ge=0, le=0.5)
    slippage: float | None = Field(None, ge=0, allow_inf_nan=False)
    slippage_unit: Literal["fraction", "points"] | None = None
    direction: Literal["long", "short", "both"] | None = None
    sizing: Literal["cash", "units", "notional"] | None = None
    size: float | None = Field(None, gt=0, allow_inf_nan=False)
    stop_loss: float | None = Field(None, gt=0, allow_inf_nan=False)
    take_profit: float | None = Field(None, gt=0, allow_inf_nan=False)
    stop_unit: Literal["fraction", "points"] | None = None
    max_bars: int | None = Field(None, ge=1, le=2**31 - 1)

    def given(self) -> dict[str, Any]:
        """What the client set (echoed back as the simulation's ``parameters``)."""
        return self.model_dump(mode="json", exclude_none=True)


class SimulationSpec(BaseModel):
    """A simulation as Stage1's ``POST /api/simulations`` takes it."""

    model_config = ConfigDict(extra="forbid", strict=True)

    simulation_id: Id | SkipJsonSchema[None] = omittable("omitted: a new simulation with a new id")
    run_id: Id
    initial_capital: float = Field(10_000.0, gt=0, le=1e15, allow_inf_nan=False)
    parameters: SimulationParameters = Field(
        default_factory=lambda: SimulationParameters.model_validate({})
    )

    _id = field_validator("simulation_id", mode="before")(not_null)
