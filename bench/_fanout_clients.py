"""The load generator of ``bench/fanout.py``: many WebSocket subscribers in one process.

A client process holds hundreds of connections on one event loop (uvloop) and is driven by the
orchestrator over a ``multiprocessing`` pipe: ``open`` the connections and subscribe, report how
many are ``warm`` (have received an event), ``start`` a measured window after a given sequence
per topic, ``stop`` it at a given last sequence per topic (waiting, bounded, for the stragglers),
``close`` everything, ``exit``.

Two WebSocket clients, both speaking to the server exactly like any other client:

- ``raw`` (default): a minimal RFC 6455 client on an ``asyncio.Protocol``: HTTP upgrade with
  ``Sec-WebSocket-Accept`` checked, unmasked server frames parsed in ``data_received``, masked
  client frames, ping/pong and close handled. Each frame costs a few microseconds, so on a 2-core
  machine the load generator leaves the server most of a core.
- ``websockets``: the ``websockets`` library's asyncio client, one reading task per connection
  (several times the CPU per frame; a cross-check of the raw client).

Neither negotiates permessage-deflate (the raw client never offers it; the library client is
told ``compression=None``), and both servers run with it off anyway.

For every event frame the client records publish-to-receive latency (the publisher puts
``time.time_ns()`` into the tick as ``ts``; /ws carries it as ``data.ts``, GraphQL as the
``ts`` DateTime field, microsecond precision) and counts, per connection, the sequences after the
window's start, duplicates and gaps; loss is computed against the publisher's last sequence.
"""

from __future__ import annotations

import sys as _sys
from abc import ABC, abstractmethod
from pathlib import Path as _Path

# bench/engine.py would shadow the engine package for scripts run from bench/: the repository
# root comes first on the path.
_sys.path.insert(0, str(_Path(__file__).resolve().parent.parent))

import asyncio
import base64
import contextlib
import ctypes
import hashlib
import os
import signal
import time
from array import array
from datetime import datetime
from multiprocessing.connection import Connection
from typing import Any

import orjson

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TRANSPORT_WS = "graphql-transport-ws"
HANDSHAKE_TIMEOUT = 15.0
SUBSCRIBE_TIMEOUT = 20.0
CONNECT_CONCURRENCY = 64
MAX_ERRORS_KEPT = 20


def die_with_parent() -> None:
    """Linux: get SIGTERM when the parent dies, so no client outlives the benchmark."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _mask(payload: bytes) -> bytes:
    key = os.urandom(4)
    n = len(payload)
    if n == 0:
        return key
    keystream = (key * (n // 4 + 1))[:n]
    masked = int.from_bytes(payload, "big") ^ int.from_bytes(keystream, "big")
    return key + masked.to_bytes(n, "big")


def client_frame(opcode: int, payload: bytes) -> bytes:
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 1 << 16:
        head = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    return head + _mask(payload)


class Window:
    """What the process is measuring right now (shared by its connections)."""

    __slots__ = ("active", "last_recv", "latencies", "start", "t0")

    def __init__(self) -> None:
        self.active = False
        self.start: dict[str, int] = {}
        self.latencies = array("d")
        self.last_recv = 0.0
        self.t0 = 0.0


class Subscriber(ABC):
    """One WebSocket connection with one subscription (a /ws channel or a GraphQL operation)."""

    def __init__(self, owner: ClientProcess, index: int, topic: str) -> None:
        self.owner = owner
        self.window = owner.window
        self.index = index
        self.topic = topic
        self.symbol = topic.split(":", 1)[1]
        self.kind = owner.kind
        self.last = 0  # highest sequence seen
        self.start = 0  # the window counts sequences above this
        self.count = 0  # distinct sequences counted in the window
        self.dupes = 0
        self.gaps = 0
        self.warm = False
        self.closed = False
        self.close_code: int | None = None
        self.errors: list[Any] = []
        self.acked = asyncio.get_running_loop().create_future()
        self.handle = self.on_ws if self.kind == "ws" else self.on_gql

    # -- sending (transport-specific) -------------------------------------------------
    @abstractmethod
    def send_text(self, text: str) -> None:
        """Send one text frame (the raw and the library clients each do it their way)."""

    def _ack(self, value: Any = True) -> None:
        if not self.acked.done():
            self.acked.set_result(value)

    def _fail(self, reason: Any) -> None:
        if len(self.errors) < MAX_ERRORS_KEPT:
            self.errors.append(reason)
        if not self.acked.done():
            self.acked.set_result(reason)

    # -- receiving --------------------------------------------------------------------
    def event(self, seq: int, published: float) -> None:
        now = time.time()
        if seq <= self.last:
            self.dupes += 1
            return
        if self.last and seq != self.last + 1:
            self.gaps += seq - self.last - 1
        self.last = seq
        self.warm = True
        window = self.window
        if window.active and seq > self.start:
            self.count += 1
            window.latencies.append(now - published)
            window.last_recv = now

    def on_ws(self, payload: bytes) -> None:
        message = orjson.loads(payload)
        op = message.get("op")
        if op is None:  # an event: {"channel", "seq", "epoch", "data"}
            self.event(message["seq"], message["data"]["ts"] * 1e-9)
            return
        if op == "subscribed":
            self._ack()
        elif op == "error":
            self._fail(message)
        # "authenticated", "pong": nothing to do

    def on_gql(self, payload: bytes) -> None:
        message = orjson.loads(payload)
        kind = message.get("type")
        if kind == "next":
            body = message["payload"]
            data = body.get("data")
            if not data or body.get("errors"):
                self._fail(body)
                return
            tick = data["ticks"]
            self.event(tick["sequence"], datetime.fromisoformat(tick["ts"]).timestamp())
        elif kind == "ping":
            self.send_text('{"type":"pong"}')
        elif kind == "connection_ack":
            self._ack()
        elif kind in ("error", "complete"):
            self._fail(message)

    def lost(self, code: int | None, reason: str) -> None:
        if not self.closed:
            self.closed = True
            self.close_code = code
            self._fail({"closed": code, "reason": reason})

    # -- the subscription handshake -----------------------------------------------------
    async def subscribe(self, token: str) -> None:
        if self.kind == "ws":
            self.send_text(orjson.dumps({"op": "auth", "token": token}).decode())
            self.send_text(orjson.dumps({"op": "subscribe", "channel": self.topic}).decode())
            result = await asyncio.wait_for(self.acked, SUBSCRIBE_TIMEOUT)
        else:
            init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}
            self.send_text(orjson.dumps(init).decode())
            result = await asyncio.wait_for(self.acked, SUBSCRIBE_TIMEOUT)
            if result is True:
                query = f'subscription {{ ticks(symbol: "{self.symbol}") {{ sequence price ts }} }}'
                frame = {"id": "1", "type": "subscribe", "payload": {"query": query}}
                self.send_text(orjson.dumps(frame).decode())
            # No ack for a subscription in graphql-transport-ws: warm-up events tell.
        if result is not True:
            raise ConnectionError(f"subscription refused: {result}")


class RawSubscriber(Subscriber, asyncio.Protocol):
    """The minimal RFC 6455 client (see the module docstring)."""

    def __init__(self, owner: ClientProcess, index: int, topic: str) -> None:
        Subscriber.__init__(self, owner, index, topic)
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.fragments: list[bytes] = []
        self.upgraded = asyncio.get_running_loop().create_future()
        self.gone = asyncio.get_running_loop().create_future()
        self.key = base64.b64encode(os.urandom(16))

    def request(self, host: str, port: int, path: str) -> bytes:
        lines = [
            f"GET {path} HTTP/1.1",
            f"Host: {host}:{port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {self.key.decode()}",
            "Sec-WebSocket-Version: 13",
        ]
        if self.kind == "gql":
            lines.append(f"Sec-WebSocket-Protocol: {TRANSPORT_WS}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send_text(self, text: str) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(client_frame(0x1, text.encode()))

    def send_close(self, code: int = 1000) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(client_frame(0x8, code.to_bytes(2, "big")))

    def _handshake(self) -> bool:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return False
        head = bytes(self.buffer[:end]).decode("latin-1")
        del self.buffer[: end + 4]
        status, *header_lines = head.split("\r\n")
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        expected = base64.b64encode(hashlib.sha1(self.key + WS_GUID).digest()).decode()
        if not status.startswith("HTTP/1.1 101"):
            error: Exception | None = ConnectionError(f"upgrade refused: {status}")
        elif headers.get("sec-websocket-accept") != expected:
            error = ConnectionError("bad Sec-WebSocket-Accept")
        elif self.kind == "gql" and headers.get("sec-websocket-protocol") != TRANSPORT_WS:
            error = ConnectionError("server did not select graphql-transport-ws")
        elif "sec-websocket-extensions" in headers:
            error = ConnectionError(f"unexpected extensions: {headers['sec-websocket-extensions']}")
        else:
            error = None
        if not self.upgraded.done():
            if error is None:
                self.upgraded.set_result(True)
            else:
                self.upgraded.set_exception(error)
        if error is not None and self.transport is not None:
            self.transport.close()
        return error is None

    def data_received(self, data: bytes) -> None:
        buf = self.buffer
        buf += data
        if not self.upgraded.done() and not self._handshake():
            return
        pos = 0
        size = len(buf)
        handle = self.handle
        while size - pos >= 2:
            b0 = buf[pos]
            length = buf[pos + 1] & 0x7F
            head = 2
            if length == 126:
                if size - pos < 4:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 4], "big")
                head = 4
            elif length == 127:
                if size - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                head = 10
            if buf[pos + 1] & 0x80:  # servers never mask (RFC 6455 5.1)
                self._protocol_error("masked frame from the server")
                return
            end = pos + head + length
            if end > size:
                break
            payload = bytes(buf[pos + head : end])
            pos = end
            opcode = b0 & 0x0F
            if opcode == 0x1 or opcode == 0x2:
                if b0 & 0x80:
                    handle(payload)
                else:
                    self.fragments = [payload]
            elif opcode == 0x0:
                self.fragments.append(payload)
                if b0 & 0x80:
                    whole, self.fragments = b"".join(self.fragments), []
                    handle(whole)
            elif opcode == 0x9:  # ping
                if self.transport is not None and not self.transport.is_closing():
                    self.transport.write(client_frame(0xA, payload))
            elif opcode == 0x8:  # close
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                reason = payload[2:].decode("utf-8", "replace")
                self.lost(code, reason)
                self.send_close(code if code not in (1005, 1006) else 1000)
                if self.transport is not None:
                    self.transport.close()
                del buf[:pos]
                return
        if pos:
            del buf[:pos]

    def _protocol_error(self, reason: str) -> None:
        self.lost(1002, reason)
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost(1006, f"connection lost: {exc}")
        if not self.upgraded.done():
            self.upgraded.set_exception(ConnectionError(f"connection lost during upgrade: {exc}"))
        if not self.gone.done():
            self.gone.set_result(None)

    async def open(self, host: str, port: int, path: str, token: str) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.wait_for(loop.create_connection(lambda: self, host, port), HANDSHAKE_TIMEOUT)
        assert self.transport is not None
        self.transport.write(self.request(host, port, path))
        await asyncio.wait_for(self.upgraded, HANDSHAKE_TIMEOUT)
        await self.subscribe(token)

    async def shutdown(self) -> None:
        self.send_close(1000)
        try:
            await asyncio.wait_for(asyncio.shield(self.gone), 3.0)
        except TimeoutError:
            if self.transport is not None:
                self.transport.abort()


class LibrarySubscriber(Subscriber):
    """The same subscriber over the ``websockets`` library's asyncio client."""

    def __init__(self, owner: ClientProcess, index: int, topic: str) -> None:
        super().__init__(owner, index, topic)
        self.ws: Any = None
        self.reader: asyncio.Task[None] | None = None
        self.pending: list[str] = []

    def send_text(self, text: str) -> None:
        if self.ws is not None and not self.closed:
            task = asyncio.ensure_future(self.ws.send(text))
            task.add_done_callback(lambda t: t.exception())

    async def _read(self) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            async for message in self.ws:
                self.handle(message.encode() if isinstance(message, str) else message)
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd is not None else 1006
            self.lost(code, str(exc))
            return
        rcvd = self.ws.close_code
        self.lost(rcvd, "closed")

    async def open(self, host: str, port: int, path: str, token: str) -> None:
        from websockets.asyncio.client import connect

        self.ws = await asyncio.wait_for(
            connect(
                f"ws://{host}:{port}{path}",
                subprotocols=[TRANSPORT_WS] if self.kind == "gql" else None,  # type: ignore[list-item]
                compression=None,
                max_size=1 << 20,
                ping_interval=None,
                open_timeout=HANDSHAKE_TIMEOUT,
            ),
            HANDSHAKE_TIMEOUT,
        )
        self.reader = asyncio.create_task(self._read())
        await self.subscribe(token)

    async def shutdown(self) -> None:
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.close(), 3.0)
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(BaseException):
                await self.reader


class ClientProcess:
    def __init__(self, pipe: Connection) -> None:
        self.pipe = pipe
        self.kind = "ws"
        self.window = Window()
        self.subs: list[Subscriber] = []
        self.commands: asyncio.Queue[Any] = asyncio.Queue()

    # -- commands -------------------------------------------------------------------
    async def open(self, spec: dict[str, Any]) -> dict[str, Any]:
        self.kind = spec["kind"]
        cls = RawSubscriber if spec["client"] == "raw" else LibrarySubscriber
        self.window = Window()
        self.subs = [cls(self, i, topic) for i, topic in enumerate(spec["topics"])]
        gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
        failures: list[str] = []

        async def one(sub: Subscriber) -> None:
            async with gate:
                try:
                    await sub.open(spec["host"], spec["port"], spec["path"], spec["token"])  # type: ignore[attr-defined]
                except Exception as exc:  # noqa: BLE001 - counted and reported as a failed open
                    sub.lost(None, f"open failed: {exc!r}")
                    failures.append(repr(exc))

        t0 = time.perf_counter()
        await asyncio.gather(*(one(sub) for sub in self.subs))
        return {
            "opened": len(self.subs) - len(failures),
            "failed": len(failures),
            "errors": failures[:5],
            "seconds": time.perf_counter() - t0,
        }

    def warm(self) -> dict[str, Any]:
        return {
            "warm": sum(1 for s in self.subs if s.warm and not s.closed),
            "closed": sum(1 for s in self.subs if s.closed),
            "errors": [s.errors[-1] for s in self.subs if s.errors][:3],
        }

    def start(self, spec: dict[str, Any]) -> dict[str, Any]:
        window = self.window = Window()
        window.start = spec["start"]
        window.t0 = time.time()
        for sub in self.subs:
            sub.window = window
            sub.start = window.start[sub.topic]
            sub.count = sub.dupes = sub.gaps = 0
        self.cpu0 = time.process_time()
        window.active = True
        return {"ok": True}

    async def stop(self, spec: dict[str, Any]) -> dict[str, Any]:
        end: dict[str, int] = spec["end"]
        deadline = time.monotonic() + spec["drain"]
        while time.monotonic() < deadline:
            if all(s.closed or s.last >= end[s.topic] for s in self.subs):
                break
            await asyncio.sleep(0.01)
        window = self.window
        window.active = False
        cpu = time.process_time() - self.cpu0
        expected = received = lost = dupes = gaps = lagging = closed = 0
        errors: list[Any] = []
        for sub in self.subs:
            want = end[sub.topic] - sub.start
            expected += want
            received += sub.count
            lost += max(0, want - sub.count)
            dupes += sub.dupes
            gaps += sub.gaps
            if sub.closed:
                closed += 1
            elif sub.last < end[sub.topic]:
                lagging += 1
            if sub.errors and len(errors) < 5:
                errors.append(sub.errors[-1])
        return {
            "expected": expected,
            "received": received,
            "lost": lost,
            "dupes": dupes,
            "gaps": gaps,
            "closed": closed,
            "lagging": lagging,
            "errors": errors,
            "cpu": cpu,
            "last_recv": window.last_recv,
            "latencies": window.latencies.tobytes(),
        }

    async def close(self) -> dict[str, Any]:
        subs, self.subs = self.subs, []
        results = await asyncio.gather(
            *(s.shutdown() for s in subs),  # type: ignore[attr-defined]
            return_exceptions=True,
        )
        return {"closed": len(subs), "errors": sum(1 for r in results if isinstance(r, Exception))}

    # -- the loop -------------------------------------------------------------------
    def _readable(self) -> None:
        try:
            while self.pipe.poll():
                self.commands.put_nowait(self.pipe.recv())
        except (EOFError, OSError):
            self.commands.put_nowait(("exit", None))

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_reader(self.pipe.fileno(), self._readable)
        # The event loop made the pipe non-blocking; replies (latency arrays of a few MB) are
        # sent whole, so put it back: the orchestrator reads them at once.
        os.set_blocking(self.pipe.fileno(), True)
        while True:
            command, spec = await self.commands.get()
            try:
                if command == "open":
                    reply: Any = await self.open(spec)
                elif command == "warm":
                    reply = self.warm()
                elif command == "start":
                    reply = self.start(spec)
                elif command == "stop":
                    reply = await self.stop(spec)
                elif command == "close":
                    reply = await self.close()
                elif command == "exit":
                    await self.close()
                    return
                else:
                    reply = {"error": f"unknown command {command!r}"}
            except Exception as exc:  # noqa: BLE001 - reported to the orchestrator, never silent
                reply = {"error": repr(exc)}
            try:
                self.pipe.send((command, reply))
            except (BrokenPipeError, OSError):
                return


def client_main(pipe: Connection) -> None:
    """Entry point of a client process (forked by the orchestrator before it starts a loop)."""
    die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the orchestrator decides when we stop
    import uvloop

    uvloop.run(ClientProcess(pipe).run())
