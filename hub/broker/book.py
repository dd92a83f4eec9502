"""A symbol's open orders, indexed so that a tick looks only at the orders it can touch.

Orders that every tick must see (market orders, IOC and FOK, limits that were marketable when
they arrived) are kept apart; resting limits and untriggered stops sit in four lists sorted so
that the ones a tick at price ``p`` reaches are a prefix: buy limits at or above ``p``, sell
limits at or below it, buy stops at or below it, sell stops at or above it. With thousands of
resting orders far from the market, a tick costs a few bisections, not a pass over the book.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterator

from hub.broker.matching import BookOrder
from hub.broker.model import OrderType, Side, TimeInForce

_STOPS = (OrderType.STOP, OrderType.STOP_LIMIT)


def _place(order: BookOrder) -> tuple[str, float] | None:
    """Which sorted list holds ``order`` and its key there (None: every tick sees it)."""
    if order.type is OrderType.MARKET or order.marketable:
        return None
    if order.time_in_force in (TimeInForce.IOC, TimeInForce.FOK):
        return None
    buy = order.side is Side.BUY
    if order.type in _STOPS and not order.triggered:
        assert order.stop_price is not None
        return ("buy_stops", order.stop_price) if buy else ("sell_stops", -order.stop_price)
    if order.type is OrderType.STOP:
        return None  # triggered, not yet filled: a market order now
    assert order.price is not None
    return ("buy_limits", -order.price) if buy else ("sell_limits", order.price)


class Book:
    def __init__(self) -> None:
        self.orders: dict[int, BookOrder] = {}
        self._every: set[int] = set()
        self._lists: dict[str, list[tuple[float, int]]] = {
            "buy_limits": [],
            "sell_limits": [],
            "buy_stops": [],
            "sell_stops": [],
        }
        self._where: dict[int, tuple[str, float] | None] = {}

    def __len__(self) -> int:
        return len(self.orders)

    def __iter__(self) -> Iterator[BookOrder]:
        return iter(list(self.orders.values()))

    def get(self, order_id: int) -> BookOrder | None:
        return self.orders.get(order_id)

    def put(self, order: BookOrder) -> None:
        """Add ``order``, or file it again after it changed (marketable, triggered, filled)."""
        self.remove(order.order_id)
        where = _place(order)
        self.orders[order.order_id] = order
        self._where[order.order_id] = where
        if where is None:
            self._every.add(order.order_id)
        else:
            bisect.insort(self._lists[where[0]], (where[1], order.order_id))

    def remove(self, order_id: int) -> None:
        if order_id not in self.orders:
            return
        del self.orders[order_id]
        where = self._where.pop(order_id)
        if where is None:
            self._every.discard(order_id)
            return
        entries = self._lists[where[0]]
        index = bisect.bisect_left(entries, (where[1], order_id))
        if index < len(entries) and entries[index] == (where[1], order_id):
            del entries[index]

    def reached(self, price: float) -> list[BookOrder]:
        """The orders a tick trading at ``price`` may fill or trigger, oldest first."""
        ids: set[int] | None = set(self._every) if self._every else None
        for name, threshold in (
            ("buy_limits", -price),
            ("sell_limits", price),
            ("buy_stops", price),
            ("sell_stops", -price),
        ):
            entries = self._lists[name]
            if not entries or entries[0][0] > threshold:
                continue  # the nearest order of this kind is out of reach: so are the rest
            end = bisect.bisect_right(entries, (threshold, math.inf))
            if ids is None:
                ids = set()
            ids.update(order_id for _, order_id in entries[:end])
        if ids is None:
            return []
        return [self.orders[i] for i in sorted(ids)]
