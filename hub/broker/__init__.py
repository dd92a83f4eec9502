"""The broker domain: paper accounts, orders matched against the hub's market data, netted
positions and balances, streamed on ``account:{id}:orders|positions|balances``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hub.broker import gql
from hub.broker.service import BrokerService
from hub.broker.topics import TOPICS
from hub.domains import Domain

if TYPE_CHECKING:
    from hub.domains import Resources


async def start(resources: Resources) -> None:
    """A hub (which reads the bus) runs the matchers; a worker or CLI only places and reads."""
    if resources.role != "hub":
        return
    from hub.broker.matcher import Matchers

    service: BrokerService = resources.service("broker")
    service.matchers = Matchers(resources, service)
    await service.matchers.start()


async def stop(resources: Resources) -> None:
    service: BrokerService = resources.service("broker")
    if service.matchers is not None:
        await service.matchers.stop()
        service.matchers = None
    await service.close()


domain = Domain(
    name="broker",
    service=BrokerService,
    topics=TOPICS,
    query=gql.Query,
    mutation=gql.Mutation,
    subscription=gql.Subscription,
    start=start,
    stop=stop,
)
