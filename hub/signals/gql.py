"""GraphQL for signals: the ``signals`` query and the ``signals(modelId, sinceSequence)``
subscription."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime
from functools import partial
from typing import Any

import strawberry
from strawberry.types import Info

from hub.errors import BadRequest
from hub.gql.context import Context
from hub.gql.cost import rows
from hub.gql.streams import stream_topic
from hub.signals.engine import signals_topic
from hub.subscription import Event
from hub.times import parse_iso

MAX_LIMIT = 500


@strawberry.type(description="A research model's signal (Sigma Lab's signal object).")
class Signal:
    signal_id: strawberry.ID
    model_id: str
    ticker: str
    action: str = strawberry.field(description="BUY or SELL")
    quantity: float
    price: float = strawberry.field(description="the close of the bar it was judged on")
    timestamp: datetime = strawberry.field(description="when that bar closed")
    status: str = strawberry.field(description="active, filled or cancelled")
    confidence: float
    expected_return: float | None
    realized_return: float | None = strawberry.field(
        description="once it ended: the ticker's return since, signed by the action"
    )

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> Signal:
        return cls(
            signal_id=strawberry.ID(doc["signal_id"]),
            model_id=doc["model_id"],
            ticker=doc["ticker"],
            action=doc["action"],
            quantity=doc["quantity"],
            price=doc["price"],
            timestamp=parse_iso(doc["timestamp"]),  # type: ignore[arg-type]
            status=doc["status"],
            confidence=doc["confidence"],
            expected_return=doc["expected_return"],
            realized_return=doc["realized_return"],
        )


@strawberry.type
class SignalPage:
    items: list[Signal]
    total: int


@strawberry.type(description="One event of signals:{modelId}.")
class SignalEvent:
    sequence: int
    event: str = strawberry.field(description="signal.generated, signal.filled or signal.cancelled")
    signal: Signal


async def resolve_signals(
    info: Info[Context, None],
    model_id: str | None = None,
    status: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int = 50,
    offset: int = 0,
) -> SignalPage:
    ctx = info.context
    ctx.require_identity()
    if not 1 <= limit <= MAX_LIMIT:
        raise BadRequest(f"limit must be between 1 and {MAX_LIMIT}, got {limit}", field="limit")
    if offset < 0:
        raise BadRequest(f"offset must not be negative, got {offset}", field="offset")
    docs, total = await ctx.state.signals.find(
        model_id=model_id, status=status, start=start, end=end, limit=limit, offset=offset
    )
    return SignalPage(items=[Signal.from_document(d) for d in docs], total=total)


async def signals(
    info: Info[Context, None], model_id: str, since_sequence: int | None = None
) -> AsyncGenerator[SignalEvent, None]:
    """Every signal event of the model, in order, from ``sinceSequence`` (exclusive), then live."""
    async for event in stream_topic(info, signals_topic(model_id), since_sequence):
        yield event.memo("signals", partial(_signal_event, event))


def _signal_event(event: Event) -> SignalEvent:
    doc = event.data()
    return event.keyed(
        SignalEvent(sequence=event.seq, event=doc["event"], signal=Signal.from_document(doc))
    )


@strawberry.type
class Query:
    signals: SignalPage = strawberry.field(
        resolver=resolve_signals,
        description="Research models' signals, newest first.",
        metadata=rows("limit", 50),
    )


@strawberry.type
class Subscription:
    signals: SignalEvent = strawberry.subscription(resolver=signals)  # type: ignore[assignment]
