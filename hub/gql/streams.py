"""The bridge from a bus topic to a GraphQL subscription resolver."""

from __future__ import annotations

from collections.abc import AsyncIterator

from strawberry.types import Info

from hub.errors import BadRequest, Forbidden, HubError, NotFound
from hub.gql.context import Context
from hub.sockets import TopicRefused, open_subscription
from hub.subscription import Event, SubscriptionClosed, SubscriptionError


class StreamInterrupted(HubError):
    status_code = 409
    code = "STREAM_INTERRUPTED"


async def stream_topic(
    info: Info[Context, None], topic_name: str, since: int | None, epoch: str | None = None
) -> AsyncIterator[Event]:
    """Check the caller may read ``topic_name``, then yield its events from ``since``.

    The bus subscription is closed whenever the resolver's generator is (client completes,
    connection drops), so nothing outlives the operation.
    """
    ctx = info.context
    identity = ctx.require_identity()
    try:
        subscription = await open_subscription(ctx.state, identity, topic_name, since, epoch)
    except TopicRefused as exc:
        raise (Forbidden if exc.code == "forbidden" else NotFound)(exc.message) from None
    except SubscriptionError as exc:
        raise BadRequest(str(exc), field="sinceSequence") from None
    try:
        if not subscription.recovered and subscription.missed is not None:
            first, last = subscription.missed
            span = (
                f"{first}..{last}"
                if last is not None
                else f"everything after {first - 1} (epoch {epoch})"
            )
            raise StreamInterrupted(
                f"history of {topic_name} no longer holds {span}; subscribe without sinceSequence",
                details={
                    "reason": "history_lost",
                    "missed_from": first,
                    "missed_to": last,
                    "epoch": subscription.epoch,
                },
            )
        try:
            async for event in subscription:
                yield event
        except SubscriptionClosed as closed:
            raise StreamInterrupted(
                f"{closed.reason}; resubscribe with sinceSequence={closed.last}",
                details={"reason": closed.code, "last_sequence": closed.last},
            ) from None
    finally:
        await subscription.aclose()
