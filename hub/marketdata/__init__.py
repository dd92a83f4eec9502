"""Market data: live ticks by symbol, with a bounded, epoch-stamped history in Redis, stored
in the ``ts`` schema (a table per symbol) and replayable from there or from a dataset; and bars
built from them (``bars:{symbol}:{timeframe}``, stored in ``ts.live_bars``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hub.domains import Domain
from hub.marketdata import gql
from hub.marketdata.barstate import TOPICS as BAR_TOPICS
from hub.marketdata.jobs import REPLAY
from hub.marketdata.replay import ReplayPayload
from hub.marketdata.service import TOPICS, MarketDataService, publish_tick, tick_topic

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from hub.domains import Resources


def http_routes() -> list[BaseRoute]:
    # Imported when the app is built: workers load the domain without the HTTP side.
    from hub.marketdata import routes as http

    return http.routes()


async def start(resources: Resources) -> None:
    """A hub (which reads the bus) builds bars; a worker or CLI only asks for them."""
    if resources.role != "hub":
        return
    from hub.marketdata.aggregator import BarAggregators

    service: MarketDataService = resources.service("marketdata")
    service.bars = BarAggregators(resources, service.wishes)
    await service.bars.start()


async def stop(resources: Resources) -> None:
    service: MarketDataService = resources.service("marketdata")
    if service.bars is not None:
        await service.bars.stop()
        service.bars = None


domain = Domain(
    name="marketdata",
    service=MarketDataService,
    topics=(*TOPICS, *BAR_TOPICS),
    jobs=(REPLAY,),
    mutation=gql.Mutation,
    subscription=gql.Subscription,
    routes=http_routes,
    start=start,
    stop=stop,
)

__all__ = ["ReplayPayload", "domain", "publish_tick", "tick_topic"]
