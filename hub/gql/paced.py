"""Long answers built and encoded in slices, so that one big answer never holds the event loop.

graphql-core completes a list returned as an async iterator item by item; :func:`paced` gives
the loop back every ``SLICE`` items (building each slice's objects only then), so other requests
(and ``/healthz``) are served in between while 100,000 candles are turned into an answer.
:func:`encode` does the same for the JSON text of the answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, TypeVar, cast

import orjson

R = TypeVar("R")
T = TypeVar("T")
SLICE = 50  # items per slice: about a millisecond of work between turns of the loop
ENCODE_SLICE = 1_000  # list items per orjson call: about a millisecond of encoding


async def _slices(rows: Sequence[R], build: Callable[[R], T]) -> AsyncIterator[T]:
    for start in range(0, len(rows), SLICE):
        if start:
            await asyncio.sleep(0)
        for row in rows[start : start + SLICE]:
            yield build(row)


async def _built(count: int, build: Callable[[int, int], list[T]]) -> AsyncIterator[T]:
    for start in range(0, count, SLICE):
        if start:
            await asyncio.sleep(0)
        for item in build(start, min(count, start + SLICE)):
            yield item


def paced_slices(count: int, build: Callable[[int, int], list[T]]) -> list[T]:
    """Like :func:`paced` for ``count`` items that ``build(start, stop)`` makes a slice at a
    time (from column arrays, say), so nothing proportional to the whole answer runs at once."""
    if count <= SLICE:
        return build(0, count)
    return cast("list[T]", _built(count, build))


def paced(rows: Sequence[R], build: Callable[[R], T]) -> list[T]:
    """``build(row)`` for every row, for a list field's resolver: at once when short, else as an
    async iterator that builds and hands over one slice at a time, giving the loop back between
    slices (typed as the list GraphQL declares)."""
    if len(rows) <= SLICE:
        return [build(row) for row in rows]
    return cast("list[T]", _slices(rows, build))


async def encode(value: Any) -> list[bytes]:
    """``orjson.dumps(value)`` as a list of parts (joined, they are its bytes), with long
    lists encoded a slice at a time and the loop given back between slices."""
    parts: list[bytes] = []
    await _encode_into(value, parts, 0)
    return parts


async def _encode_into(value: Any, parts: list[bytes], depth: int) -> None:
    if isinstance(value, dict) and depth < 8:
        parts.append(b"{")
        for i, (key, item) in enumerate(value.items()):
            parts.append(b"%s:" % orjson.dumps(key) if not i else b",%s:" % orjson.dumps(key))
            await _encode_into(item, parts, depth + 1)
        parts.append(b"}")
    elif isinstance(value, list) and len(value) > ENCODE_SLICE:
        parts.append(b"[")
        for start in range(0, len(value), ENCODE_SLICE):
            if start:
                parts.append(b",")
                await asyncio.sleep(0)
            parts.append(orjson.dumps(value[start : start + ENCODE_SLICE])[1:-1])
        parts.append(b"]")
    else:
        parts.append(orjson.dumps(value))
