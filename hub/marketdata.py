"""Market data topics (``ticks:{symbol}``): recent-only history in Redis, readable by any user."""

from __future__ import annotations

from typing import Any

from hub.auth import Identity
from hub.bus import Bus
from hub.topics import Access, Topic, TopicFamily, TopicRegistry, parse_topic


class AnyUser:
    async def access(self, identity: Identity, topic: Topic) -> Access:
        return Access.ALLOWED


def register(registry: TopicRegistry) -> None:
    registry.register("ticks", TopicFamily(authorizer=AnyUser()))


def tick_topic(symbol: str) -> str:
    return parse_topic(f"ticks:{symbol}").name


async def publish_tick(bus: Bus, symbol: str, tick: dict[str, Any]) -> tuple[int, str]:
    """Publish one tick (``ts`` in ns, ``price``, ``size``...); returns (seq, epoch)."""
    return await bus.publish_recent(tick_topic(symbol), {"symbol": symbol, **tick})
