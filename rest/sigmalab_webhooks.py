"""Sigma Lab's webhooks (seed 001) under ``/api/v1/webhooks``: register (url, events, secret),
list, delete, and read a webhook's deliveries with every attempt. Errors in Sigma Lab's format;
the secret is never answered."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hub.http import JSONResponse, query_int, read_json_object, require_identity
from hub.openapi import describe
from rest.errors import SIGMALAB

endpoint = SIGMALAB.endpoint
BASE = "/api/v1/webhooks"

Event = Literal["backtest.completed", "signal.generated", "sweep.completed"]


class WebhookRequest(BaseModel):
    url: str = Field(max_length=2048, description="http(s); must resolve to public addresses")
    events: list[Event] = Field(min_length=1)
    secret: str = Field(
        min_length=8, max_length=256, description="signs every delivery; never answered"
    )


class Webhook(BaseModel):
    webhook_id: str = Field(pattern=r"^wh_[0-9a-f]{16}$")
    url: str
    events: list[Event]
    created_at: datetime


class Paging(BaseModel):
    limit: int = Field(100, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=1_000_000_000)


class Webhooks(BaseModel):
    items: list[Webhook]
    total: int
    limit: int
    offset: int


class WebhookPath(BaseModel):
    webhook_id: str


class Attempt(BaseModel):
    attempt: int
    status_code: int | None = Field(description="the endpoint's answer; null when none came")
    error: str | None = Field(description="why it failed; null when delivered")
    duration_ms: float
    attempted_at: datetime


class Delivery(BaseModel):
    delivery_id: str
    event: Event
    status: Literal["pending", "delivered", "failed"]
    attempts: list[Attempt]
    next_attempt_at: datetime | None
    created_at: datetime
    completed_at: datetime | None


class Deliveries(BaseModel):
    items: list[Delivery]
    total: int
    limit: int
    offset: int


def _paging(request: Request) -> tuple[int, int]:
    limit = query_int(request, "limit", 100, minimum=1, maximum=1000)
    offset = query_int(request, "offset", 0, minimum=0, maximum=1_000_000_000)
    return limit, offset


@endpoint
@describe(SIGMALAB, answers={201: Webhook}, errors=[429], body=WebhookRequest, tag="webhooks")
async def create_webhook(request: Request) -> Response:
    """Register a webhook: events are posted to the URL, signed with the secret.

    The body of each delivery is `{event, timestamp, data, signature}`; `signature` and the
    `X-Signature-256` header are HMAC-SHA256 under the secret (see the README).
    """
    identity = require_identity(request)
    body = await read_json_object(request)
    webhook = await request.state.webhooks.create(
        identity, body.get("url"), body.get("events"), body.get("secret")
    )
    return JSONResponse(webhook, status_code=201)


@endpoint
@describe(SIGMALAB, answers={200: Webhooks}, errors=[429], query=Paging, tag="webhooks")
async def list_webhooks(request: Request) -> Response:
    """The caller's webhooks (never their secrets)."""
    identity = require_identity(request)
    limit, offset = _paging(request)
    return JSONResponse(await request.state.webhooks.list_for(identity, limit, offset))


@endpoint
@describe(SIGMALAB, answers={204: None}, errors=[403, 404, 429], path=WebhookPath, tag="webhooks")
async def delete_webhook(request: Request) -> Response:
    """Delete a webhook, its deliveries and their attempts (the owner or an admin)."""
    identity = require_identity(request)
    await request.state.webhooks.delete(identity, request.path_params["webhook_id"])
    return Response(status_code=204)


@endpoint
@describe(
    SIGMALAB,
    answers={200: Deliveries},
    errors=[403, 404, 429],
    path=WebhookPath,
    query=Paging,
    tag="webhooks",
)
async def webhook_deliveries(request: Request) -> Response:
    """A webhook's deliveries, newest first, each with every attempt (status code, error,
    duration)."""
    identity = require_identity(request)
    limit, offset = _paging(request)
    webhook_id = request.path_params["webhook_id"]
    return JSONResponse(
        await request.state.webhooks.deliveries(identity, webhook_id, limit, offset)
    )


def routes() -> list[BaseRoute]:
    return [
        Route(BASE, create_webhook, methods=["POST"]),
        Route(BASE, list_webhooks, methods=["GET"]),
        Route(f"{BASE}/{{webhook_id}}", delete_webhook, methods=["DELETE"]),
        Route(f"{BASE}/{{webhook_id}}/deliveries", webhook_deliveries, methods=["GET"]),
    ]
