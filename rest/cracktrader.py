"""Cracktrader (seed 004) under ``/api/v1``: errors as ``{"error": {code, message, details}}``.

Cracktrader is a single runner: ``/status``, ``/run/stop``, ``/results`` and ``/run/reset`` act
on the caller's current run. Its ``run_id`` is the execution id, so the same run is readable
through the Executions family and GraphQL.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hub import health
from hub.errors import BadRequest, NotFound, fields_named
from hub.executions.documents import trade_doc_from_row
from hub.executions.livestart import check_strategy
from hub.executions.model import ACTIVE, BacktestRequest, LiveRequest
from hub.http import JSONResponse, read_json_object, require_identity
from hub.openapi import describe
from hub.secretbox import seal
from hub.times import iso, iso_ns
from rest.errors import CRACKTRADER
from rest.executions import checkpoint_body
from rest.models import (
    CracktraderHealth,
    DetailedStatus,
    Exchanges,
    Results,
    RunAnswer,
    RunStatus,
    Strategies,
)

endpoint = CRACKTRADER.endpoint

# BacktestRequest fields stored as they are, by the execution's column.
CONFIG_COLUMNS = {
    "strategy_name": "strategy",
    "strategy_params": "params",
    "timeframe": "timeframe",
    "exchange": "exchange",
    "options": "options",
}

# The paper account a caller's Cracktrader live runs trade on (one per user, by this name).
RUNNER_ACCOUNT = "cracktrader"

# The domain's field names that seed 004's LiveTradingRequest names otherwise.
LIVE_FIELDS = {
    "strategy": "strategy_name",
    "params": "strategy_params",
    "symbol": "symbols",
    "initial_capital": "initial_cash",
}

# The domain's field names that seed 004's BacktestRequest names otherwise.
REQUEST_FIELDS = {
    "strategy": "strategy_name",
    "params": "strategy_params",
    "start": "start_date",
    "end": "end_date",
    "initial_capital": "initial_cash",
}


class BacktestBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    strategy_name: str
    strategy_params: dict[str, Any] = Field(default_factory=dict)
    symbols: list[str]
    timeframe: str
    start_date: datetime | None = None
    end_date: datetime | None = None
    initial_cash: float = 10_000.0
    exchange: str = ""
    # Not in seed 004: simulation options (fees, slippage, fill, direction, sizing, stops...).
    options: dict[str, Any] = Field(default_factory=dict)


class LiveBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    strategy_name: str
    strategy_params: dict[str, Any] = Field(default_factory=dict)
    symbols: list[str]
    timeframe: str
    exchange: str
    exchange_config: dict[str, Any] = Field(default_factory=dict)
    mode: Literal["paper", "live"]
    # Not in seed 004: the paper account's opening cash when this call creates it, and the
    # live run's options (direction, sizing, size, close_on_stop).
    initial_cash: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    options: dict[str, Any] = Field(default_factory=dict)


def parse(model: type[BaseModel], body: dict[str, Any]) -> Any:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "body"
        raise BadRequest(f"{field}: {first['msg']}", field=field) from None


async def _current(request: Request) -> Any:
    return await request.state.executions.current_run(require_identity(request))


def _status_body(request: Request, row: Any, checkpoint: Any) -> dict[str, Any]:
    if row is None:
        return {
            "run_id": None,
            "status": "idle",
            "mode": None,
            "start_time": None,
            "end_time": None,
            "runtime_seconds": None,
            "cash": None,
            "value": None,
            "pnl": None,
            "trade_count": 0,
            "error": None,
        }
    summary = request.state.executions.summary(row, checkpoint)
    return {
        "run_id": row["execution_id"],
        "status": row["status"],
        "mode": row["mode"],
        "start_time": iso(row["started_at"]),
        "end_time": iso(row["completed_at"]),
        "runtime_seconds": summary.runtime_seconds,
        "cash": summary.cash,
        "value": summary.value,
        "pnl": summary.pnl,
        "trade_count": summary.trade_count,
        "error": row["error_message"],
    }


async def _with_account(request: Request, row: Any, body: dict[str, Any]) -> dict[str, Any]:
    """A live run's cash, value and profit are its paper account's: cash, net liquidating value,
    and that value less the account's opening balance."""
    if row is None or row["task_type"] != "live" or row["account_id"] is None:
        return body
    identity = require_identity(request)
    balances = await request.state.broker.balances(identity, [row["account_id"]])
    if balances:
        doc = balances[0]
        body.update(
            cash=doc["cash"],
            value=doc["net_liquidating_value"],
            pnl=doc["net_liquidating_value"] - doc["initial_balance"],
        )
    return body


async def _checkpoint(request: Request, row: Any) -> dict[str, Any] | None:
    """Seed 003's checkpoint object, as Cracktrader's performance metrics."""
    if row is None:
        return None
    doc = await request.state.executions.status_document(row)
    return checkpoint_body(doc["checkpoint"])


@endpoint
@describe(CRACKTRADER, answers={200: CracktraderHealth}, public=True)
async def cracktrader_health(request: Request) -> Response:
    """Overall health with checks and metrics."""
    report = await health.check(request.state.pool, request.state.redis)
    metrics = {
        "uptime_seconds": int(time.monotonic() - request.state.started_at),
        "bus_connected": request.state.bus.connected,
        "local_subscribers": request.state.bus.local_subscriber_count(),
    }
    return JSONResponse(
        {
            "status": report.status,
            "checks": report.checks,
            "metrics": metrics,
            "timestamp": iso(datetime.now(UTC)),
        }
    )


@endpoint
@describe(CRACKTRADER, answers={200: RunStatus})
async def status(request: Request) -> Response:
    """Current run status."""
    row = await _current(request)
    checkpoint = (
        None
        if row is None
        else await request.state.executions.latest_checkpoint(row["execution_id"])
    )
    return JSONResponse(await _with_account(request, row, _status_body(request, row, checkpoint)))


async def _curve(request: Request, execution_id: int, points: int) -> list[dict[str, Any]]:
    _seq, ts, balance = await request.state.executions.equity(execution_id, max_points=points)
    return [
        {"timestamp": iso_ns(t), "value": b}
        for t, b in zip(ts.tolist(), balance.tolist(), strict=True)
    ]


async def _trades(
    request: Request, execution_id: int, limit: int, newest: bool
) -> list[dict[str, Any]]:
    service = request.state.executions
    if newest:
        rows = await service.newest_trades(execution_id, limit)
    else:
        rows, _ = await service.trades_page(execution_id, limit=limit, offset=0)
    return [{"sequence": r["sequence"], **trade_doc_from_row(r)} for r in rows]


@endpoint
@describe(CRACKTRADER, answers={200: DetailedStatus})
async def status_detailed(request: Request) -> Response:
    """Extended status: recent trades, equity curve, performance metrics, health."""
    row = await _current(request)
    checkpoint = (
        None
        if row is None
        else await request.state.executions.latest_checkpoint(row["execution_id"])
    )
    body = await _with_account(request, row, _status_body(request, row, checkpoint))
    report = await health.check(request.state.pool, request.state.redis)
    body.update(
        recent_trades=[]
        if row is None
        else await _trades(request, row["execution_id"], 10, newest=True),
        equity_curve=[] if row is None else await _curve(request, row["execution_id"], 200),
        performance_metrics=await _checkpoint(request, row),
        health={"status": report.status, "checks": report.checks},
    )
    return JSONResponse(body)


@endpoint
@describe(CRACKTRADER, answers={200: RunAnswer}, errors=[409, 429], body=BacktestBody)
async def run_backtest(request: Request) -> Response:
    """Start a backtest; ``run_id`` is the execution id."""
    identity = require_identity(request)
    body: BacktestBody = parse(BacktestBody, await read_json_object(request))
    with fields_named(REQUEST_FIELDS):
        execution = await request.state.executions.start_backtest(
            identity,
            BacktestRequest(
                strategy=body.strategy_name,
                params=body.strategy_params,
                symbols=body.symbols,
                timeframe=body.timeframe,
                start=body.start_date,
                end=body.end_date,
                initial_capital=body.initial_cash,
                exchange=body.exchange,
                options=body.options,
            ),
            as_current_run=True,
        )
    return JSONResponse(
        {
            "run_id": execution["execution_id"],
            "status": execution["status"],
            "message": f"backtest of {body.strategy_name} on {body.symbols[0]} {body.timeframe} started",
        }
    )


@endpoint
@describe(CRACKTRADER, answers={200: RunAnswer}, errors=[404, 409, 429], body=LiveBody)
async def run_live(request: Request) -> Response:
    """Start paper trading on the caller's Cracktrader paper account (created on first use with
    ``initial_cash``, 10,000 by default); ``run_id`` is the live execution's id. ``mode: live``
    is refused: no live broker adapter is configured."""
    identity = require_identity(request)
    body: LiveBody = parse(LiveBody, await read_json_object(request))
    if body.mode == "live":
        raise BadRequest(
            "no live broker adapter is configured on this hub, so mode 'live' cannot "
            "trade; use mode 'paper'",
            field="mode",
            details={"mode": "live"},
        )
    if len(body.symbols) != 1:
        raise BadRequest(
            f"symbols must name exactly one symbol for a live run, got {body.symbols!r}",
            field="symbols",
        )
    state = request.state
    with fields_named(LIVE_FIELDS):
        check_strategy(body.strategy_name, body.strategy_params)  # before an account is made
        account = await state.broker.runner_account(identity, RUNNER_ACCOUNT, body.initial_cash)
        execution = await state.executions.start_live(
            identity,
            LiveRequest(
                strategy=body.strategy_name,
                params=body.strategy_params,
                symbol=body.symbols[0],
                timeframe=body.timeframe,
                account_id=account["account_id"],
                exchange=body.exchange,
                options=body.options,
                exchange_secret=seal(state.settings, body.exchange_config),
            ),
            as_current_run=True,
        )
    return JSONResponse(
        {
            "run_id": execution["execution_id"],
            "status": execution["status"],
            "message": f"paper trading of {body.strategy_name} on {body.symbols[0]} "
            f"{body.timeframe} started on account {account['account_id']}",
        }
    )


@endpoint
@describe(CRACKTRADER, answers={200: RunAnswer}, errors=[404])
async def run_stop(request: Request) -> Response:
    """Stop the current run (at its next chunk)."""
    identity = require_identity(request)
    current = await _current(request)
    if current is None:
        raise NotFound("there is no current run to stop")
    row = await request.state.executions.stop(identity, current["execution_id"])
    status_name = row["status"] if row["status"] not in ACTIVE else "stopping"
    return JSONResponse(
        {
            "run_id": row["execution_id"],
            "status": status_name,
            "message": "stop requested" if status_name == "stopping" else f"run is {row['status']}",
        }
    )


@endpoint
@describe(CRACKTRADER, answers={200: RunAnswer}, errors=[409])
async def run_reset(request: Request) -> Response:
    """Reset the runner to idle (the run itself stays readable by its id)."""
    await request.state.executions.reset_current_run(require_identity(request))
    return JSONResponse({"run_id": None, "status": "idle", "message": "runner reset"})


@endpoint
@describe(CRACKTRADER, answers={200: Results}, errors=[404])
async def results(request: Request) -> Response:
    """Full results of the last run."""
    row = await _current(request)
    if row is None:
        raise NotFound("there is no run yet; start one with POST /api/v1/run/backtest")
    checkpoint = await request.state.executions.latest_checkpoint(row["execution_id"])
    summary = request.state.executions.summary(row, checkpoint)
    config = {name: row[column] for name, column in CONFIG_COLUMNS.items()}
    config.update(
        symbols=list(row["symbols"]),
        start_date=iso(row["start_at"]),
        end_date=iso(row["end_at"]),
        initial_cash=float(row["initial_capital"]),
    )
    return JSONResponse(
        {
            "run_id": row["execution_id"],
            "config": config,
            "status": row["status"],
            "start_time": iso(row["started_at"]),
            "end_time": iso(row["completed_at"]),
            "trades": await _trades(request, row["execution_id"], 100_000, newest=False),
            "equity_curve": await _curve(request, row["execution_id"], 1000),
            "performance_metrics": await _checkpoint(request, row),
            "final_value": summary.final_value,
            "error": row["error_message"],
        }
    )


@endpoint
@describe(CRACKTRADER, answers={200: Strategies})
async def strategies(request: Request) -> Response:
    """Available strategies with their parameter schema and defaults."""
    from engine.backtest import describe_strategies

    require_identity(request)
    return JSONResponse({"strategies": describe_strategies()})


EXCHANGES = [
    {
        "id": "binance",
        "name": "Binance",
        "sandbox": True,
        "notes": "Spot testnet at testnet.binance.vision; symbols like BTC/USDT.",
    },
    {"id": "bybit", "name": "Bybit", "sandbox": True, "notes": "Testnet at testnet.bybit.com."},
    {
        "id": "coinbase",
        "name": "Coinbase Advanced",
        "sandbox": True,
        "notes": "Sandbox with static test data.",
    },
    {
        "id": "kraken",
        "name": "Kraken",
        "sandbox": False,
        "notes": "No spot sandbox; futures demo only.",
    },
    {
        "id": "okx",
        "name": "OKX",
        "sandbox": True,
        "notes": "Demo trading with the x-simulated-trading header.",
    },
]


@endpoint
@describe(CRACKTRADER, answers={200: Exchanges})
async def exchanges(request: Request) -> Response:
    """Common exchanges and their sandbox notes. Backtests run on the hub's datasets whatever the
    exchange named; it is recorded with the run."""
    require_identity(request)
    return JSONResponse({"exchanges": EXCHANGES})


def routes() -> list[BaseRoute]:
    return [
        Route("/api/v1/health", cracktrader_health, methods=["GET"]),
        Route("/api/v1/status", status, methods=["GET"]),
        Route("/api/v1/status/detailed", status_detailed, methods=["GET"]),
        Route("/api/v1/run/backtest", run_backtest, methods=["POST"]),
        Route("/api/v1/run/live", run_live, methods=["POST"]),
        Route("/api/v1/run/stop", run_stop, methods=["POST"]),
        Route("/api/v1/run/reset", run_reset, methods=["DELETE"]),
        Route("/api/v1/results", results, methods=["GET"]),
        Route("/api/v1/strategies", strategies, methods=["GET"]),
        Route("/api/v1/exchanges", exchanges, methods=["GET"]),
    ]
