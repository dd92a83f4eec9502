"""The anchor of ``bench/fanout.py``: GraphQL subscriptions the way strawberry's docs show them.

A plain Starlette app with a stock ``strawberry.asgi.GraphQL`` mounted at ``/graphql`` (HTTP and
WebSocket routes, as in strawberry's Starlette integration guide), and a ``ticks(symbol)``
subscription resolver that is one async generator per subscriber. The generator reads from an
in-process broadcast fed by one Redis pub/sub reader (the shape of ``encode/broadcaster``, which
strawberry's docs point to for fan-out): every subscriber gets its own unbounded queue, parses
the message itself and yields a ``Tick``; strawberry then executes the selection set and
serialises the result for that subscriber, per event. Nothing is shared between subscribers
after the Redis read.

It listens to the same channels and wire format as the hub's bus (``seq\\nepoch\\n<json>`` on
``{prefix}bus:ticks:{symbol}``), so one publisher serves both servers.

Beside it, at ``/raw``, the second reference of ``PERF_NOTES.md``: a raw, serialize-once WebSocket
fan-out with the /ws protocol's shape (``auth``, ``subscribe``, then ``{"channel", "seq", "epoch",
"data"}`` frames), fed by the same broadcast: each event's frame is built once and the same text
is sent by every subscriber's task. No auth check, no resume, no slow-consumer policy: a floor for
what any feed on this stack can cost.
"""

from __future__ import annotations

import sys as _sys
from pathlib import Path as _Path

# bench/engine.py would shadow the engine package for scripts run from bench/: the repository
# root comes first on the path.
_sys.path.insert(0, str(_Path(__file__).resolve().parent.parent))

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator, AsyncIterator
from datetime import UTC, datetime

import strawberry
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect
from strawberry.asgi import GraphQL


class Broadcast:
    """One Redis pub/sub connection; a channel is subscribed while it has local subscribers."""

    def __init__(self, url: str, prefix: str) -> None:
        self.url = url
        self.prefix = prefix
        self.subscribers: dict[str, set[asyncio.Queue[bytes]]] = {}
        self._redis: Redis | None = None
        self._pubsub: object | None = None
        self._reader: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        self._redis = Redis.from_url(self.url)
        self._pubsub = pubsub = self._redis.pubsub()
        # A control channel keeps the connection in subscriber mode with no topic subscribed.
        await pubsub.subscribe(f"{self.prefix}anchor:control")
        self._reader = asyncio.create_task(self._read())

    async def disconnect(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()  # type: ignore[attr-defined]
        if self._redis is not None:
            await self._redis.aclose()

    async def _read(self) -> None:
        assert self._pubsub is not None
        async for message in self._pubsub.listen():  # type: ignore[attr-defined]
            if message["type"] != "message":
                continue
            channel = message["channel"].decode()
            for queue in tuple(self.subscribers.get(channel, ())):
                queue.put_nowait(message["data"])

    @contextlib.asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[asyncio.Queue[bytes]]:
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        subscribers = self.subscribers.setdefault(channel, set())
        first = not subscribers
        subscribers.add(queue)
        if first:
            await self._pubsub.subscribe(channel)  # type: ignore[union-attr]
        try:
            yield queue
        finally:
            subscribers.discard(queue)
            if not subscribers and self.subscribers.get(channel) is subscribers:
                del self.subscribers[channel]
                with contextlib.suppress(Exception):
                    await self._pubsub.unsubscribe(channel)  # type: ignore[union-attr]


broadcast: Broadcast | None = None


@strawberry.type
class Tick:
    sequence: int
    epoch: str
    symbol: str
    ts: datetime | None
    price: float | None
    size: float | None


@strawberry.type
class Query:
    @strawberry.field
    def hello(self) -> str:
        return "anchor"


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def ticks(self, symbol: str) -> AsyncGenerator[Tick, None]:
        assert broadcast is not None
        async with broadcast.subscribe(f"{broadcast.prefix}bus:ticks:{symbol}") as queue:
            while True:
                message = await queue.get()
                seq, epoch, payload = message.split(b"\n", 2)
                data = json.loads(payload)
                ts = data.get("ts")
                yield Tick(
                    sequence=int(seq),
                    epoch=epoch.decode(),
                    symbol=symbol,
                    ts=datetime.fromtimestamp(ts / 1e9, tz=UTC) if ts is not None else None,
                    price=data.get("price"),
                    size=data.get("size"),
                )


schema = strawberry.Schema(query=Query, subscription=Subscription)


_frames: dict[str, tuple[bytes, str]] = {}


def frame_once(topic: str, message: bytes) -> str:
    """The /ws-shaped frame of a Redis message, built once: every subscriber gets the same
    ``bytes`` object from the broadcast, so the last one built per topic is reused."""
    cached = _frames.get(topic)
    if cached is not None and cached[0] is message:
        return cached[1]
    seq, epoch, payload = message.split(b"\n", 2)
    text = (
        f'{{"channel":{json.dumps(topic)},"seq":{int(seq)},'
        f'"epoch":"{epoch.decode()}","data":{payload.decode()}}}'
    )
    _frames[topic] = (message, text)
    return text


async def raw_feed(websocket: WebSocket) -> None:
    assert broadcast is not None
    await websocket.accept()
    try:
        while True:
            frame = json.loads(await websocket.receive_text())
            if frame.get("op") == "auth":
                await websocket.send_text('{"op":"authenticated"}')
            elif frame.get("op") == "subscribe":
                topic = str(frame["channel"])
                break
        async with broadcast.subscribe(f"{broadcast.prefix}bus:{topic}") as queue:
            await websocket.send_text(json.dumps({"op": "subscribed", "channel": topic}))

            async def sender() -> None:
                while True:
                    message = await queue.get()
                    await websocket.send_text(frame_once(topic, message))

            task = asyncio.create_task(sender())
            try:
                while (await websocket.receive())["type"] != "websocket.disconnect":
                    pass
            finally:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
    except WebSocketDisconnect:
        pass


def create_anchor_app(redis_url: str, prefix: str) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        global broadcast
        broadcast = Broadcast(redis_url, prefix)
        await broadcast.connect()
        try:
            yield
        finally:
            await broadcast.disconnect()

    graphql_app: GraphQL[None, None] = GraphQL(schema)
    return Starlette(
        routes=[
            Route("/graphql", graphql_app),
            WebSocketRoute("/graphql", graphql_app),
            WebSocketRoute("/raw", raw_feed),
        ],
        lifespan=lifespan,
    )
