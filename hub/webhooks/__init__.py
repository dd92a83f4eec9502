"""Webhooks (Sigma Lab, seed 001): a user's endpoints for ``backtest.completed``,
``signal.generated`` and ``sweep.completed``, delivered signed by workers, retried with
backoff, every attempt logged."""

from __future__ import annotations

from hub.domains import Domain, Resources
from hub.webhooks import gql
from hub.webhooks.service import WebhookService
from hub.webhooks.tasks import tasks


async def start(resources: Resources) -> None:
    if resources.role == "worker":  # workers deliver, and queue again what was lost
        resources.service("webhooks").start_sweeping()


async def stop(resources: Resources) -> None:
    await resources.service("webhooks").stop()


domain = Domain(
    name="webhooks",
    service=WebhookService,
    query=gql.Query,
    mutation=gql.Mutation,
    tasks=tasks,
    start=start,
    stop=stop,
)
