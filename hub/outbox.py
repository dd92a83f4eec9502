"""Sending on a WebSocket without letting a client that stopped reading hold anything.

Sends are serialised by a lock; instead of arming a timer around every frame (a quarter of the
cost of a frame at fan-out rates), a watchdog looks once in a while at how long the current send
has been waiting. A send stalled past the timeout closes the connection and cancels the task
serving it, so its socket, tasks and buffers are released even though the client never reads.
The watchdog only looks while sends go through the lock: a connection whose frames all leave
at once (below) costs no timer (1,000 idle watchdogs were 1,000 wake-ups a second).

Under uvicorn's websockets (sans-I/O) protocol, a frame that can leave at once is written to the
socket directly as pre-built bytes: when no other send is in progress or waiting, the socket
takes more without waiting (uvicorn has not paused writing), no close was sent or received and
no extension (deflate) is in use, ``transport.write`` of the frame is exactly what uvicorn's
``send`` would have done, minus the ASGI layers (middleware ``send`` wrappers, which only watch
``websocket.accept`` and HTTP responses) and the per-frame serialisation; a fan-out hands the
same frame bytes (:func:`hub.wsframe.text_frame`) to every subscriber. Anything else takes the
ordinary ASGI ``send``, and so does every frame under another server or protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import orjson
from starlette.types import Receive, Send
from starlette.websockets import WebSocketDisconnect
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.protocol import State

from hub.wsframe import text_frame

log = logging.getLogger("tradehub.ws")

_OPEN = State.OPEN


def frame_writer(receive: Receive | None) -> WebSocketsSansIOProtocol | None:
    """The uvicorn connection behind an accepted WebSocket's ASGI ``receive``, when frames can
    be written to it directly (its sans-I/O protocol, no extension negotiated); else None."""
    protocol = getattr(receive, "__self__", None)
    if not isinstance(protocol, WebSocketsSansIOProtocol):
        return None
    conn = getattr(protocol, "conn", None)
    if conn is None or conn.extensions or getattr(protocol, "transport", None) is None:
        return None
    return protocol


class Outbox:
    def __init__(self, send: Send, *, send_timeout: float, receive: Receive | None = None) -> None:
        self._send = send
        self.send_timeout = send_timeout
        self._lock = asyncio.Lock()
        self._send_started: float | None = None
        # Sends through the ASGI path that have started and not finished (holding the lock or
        # waiting for it): a direct write only goes out when there are none, so it never
        # overtakes one.
        self._pending = 0
        self._writer = frame_writer(receive)
        # What the watchdog waits on while no send goes through the lock.
        self._armed: asyncio.Future[None] | None = None
        self._runner: asyncio.Task[object] | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self.closed = False
        self.close_code: int | None = None

    def start(self) -> None:
        """Called by the task serving the connection: that task is what a stall cancels."""
        self._runner = asyncio.current_task()
        self._watchdog = asyncio.create_task(self._watch())

    async def stop(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog

    def write_now(self, frame: bytes) -> bool:
        """Write a pre-built text frame (:func:`hub.wsframe.text_frame`) if it can leave at once
        and in order; False when it must go the ordinary way (:meth:`send_payload`) instead."""
        protocol = self._writer
        if (
            protocol is None
            or self._pending
            or self.closed
            or protocol.close_sent
            or protocol.disconnected
            or not protocol.writable.is_set()
            or protocol.conn.state is not _OPEN
            or protocol.conn.expect_continuation_frame
        ):
            return False
        transport = protocol.transport
        if transport.is_closing():
            return False
        try:
            transport.write(frame)
        except (OSError, RuntimeError):  # the ordinary path meets the same failure and says so
            return False
        return True

    async def send_text(self, text: str) -> None:
        if self.closed:
            return
        if self._writer is not None and self.write_now(text_frame(text.encode())):
            return
        await self._send_asgi(text)

    async def send_payload(self, payload: bytes) -> None:
        """Send UTF-8 ``payload`` (already encoded, never re-encoded) as a text frame."""
        if self.closed:
            return
        if self._writer is not None and self.write_now(text_frame(payload)):
            return
        await self._send_asgi(payload.decode())

    async def _send_asgi(self, text: str) -> None:
        self._pending += 1
        try:
            async with self._lock:
                self._send_started = time.monotonic()
                armed = self._armed
                if armed is not None and not armed.done():
                    armed.set_result(None)
                await self._send({"type": "websocket.send", "text": text})
                self._send_started = None
        except (OSError, RuntimeError, WebSocketDisconnect):
            self.closed = True
        finally:
            self._pending -= 1

    async def send_json(self, message: dict[str, Any]) -> None:
        await self.send_text(orjson.dumps(message).decode())

    async def close(self, code: int, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        self.close_code = code
        # A client that stopped reading may never let the close frame out: don't wait for it.
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1.0):
                await self._send({"type": "websocket.close", "code": code, "reason": reason})
        runner = self._runner
        if runner is not None and runner is not asyncio.current_task() and not runner.done():
            runner.cancel()

    async def _watch(self) -> None:
        period = min(1.0, self.send_timeout / 4)
        loop = asyncio.get_running_loop()
        while not self.closed:
            if self._send_started is None:
                self._armed = loop.create_future()
                await self._armed  # until a send goes through the lock
            await asyncio.sleep(period)
            started = self._send_started
            if started is not None and time.monotonic() - started > self.send_timeout:
                log.info(
                    "client stopped reading; closing",
                    extra={"stalled_s": round(time.monotonic() - started, 1)},
                )
                await self.close(1008, "slow consumer: the client stopped reading")


def closed_by_outbox(outbox: Outbox) -> bool:
    """In ``except CancelledError``: True when the outbox cancelled us (swallow it and return)."""
    task = asyncio.current_task()
    if outbox.closed and task is not None and task.cancelling():
        task.uncancel()
        return True
    return False
