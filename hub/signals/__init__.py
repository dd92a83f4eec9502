"""Signals: each active, trained research model judges every new closed bar of its ticker and
emits BUY and SELL signals on ``signals:{model_id}`` (hub/signals/engine.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hub.domains import Domain
from hub.signals import gql
from hub.signals.service import SignalService
from hub.signals.topics import TOPICS

if TYPE_CHECKING:
    from hub.domains import Resources


async def start(resources: Resources) -> None:
    """Workers run the evaluator (one holds its lease at a time)."""
    if resources.role != "worker" or not resources.settings.signals_enabled:
        return
    from hub.signals.engine import SignalEngine

    service: SignalService = resources.service("signals")
    service.engine = SignalEngine(resources)
    await service.engine.start()


async def stop(resources: Resources) -> None:
    service: SignalService = resources.service("signals")
    if service.engine is not None:
        await service.engine.stop()
        service.engine = None


domain = Domain(
    name="signals",
    service=SignalService,
    topics=TOPICS,
    query=gql.Query,
    subscription=gql.Subscription,
    start=start,
    stop=stop,
)
