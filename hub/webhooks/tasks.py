"""The arq function workers run for webhook deliveries: one attempt per run, retried by arq
(``Retry``) after the service's backoff. A delivery needs no job row: its own row and its
attempts' log are its state."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from arq import Retry
from arq.worker import Function, func

from hub.webhooks.service import DELIVER_FUNCTION

if TYPE_CHECKING:
    from hub.settings import Settings


async def deliver_webhook(ctx: dict[str, Any], delivery_id: str) -> None:
    retry_in = await ctx["resources"].service("webhooks").deliver(delivery_id)
    if retry_in is not None:
        raise Retry(defer=retry_in)


def tasks(settings: Settings) -> list[Function]:
    # arq stops retrying past max_tries; the delivery's own count decides first, with room
    # for runs a dying worker interrupted.
    return [
        func(
            deliver_webhook,
            name=DELIVER_FUNCTION,
            max_tries=settings.webhook_max_attempts + 5,
            timeout=settings.webhook_timeout + 60,
            keep_result=0,
        )
    ]
