"""The Executions family (seed 003) under ``/api/trading/executions/{id}/...``: ``{"error"}`` errors.

Seed 003 shows a checkpoint's metrics as strings with two decimals ("12.50"); the domain keeps
numbers, and this module formats them. A metric with no value yet (no trades: win rate, average
win and loss, profit factor; no variance: Sharpe and Sortino; no drawdown: Calmar) is "0.00",
as a checkpoint before the first trade reads; an infinite one (a profit factor with no losing
trade) is "0.00" too, since seed 003's strings are always fixed-point decimals. A live run is a
``trading`` task, and whole units are integers (``"units": 1000``), as the seed shows them.
"""

from __future__ import annotations

import math
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hub.errors import BadRequest
from hub.executions.documents import COUNT_METRICS, VALUE_METRICS, trade_doc_from_row
from hub.executions.model import Direction, EventType
from hub.http import JSONResponse, query_int, require_identity
from hub.jsonnum import whole
from hub.openapi import ErrorStatus, describe
from hub.times import iso, iso_ns, ns_of
from rest.errors import EXECUTIONS
from rest.models import (
    Equity,
    EquityQuery,
    Events,
    EventsQuery,
    ExecutionPath,
    ExecutionState,
    LatestMetrics,
    Trades,
    TradesQuery,
)
from rest.paging import page_of, query_datetime

BASE = "/api/trading/executions/{execution_id}"
# Seed 003's task types are `backtest` and `trading` (live trading); the domain (and GraphQL's
# `taskType`) names a live run's task `live`.
SEED_TASK_TYPES = {"live": "trading"}
_OWNED: list[ErrorStatus] = [403, 404]  # another user's execution; none with that id


async def _execution(request: Request) -> Any:
    identity = require_identity(request)
    return await request.state.executions.get(identity, request.path_params["execution_id"])


def fixed2(value: float | None) -> str:
    """A metric as seed 003's checkpoint shows it: two decimals ("12.50"); "0.00" when it has
    no (finite) value."""
    if value is None or not math.isfinite(value):
        return "0.00"
    return f"{value:.2f}"


def checkpoint_body(doc: dict[str, Any] | None) -> dict[str, Any] | None:
    """Seed 003's checkpoint object from the domain's checkpoint document."""
    if doc is None:
        return None
    body: dict[str, Any] = {"id": doc["id"], "processed": doc["processed"]}
    for key in VALUE_METRICS[:4]:
        body[key] = fixed2(doc[key])
    for key in COUNT_METRICS:
        body[key] = doc[key]
    for key in VALUE_METRICS[4:]:
        body[key] = fixed2(doc[key])
    body["created_at"] = doc["created_at"]
    return body


def seed_task_type(task_type: str) -> str:
    """The task type as seed 003 names it: a live run is a ``trading`` task."""
    return SEED_TASK_TYPES.get(task_type, task_type)


def _event(raw: bytes | str) -> Any:
    event = orjson.loads(raw)
    if isinstance(event, dict) and "units" in event:
        event["units"] = whole(event["units"])
    return event


def _trade(row: Any) -> dict[str, Any]:
    trade = trade_doc_from_row(row)
    trade["units"] = whole(trade["units"])
    return trade


def status_body(doc: dict[str, Any]) -> dict[str, Any]:
    """Seed 003's execution status from the domain's status document."""
    return {
        **doc,
        "task_type": seed_task_type(doc["task_type"]),
        "checkpoint": checkpoint_body(doc["checkpoint"]),
    }


def _header(row: Any) -> dict[str, Any]:
    return {
        "execution_id": row["execution_id"],
        "task_type": seed_task_type(row["task_type"]),
        "task_id": row["task_id"],
    }


@describe(EXECUTIONS, answers={200: ExecutionState}, errors=_OWNED, path=ExecutionPath)
async def execution_status(request: Request) -> Response:
    """Get execution status: current status and the latest metrics checkpoint."""
    row = await _execution(request)
    return JSONResponse(status_body(await request.state.executions.status_document(row)))


@describe(EXECUTIONS, answers={200: Events}, errors=_OWNED, path=ExecutionPath, query=EventsQuery)
async def execution_events(request: Request) -> Response:
    """Get execution events, incrementally by ``since_sequence`` and filtered by ``event_type``."""
    row = await _execution(request)
    since = query_int(request, "since_sequence", 0, minimum=0)
    event_type = request.query_params.get("event_type") or None
    if event_type is not None and event_type not in set(EventType):
        raise BadRequest(
            f"event_type must be one of {', '.join(EventType)}, got {event_type!r}",
            field="event_type",
        )
    page = page_of(request, default_size=1000, max_size=1000)
    rows, count = await request.state.executions.events_page(
        row["execution_id"], since=since, event_type=event_type, limit=page.size, offset=page.offset
    )
    events = [
        {
            "sequence": r["sequence"],
            "event_type": r["event_type"],
            "strategy_type": r["strategy_type"],
            "timestamp": iso_ns(ns_of(r["ts"])),
            "event": _event(r["event"]),
            "created_at": iso(r["created_at"]),
        }
        for r in rows
    ]
    next_url, previous = page.links(request, count)
    return JSONResponse(
        {**_header(row), "events": events, "count": count, "next": next_url, "previous": previous}
    )


@describe(EXECUTIONS, answers={200: Trades}, errors=_OWNED, path=ExecutionPath, query=TradesQuery)
async def execution_trades(request: Request) -> Response:
    """Get execution trades, incrementally by ``since_sequence``, by instrument and direction."""
    row = await _execution(request)
    since = query_int(request, "since_sequence", 0, minimum=0)
    direction = request.query_params.get("direction") or None
    if direction is not None and direction not in set(Direction):
        raise BadRequest(
            f"direction must be 'long' or 'short', got {direction!r}", field="direction"
        )
    instrument = request.query_params.get("instrument") or None
    page = page_of(request, default_size=1000, max_size=1000)
    rows, count = await request.state.executions.trades_page(
        row["execution_id"],
        since=since,
        instrument=instrument,
        direction=direction,
        limit=page.size,
        offset=page.offset,
    )
    trades = [
        {
            "sequence": r["sequence"],
            "trade": _trade(r),
            "created_at": iso(r["created_at"]),
        }
        for r in rows
    ]
    next_url, previous = page.links(request, count)
    return JSONResponse(
        {**_header(row), "trades": trades, "count": count, "next": next_url, "previous": previous}
    )


@describe(EXECUTIONS, answers={200: Equity}, errors=_OWNED, path=ExecutionPath, query=EquityQuery)
async def execution_equity(request: Request) -> Response:
    """Get the equity curve: incremental, by time range, downsampled to ``max_points``."""
    row = await _execution(request)
    since = query_int(request, "since_sequence", 0, minimum=0)
    start, end = query_datetime(request, "start_time"), query_datetime(request, "end_time")
    if start is not None and end is not None and end < start:
        raise BadRequest("end_time must not be before start_time", field="end_time")
    max_points = (
        query_int(request, "max_points", 0, minimum=2, maximum=1_000_000)
        if request.query_params.get("max_points")
        else None
    )
    page = page_of(request, default_size=500, max_size=1000)
    seq, ts, balance = await request.state.executions.equity(
        row["execution_id"],
        since=since,
        start_ns=None if start is None else ns_of(start),
        end_ns=None if end is None else ns_of(end),
        max_points=max_points,
    )
    # Seed 003: set only "if downsampling was applied". Equity sequences have no gaps, so
    # points were dropped exactly when the sequences span more than the points returned.
    granularity = None
    if max_points is not None and len(ts) > 1 and int(seq[-1] - seq[0]) + 1 > len(seq):
        granularity = round(float(ts[-1] - ts[0]) / 1e9 / (len(ts) - 1), 3)
    count = len(seq)
    window = slice(page.offset, page.offset + page.size)
    points = [
        {"sequence": s, "timestamp": iso_ns(t), "balance": b}
        for s, t, b in zip(
            seq[window].tolist(), ts[window].tolist(), balance[window].tolist(), strict=True
        )
    ]
    next_url, previous = page.links(request, count)
    return JSONResponse(
        {
            **_header(row),
            "equity_curve": points,
            "count": count,
            "next": next_url,
            "previous": previous,
            "granularity_seconds": granularity,
        }
    )


@describe(EXECUTIONS, answers={200: LatestMetrics}, errors=_OWNED, path=ExecutionPath)
async def latest_metrics(request: Request) -> Response:
    """Get the latest metrics checkpoint."""
    row = await _execution(request)
    doc = await request.state.executions.status_document(row)
    checkpoint = doc["checkpoint"]
    return JSONResponse(
        {
            **_header(row),
            "has_checkpoint": checkpoint is not None,
            "checkpoint": checkpoint_body(checkpoint),
        }
    )


def routes() -> list[BaseRoute]:
    wrap = EXECUTIONS.endpoint
    return [
        Route(f"{BASE}/status/", wrap(execution_status), methods=["GET"]),
        Route(f"{BASE}/events/", wrap(execution_events), methods=["GET"]),
        Route(f"{BASE}/trades/", wrap(execution_trades), methods=["GET"]),
        Route(f"{BASE}/equity/", wrap(execution_equity), methods=["GET"]),
        Route(f"{BASE}/metrics/latest/", wrap(latest_metrics), methods=["GET"]),
    ]
