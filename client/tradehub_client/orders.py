"""Order entry on ``/ws``: ``place_order`` and ``cancel_order`` on a socket of their own,
answered one at a time (the hub answers them in order anyway). A dropped socket or an
``unavailable`` resends the op with the same id after the backoff, which the hub answers with
the first order, never a second one."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

from tradehub_client.errors import ORDER_ERRORS, OrderError
from tradehub_client.feed import (
    AUTH_CODES,
    RETRYABLE,
    Feed,
    FeedSocket,
    Reconnect,
    transient,
)
from tradehub_client.models import OrderAck

REPLY_TIMEOUT = 30.0  # an op unanswered this long is resent on a new socket


class OrderDesk:
    """The client's order socket, opened on first use and again after a drop."""

    def __init__(self, feed: Feed) -> None:
        self.feed = feed
        self._lock = asyncio.Lock()
        self._stack: contextlib.AsyncExitStack | None = None
        self._sock: FeedSocket | None = None

    async def place(
        self,
        account: str,
        symbol: str,
        side: str,
        quantity: float,
        *,
        type: str = "market",
        price: float | None = None,
        stop_price: float | None = None,
        tif: str | None = None,
        client_order_id: str | None = None,
    ) -> OrderAck:
        frame: dict[str, Any] = {
            "op": "place_order",
            "id": client_order_id or f"tc-{uuid.uuid4().hex}",
            "account": account,
            "symbol": symbol,
            "side": side.lower(),
            "type": type.lower(),
            "quantity": quantity,
        }
        for name, value in (("price", price), ("stop_price", stop_price), ("tif", tif)):
            if value is not None:
                frame[name] = value.lower() if isinstance(value, str) else value
        reply, _ = await self._request(frame)
        return OrderAck.model_validate(_answered(reply))

    async def cancel(self, order_id: str) -> OrderAck:
        frame = {"op": "cancel_order", "order_id": str(order_id), "id": f"c-{uuid.uuid4().hex}"}
        reply, resent = await self._request(frame)
        if resent and reply.get("code") == "conflict" and reply.get("status") == "cancelled":
            # The first send cancelled it; its answer was lost with the socket.
            reply = {**reply, "op": "order_cancelled"}
        return OrderAck.model_validate(_answered(reply))

    async def close(self) -> None:
        if self._stack is not None:
            stack, self._stack, self._sock = self._stack, None, None
            with contextlib.suppress(Exception):
                await stack.aclose()

    async def _socket(self) -> FeedSocket:
        if self._sock is None:
            stack = contextlib.AsyncExitStack()
            self._sock = await stack.enter_async_context(self.feed.socket())
            self._stack = stack
        return self._sock

    async def _request(self, frame: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        async with self._lock:
            failures = 0
            resent = False
            while True:
                try:
                    sock = await self._socket()
                    await sock.send(frame)
                    async with asyncio.timeout(REPLY_TIMEOUT):
                        reply = await self._reply(sock, frame["id"])
                except RETRYABLE as exc:
                    if not transient(exc):
                        raise
                    await self.close()
                    await self.feed.pause(failures, exc)
                    failures += 1
                    resent = True
                    continue
                if reply.get("op") == "error" and reply.get("code") == "unavailable":
                    await self.feed.pause(failures, "unavailable")
                    failures += 1
                    resent = True
                    continue
                return reply, resent

    async def _reply(self, sock: FeedSocket, op_id: str) -> dict[str, Any]:
        async for frame in sock:
            op = frame.get("op")
            if op in ("order_accepted", "order_cancelled", "error") and frame.get("id") == op_id:
                return frame
            if op == "error" and frame.get("code") in AUTH_CODES:
                self.feed.refused(sock.token)
                raise Reconnect(str(frame.get("message")))
        raise Reconnect("the socket ended")


def _answered(reply: dict[str, Any]) -> dict[str, Any]:
    """The ack, or the op's error raised as the :class:`OrderError` its code names."""
    if reply.get("op") != "error":
        return reply
    code = str(reply.get("code"))
    raise ORDER_ERRORS.get(code, OrderError)(code, str(reply.get("message", "")), reply)
