"""Market data: live ticks by symbol, with a bounded, epoch-stamped history in Redis."""

from __future__ import annotations

from hub.domains import Domain
from hub.marketdata import gql
from hub.marketdata.service import TOPICS, MarketDataService, publish_tick, tick_topic

domain = Domain(
    name="marketdata", service=MarketDataService, topics=TOPICS, subscription=gql.Subscription
)

__all__ = ["domain", "publish_tick", "tick_topic"]
