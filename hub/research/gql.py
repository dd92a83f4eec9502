"""GraphQL for research: ``models``, ``model``, ``leaderboard``, and the mutations
``createModel``, ``buildMatrix``, ``trainModel``, ``runResearchBacktest``, ``runSweep``.
Inputs are checked by the same pydantic models as Sigma Lab's REST routes."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, TypeVar

import strawberry
from pydantic import BaseModel, ValidationError
from strawberry.scalars import JSON
from strawberry.types import Info

from hub.errors import BadRequest
from hub.gql.context import Context
from hub.gql.cost import rows
from hub.research import reads, sweeps
from hub.research.model import Backtest, BuildMatrix, CreateModel, Sweep, Train

MAX_LIMIT = 500
M = TypeVar("M", bound=BaseModel)


def parsed(model: type[M], data: dict[str, Any]) -> M:
    """``data`` as ``model``; the first thing wrong with it is a BadRequest naming the field."""
    try:
        return model.model_validate({k: v for k, v in data.items() if v is not None})
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "input"
        raise BadRequest(f"{field}: {first['msg']}", field=field) from None


def checked_page(limit: int, offset: int) -> None:
    if not 1 <= limit <= MAX_LIMIT:
        raise BadRequest(f"limit must be between 1 and {MAX_LIMIT}, got {limit}", field="limit")
    if offset < 0:
        raise BadRequest(f"offset must not be negative, got {offset}", field="offset")


@strawberry.type(description="Where a model's numbers come from.")
class Lineage:
    matrix_sha: str | None
    config_sha: str
    created_by: strawberry.ID | None
    created_at: datetime


@strawberry.type(description="A research model made from a template (Sigma Lab).")
class ResearchModel:
    model_id: strawberry.ID
    pack_id: str
    template_id: str
    name: str
    risk_profile: str
    active: bool
    config: JSON
    metrics: JSON | None = strawberry.field(description="its best backtest's (by sharpe)")
    best_backtest_id: str | None
    trained_versions: int
    lineage: Lineage

    @classmethod
    def from_document(cls, doc: dict[str, Any], created_at: datetime) -> ResearchModel:
        lineage = doc["lineage"]
        return cls(
            model_id=strawberry.ID(doc["model_id"]),
            pack_id=doc["pack_id"],
            template_id=doc["template_id"],
            name=doc["name"],
            risk_profile=doc["risk_profile"],
            active=doc["active"],
            config=doc["config"],
            metrics=doc["metrics"],
            best_backtest_id=doc["best_backtest_id"],
            trained_versions=doc["trained_versions"],
            lineage=Lineage(
                matrix_sha=lineage["matrix_sha"],
                config_sha=lineage["config_sha"],
                created_by=None
                if lineage["created_by"] is None
                else strawberry.ID(lineage["created_by"]),
                created_at=created_at,
            ),
        )


@strawberry.type(description="A ranked backtest and its gate.")
class LeaderboardEntry:
    rank: int
    backtest_id: str
    model_id: strawberry.ID
    pack_id: str
    kind: str
    sweep_id: str | None
    tag: str | None
    risk_profile: str
    metrics: JSON | None
    gate_pass: bool
    gate_reasons: list[str]
    config: JSON


@strawberry.type(description="A feature matrix, a Parquet file named by its sha256.")
class Matrix:
    matrix_sha: str
    rows: int
    columns: int
    size_mb: float
    path: str
    column_names: list[str]


@strawberry.type(description="A queued training job.")
class TrainingJob:
    job_id: strawberry.ID
    status: str
    estimated_time: int
    queue_position: int
    version: int
    version_id: str


@strawberry.type(description="A research backtest (walk-forward, or a sweep's config).")
class ResearchBacktest:
    backtest_id: str
    model_id: strawberry.ID
    status: str
    metrics: JSON | None
    config: JSON
    run_id: strawberry.ID | None
    job_id: strawberry.ID | None


@strawberry.type(description="A sweep of configs over one backtest's predictions.")
class ResearchSweep:
    sweep_id: str
    model_id: strawberry.ID
    total_configs: int
    completed_configs: int
    status: str
    progress: float
    tag: str | None
    job_ids: list[strawberry.ID]


@strawberry.input(description="Entry and exit probabilities; exit below entry.")
class ThresholdsInput:
    entry: float
    exit: float


@strawberry.input(description="A model's config; what is left out comes from its template.")
class ModelConfigInput:
    ticker: str
    timeframe: str | None = None
    indicators: list[str] | None = None
    features: list[str] | None = None
    horizon: int | None = None
    thresholds: ThresholdsInput | None = None
    allowed_hours: list[int] | None = None


@strawberry.input(description="LightGBM: epochs boosting rounds; batch_size rows per leaf.")
class TrainConfigInput:
    learning_rate: float | None = None
    epochs: int | None = None
    batch_size: int | None = None
    num_leaves: int | None = None


@strawberry.input(description="A walk-forward backtest: the threshold strategy at value.")
class BacktestConfigInput:
    kind: str | None = None
    value: float | None = None
    allowed_hours: list[int] | None = None
    splits: int | None = None
    top_pct: float | None = None
    learning_rate: float | None = None
    epochs: int | None = None


@strawberry.input(description="The grid: thresholds x allowed_hours x top_pct.")
class SweepGridInput:
    thresholds: list[float]
    allowed_hours: list[list[int]] | None = None
    top_pct: list[float] | None = None


def given(value: Any) -> Any:
    """An input object as a dict of what was given (nested inputs too); None stays None."""
    if value is None:
        return None
    out = {}
    for name, field_value in strawberry.asdict(value).items():
        if field_value is not None:
            out[name] = field_value
    return out


async def _model(info: Info[Context, None], model_id: str) -> ResearchModel:
    service = info.context.state.research
    row = await service.get_model(model_id)
    doc = reads.model_document(row, await service.model_summary(model_id))
    return ResearchModel.from_document(doc, row["created_at"])


async def resolve_model(info: Info[Context, None], id: strawberry.ID) -> ResearchModel:
    info.context.require_identity()
    return await _model(info, str(id))


async def resolve_models(
    info: Info[Context, None],
    model_id: str | None = None,
    pack_id: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[ResearchModel]:
    info.context.require_identity()
    checked_page(limit, offset)
    service = info.context.state.research
    found, _ = await service.list_models(
        model_id=model_id, pack_id=pack_id, limit=limit, offset=offset
    )
    out = []
    for row in found:
        doc = reads.model_document(row, await service.model_summary(row["model_id"]))
        out.append(ResearchModel.from_document(doc, row["created_at"]))
    return out


async def resolve_leaderboard(
    info: Info[Context, None],
    model_id: str | None = None,
    pack_id: str | None = None,
    tag: str | None = None,
    risk_profile: str | None = None,
    pass_gate: bool | None = None,
    sort_by: str = "sharpe",
    limit: int = 100,
    offset: int = 0,
) -> list[LeaderboardEntry]:
    info.context.require_identity()
    checked_page(limit, offset)
    filters = {"model_id": model_id, "pack_id": pack_id, "tag": tag,
               "risk_profile": risk_profile, "pass_gate": pass_gate}  # fmt: skip
    items, _ = await reads.leaderboard(info.context.state.research, filters, sort_by, limit, offset)
    return [
        LeaderboardEntry(
            rank=i["rank"],
            backtest_id=i["backtest_id"],
            model_id=strawberry.ID(i["model_id"]),
            pack_id=i["pack_id"],
            kind=i["kind"],
            sweep_id=i["sweep_id"],
            tag=i["tag"],
            risk_profile=i["risk_profile"],
            metrics=i["metrics"],
            gate_pass=i["gate"]["pass"],
            gate_reasons=i["gate"]["reasons"],
            config=i["config"],
        )
        for i in items
    ]


async def create_model(
    info: Info[Context, None],
    template_id: str,
    name: str,
    config: ModelConfigInput,
    risk_profile: str = "Balanced",
) -> ResearchModel:
    identity = info.context.require_identity()
    spec = parsed(CreateModel, {"template_id": template_id, "name": name,
                                "risk_profile": risk_profile, "config": given(config)})  # fmt: skip
    row = await info.context.state.research.create_model(identity, spec)
    return await _model(info, row["model_id"])


async def build_matrix(
    info: Info[Context, None],
    model_id: str,
    start_date: date,
    end_date: date,
    features: list[str] | None = None,
) -> Matrix:
    identity = info.context.require_identity()
    spec = parsed(BuildMatrix, {"model_id": model_id, "start_date": start_date,
                                "end_date": end_date, "features": features})  # fmt: skip
    doc = await info.context.state.research.build_matrix(identity, spec)
    return Matrix(
        matrix_sha=doc["matrix_sha"], rows=doc["rows"], columns=doc["columns"],
        size_mb=doc["size_mb"], path=doc["path"], column_names=doc["column_names"],
    )  # fmt: skip


async def train_model(
    info: Info[Context, None],
    model_id: str,
    matrix_sha: str,
    allowed_hours: list[int] | None = None,
    config: TrainConfigInput | None = None,
) -> TrainingJob:
    identity = info.context.require_identity()
    spec = parsed(Train, {"model_id": model_id, "matrix_sha": matrix_sha,
                          "allowed_hours": allowed_hours, "config": given(config)})  # fmt: skip
    doc = await info.context.state.research.train(identity, spec)
    return TrainingJob(
        job_id=strawberry.ID(doc["job_id"]), status=doc["status"],
        estimated_time=doc["estimated_time"], queue_position=doc["queue_position"],
        version=doc["version"], version_id=doc["version_id"],
    )  # fmt: skip


async def run_research_backtest(
    info: Info[Context, None],
    model_id: str,
    config: BacktestConfigInput | None = None,
    matrix_sha: str | None = None,
    start_date: date | None = None,
    end_date: date | None = None,
    tag: str | None = None,
) -> ResearchBacktest:
    identity = info.context.require_identity()
    spec = parsed(Backtest, {"model_id": model_id, "config": given(config), "matrix_sha": matrix_sha,
                             "start_date": start_date, "end_date": end_date, "tag": tag})  # fmt: skip
    row = await info.context.state.research.backtest(identity, spec)
    return ResearchBacktest(
        backtest_id=row["backtest_id"], model_id=strawberry.ID(row["model_id"]),
        status=row["status"], metrics=row["metrics"], config=row["config"],
        run_id=None if row["run_id"] is None else strawberry.ID(str(row["run_id"])),
        job_id=None if row["job_id"] is None else strawberry.ID(str(row["job_id"])),
    )  # fmt: skip


async def run_sweep(
    info: Info[Context, None],
    model_id: str,
    sweep: SweepGridInput,
    risk_profile: str | None = None,
    tag: str | None = None,
    backtest_id: str | None = None,
) -> ResearchSweep:
    identity = info.context.require_identity()
    spec = parsed(Sweep, {"model_id": model_id, "sweep": given(sweep), "risk_profile": risk_profile,
                          "tag": tag, "backtest_id": backtest_id})  # fmt: skip
    doc = await sweeps.create_sweep(info.context.state.research, identity, spec)
    return ResearchSweep(
        sweep_id=doc["sweep_id"], model_id=strawberry.ID(doc["model_id"]),
        total_configs=doc["total_configs"], completed_configs=doc["completed_configs"],
        status=doc["status"], progress=doc["progress"], tag=doc["tag"],
        job_ids=[strawberry.ID(j) for j in doc["job_ids"]],
    )  # fmt: skip


@strawberry.type
class Query:
    model: ResearchModel = strawberry.field(resolver=resolve_model, description="A research model.")
    models: list[ResearchModel] = strawberry.field(
        resolver=resolve_models,
        description="Research models, newest first; by modelId or packId.",
        metadata=rows("limit", 100),
    )
    leaderboard: list[LeaderboardEntry] = strawberry.field(
        resolver=resolve_leaderboard,
        description="Completed research backtests ranked by sortBy, with their gates.",
        metadata=rows("limit", 100),
    )


@strawberry.type
class Mutation:
    create_model: ResearchModel = strawberry.mutation(
        resolver=create_model, description="Create a research model from a template."
    )
    build_matrix: Matrix = strawberry.mutation(
        resolver=build_matrix, description="Build a model's feature matrix between two dates."
    )
    train_model: TrainingJob = strawberry.mutation(
        resolver=train_model, description="Queue a LightGBM training job on a matrix."
    )
    run_research_backtest: ResearchBacktest = strawberry.mutation(
        resolver=run_research_backtest, description="Start a walk-forward backtest of a model."
    )
    run_sweep: ResearchSweep = strawberry.mutation(
        resolver=run_sweep, description="Sweep thresholds x allowed hours x top_pct in chunks."
    )
