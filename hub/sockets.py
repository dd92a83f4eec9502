"""What the two WebSocket interfaces (``/ws`` and ``/graphql``) share: the life of a session
(authenticate, serve frames, tear down), its guard (a JWT's expiry, a revoked key, a disabled
user or a changed role close it), and the check of who may read a topic.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Coroutine
from typing import Any

from starlette.types import Message, Receive, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from hub.auth import Identity
from hub.outbox import Outbox, closed_by_outbox
from hub.subscription import Subscription
from hub.topics import Access, Topic, TopicRegistry, UnknownTopic


class TopicRefused(Exception):
    """The caller may not read the topic: ``code`` is ``unknown_channel``, ``not_found`` or
    ``forbidden``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


async def authorize_topic(topics: TopicRegistry, identity: Identity, name: str) -> Topic:
    """The topic named ``name`` if ``identity`` may read it; raises :class:`TopicRefused`."""
    try:
        topic = topics.parse(name)
        access = await topics.access(identity, topic)
    except UnknownTopic as exc:
        raise TopicRefused("unknown_channel", str(exc)) from None
    if access is Access.NOT_FOUND:
        raise TopicRefused("not_found", f"no such topic {name!r}")
    if access is Access.FORBIDDEN:
        raise TopicRefused("forbidden", f"topic {name!r} belongs to another user")
    return topic


async def open_subscription(
    state: Any, identity: Identity, name: str, since: int | None, epoch: str | None
) -> Subscription:
    """Check access to ``name``, then subscribe from ``since`` and read up to live. Raises
    :class:`TopicRefused`, or :class:`hub.subscription.SubscriptionError` for a bad ``since``."""
    topic = await authorize_topic(state.topics, identity, name)
    subscription: Subscription = state.bus.subscribe(topic, since, epoch=epoch)
    try:
        await subscription.open()
    except BaseException:
        await subscription.aclose()
        raise
    return subscription


class SessionClose(Exception):
    """End the session with this close code (a protocol violation, a failed handshake)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class Session:
    """One WebSocket connection: :meth:`run` accepts frames until the client leaves, the outbox
    closes it, or its credential stops holding, and always releases every task it started."""

    def __init__(
        self,
        websocket: WebSocket,
        send: Send,
        *,
        send_timeout: float,
        receive: Receive | None = None,
    ) -> None:
        self.websocket = websocket
        self.state = websocket.state
        # ``receive`` (the server's own) lets the outbox write frames to the socket directly.
        self.outbox = Outbox(send, send_timeout=send_timeout, receive=receive)
        self.send_text = self.outbox.send_text
        self.send_payload = self.outbox.send_payload
        self.write_now = self.outbox.write_now
        self.send_json = self.outbox.send_json
        self.close = self.outbox.close
        self.identity: Identity | None = None
        # What serves the client, by its name on the wire (a channel, an operation id).
        self.children: dict[str, asyncio.Task[Any]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._expiry: asyncio.Task[None] | None = None
        self._unwatch: Any = None

    @property
    def closed(self) -> bool:
        return self.outbox.closed

    # -- what a protocol defines --------------------------------------------------------

    async def handshake(self) -> bool:
        """Authenticate (set ``self.identity``); False ends the session quietly."""
        raise NotImplementedError

    async def handle(self, message: Message) -> None:
        """One frame from the client."""
        raise NotImplementedError

    async def credential_ended(self, code: int, reason: str) -> None:
        """Tell the client its credential no longer holds, then close with ``code``."""
        await self.close(code, reason)

    # -- the life of a session ----------------------------------------------------------

    async def run(self) -> None:
        self.outbox.start()
        try:
            if not await self.handshake():
                return
            self.guard()
            while not self.closed:
                message = await self.websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                await self.handle(message)
        except SessionClose as exc:
            await self.close(exc.code, exc.reason)
        except WebSocketDisconnect:
            pass
        except asyncio.CancelledError:
            if not closed_by_outbox(self.outbox):
                raise
        finally:
            await self.teardown()

    def start_child(self, key: str, coroutine: Coroutine[Any, Any, Any], name: str) -> None:
        """Serve ``key`` (a subscription, an operation) in its own task until it ends or
        :meth:`stop_child`; every child is ended at teardown."""
        task = asyncio.create_task(coroutine, name=name)
        self.children[key] = task

        def forget(done: asyncio.Task[Any]) -> None:
            if self.children.get(key) is done:
                del self.children[key]

        task.add_done_callback(forget)

    async def stop_child(self, key: str) -> bool:
        """End the child serving ``key``; False when there is none."""
        task = self.children.pop(key, None)
        if task is None:
            return False
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        return True

    def spawn(self, coroutine: Coroutine[Any, Any, Any], name: str | None = None) -> None:
        """A background task of the session (pings, closes), cancelled at teardown."""
        task = asyncio.create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def guard(self) -> None:
        """Close the session when its credential stops holding: at a JWT's expiry, and when
        the session monitor finds its key revoked, its user disabled or its role changed.
        Called again after a re-authentication, it replaces the previous credential's guard."""
        assert self.identity is not None
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        if self._unwatch is not None:
            self._unwatch()
        expires_at = self.identity.expires_at
        if expires_at is not None:

            async def expire() -> None:
                await asyncio.sleep(max(0.0, expires_at - time.time()))
                await self.credential_ended(4401, "token expired")

            self._expiry = asyncio.create_task(expire())
        users = getattr(self.state, "users", None)
        if users is not None:
            self._unwatch = users.sessions.watch(
                self.identity,
                lambda code, reason: self.spawn(self.credential_ended(code, reason)),
            )

    async def teardown(self) -> None:
        self.outbox.closed = True
        await self.outbox.stop()
        if self._unwatch is not None:
            self._unwatch()
        tasks = [*self.children.values(), *self._tasks, *([self._expiry] if self._expiry else [])]
        self.children.clear()
        current = asyncio.current_task()
        tasks = [t for t in tasks if t is not current]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
