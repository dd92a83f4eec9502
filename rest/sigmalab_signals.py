"""Sigma Lab's signals (seed 001) under ``/api/v1``: ``GET /signals`` and
``GET /signals/leaderboard``. Errors as ``{"error": {code, message, details}, "request_id"}``."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Literal

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hub.errors import BadRequest
from hub.http import JSONResponse, query_int, require_identity
from hub.openapi import describe
from hub.times import checked_ns, iso
from rest.errors import SIGMALAB

endpoint = SIGMALAB.endpoint
MAX_LIMIT = 500


class SignalsQuery(BaseModel):
    model_id: str | None = Field(None, description="one model's signals")
    start: str | None = Field(None, description="a date (whole day) or ISO 8601 time: bars from")
    end: str | None = Field(None, description="a date (whole day included) or ISO 8601 time")
    status: Literal["active", "filled", "cancelled"] | None = None
    limit: int = Field(50, ge=1, le=MAX_LIMIT)
    offset: int = Field(0, ge=0)


class SignalOut(BaseModel):
    signal_id: str
    model_id: str
    ticker: str
    action: Literal["BUY", "SELL"]
    quantity: float
    price: float = Field(description="the close of the bar the model judged")
    timestamp: str = Field(description="when that bar closed (ISO 8601, UTC)")
    status: Literal["active", "filled", "cancelled"]
    confidence: float
    expected_return: float | None
    realized_return: float | None = Field(
        description="once ended: the ticker's return since, signed by the action"
    )
    bar_start: str
    timeframe: str
    version_id: str | None


class SignalsPage(BaseModel):
    items: list[SignalOut]
    total: int
    limit: int
    offset: int


class LeaderboardQuery(BaseModel):
    pack: str | None = Field(None, description="a pack id: swingsigma, zerosigma...")
    risk_profile: Literal["Conservative", "Balanced", "Aggressive"] | None = None
    start: str | None = None
    end: str | None = None


class LiveMetrics(BaseModel):
    total_signals: int
    resolved_signals: int = Field(description="signals that ended (filled or cancelled)")
    success_rate: float | None = Field(description="ended signals that gained / ended signals")
    avg_return: float | None
    sharpe_live: float | None


class Period(BaseModel):
    start: str | None
    end: str | None


class LeaderboardItem(BaseModel):
    model_id: str
    pack_id: str
    risk_profile: str
    metrics: LiveMetrics
    period: Period


class SignalsLeaderboard(BaseModel):
    items: list[LeaderboardItem]


def _bound(request: Request, name: str) -> tuple[datetime | None, bool]:
    """A query bound as a time, and whether it was a bare date."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None, False
    try:
        if len(raw) == 10:
            return datetime.combine(date.fromisoformat(raw), time(), tzinfo=UTC), True
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise BadRequest(
            f"{name} must be a date (2024-01-15) or an ISO 8601 time, got {raw[:40]!r}",
            field=name,
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    checked_ns(value, name)
    return value, False


def _window(request: Request) -> tuple[datetime | None, datetime | None]:
    start, _ = _bound(request, "start")
    end, end_is_date = _bound(request, "end")
    if end is not None and end_is_date:
        end += timedelta(days=1)  # a date as the end includes that day
    return start, end


@endpoint
@describe(SIGMALAB, answers={200: SignalsPage}, query=SignalsQuery, tag="signals")
async def list_signals(request: Request) -> Response:
    """Research models' signals, newest first (by the bar each was judged on)."""
    require_identity(request)
    start, end = _window(request)
    limit = query_int(request, "limit", 50, minimum=1, maximum=MAX_LIMIT)
    offset = query_int(request, "offset", 0, minimum=0, maximum=10_000_000)
    params = request.query_params
    items, total = await request.state.signals.find(
        model_id=params.get("model_id") or None,
        status=params.get("status") or None,
        start=start,
        end=end,
        limit=limit,
        offset=offset,
    )
    return JSONResponse({"items": items, "total": total, "limit": limit, "offset": offset})


@endpoint
@describe(SIGMALAB, answers={200: SignalsLeaderboard}, query=LeaderboardQuery, tag="signals")
async def signals_leaderboard(request: Request) -> Response:
    """Models ranked by how their live signals did on the bars that followed them."""
    require_identity(request)
    start, end = _window(request)
    params = request.query_params
    items = await request.state.signals.leaderboard(
        pack=params.get("pack") or None,
        risk_profile=params.get("risk_profile") or None,
        start=start,
        end=end,
    )
    period = {"start": params.get("start") or iso(start), "end": params.get("end") or None}
    return JSONResponse({"items": [{**item, "period": period} for item in items]})


def routes() -> list[BaseRoute]:
    return [
        Route("/api/v1/signals", list_signals, methods=["GET"]),
        Route("/api/v1/signals/leaderboard", signals_leaderboard, methods=["GET"]),
    ]
