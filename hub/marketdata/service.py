"""Market data: ticks published on ``ticks:{symbol}``, a recent topic any user may read."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from hub.errors import BadRequest
from hub.topics import SYMBOL, AnyUser, TopicFamily, TopicKind, TopicSpec

if TYPE_CHECKING:
    from hub.bus import Bus
    from hub.domains import Resources

_SYMBOL = re.compile(SYMBOL)

TOPICS = (
    TopicSpec.of(
        "ticks",
        TopicKind.RECENT,
        rf"ticks:(?P<key>{SYMBOL})",
        lambda r: TopicFamily(authorizer=AnyUser()),
    ),
)


def tick_topic(symbol: str) -> str:
    if not isinstance(symbol, str) or _SYMBOL.fullmatch(symbol) is None:
        raise BadRequest(
            f"invalid symbol {symbol!r}: 1-32 letters, digits and / _ . : -", field="symbol"
        )
    return f"ticks:{symbol}"


async def publish_tick(bus: Bus, symbol: str, tick: dict[str, Any]) -> tuple[int, str]:
    """Publish one tick (``ts`` in ns, ``price``, ``size``...); returns (seq, epoch)."""
    return await bus.publish_recent(tick_topic(symbol), {"symbol": symbol, **tick})


class MarketDataService:
    def __init__(self, resources: Resources) -> None:
        self.bus = resources.bus

    async def publish_tick(self, symbol: str, tick: dict[str, Any]) -> tuple[int, str]:
        return await publish_tick(self.bus, symbol, tick)
