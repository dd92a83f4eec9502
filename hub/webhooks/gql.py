"""GraphQL for webhooks: ``webhooks``, ``createWebhook``, ``deleteWebhook`` (the same service as
Sigma Lab's REST routes; the secret goes in and never comes out)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from strawberry.types import Info

from hub.errors import BadRequest, fields_named
from hub.gql.context import Context
from hub.gql.cost import rows

MAX_LIMIT = 1000
FIELDS = {"webhook_id": "webhookId"}


@strawberry.type(description="An endpoint the caller's events are posted to, signed.")
class Webhook:
    webhook_id: strawberry.ID
    url: str
    events: list[str] = strawberry.field(
        description="backtest.completed, signal.generated and/or sweep.completed"
    )
    created_at: datetime

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> Webhook:
        return cls(
            webhook_id=strawberry.ID(doc["webhook_id"]),
            url=doc["url"],
            events=list(doc["events"]),
            created_at=datetime.fromisoformat(doc["created_at"]),
        )


async def resolve_webhooks(
    info: Info[Context, None], limit: int = 100, offset: int = 0
) -> list[Webhook]:
    identity = info.context.require_identity()
    if not 1 <= limit <= MAX_LIMIT:
        raise BadRequest(f"limit must be between 1 and {MAX_LIMIT}, got {limit}", field="limit")
    if offset < 0:
        raise BadRequest(f"offset must not be negative, got {offset}", field="offset")
    page = await info.context.state.webhooks.list_for(identity, limit, offset)
    return [Webhook.from_document(doc) for doc in page["items"]]


async def create_webhook(
    info: Info[Context, None], url: str, events: list[str], secret: str
) -> Webhook:
    identity = info.context.require_identity()
    doc = await info.context.state.webhooks.create(identity, url, events, secret)
    return Webhook.from_document(doc)


async def delete_webhook(info: Info[Context, None], webhook_id: strawberry.ID) -> bool:
    identity = info.context.require_identity()
    with fields_named(FIELDS):
        await info.context.state.webhooks.delete(identity, str(webhook_id))
    return True


@strawberry.type
class Query:
    webhooks: list[Webhook] = strawberry.field(
        resolver=resolve_webhooks,
        description="The caller's webhooks, oldest first (never their secrets).",
        metadata=rows("limit", 100),
    )


@strawberry.type
class Mutation:
    create_webhook: Webhook = strawberry.mutation(
        resolver=create_webhook,
        description="Register a webhook: events are posted to url, signed with secret "
        "(HMAC-SHA256; see the README). The url must resolve to public addresses.",
    )
    delete_webhook: bool = strawberry.mutation(
        resolver=delete_webhook,
        description="Delete a webhook with its deliveries (its owner or an admin).",
    )
