"""Long lists handed to GraphQL in slices, so that one big answer never holds the event loop.

graphql-core completes a list returned as an async iterator item by item; this one gives the
loop back every ``SLICE`` items, so other requests (and ``/healthz``) are served in between
while 100,000 candles are turned into a response.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import TypeVar, cast

T = TypeVar("T")
SLICE = 200


async def _slices(items: Sequence[T]) -> AsyncIterator[T]:
    for start in range(0, len(items), SLICE):
        if start:
            await asyncio.sleep(0)
        for item in items[start : start + SLICE]:
            yield item


def paced(items: Sequence[T]) -> list[T]:
    """``items`` for a list field's resolver: as they are when short, else as an async iterator
    that yields to the event loop between slices (typed as the list GraphQL declares)."""
    if len(items) <= SLICE:
        return list(items)
    return cast("list[T]", _slices(items))
