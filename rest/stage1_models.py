"""What Stage1's dataset, run and simulation routes take and answer (seed 000), for
``/openapi.json``. Request bodies are the domain's own models (``hub.datasets.model``,
``hub.runs.model``); times are epoch microseconds where the seed shows numbers, and
``2025-11-10T01:30:00Z`` where it shows text."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import BaseModel, Field, RootModel

from hub.http import INT64_MAX
from hub.runs.model import SimulationStatus

PAGE_MAX = 1000
TRADES_MAX = 10_000
MICROS = "epoch microseconds"


class PageQuery(BaseModel):
    limit: int = Field(50, ge=1, le=PAGE_MAX)
    offset: int = Field(0, ge=0, le=INT64_MAX)


class RunsQuery(PageQuery):
    dataset_id: uuid.UUID | None = Field(None, description="only this dataset's runs")


class SimulationsQuery(PageQuery):
    run_id: uuid.UUID | None = Field(None, description="only this run's simulations")


class TradesQuery(BaseModel):
    limit: int = Field(1000, ge=1, le=TRADES_MAX)
    offset: int = Field(0, ge=0, le=INT64_MAX)


class PredictionsQuery(BaseModel):
    format: Literal["csv", "json"] = "csv"


class DatasetPath(BaseModel):
    dataset_id: uuid.UUID


class RunPath(BaseModel):
    run_id: uuid.UUID


class SimulationPath(BaseModel):
    simulation_id: uuid.UUID


class Stage1Dataset(BaseModel):
    """Row counts and times are counted from the measurements when the dataset is read."""

    dataset_id: uuid.UUID
    dataset_slug: str
    symbol: str
    granularity: str
    source: str
    ohlcv_measurement: str | None
    indicator_measurement: str | None
    ohlcv_row_count: int
    indicator_row_count: int
    ohlcv_first_ts: int | None = Field(description=MICROS)
    ohlcv_last_ts: int | None = Field(description=MICROS)
    indicator_first_ts: int | None = Field(description=MICROS)
    indicator_last_ts: int | None = Field(description=MICROS)
    metadata: dict[str, Any]


class Stage1Datasets(BaseModel):
    datasets: list[Stage1Dataset]
    count: int = Field(description="datasets in this answer")


class Saved(BaseModel):
    success: Literal[True]
    message: str


class DatasetSaved(Saved):
    dataset_id: uuid.UUID = Field(description="not in seed 000: the dataset's id")


class RunSaved(Saved):
    run_id: uuid.UUID = Field(description="not in seed 000: the run's id")


class SimulationSaved(Saved):
    simulation_id: uuid.UUID = Field(description="not in seed 000: the simulation's id")
    job_id: uuid.UUID | None = Field(description="not in seed 000: the job running it")


class Stage1Run(BaseModel):
    run_id: uuid.UUID
    dataset_id: uuid.UUID
    fold_count: int
    features: list[str]
    thresholds: list[float]
    created_at: str = Field(description="UTC seconds with Z: 2025-11-10T01:30:00Z")


class Stage1Runs(BaseModel):
    runs: list[Stage1Run]
    count: int = Field(description="runs in this answer")


class Stage1Predictions(BaseModel):
    dataset: list[list[int | float | None]] = Field(
        description="rows of timestamp (epoch microseconds), bar_index, fold_number, "
        "prediction, target, threshold_0..n-1; NaN as null"
    )


class Stage1PredictionsCsv(RootModel[str]):
    """A header line (timestamp,bar_index,fold_number,prediction,target,threshold_0,...),
    then a row a line."""


class Stage1Simulation(BaseModel):
    simulation_id: uuid.UUID
    run_id: uuid.UUID
    initial_capital: float
    parameters: dict[str, Any]
    results: dict[str, Any] = Field(description="the metrics, once completed; {} before")
    created_at: str = Field(description="UTC seconds with Z: 2025-11-10T01:30:00Z")
    status: SimulationStatus = Field(description="not in seed 000")
    job_id: uuid.UUID | None = Field(description="not in seed 000: the job running it")


class Stage1Simulations(BaseModel):
    simulations: list[Stage1Simulation]
    count: int = Field(description="simulations in this answer")


class Stage1Trade(BaseModel):
    trade_id: uuid.UUID
    simulation_id: uuid.UUID
    bar_timestamp: int = Field(description=f"the entry bar, {MICROS}")
    side: Literal["long", "short"]
    size: float
    entry_price: float
    exit_price: float
    pnl: float
    return_pct: float = Field(description="pnl over the entry's notional, in percent")
    metadata: dict[str, Any]


class Stage1Trades(BaseModel):
    trades: list[Stage1Trade]
    count: int = Field(description="trades in this answer")
