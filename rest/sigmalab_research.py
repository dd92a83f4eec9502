"""Sigma Lab (seed 001): models, the BTB pipeline (build matrix, train, backtest, sweep), the
leaderboard, exports, health and admin, under ``/api/v1``."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from hub.errors import BadRequest
from hub.http import JSONResponse, query_int, require_identity
from hub.openapi import describe
from hub.research import admin, reads, sweeps
from hub.research.model import (
    RISK_PROFILES,
    TEMPLATES,
    Backtest,
    BuildMatrix,
    CreateModel,
    PatchModel,
    Sweep,
    Train,
)
from hub.research.service import ResearchService
from hub.times import iso
from rest.errors import SIGMALAB
from rest.sigmalab_models import (
    PAGE_MAX,
    BacktestCsv,
    BacktestDetail,
    BacktestPath,
    BacktestStarted,
    ExportQuery,
    HealthQuery,
    Leaderboard,
    LeaderboardCsv,
    LeaderboardExportQuery,
    LeaderboardQuery,
    Matrix,
    ModelCreated,
    ModelDeleted,
    ModelDetail,
    ModelPath,
    Models,
    ModelsQuery,
    SweepPath,
    SweepState,
    SystemHealth,
    Templates,
    TrainQueued,
)
from rest.stage1_runs import body_of

endpoint = SIGMALAB.endpoint
VERSION = "1.0.0"
# A boolean query parameter as the seed's FastAPI reads one (pass_gate=1 is true there too).
TRUE = ("true", "1", "yes", "on", "t", "y")
FALSE = ("false", "0", "no", "off", "f", "n")


def research(request: Request) -> ResearchService:
    service: ResearchService = request.state.research
    return service


def text_param(request: Request, name: str, max_length: int = 128) -> str | None:
    value = request.query_params.get(name)
    if value is None or value == "":
        return None
    if len(value) > max_length:
        raise BadRequest(f"{name} is longer than {max_length} characters", field=name)
    return value


def page(request: Request) -> tuple[int, int]:
    return (
        query_int(request, "limit", 100, minimum=1, maximum=PAGE_MAX),
        query_int(request, "offset", 0, minimum=0),
    )


def csv_answer(lines: Any, name: str) -> Response:
    filename = re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:120]  # a header is latin-1, quoted
    return StreamingResponse(
        lines,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


# -- models ---------------------------------------------------------------------------------


@endpoint
@describe(SIGMALAB, answers={200: Templates})
async def list_templates(request: Request) -> Response:
    """The built-in model templates, by pack."""
    require_identity(request)
    items = [
        {"template_id": t.template_id, "pack_id": t.pack_id, "description": t.description,
         "timeframe": t.timeframe, "horizon": t.horizon, "features": list(t.features),
         "thresholds": {"entry": t.entry, "exit": t.exit},
         "allowed_hours": None if t.allowed_hours is None else list(t.allowed_hours)}
        for t in TEMPLATES.values()
    ]  # fmt: skip
    return JSONResponse({"items": items})


@endpoint
@describe(SIGMALAB, answers={200: Models}, query=ModelsQuery)
async def list_models(request: Request) -> Response:
    """List models, newest first, by model_id or pack_id."""
    require_identity(request)
    limit, offset = page(request)
    rows, total = await research(request).list_models(
        model_id=text_param(request, "model_id"),
        pack_id=text_param(request, "pack_id", 64),
        limit=limit,
        offset=offset,
    )
    items = [reads.model_item(row) for row in rows]
    return JSONResponse({"items": items, "total": total, "limit": limit, "offset": offset})


@endpoint
@describe(SIGMALAB, answers={201: ModelCreated}, body=CreateModel)
async def create_model(request: Request) -> Response:
    """Create a model from a template; its id names the ticker, asset, horizon and frequency."""
    identity = require_identity(request)
    spec = await body_of(request, CreateModel)
    row = await research(request).create_model(identity, spec)
    return JSONResponse(
        {"model_id": row["model_id"], "pack_id": row["pack_id"],
         "created_at": iso(row["created_at"]), "status": "created"},
        status_code=201,
    )  # fmt: skip


@endpoint
@describe(SIGMALAB, answers={200: ModelDetail}, errors=[404], path=ModelPath)
async def get_model(request: Request) -> Response:
    """A model's config, its best backtest's metrics and its lineage."""
    require_identity(request)
    service = research(request)
    model_id = request.path_params["model_id"]
    row = await service.get_model(model_id)
    return JSONResponse(reads.model_document(row, await service.model_summary(model_id)))


# -- the pipeline ---------------------------------------------------------------------------


@endpoint
@describe(SIGMALAB, answers={200: Matrix}, errors=[403, 404], body=BuildMatrix)
async def build_matrix(request: Request) -> Response:
    """Features of the model's bars between the dates and the forward return, as Parquet."""
    identity = require_identity(request)
    spec = await body_of(request, BuildMatrix)
    return JSONResponse(await research(request).build_matrix(identity, spec))


@endpoint
@describe(SIGMALAB, answers={200: TrainQueued}, errors=[403, 404], body=Train)
async def train(request: Request) -> Response:
    """Queue a training job (LightGBM) on the matrix rows whose hour is allowed."""
    identity = require_identity(request)
    spec = await body_of(request, Train)
    return JSONResponse(await research(request).train(identity, spec))


@endpoint
@describe(SIGMALAB, answers={200: BacktestStarted}, errors=[403, 404], body=Backtest)
async def research_backtest(request: Request) -> Response:
    """Start a walk-forward backtest: each fold predicted by a model trained on the past."""
    identity = require_identity(request)
    spec = await body_of(request, Backtest)
    service = research(request)
    row = await service.backtest(identity, spec)
    job_id = None if row["job_id"] is None else str(row["job_id"])
    seconds = await service.backtest_estimate(row)
    eta = row["created_at"] + dt.timedelta(seconds=seconds)
    return JSONResponse(
        {"backtest_id": row["backtest_id"], "model_id": row["model_id"], "status": row["status"],
         "metrics": row["metrics"], "estimated_completion": iso(eta), "job_id": job_id,
         "queue_position": 0 if job_id is None else await service.queue_position(job_id)}
    )  # fmt: skip


@endpoint
@describe(SIGMALAB, answers={200: BacktestDetail}, errors=[404], path=BacktestPath)
async def get_research_backtest(request: Request) -> Response:
    """A research backtest: its status, and once completed its metrics and gate."""
    require_identity(request)
    row = await research(request).get_backtest(request.path_params["backtest_id"])
    return JSONResponse(reads.backtest_document(row))


@endpoint
@describe(SIGMALAB, answers={200: SweepState}, errors=[403, 404], body=Sweep)
async def run_sweep(request: Request) -> Response:
    """Sweep thresholds x allowed_hours x top_pct over a backtest's predictions, in chunks."""
    identity = require_identity(request)
    spec = await body_of(request, Sweep)
    return JSONResponse(await sweeps.create_sweep(research(request), identity, spec))


@endpoint
@describe(SIGMALAB, answers={200: SweepState}, errors=[404], path=SweepPath)
async def get_sweep(request: Request) -> Response:
    """A sweep's status and progress."""
    require_identity(request)
    return JSONResponse(await sweeps.get_sweep(research(request), request.path_params["sweep_id"]))


# -- leaderboard and exports ------------------------------------------------------------------


def board_filters(request: Request) -> tuple[dict[str, Any], str]:
    risk = text_param(request, "risk_profile", 20)
    if risk is not None and risk not in RISK_PROFILES:
        raise BadRequest(
            f"risk_profile must be one of {', '.join(RISK_PROFILES)}", field="risk_profile"
        )
    gate = text_param(request, "pass_gate", 5)
    if gate is not None and gate.lower() not in TRUE + FALSE:
        raise BadRequest(f"pass_gate must be true or false, got {gate!r}", field="pass_gate")
    filters = {
        "model_id": text_param(request, "model_id"),
        "pack_id": text_param(request, "pack_id", 64),
        "tag": text_param(request, "tag", 100),
        "risk_profile": risk,
        "pass_gate": None if gate is None else gate.lower() in TRUE,
    }
    return filters, text_param(request, "sort_by", 20) or "sharpe"


@endpoint
@describe(SIGMALAB, answers={200: Leaderboard}, query=LeaderboardQuery)
async def leaderboard(request: Request) -> Response:
    """Completed backtests ranked by a metric, each judged by its risk profile's gate."""
    require_identity(request)
    filters, sort_by = board_filters(request)
    limit, offset = page(request)
    items, total = await reads.leaderboard(research(request), filters, sort_by, limit, offset)
    return JSONResponse({"items": items, "total": total, "limit": limit, "offset": offset})


def check_format(request: Request) -> None:
    fmt = request.query_params.get("format", "csv")
    if fmt != "csv":
        raise BadRequest(f"format must be csv, got {fmt[:20]!r}", field="format")


@endpoint
@describe(
    SIGMALAB, answers={200: {"text/csv": BacktestCsv}}, errors=[404], path=BacktestPath,
    query=ExportQuery,
)  # fmt: skip
async def export_backtest(request: Request) -> Response:
    """A backtest's trades as CSV: timestamp, action, price, quantity, pnl, cumulative_pnl."""
    require_identity(request)
    check_format(request)
    backtest_id = request.path_params["backtest_id"]
    lines = await reads.export_backtest(research(request), backtest_id)
    return csv_answer(lines, f"{backtest_id}.csv")


@endpoint
@describe(
    SIGMALAB, answers={200: {"text/csv": LeaderboardCsv}}, query=LeaderboardExportQuery,
)  # fmt: skip
async def export_leaderboard(request: Request) -> Response:
    """The leaderboard (of a tag) as CSV, streamed page by page."""
    require_identity(request)
    check_format(request)
    filters, sort_by = board_filters(request)
    lines = await reads.export_leaderboard(research(request), filters, sort_by)
    return csv_answer(lines, f"leaderboard_{filters['tag'] or 'all'}.csv")


# -- health and admin -------------------------------------------------------------------------


@endpoint
@describe(SIGMALAB, answers={200: SystemHealth, 503: SystemHealth}, errors=[404], query=HealthQuery)
async def sigmalab_healthz(request: Request) -> Response:
    """Database, cache, worker queue and market data; with ticker, pack_id or model_id, theirs."""
    require_identity(request)
    service = research(request)
    parts = await reads.components(service)
    status = "healthy"
    if "unhealthy" in (parts["database"], parts["cache"]):
        status = "unhealthy"
    elif "healthy" != parts["worker_queue"] or parts["market_data"] != "healthy":
        status = "degraded"
    body: dict[str, Any] = {
        "status": status,
        "timestamp": iso(dt.datetime.now(dt.UTC).replace(microsecond=0)),
        "components": parts,
        "version": VERSION,
    }
    if (ticker := text_param(request, "ticker", 32)) is not None:
        body["ticker"] = await reads.ticker_health(service, ticker)
    if (pack_id := text_param(request, "pack_id", 64)) is not None:
        body["pack"] = await reads.pack_health(service, pack_id)
    if (model_id := text_param(request, "model_id")) is not None:
        body["model"] = await reads.model_health(service, model_id)
    return JSONResponse(body, status_code=503 if status == "unhealthy" else 200)


@endpoint
@describe(SIGMALAB, answers={200: ModelDetail}, errors=[403, 404], path=ModelPath, body=PatchModel)
async def patch_model(request: Request) -> Response:
    """Change a model's config, name, risk profile or activity (admin only)."""
    identity = require_identity(request)
    service = research(request)
    if not identity.is_admin:
        from hub.errors import Forbidden

        raise Forbidden("admin role required")
    spec = await body_of(request, PatchModel)
    row = await admin.patch_model(service, identity, request.path_params["model_id"], spec)
    return JSONResponse(reads.model_document(row, await service.model_summary(row["model_id"])))


@endpoint
@describe(SIGMALAB, answers={200: ModelDeleted}, errors=[403, 404], path=ModelPath)
async def delete_model(request: Request) -> Response:
    """Delete a model and its artifacts (admin only)."""
    identity = require_identity(request)
    return JSONResponse(
        await admin.delete_model(research(request), identity, request.path_params["model_id"])
    )


def routes() -> list[BaseRoute]:
    return [
        Route("/api/v1/templates", list_templates, methods=["GET"]),
        Route("/api/v1/models", list_models, methods=["GET"]),
        Route("/api/v1/models", create_model, methods=["POST"]),
        Route("/api/v1/models/{model_id}", get_model, methods=["GET"]),
        Route("/api/v1/build_matrix", build_matrix, methods=["POST"]),
        Route("/api/v1/train", train, methods=["POST"]),
        Route("/api/v1/backtest", research_backtest, methods=["POST"]),
        Route("/api/v1/backtest/{backtest_id}", get_research_backtest, methods=["GET"]),
        Route("/api/v1/backtest_sweep", run_sweep, methods=["POST"]),
        Route("/api/v1/backtest_sweep/{sweep_id}", get_sweep, methods=["GET"]),
        Route("/api/v1/leaderboard", leaderboard, methods=["GET"]),
        Route("/api/v1/export/backtest/{backtest_id}", export_backtest, methods=["GET"]),
        Route("/api/v1/export/leaderboard", export_leaderboard, methods=["GET"]),
        Route("/api/v1/healthz", sigmalab_healthz, methods=["GET"]),
        Route("/api/v1/admin/models/{model_id}", patch_model, methods=["PATCH"]),
        Route("/api/v1/admin/models/{model_id}", delete_model, methods=["DELETE"]),
    ]
