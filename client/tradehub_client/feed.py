"""The hub's ``/ws`` bot feed, kept alive: every socket is authenticated with a current token
and re-authenticated before a JWT expires; a subscription survives dropped sockets and hub
restarts by resubscribing from the last sequence it delivered (and its epoch), so its consumer
sees every event once, in order. Order entry (``orders.py``) uses the same sockets.

Each subscription has a socket of its own (a bot holds a few), and order entry one more: a
socket's life is then one loop in one task, which keeps resume simple to follow and to test.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from tradehub_client.auth import TokenSource
from tradehub_client.backoff import Backoff
from tradehub_client.errors import (
    ApiError,
    AuthenticationError,
    FeedError,
    HistoryGone,
    SubscriptionRefused,
    TradehubError,
)
from tradehub_client.models import FeedEvent

log = logging.getLogger("tradehub_client.feed")

# Topics whose sequence has no holes (durable and recent ones): a jump means an event was
# skipped, and the client resubscribes from the last one it delivered. State topics (positions,
# balances, status, bars, jobs) legitimately jump to the newest state; Cracktrader's ``orders``
# shows only the current run's orders.
GAPLESS = re.compile(
    r"^(execution:[^:]+:(events|trades|equity)|account:[^:]+:orders|ticks:.+|signals:.+"
    r"|trades|equity)$"
)
# A subscription the hub ended but would serve again from where it stopped.
RESUMABLE = frozenset({"slow_consumer", "unavailable", "epoch_changed", "history_lost"})
AUTH_CODES = frozenset({"unauthorized", "token_expired"})


class FeedUnavailable(TradehubError):
    """The hub did not answer for ``Backoff.retries`` consecutive attempts."""


class Reconnect(Exception):
    """Drop this socket and open another (after the backoff)."""


class FeedSocket:
    """One authenticated ``/ws`` connection: JSON frames in and out."""

    def __init__(self, ws: ClientConnection, token: str) -> None:
        self.ws = ws
        self.token = token

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(frame, separators=(",", ":")))

    async def recv(self) -> dict[str, Any]:
        raw = await self.ws.recv()
        frame = json.loads(raw)
        if not isinstance(frame, dict):
            raise FeedError("bad_frame", f"the hub sent a frame that is not an object: {raw!r:.80}")
        return frame

    def __aiter__(self) -> FeedSocket:
        return self

    async def __anext__(self) -> dict[str, Any]:
        return await self.recv()


class Cursor:
    """Where a subscription stands: the last sequence delivered and its epoch."""

    def __init__(self, channel: str, since: int | None, epoch: str | None) -> None:
        self.channel = channel
        self.last = since
        self.epoch = epoch
        self.gapless = GAPLESS.match(channel) is not None

    def subscribe_frame(self) -> dict[str, Any]:
        frame: dict[str, Any] = {"op": "subscribe", "channel": self.channel}
        if self.last is not None:
            frame["since"] = self.last
            if self.epoch:
                frame["epoch"] = self.epoch
        return frame

    def subscribed(self, frame: dict[str, Any]) -> None:
        if frame.get("recovered") is False:
            missed = frame.get("missed") or {}
            raise HistoryGone(
                self.channel,
                self.last,
                (int(missed.get("from", (self.last or 0) + 1)), missed.get("to")),
                frame.get("epoch"),
            )
        if frame.get("epoch"):
            self.epoch = str(frame["epoch"])
        if self.last is None and isinstance(frame.get("seq"), int):
            self.last = frame["seq"]  # from now: a resume before the first event starts here

    def accept(self, frame: dict[str, Any]) -> FeedEvent | None:
        """The event to deliver, or None for one already delivered."""
        seq = frame["seq"]
        epoch = frame.get("epoch")
        if epoch and self.epoch and epoch != self.epoch:
            raise HistoryGone(
                self.channel, self.last, None, epoch, reason=f"epoch {self.epoch} -> {epoch}"
            )
        if self.last is not None:
            if seq <= self.last:
                return None
            if self.gapless and seq != self.last + 1:
                log.warning(
                    "sequence jumped; resubscribing",
                    extra={"channel": self.channel, "last": self.last, "seq": seq},
                )
                raise Reconnect(f"{self.channel} jumped from {self.last} to {seq}")
        self.last = seq
        if epoch:
            self.epoch = epoch
        return FeedEvent(channel=self.channel, seq=seq, data=frame.get("data"), epoch=epoch)


class Feed:
    def __init__(self, url: str, tokens: TokenSource, backoff: Backoff, open_timeout: float = 10.0):
        self.url = url
        self.tokens = tokens
        self.backoff = backoff
        self.open_timeout = open_timeout
        self.reconnects = 0  # sockets opened again after a failure, for every subscription

    # -- sockets ----------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def socket(self) -> AsyncIterator[FeedSocket]:
        """An authenticated socket, re-authenticated with a fresh JWT before the current one
        expires, closed on exit."""
        for attempt in (0, 1):
            token = await self.tokens.token()
            ws = await connect(
                self.url,
                open_timeout=self.open_timeout,
                compression=None,
                max_size=2**22,
            )
            sock = FeedSocket(ws, token)
            try:
                await sock.send({"op": "auth", "token": token})
                async with asyncio.timeout(self.open_timeout):
                    answer = await sock.recv()
            except BaseException:
                await ws.close()
                raise
            if answer.get("op") == "authenticated":
                break
            await ws.close()
            if attempt == 0 and self.tokens.invalidate(token):
                continue  # a JWT the hub no longer takes: log in again, once
            raise AuthenticationError(401, str(answer.get("message", answer)), answer)
        refresher = None
        if self.tokens.can_refresh:
            refresher = asyncio.create_task(self._keep_fresh(sock), name="tradehub-reauth")
        try:
            yield sock
        finally:
            if refresher is not None:
                refresher.cancel()
                with contextlib.suppress(BaseException):
                    await refresher
            await ws.close()

    async def _keep_fresh(self, sock: FeedSocket) -> None:
        """Before the socket's JWT expires, log in again and send the new one on the socket."""
        while True:
            due = self.tokens.refresh_at()
            if due is None:
                return
            await asyncio.sleep(max(0.0, due - time.time()))
            try:
                token = await self.tokens.token()
            except (httpx.TransportError, ApiError) as exc:
                # The hub is away or refuses: it closes the socket at expiry, and the
                # reconnect logs in again (or reports why it cannot).
                log.info("token refresh failed", extra={"error": str(exc)})
                return
            if token != sock.token:
                await sock.send({"op": "auth", "token": token})
                sock.token = token

    def refused(self, token: str) -> None:
        """The hub refused ``token`` on a socket: the next one logs in again, if it can."""
        if not self.tokens.invalidate(token):
            raise AuthenticationError(401, "the hub no longer accepts this token or API key")

    async def pause(self, failures: int, why: BaseException | str) -> None:
        if self.backoff.exhausted(failures):
            raise FeedUnavailable(f"{self.url}: {failures} attempts failed; last: {why}")
        delay = self.backoff.delay(failures)
        log.info("reconnecting in %.3f s: %s", delay, why, extra={"url": self.url})
        await asyncio.sleep(delay)
        self.reconnects += 1

    # -- subscriptions ----------------------------------------------------------------------

    async def subscribe(
        self, channel: str, since: int | None = None, *, epoch: str | None = None
    ) -> AsyncGenerator[FeedEvent, None]:
        """Every event of ``channel`` after ``since`` (None: from now; a state topic starts
        with its current state), in order, each once, across reconnects. Raises
        :class:`HistoryGone` when the hub lost events it would have to deliver,
        :class:`SubscriptionRefused` when it will not serve the channel."""
        cursor = Cursor(channel, since, epoch)
        failures = 0
        while True:
            sock: FeedSocket | None = None
            try:
                async with self.socket() as sock:
                    await sock.send(cursor.subscribe_frame())
                    async for frame in sock:
                        op = frame.get("op")
                        if op is None:
                            if frame.get("channel") == channel and "seq" in frame:
                                event = cursor.accept(frame)
                                if event is not None:
                                    yield event
                        elif op == "subscribed" and frame.get("channel") == channel:
                            cursor.subscribed(frame)
                            failures = 0
                        elif op == "error":
                            self._subscription_error(frame, cursor, sock)
            except RETRYABLE as exc:
                if not transient(exc):
                    raise
                if sock is not None and closed_unauthorized(exc):
                    self.refused(sock.token)
                await self.pause(failures, exc)
                failures += 1

    def _subscription_error(self, frame: dict[str, Any], cursor: Cursor, sock: FeedSocket) -> None:
        code = str(frame.get("code", "error"))
        message = str(frame.get("message", ""))
        if frame.get("channel") == cursor.channel:
            if code in RESUMABLE:
                raise Reconnect(f"{code}: {message}")
            raise SubscriptionRefused(cursor.channel, code, message, frame)
        if code in AUTH_CODES:
            self.refused(sock.token)
            raise Reconnect(f"{code}: {message}")
        if code == "forbidden" and "channel" not in frame:
            raise Reconnect(f"{code}: {message}")  # the session ended; authenticate anew
        if "channel" not in frame:
            raise FeedError(code, message, frame)


# What a reconnect can cure: a dropped or refused socket, a hub restarting (its login route
# answering 5xx or not at all), a subscription the hub ended.
RETRYABLE = (
    Reconnect,
    ConnectionClosed,
    InvalidHandshake,
    OSError,
    TimeoutError,
    httpx.TransportError,
    ApiError,
)


def transient(exc: BaseException) -> bool:
    if isinstance(exc, AuthenticationError):
        return False
    if isinstance(exc, ApiError):
        return exc.status >= 500 or exc.status == 429
    return True


def closed_unauthorized(exc: BaseException) -> bool:
    return isinstance(exc, ConnectionClosed) and exc.rcvd is not None and exc.rcvd.code == 4401
