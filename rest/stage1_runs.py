"""Stage1 (seed 000): walk-forward runs, their predictions, simulations and their trades."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from hub.errors import BadRequest
from hub.http import JSONResponse, query_int, read_json_object, require_identity
from hub.jsonnum import whole
from hub.openapi import describe
from hub.runs.model import RunSpec, SimulationSpec
from rest.errors import STAGE1
from rest.stage1_models import (
    PAGE_MAX,
    TRADES_MAX,
    DatasetPath,
    PageQuery,
    PredictionsQuery,
    RunPath,
    RunSaved,
    RunsQuery,
    SimulationPath,
    SimulationSaved,
    SimulationsQuery,
    Stage1Predictions,
    Stage1PredictionsCsv,
    Stage1Run,
    Stage1Runs,
    Stage1Simulation,
    Stage1Simulations,
    Stage1Trades,
    TradesQuery,
)

M = TypeVar("M", bound=BaseModel)


def stage1_utc(value: datetime) -> str:
    """Stage1's run and simulation times: UTC seconds with Z ("2025-11-10T01:30:00Z")."""
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="seconds") + "Z"


async def body_of(request: Request, model: type[M]) -> M:
    """The JSON body as ``model``; the first thing wrong with it is a 400 naming the field."""
    data = await read_json_object(request)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "body"
        raise BadRequest(f"{field}: {first['msg']}", field=field) from None


def page_of(request: Request, *, default: int = 50, maximum: int = PAGE_MAX) -> tuple[int, int]:
    return (
        query_int(request, "limit", default, minimum=1, maximum=maximum),
        query_int(request, "offset", 0, minimum=0),
    )


def run_object(row: Any) -> dict[str, Any]:
    return {
        "run_id": str(row["run_id"]),
        "dataset_id": str(row["dataset_id"]),
        "fold_count": row["fold_count"],
        "features": list(row["features"]),
        "thresholds": list(row["thresholds"]),
        "created_at": stage1_utc(row["created_at"]),
    }


def simulation_object(row: Any) -> dict[str, Any]:
    return {
        "simulation_id": str(row["simulation_id"]),
        "run_id": str(row["run_id"]),
        "initial_capital": whole(row["initial_capital"]),
        "parameters": row["parameters"],
        "results": row["results"],
        "created_at": stage1_utc(row["created_at"]),
        "status": row["status"],
        "job_id": None if row["job_id"] is None else str(row["job_id"]),
    }


def trade_object(row: Any) -> dict[str, Any]:
    return {
        "trade_id": str(row["trade_id"]),
        "simulation_id": str(row["simulation_id"]),
        "bar_timestamp": row["bar_timestamp"],
        "side": row["side"],
        "size": row["size"],
        "entry_price": row["entry_price"],
        "exit_price": row["exit_price"],
        "pnl": row["pnl"],
        "return_pct": row["return_pct"],
        "metadata": row["metadata"],
    }


def _runs_answer(rows: list[Any]) -> Response:
    runs = [run_object(row) for row in rows]
    return JSONResponse({"runs": runs, "count": len(runs)})


def _query_text(request: Request, name: str) -> str | None:
    return request.query_params.get(name) or None


# -- runs ---------------------------------------------------------------------------------


@describe(STAGE1, answers={200: Stage1Runs}, errors=[404], path=DatasetPath, query=PageQuery)
async def list_dataset_runs(request: Request) -> Response:
    """List a dataset's walk-forward runs, newest first."""
    require_identity(request)
    limit, offset = page_of(request)
    rows = await request.state.runs.runs_of_dataset(
        request.path_params["dataset_id"], limit, offset
    )
    return _runs_answer(rows)


@describe(STAGE1, answers={200: Stage1Runs}, query=RunsQuery)
async def list_runs(request: Request) -> Response:
    """List walk-forward runs, newest first (of one dataset with dataset_id)."""
    require_identity(request)
    limit, offset = page_of(request)
    rows = await request.state.runs.list_runs(
        dataset_id=_query_text(request, "dataset_id"), limit=limit, offset=offset
    )
    return _runs_answer(rows)


@describe(STAGE1, answers={200: Stage1Run}, errors=[404], path=RunPath)
async def get_run(request: Request) -> Response:
    """Get a walk-forward run by ID."""
    require_identity(request)
    return JSONResponse(run_object(await request.state.runs.get_run(request.path_params["run_id"])))


@describe(STAGE1, answers={201: RunSaved}, errors=[409], body=RunSpec)
async def create_run(request: Request) -> Response:
    """Create a walk-forward run.

    Runs never change: creating the same run again answers 201 again, different values for
    a stored run_id are a 409.
    """
    identity = require_identity(request)
    spec = await body_of(request, RunSpec)
    row, _ = await request.state.runs.create_run(identity, spec)
    answer = {"success": True, "message": "Run created successfully", "run_id": str(row["run_id"])}
    return JSONResponse(answer, status_code=201)


@describe(
    STAGE1,
    answers={200: {"text/csv": Stage1PredictionsCsv, "application/json": Stage1Predictions}},
    errors=[404, 409],
    path=RunPath,
    query=PredictionsQuery,
)
async def run_predictions(request: Request) -> Response:
    """Stream a run's predictions as CSV (the default) or JSON.

    Read from the measurement ts.wf_<run_id with _ for -> a chunk at a time while it is sent,
    in time order; a run with no predictions stored answers the header alone (CSV) or an empty
    dataset (JSON).
    """
    require_identity(request)
    fmt = request.query_params.get("format") or "csv"
    chunks = await request.state.runs.prediction_stream(request.path_params["run_id"], fmt)
    media = "text/csv; charset=utf-8" if fmt == "csv" else "application/json"
    return StreamingResponse(chunks, media_type=media)


# -- simulations --------------------------------------------------------------------------


@describe(STAGE1, answers={200: Stage1Simulations}, query=SimulationsQuery)
async def list_simulations(request: Request) -> Response:
    """List simulations, newest first (of one run with run_id)."""
    require_identity(request)
    limit, offset = page_of(request)
    rows = await request.state.runs.list_simulations(
        run_id=_query_text(request, "run_id"), limit=limit, offset=offset
    )
    simulations = [simulation_object(row) for row in rows]
    return JSONResponse({"simulations": simulations, "count": len(simulations)})


@describe(STAGE1, answers={200: Stage1Simulation}, errors=[404], path=SimulationPath)
async def get_simulation(request: Request) -> Response:
    """Get a simulation by ID; results holds its metrics once it completed."""
    require_identity(request)
    row = await request.state.runs.get_simulation(request.path_params["simulation_id"])
    return JSONResponse(simulation_object(row))


@describe(STAGE1, answers={201: SimulationSaved}, errors=[409, 429], body=SimulationSpec)
async def create_simulation(request: Request) -> Response:
    """Create a simulation of a run and start it as a runs.simulate job.

    The engine's threshold strategy on the run's dataset bars that have a prediction, with the
    threshold and the simulator's options in parameters. Creating the same simulation again
    answers 201 and starts nothing; different values for a stored simulation_id are a 409.
    """
    identity = require_identity(request)
    spec = await body_of(request, SimulationSpec)
    row, _ = await request.state.runs.create_simulation(identity, spec)
    answer = {
        "success": True,
        "message": "Simulation created successfully",
        "simulation_id": str(row["simulation_id"]),
        "job_id": None if row["job_id"] is None else str(row["job_id"]),
    }
    return JSONResponse(answer, status_code=201)


@describe(STAGE1, answers={200: Stage1Trades}, errors=[404], path=SimulationPath, query=TradesQuery)
async def simulation_trades(request: Request) -> Response:
    """Get a simulation's trades, in entry order."""
    require_identity(request)
    limit, offset = page_of(request, default=1000, maximum=TRADES_MAX)
    rows = await request.state.runs.trades(request.path_params["simulation_id"], limit, offset)
    trades = [trade_object(row) for row in rows]
    return JSONResponse({"trades": trades, "count": len(trades)})


def routes() -> list[BaseRoute]:
    wrap = STAGE1.endpoint
    return [
        Route("/api/datasets/{dataset_id}/runs", wrap(list_dataset_runs), methods=["GET"]),
        Route("/api/runs", wrap(list_runs), methods=["GET"]),
        Route("/api/runs", wrap(create_run), methods=["POST"]),
        Route("/api/runs/{run_id}", wrap(get_run), methods=["GET"]),
        Route("/api/runs/{run_id}/predictions", wrap(run_predictions), methods=["GET"]),
        Route("/api/simulations", wrap(list_simulations), methods=["GET"]),
        Route("/api/simulations", wrap(create_simulation), methods=["POST"]),
        Route("/api/simulations/{simulation_id}", wrap(get_simulation), methods=["GET"]),
        Route("/api/simulations/{simulation_id}/trades", wrap(simulation_trades), methods=["GET"]),
    ]
