"""The bot feed at ``/ws``: JSON text frames, one channel per topic, resumable by sequence, and
order entry on the same socket.

Client -> server: ``{"op": "auth", "token"}``, ``{"op": "subscribe", "channel", "since"?,
"epoch"?}``, ``{"op": "unsubscribe", "channel"}``, ``{"op": "ping"}``,
``{"op": "place_order", "id", "account", "symbol", "side", "type", "quantity", "price"?,
"stop_price"?, "tif"?}`` (``id`` is the client order id) and ``{"op": "cancel_order",
"order_id", "id"?}``.
Server -> client: ``{"op": "authenticated"}``, ``{"op": "subscribed", "channel", "seq",
"recovered", ["epoch", "missed"]}``, events ``{"channel", "seq", "data"}``,
``{"op": "unsubscribed", "channel"}``, ``{"op": "pong"}``, ``{"op": "order_accepted", "id",
"order_id", "status"}``, ``{"op": "order_cancelled", "order_id", "status", "id"?}``, and
``{"op": "error", "code", "message", ["channel"]}``. A bad frame gets an error and leaves every
other subscription alone.

Order ops go through the broker service, as GraphQL and ORCA do. They are answered one after
another, in the order sent, by a task of their own: the socket keeps reading (pings, subscribes)
and delivering while one waits on the database. An order op's error frame carries its ``id`` and
one of: ``bad_order`` (the shape, an unknown account or symbol; ``field`` names the culprit),
``forbidden`` (another user's account), ``rate_limited`` (over the account's orders a second;
``retry_after``), ``order_rejected`` (stored as rejected by the broker's risk or cash check:
``order_id``, ``reason``), ``not_found`` (cancelling an unknown order), ``conflict`` (cancelling
a finished order: ``order_id`` and its ``status``) or ``unavailable`` (resend: the same ``id``
never makes a second order). Only ``order_rejected`` leaves a row behind. A resent ``id``
answers with the first order and its current status, whatever else the frame says.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import orjson
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocket

from hub.auth import AuthError, Identity
from hub.feed_orders import order_reply
from hub.feed_runs import RUNNER_CHANNELS, Frame, NoCurrentRun, runner_channel
from hub.sockets import Session, TopicRefused, open_subscription
from hub.subscription import Event, Subscription, SubscriptionClosed, SubscriptionError

log = logging.getLogger("tradehub.feed")

MAX_SUBSCRIPTIONS = 10  # seed 004's limit per connection
MAX_FRAME_BYTES = 64 * 1024
AUTH_TIMEOUT = 5.0
SEND_TIMEOUT = 10.0
MAX_PENDING_ORDER_OPS = 32  # queued per connection; past it the socket stops reading until one ends

T = TypeVar("T")


class FeedError(Exception):
    def __init__(self, code: str, message: str, channel: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.channel = channel


class BotFeed:
    """The ASGI app behind ``WebSocketRoute("/ws")``."""

    def __init__(
        self, *, auth_timeout: float = AUTH_TIMEOUT, send_timeout: float = SEND_TIMEOUT
    ) -> None:
        self.auth_timeout = auth_timeout
        self.send_timeout = send_timeout
        self._finishing: set[asyncio.Task[Any]] = set()

    async def finish(self, work: Coroutine[Any, Any, T]) -> T:
        """Run ``work`` to its end even when the connection that asked goes away: a place
        cancelled between its commit and its publish would leave an order stored but unheard of
        (no event on the bus, its matcher never told)."""
        task = asyncio.ensure_future(work)
        self._finishing.add(task)
        task.add_done_callback(self._finishing.discard)
        return await asyncio.shield(task)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive, send)
        await websocket.accept()
        await _FeedConnection(self, websocket, send, receive).run()


class _FeedConnection(Session):
    def __init__(self, feed: BotFeed, websocket: WebSocket, send: Send, receive: Receive) -> None:
        super().__init__(websocket, send, send_timeout=feed.send_timeout, receive=receive)
        self.feed = feed
        self.streams = self.children  # subscriptions by channel
        self.order_ops: asyncio.Queue[tuple[Identity, dict[str, Any]]] | None = None

    async def error(
        self, code: str, message: str, channel: str | None = None, **extra: Any
    ) -> None:
        body: dict[str, Any] = {"op": "error", "code": code, "message": message}
        if channel is not None:
            body["channel"] = channel
        body.update(extra)
        await self.send_json(body)

    async def handshake(self) -> bool:
        identity = getattr(self.state, "identity", None)  # from the upgrade request's header
        if identity is not None and not identity.expired():
            self.identity = identity
            return True
        return await self._await_auth()

    async def handle(self, message: Message) -> None:
        await self._handle(message.get("text"), message.get("bytes"))

    async def credential_ended(self, code: int, reason: str) -> None:
        if reason == "token expired":
            await self.error(
                "token_expired", "token expired: reconnect with a fresh one and resume by seq"
            )
        elif code == 4401:
            await self.error("unauthorized", f"{reason}: reconnect with a valid credential")
        else:
            await self.error("forbidden", f"{reason}, and resume by seq")
        await self.close(code, reason)

    async def _await_auth(self) -> bool:
        try:
            async with asyncio.timeout(self.feed.auth_timeout):
                message = await self.websocket.receive()
        except TimeoutError:
            await self.error(
                "unauthorized",
                f'send {{"op": "auth", "token"}} within {self.feed.auth_timeout:g} s',
            )
            await self.close(4408, "authentication timeout")
            return False
        if message["type"] == "websocket.disconnect":
            return False
        frame = self._parse(message.get("text"), message.get("bytes"))
        if isinstance(frame, FeedError) or frame.get("op") != "auth":
            await self.error("unauthorized", 'the first frame must be {"op": "auth", "token": ...}')
            await self.close(4401, "unauthorized")
            return False
        return await self._auth(frame)

    async def _auth(self, frame: dict[str, Any]) -> bool:
        token = frame.get("token")
        if isinstance(token, str) and token.lower().startswith("bearer "):
            token = token[7:].strip()
        try:
            if not isinstance(token, str) or not token:
                raise AuthError("token is required")
            identity = await self.state.auth.authenticate(token)
            if identity.expired():
                raise AuthError("token expired")
        except AuthError as exc:
            await self.error("unauthorized", str(exc))
            await self.close(4401, "unauthorized")
            return False
        self.identity = identity
        await self.send_json({"op": "authenticated", "user": identity.username})
        return True

    @staticmethod
    def _parse(text: str | None, data: bytes | None) -> dict[str, Any] | FeedError:
        raw = text.encode() if text is not None else (data or b"")
        if len(raw) > MAX_FRAME_BYTES:
            return FeedError(
                "frame_too_large", f"frames are limited to {MAX_FRAME_BYTES} bytes, got {len(raw)}"
            )
        try:
            frame = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return FeedError("bad_frame", "frames must be JSON objects")
        if not isinstance(frame, dict):
            return FeedError("bad_frame", "frames must be JSON objects")
        return frame

    async def _handle(self, text: str | None, data: bytes | None) -> None:
        frame = self._parse(text, data)
        try:
            if isinstance(frame, FeedError):
                raise frame
            op = frame.get("op")
            if op == "ping":
                await self.send_json({"op": "pong", "ts": time.time()})
            elif op == "subscribe":
                await self._subscribe(frame)
            elif op == "unsubscribe":
                await self._unsubscribe(frame)
            elif op in ("place_order", "cancel_order"):
                await self._queue_order_op(frame)
            elif op == "auth":
                if await self._auth(frame):
                    self.guard()
            else:
                raise FeedError(
                    "unknown_op",
                    f"unknown op {str(op)[:40]!r}; expected auth, subscribe, unsubscribe, ping,"
                    " place_order or cancel_order",
                )
        except FeedError as exc:
            log.info("feed frame refused", extra={"code": exc.code, "channel": exc.channel})
            await self.error(exc.code, exc.message, exc.channel)

    async def _subscribe(self, frame: dict[str, Any]) -> None:
        channel = frame.get("channel")
        if not isinstance(channel, str):
            raise FeedError("bad_channel", "subscribe needs a channel name")
        since = frame.get("since")
        if since is not None and (
            isinstance(since, bool) or not isinstance(since, int) or not 0 <= since < 2**63
        ):
            raise FeedError(
                "bad_since",
                f"since must be a sequence between 0 and 2^63-1, got {str(since)[:40]}",
                channel,
            )
        epoch = frame.get("epoch")
        if epoch is not None and not isinstance(epoch, str):
            raise FeedError("bad_epoch", "epoch must be a string", channel)
        if channel in self.streams:
            raise FeedError("already_subscribed", f"already subscribed to {channel}", channel)
        if len(self.streams) >= MAX_SUBSCRIPTIONS:
            raise FeedError(
                "too_many_subscriptions",
                f"at most {MAX_SUBSCRIPTIONS} subscriptions per connection",
                channel,
            )
        assert self.identity is not None
        topic, framed = channel, None
        try:
            if channel in RUNNER_CHANNELS:
                topic, framed = await runner_channel(self.state, self.identity, channel)
            subscription = await open_subscription(self.state, self.identity, topic, since, epoch)
        except NoCurrentRun as exc:
            raise FeedError("no_current_run", str(exc), channel) from None
        except TopicRefused as exc:
            raise FeedError(exc.code, exc.message, channel) from None
        except SubscriptionError as exc:
            raise FeedError("since_out_of_range", str(exc), channel) from None
        except Exception:
            log.warning("subscribe failed", exc_info=True, extra={"channel": channel})
            raise FeedError(
                "unavailable", f"{channel} cannot be read right now; try again", channel
            ) from None
        ack: dict[str, Any] = {
            "op": "subscribed",
            "channel": channel,
            "recovered": subscription.recovered,
        }
        if subscription.start_after is not None:
            ack["seq"] = subscription.start_after
        if subscription.epoch is not None:
            ack["epoch"] = subscription.epoch
        if subscription.missed is not None:
            ack["missed"] = {"from": subscription.missed[0], "to": subscription.missed[1]}
        await self.send_json(ack)
        self.start_child(channel, self._pump(channel, subscription, framed), name=f"feed-{channel}")

    async def _pump(
        self, channel: str, subscription: Subscription, framed: Frame | None = None
    ) -> None:
        try:
            if framed is None:
                await self._deliver(subscription)
            else:
                await self._deliver_framed(subscription, framed)
        except SubscriptionClosed as closed:
            await self.error(
                closed.code,
                f"{closed.reason}; resubscribe with since={closed.last}",
                channel,
                last_seq=closed.last,
            )
        except Exception:
            log.warning("feed stream failed", exc_info=True, extra={"channel": channel})
            await self.error(
                "unavailable",
                f"{channel} stopped; resubscribe with since={subscription.last}",
                channel,
                last_seq=subscription.last,
            )
        finally:
            await subscription.aclose()

    async def _deliver(self, subscription: Subscription) -> None:
        write_now = self.write_now

        def deliver(event: Event) -> bool:
            # Live and in order: the bus reader writes the frame (built once for every
            # subscriber) when the socket takes it at once; else it is queued for the loop below.
            frame = event.ws_wire()
            return frame is not None and write_now(frame)

        subscription.deliver_directly(deliver)
        async for event in subscription:
            if not deliver(event):
                await self.send_text(event.ws_text())
            if self.closed:
                return

    async def _deliver_framed(self, subscription: Subscription, framed: Frame) -> None:
        """A Cracktrader channel: each event framed for this connection (``hub.feed_runs``)."""
        async for event in subscription:
            frame = framed(event)
            if frame is not None:
                await self.send_text(frame.decode())
            if self.closed:
                return

    async def _unsubscribe(self, frame: dict[str, Any]) -> None:
        channel = frame.get("channel")
        if not isinstance(channel, str) or not await self.stop_child(channel):
            raise FeedError(
                "not_subscribed",
                f"not subscribed to {channel!r}",
                channel if isinstance(channel, str) else None,
            )
        await self.send_json({"op": "unsubscribed", "channel": channel})

    # -- order entry --------------------------------------------------------------------

    async def _queue_order_op(self, frame: dict[str, Any]) -> None:
        assert self.identity is not None
        if self.order_ops is None:
            self.order_ops = asyncio.Queue(MAX_PENDING_ORDER_OPS)
            self.spawn(self._serve_order_ops(self.order_ops), name="feed-orders")
        # The identity the frame came under: a re-auth later does not change whose op it is.
        await self.order_ops.put((self.identity, frame))

    async def _serve_order_ops(self, queue: asyncio.Queue[tuple[Identity, dict[str, Any]]]) -> None:
        while not self.closed:
            identity, frame = await queue.get()
            reply = await self.feed.finish(order_reply(self.state.broker, identity, frame))
            if reply["op"] == "error":
                log.info("feed order op refused", extra={"code": reply["code"]})
            await self.send_json(reply)
