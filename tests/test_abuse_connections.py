"""Connections that hold the server without finishing a request, and too many from one address.

The hub here runs with a 1 s header and body deadline and 5 connections per address. Each test
connects from its own loopback address (127.0.0.N), so the per-address caps of one test never
meet another's.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
import pytest
import websockets

from hub.settings import Settings
from tests.conftest import Account, LiveServer
from tests.helpers import eventually

HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 1.0
CAP = 5
MARGIN = 3.0  # what a busy machine may add to a deadline before the close is seen
_addresses = itertools.count(2)

Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@pytest.fixture(scope="module")
async def guarded(settings: Settings) -> AsyncIterator[LiveServer]:
    live = LiveServer(
        settings.model_copy(
            update={
                "header_timeout": HEADER_TIMEOUT,
                "body_timeout": BODY_TIMEOUT,
                "max_connections_per_client": CAP,
            }
        )
    )
    # An idle kept-alive connection is closed only by the test (uvicorn's default is 5 s), so a
    # place comes back only when the connection under test gives it back.
    live.server.config.timeout_keep_alive = 600
    await live.start()
    try:
        yield live
    finally:
        await live.stop()


def fresh_address() -> str:
    """A loopback address no other test uses (Linux routes all of 127/8 to lo)."""
    n = next(_addresses)
    return f"127.0.{n // 250}.{n % 250 + 2}"


@pytest.fixture
def address() -> str:
    return fresh_address()


async def connect(server: LiveServer, address: str) -> Stream:
    return await asyncio.open_connection("127.0.0.1", server.port, local_addr=(address, 0))


async def until_closed(reader: asyncio.StreamReader, within: float) -> bytes:
    """Everything the server sends until it closes the connection, failing after ``within``."""
    async with asyncio.timeout(within):
        try:
            return await reader.read()
        except ConnectionResetError:
            return b""


async def response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One HTTP/1.1 response with a Content-Length: its status and body."""
    async with asyncio.timeout(10):
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.lower().split(": ", 1) for line in lines[1:] if line)
        body = await reader.readexactly(int(headers.get("content-length", "0")))
    return int(lines[0].split()[1]), body


def get(path: str = "/healthz", *extra: str) -> bytes:
    return "\r\n".join([f"GET {path} HTTP/1.1", "Host: hub", *extra, "", ""]).encode()


async def request(stream: Stream, raw: bytes) -> tuple[int, bytes]:
    reader, writer = stream
    writer.write(raw)
    return await response(reader)


async def refused(server: LiveServer, address: str) -> bool:
    """True when a connection from ``address`` is closed without an answer to its request."""
    reader, writer = await connect(server, address)
    try:
        writer.write(get())
        async with asyncio.timeout(MARGIN):
            try:
                return await reader.read(100) == b""  # the first bytes of an answer, or the end
            except ConnectionResetError:
                return True
    finally:
        writer.close()


async def ws_connect(server: LiveServer, address: str, token: str | None) -> Any:
    return await websockets.connect(
        f"{server.ws_url}/ws",
        additional_headers={"Authorization": f"Bearer {token}"} if token else None,
        local_addr=(address, 0),
        open_timeout=10,
    )


async def ws_ping(ws: Any) -> None:
    await ws.send(orjson.dumps({"op": "ping"}).decode())
    async with asyncio.timeout(10):
        assert orjson.loads(await ws.recv())["op"] == "pong"


# -- header deadline ------------------------------------------------------------------------


async def test_incomplete_headers_are_closed_after_the_header_timeout(
    guarded: LiveServer,
) -> None:
    """Half a header, nothing at all, a header dripped a byte at a time, and a second request's
    half header on a kept-alive connection: each is closed, unanswered, at the deadline."""
    addresses = [fresh_address() for _ in range(3)]
    half = [await connect(guarded, a) for a in addresses for _ in range(CAP - 2)]
    for _, writer in half:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: hub\r\nX-Slow: ")
    silent = await connect(guarded, addresses[0])
    dripping = await connect(guarded, addresses[1])
    kept = await connect(guarded, addresses[2])
    assert (await request(kept, get()))[0] == 200
    kept[1].write(b"GET /healthz HTTP/1.1\r\nHost: hub\r\n")

    async def drip() -> None:
        for byte in b"GET /healthz HTTP/1.1\r\nHost: hub\r\nX-Slow: " + b"a" * 1000:
            dripping[1].write(bytes([byte]))
            await asyncio.sleep(HEADER_TIMEOUT / 10)  # pacing the drip, not waiting on it

    dripper = asyncio.create_task(drip())
    try:
        everyone = [*half, silent, dripping, kept]
        answers = await asyncio.gather(
            *(until_closed(reader, HEADER_TIMEOUT + MARGIN) for reader, _ in everyone)
        )
        assert answers == [b""] * len(everyone)
    finally:
        dripper.cancel()
        for _, writer in [*half, silent, dripping, kept]:
            writer.close()


async def test_a_kept_alive_connection_and_a_steady_body_are_not_cut(
    guarded: LiveServer, address: str
) -> None:
    """Idle between requests longer than the header timeout (the keep-alive timeout governs
    idleness), and a body whose pieces arrive within the body timeout of each other
    although the whole takes longer: both are served."""
    kept = await connect(guarded, address)
    try:
        assert (await request(kept, get()))[0] == 200
        await asyncio.sleep(HEADER_TIMEOUT * 1.5)  # time passing is what is tested
        assert (await request(kept, get()))[0] == 200
    finally:
        kept[1].close()
    body = orjson.dumps({"query": "{ __typename }"})
    reader, writer = await connect(guarded, address)
    try:
        writer.write(
            b"POST /graphql HTTP/1.1\r\nHost: hub\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body)
        )
        for i in range(0, len(body), len(body) // 5 + 1):
            await asyncio.sleep(BODY_TIMEOUT / 2)  # a slow client, within the body timeout
            writer.write(body[i : i + len(body) // 5 + 1])
        status, answer = await response(reader)
        assert status == 200, answer
        assert orjson.loads(answer)["data"] == {"__typename": "Query"}
    finally:
        writer.close()


# -- body deadline --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "start",
    [
        b"Content-Length: 100\r\n\r\n" + b'{"query": ',
        b"Transfer-Encoding: chunked\r\n\r\n" + b'a\r\n{"query": \r\n',
    ],
    ids=["content-length", "chunked"],
)
async def test_a_stalled_body_is_answered_408_and_closed(
    guarded: LiveServer, address: str, start: bytes
) -> None:
    reader, writer = await connect(guarded, address)
    try:
        writer.write(b"POST /graphql HTTP/1.1\r\nHost: hub\r\nContent-Type: application/json\r\n")
        writer.write(start)
        answer = await until_closed(reader, BODY_TIMEOUT + MARGIN)
        assert answer.startswith(b"HTTP/1.1 408 "), answer
        assert b"connection: close" in answer.lower()
    finally:
        writer.close()
    # The hub is still answering, from the same address.
    fresh = await connect(guarded, address)
    try:
        assert (await request(fresh, get()))[0] == 200
    finally:
        fresh[1].close()


# -- per-address cap ------------------------------------------------------------------------


async def test_a_sixth_connection_from_one_address_is_refused_while_five_work(
    guarded: LiveServer, address: str, alice: Account
) -> None:
    """Three kept-alive HTTP connections and two WebSockets fill the address's five places: a
    sixth HTTP connection or WebSocket is closed unanswered, another address is served, the
    five keep working, and a place given back is taken again."""
    streams = [await connect(guarded, address) for _ in range(3)]
    sockets = [await ws_connect(guarded, address, alice.token) for _ in range(2)]
    try:
        for stream in streams:
            assert (await request(stream, get()))[0] == 200
        for ws in sockets:
            await ws_ping(ws)
        assert await refused(guarded, address)
        with pytest.raises((websockets.InvalidHandshake, OSError, EOFError)):
            await ws_connect(guarded, address, alice.token)
        other = await connect(guarded, fresh_address())
        assert (await request(other, get()))[0] == 200
        other[1].close()
        for stream in streams:
            assert (await request(stream, get()))[0] == 200
        for ws in sockets:
            await ws_ping(ws)
        await sockets.pop().close()

        async def admitted() -> bool:
            return not await refused(guarded, address)

        await eventually(admitted, timeout=10)  # the WebSocket's place
    finally:
        for _, writer in streams:
            writer.close()
        for ws in sockets:
            await ws.close()


async def test_every_way_a_connection_ends_gives_its_place_back(
    guarded: LiveServer, address: str, alice: Account
) -> None:
    """Each way a connection ends, then all five places from the address at once: a place
    kept by any of them would leave a fifth connection refused."""

    async def header_timeout() -> None:
        reader, writer = await connect(guarded, address)
        writer.write(b"GET / HTTP/1.1\r\n")
        assert await until_closed(reader, HEADER_TIMEOUT + MARGIN) == b""
        writer.close()

    async def body_timeout() -> None:
        reader, writer = await connect(guarded, address)
        writer.write(b"POST /graphql HTTP/1.1\r\nHost: hub\r\nContent-Length: 10\r\n\r\n{")
        assert (await until_closed(reader, BODY_TIMEOUT + MARGIN)).startswith(b"HTTP/1.1 408")
        writer.close()

    async def bad_request() -> None:
        reader, writer = await connect(guarded, address)
        writer.write(b"NOT HTTP AT ALL\r\n\r\n")
        assert (await until_closed(reader, MARGIN)).startswith(b"HTTP/1.1 400")
        writer.close()

    async def connection_close() -> None:
        reader, writer = await connect(guarded, address)
        writer.write(get("/healthz", "Connection: close"))
        assert (await until_closed(reader, MARGIN)).startswith(b"HTTP/1.1 200")
        writer.close()

    async def client_closes() -> None:
        stream = await connect(guarded, address)
        assert (await request(stream, get()))[0] == 200
        stream[1].close()
        await stream[1].wait_closed()

    async def websocket_closed_by_client() -> None:
        ws = await ws_connect(guarded, address, alice.token)
        await ws_ping(ws)
        await ws.close()

    async def websocket_closed_by_server() -> None:
        ws = await ws_connect(guarded, address, None)
        await ws.send(orjson.dumps({"op": "auth", "token": "th_aaaaaaaaaaaa_" + "b" * 43}).decode())
        async with asyncio.timeout(10):
            with pytest.raises(websockets.ConnectionClosed):
                while True:
                    await ws.recv()

    async def websocket_refused_by_route() -> None:
        with pytest.raises(websockets.InvalidStatus):
            await websockets.connect(f"{guarded.ws_url}/nowhere", local_addr=(address, 0))

    endings: list[Callable[[], Awaitable[None]]] = [
        header_timeout,
        body_timeout,
        bad_request,
        connection_close,
        client_closes,
        websocket_closed_by_client,
        websocket_closed_by_server,
        websocket_refused_by_route,
    ]
    for end in endings:
        await end()

    async def all_places_free() -> bool:
        streams = await asyncio.gather(*(connect(guarded, address) for _ in range(CAP)))
        try:
            for _, writer in streams:
                writer.write(get("/healthz", "Connection: close"))
            answers = await asyncio.gather(
                *(until_closed(reader, MARGIN) for reader, _ in streams), return_exceptions=True
            )
            return all(isinstance(a, bytes) and a.startswith(b"HTTP/1.1 200") for a in answers)
        finally:
            for _, writer in streams:
                writer.close()

    # Closing is asynchronous on the server's side too: the places come back soon, not at once.
    await eventually(all_places_free, timeout=15, pause=0.2)


# -- WebSockets -----------------------------------------------------------------------------


async def test_an_upgraded_websocket_is_not_held_to_the_request_deadlines(
    guarded: LiveServer, address: str, alice: Account
) -> None:
    ws = await ws_connect(guarded, address, alice.token)
    try:
        await ws_ping(ws)
        await asyncio.sleep(HEADER_TIMEOUT + BODY_TIMEOUT + 0.5)  # time passing is what is tested
        await ws_ping(ws)
    finally:
        await ws.close()
