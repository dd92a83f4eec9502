"""The bridge from a bus topic to a GraphQL subscription resolver."""

from __future__ import annotations

from collections.abc import AsyncIterator

from strawberry.types import Info

from hub.errors import BadRequest, Forbidden, HubError, NotFound
from hub.gql.context import Context
from hub.subscription import Event, SubscriptionClosed, SubscriptionError
from hub.topics import Access, UnknownTopic, parse_topic


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
        topic = parse_topic(topic_name)
        access = await ctx.state.topics.access(identity, topic)
    except UnknownTopic as exc:
        raise NotFound(str(exc)) from None
    if access is Access.NOT_FOUND:
        raise NotFound(f"no such topic {topic_name!r}")
    if access is Access.FORBIDDEN:
        raise Forbidden(f"topic {topic_name!r} belongs to another user")
    subscription = ctx.state.bus.subscribe(topic, since, epoch=epoch)
    try:
        try:
            await subscription.open()
        except SubscriptionError as exc:
            raise BadRequest(str(exc), field="sinceSequence") from None
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
