"""Market data: live ticks by symbol, with a bounded, epoch-stamped history in Redis, stored
in the ``ts`` schema (a table per symbol) and replayable from there or from a dataset."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hub.domains import Domain
from hub.marketdata import gql
from hub.marketdata.jobs import REPLAY
from hub.marketdata.replay import ReplayPayload
from hub.marketdata.service import TOPICS, MarketDataService, publish_tick, tick_topic

if TYPE_CHECKING:
    from starlette.routing import BaseRoute


def http_routes() -> list[BaseRoute]:
    # Imported when the app is built: workers load the domain without the HTTP side.
    from hub.marketdata import routes as http

    return http.routes()


domain = Domain(
    name="marketdata",
    service=MarketDataService,
    topics=TOPICS,
    jobs=(REPLAY,),
    mutation=gql.Mutation,
    subscription=gql.Subscription,
    routes=http_routes,
)

__all__ = ["ReplayPayload", "domain", "publish_tick", "tick_topic"]
