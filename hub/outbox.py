"""Sending on a WebSocket without letting a client that stopped reading hold anything.

Sends are serialised by a lock; instead of arming a timer around every frame (a quarter of the
cost of a frame at fan-out rates), a watchdog looks once in a while at how long the current send
has been waiting. A send stalled past the timeout closes the connection and cancels the task
serving it, so its socket, tasks and buffers are released even though the client never reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import orjson
from starlette.types import Send
from starlette.websockets import WebSocketDisconnect

log = logging.getLogger("tradehub.ws")


class Outbox:
    def __init__(self, send: Send, *, send_timeout: float) -> None:
        self._send = send
        self.send_timeout = send_timeout
        self._lock = asyncio.Lock()
        self._send_started: float | None = None
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

    async def send_text(self, text: str) -> None:
        if self.closed:
            return
        try:
            async with self._lock:
                self._send_started = time.monotonic()
                await self._send({"type": "websocket.send", "text": text})
                self._send_started = None
        except (OSError, RuntimeError, WebSocketDisconnect):
            self.closed = True

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
        while not self.closed:
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
