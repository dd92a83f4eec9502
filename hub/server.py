"""The HTTP server's own limits: read deadlines and a cap on connections per client address.

They sit below the ASGI app, in uvicorn's protocol, because the app never sees a request whose
headers are incomplete: a client that opens a connection and sends half a header, or nothing,
or a body that stops, would otherwise hold it for as long as it likes. ``uvicorn_options`` is
what every uvicorn running the hub is given, ``tradehub serve`` and the tests' server alike.

- Headers: a connection must complete its request's headers within ``header_timeout`` of its
  first byte (of being opened, for a fresh one), else it is closed. The deadline is not renewed
  by progress, so dripping a header a byte at a time does not help.
- Body: a request body that stops arriving for ``body_timeout`` is answered 408 and closed.
  Time the server itself is waiting (reading paused while the app catches up, a ``100
  Continue`` not sent yet) does not count.
- Cap: a connection beyond ``max_connections_per_client`` open from one address is closed at
  once. An upgraded WebSocket keeps its place until it closes; the deadlines stop applying to
  it once upgraded. The count is per server process, of the address the socket sees (behind a
  proxy, the proxy's).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState

from hub.settings import Settings

log = logging.getLogger("tradehub.server")


class ClientSlot:
    """One open connection counted against its client's address; released exactly once."""

    __slots__ = ("_guard", "host")

    def __init__(self, guard: ConnectionGuard, host: str) -> None:
        self._guard: ConnectionGuard | None = guard
        self.host = host

    def release(self) -> None:
        guard, self._guard = self._guard, None
        if guard is not None:
            guard.release(self.host)


class ConnectionGuard:
    """One server's connection limits, and its count of open connections by client address."""

    def __init__(self, *, header_timeout: float, body_timeout: float, max_per_client: int) -> None:
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout
        self.max_per_client = max_per_client
        self.open: dict[str, int] = {}
        # Addresses refused since they last had nothing open: one warning per episode.
        self._refused: set[str] = set()

    @classmethod
    def from_settings(cls, settings: Settings) -> ConnectionGuard:
        return cls(
            header_timeout=settings.header_timeout,
            body_timeout=settings.body_timeout,
            max_per_client=settings.max_connections_per_client,
        )

    def admit(self, host: str) -> ClientSlot | None:
        """A slot for one more connection from ``host``, or None when it holds its maximum."""
        count = self.open.get(host, 0)
        if count >= self.max_per_client:
            if host not in self._refused:
                self._refused.add(host)
                log.warning(
                    "refusing connections beyond the per-client maximum",
                    extra={"client": host, "open": count},
                )
            return None
        self.open[host] = count + 1
        return ClientSlot(self, host)

    def release(self, host: str) -> None:
        count = self.open[host] - 1
        if count:
            self.open[host] = count
        else:
            del self.open[host]
            self._refused.discard(host)


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with the guard's deadlines and cap."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        guard: ConnectionGuard,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.guard = guard
        self.slot: ClientSlot | None = None
        self.refused = False
        self.header_timer: asyncio.TimerHandle | None = None
        self.body_timer: asyncio.TimerHandle | None = None
        # Where the parser is in the current message: between its first byte and the end of its
        # headers, or between the end of its headers and its end.
        self.reading_headers = False
        self.reading_body = False
        self.body_seen_at = 0.0

    # -- the connection -------------------------------------------------------------------

    def connection_made(  # type: ignore[override]
        self, transport: asyncio.Transport
    ) -> None:
        super().connection_made(transport)
        if self.client is not None:  # a unix socket has no address to count
            self.slot = self.guard.admit(self.client[0])
            if self.slot is None:
                self.refused = True
                transport.close()
                return
        self.arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self.cancel_timers()
        if self.slot is not None:
            self.slot.release()
            self.slot = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.refused:
            return
        if not self.reading_headers and not self.reading_body:
            # The first bytes of a request (or stray bytes between requests, which the parser
            # skips without starting one): its headers are due from now.
            self.arm_header_timer()
        super().data_received(data)
        if self.reading_body and self.body_timer is None and not self.transport.is_closing():
            self.body_timer = self.loop.call_later(self.guard.body_timeout, self.on_body_timeout)

    def handle_websocket_upgrade(self) -> None:
        self.cancel_timers()
        self.reading_headers = self.reading_body = False
        try:
            super().handle_websocket_upgrade()
        finally:
            # The WebSocket protocol now owns the transport, and with it the client's slot.
            slot, self.slot = self.slot, None
            protocol = self.transport.get_protocol()
            if isinstance(protocol, GuardedWebSocketProtocol):
                protocol.slot = slot
            elif slot is not None:  # another WebSocket implementation: uncounted, never leaked
                slot.release()

    # -- parser callbacks -------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self.reading_headers = True
        self.arm_header_timer()
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self.reading_headers = False
        self.reading_body = True
        self.body_seen_at = self.loop.time()
        self.cancel_header_timer()
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        self.body_seen_at = self.loop.time()
        super().on_body(body)

    def on_message_complete(self) -> None:
        self.reading_body = False
        if self.body_timer is not None:
            self.body_timer.cancel()
            self.body_timer = None
        super().on_message_complete()

    # -- deadlines --------------------------------------------------------------------------

    def arm_header_timer(self) -> None:
        if self.header_timer is None:
            self.header_timer = self.loop.call_later(
                self.guard.header_timeout, self.on_header_timeout
            )

    def cancel_header_timer(self) -> None:
        if self.header_timer is not None:
            self.header_timer.cancel()
            self.header_timer = None

    def cancel_timers(self) -> None:
        self.cancel_header_timer()
        if self.body_timer is not None:
            self.body_timer.cancel()
            self.body_timer = None

    def on_header_timeout(self) -> None:
        self.header_timer = None
        if self.transport.is_closing():
            return
        if self.flow.read_paused:  # a pipelined request waits for the one before it: our wait
            self.arm_header_timer()
            return
        log.info(
            "closed a connection whose request headers were incomplete",
            extra={"client": self.client_host, "after_s": self.guard.header_timeout},
        )
        self.transport.close()

    def on_body_timeout(self) -> None:
        self.body_timer = None
        if self.transport.is_closing() or not self.reading_body:
            return
        now = self.loop.time()
        cycle = self.cycle
        if self.flow.read_paused or (cycle is not None and cycle.waiting_for_100_continue):
            self.body_seen_at = now  # the server is the one waiting, not the client
        remaining = self.body_seen_at + self.guard.body_timeout - now
        if remaining > 0:
            self.body_timer = self.loop.call_later(remaining, self.on_body_timeout)
            return
        log.info(
            "closed a connection whose request body stopped",
            extra={"client": self.client_host, "after_s": self.guard.body_timeout},
        )
        self.reading_body = False
        if cycle is not None and not cycle.response_started:
            self.send_408_response()
            # The app, if it is waiting for the body, reads a disconnect; what it sends is dropped.
            cycle.disconnected = True
            cycle.message_event.set()
        self.transport.close()

    def send_408_response(self) -> None:
        body = b"Request body timed out."
        content = [STATUS_LINE[408]]
        for name, value in self.server_state.default_headers:
            content.extend([name, b": ", value, b"\r\n"])
        content.extend(
            [
                b"content-type: text/plain; charset=utf-8\r\n",
                b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
                b"connection: close\r\n",
                b"\r\n",
                body,
            ]
        )
        self.transport.write(b"".join(content))

    @property
    def client_host(self) -> str | None:
        return self.client[0] if self.client else None


class GuardedWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's WebSocket protocol, holding the slot of the connection it was upgraded from."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.slot: ClientSlot | None = None

    def connection_lost(self, exc: Exception | None) -> None:
        try:
            super().connection_lost(exc)
        finally:
            if self.slot is not None:
                self.slot.release()
                self.slot = None


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's options for the hub (``tradehub serve`` and the tests' server): the guarded
    protocols, and no access log of uvicorn's (ours never prints query strings)."""
    return {
        # A factory in place of a class: uvicorn only calls it. It pickles, so each process of
        # ``serve --workers N`` unpickles its own guard.
        "http": functools.partial(
            GuardedHttpProtocol, guard=ConnectionGuard.from_settings(settings)
        ),
        "ws": GuardedWebSocketProtocol,
        "ws_per_message_deflate": False,
        "ws_max_size": 1 << 20,
        "access_log": False,
        "log_config": None,
        "timeout_graceful_shutdown": 5,
        "lifespan": "on",
    }
