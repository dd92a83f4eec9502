"""The bot feed at /ws through a real WebSocket client, and resume under random disconnects."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from typing import Any

import asyncpg
import httpx
import orjson
import websockets
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from hub import marketdata
from hub.auth import Identity, Role
from hub.settings import Settings
from tests.conftest import ROOT, Account, LiveServer, free_port, operation
from tests.helpers import eventually, hub_env
from tests.test_bus import append as append_events


async def feed(server: LiveServer, token: str | None = None, **kwargs: Any) -> Any:
    ws = await websockets.connect(f"{server.ws_url}/ws", **kwargs)
    if token is not None:
        await ws.send(orjson.dumps({"op": "auth", "token": token}).decode())
        assert (await recv(ws))["op"] == "authenticated"
    return ws


async def recv(ws: Any, timeout: float = 10) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        return orjson.loads(await ws.recv())  # type: ignore[no-any-return]


async def send(ws: Any, frame: dict[str, Any]) -> None:
    await ws.send(orjson.dumps(frame).decode())


async def new_job(
    server: LiveServer, who: Account, job_type: str = "test.steps", payload: Any = None
) -> str:
    row = await server.lifespan_state.jobs.create(
        Identity(who.user_id, who.username, Role.USER), job_type, payload or {"steps": 1}
    )
    return str(row["job_id"])


async def test_auth_by_first_frame_or_header(server: LiveServer, alice: Account) -> None:
    ws = await feed(server, alice.token)
    await send(ws, {"op": "ping"})
    assert (await recv(ws))["op"] == "pong"
    await ws.close()
    header = await websockets.connect(
        f"{server.ws_url}/ws", additional_headers={"Authorization": f"Bearer {alice.token}"}
    )
    await send(header, {"op": "ping"})
    assert (await recv(header))["op"] == "pong"
    await header.close()
    refused = await websockets.connect(f"{server.ws_url}/ws")
    await send(refused, {"op": "auth", "token": "th_aaaaaaaaaaaa_" + "b" * 43})
    error = await recv(refused)
    assert error == {"op": "error", "code": "unauthorized", "message": "invalid token"}
    try:
        await recv(refused)
    except websockets.ConnectionClosed as closed:
        assert closed.rcvd is not None and closed.rcvd.code == 4401
    first_not_auth = await websockets.connect(f"{server.ws_url}/ws")
    await send(first_not_auth, {"op": "subscribe", "channel": "ticks:BTC"})
    assert (await recv(first_not_auth))["code"] == "unauthorized"


async def test_subscribe_history_live_unsubscribe(
    server: LiveServer, pool: asyncpg.Pool, alice: Account
) -> None:
    job_id = await new_job(server, alice)
    channel = f"job:{job_id}:log"
    bus = server.lifespan_state.bus
    await append_events(pool, bus, channel, [{"message": "a"}, {"message": "b"}])
    ws = await feed(server, alice.token)
    await send(ws, {"op": "subscribe", "channel": channel, "since": 0})
    assert await recv(ws) == {"op": "subscribed", "channel": channel, "recovered": True, "seq": 0}
    assert await recv(ws) == {"channel": channel, "seq": 1, "data": {"message": "a"}}
    assert await recv(ws) == {"channel": channel, "seq": 2, "data": {"message": "b"}}
    await append_events(pool, bus, channel, [{"message": "c"}])
    assert await recv(ws) == {"channel": channel, "seq": 3, "data": {"message": "c"}}
    await send(ws, {"op": "unsubscribe", "channel": channel})
    assert await recv(ws) == {"op": "unsubscribed", "channel": channel}
    await append_events(pool, bus, channel, [{"message": "d"}])
    await send(ws, {"op": "ping"})
    assert (await recv(ws))["op"] == "pong"  # nothing from the channel in between
    # A state channel: the job's current state first.
    await send(ws, {"op": "subscribe", "channel": f"job:{job_id}"})
    assert (await recv(ws))["op"] == "subscribed"
    state = await recv(ws)
    assert state["channel"] == f"job:{job_id}" and state["data"]["status"] == "PENDING"
    await ws.close()


async def test_bad_input_gets_errors_and_the_rest_keeps_working(
    server: LiveServer, pool: asyncpg.Pool, alice: Account, bob: Account
) -> None:
    job_id = await new_job(server, alice)
    bobs = await new_job(server, bob)
    channel = f"job:{job_id}:log"
    ws = await feed(server, alice.token)
    await send(ws, {"op": "subscribe", "channel": channel})
    assert (await recv(ws))["op"] == "subscribed"
    cases: list[tuple[Any, str]] = [
        ("{not json", "bad_frame"),
        ("[1, 2]", "bad_frame"),
        ({"op": "dance"}, "unknown_op"),
        ({"op": "subscribe", "channel": "weather:today"}, "unknown_channel"),
        ({"op": "subscribe", "channel": f"job:{job_id}:log"}, "already_subscribed"),
        ({"op": "subscribe", "channel": f"job:{bobs}:log"}, "forbidden"),
        ({"op": "subscribe", "channel": "job:00000000-0000-0000-0000-000000000000"}, "not_found"),
        ({"op": "subscribe", "channel": f"job:{job_id}", "since": "ten"}, "bad_since"),
        ({"op": "subscribe", "channel": f"job:{job_id}", "since": -1}, "bad_since"),
        ({"op": "subscribe", "channel": f"job:{job_id}:log", "since": 99}, "already_subscribed"),
        ({"op": "unsubscribe", "channel": "ticks:NOPE"}, "not_subscribed"),
        ("x" * 70_000, "frame_too_large"),
    ]
    for frame, code in cases:
        await ws.send(frame if isinstance(frame, str) else orjson.dumps(frame).decode())
        error = await recv(ws)
        assert error["op"] == "error" and error["code"] == code, (
            frame if isinstance(frame, dict) else frame[:20],
            error,
        )
    other = await feed(server, alice.token)
    await send(other, {"op": "subscribe", "channel": f"job:{job_id}:log", "since": 99})
    assert (await recv(other))["code"] == "since_out_of_range"
    # The first subscription still delivers.
    await append_events(pool, server.lifespan_state.bus, channel, [{"message": "still here"}])
    assert (await recv(ws))["data"] == {"message": "still here"}
    await ws.close()
    await other.close()


async def test_eleventh_subscription_is_refused(server: LiveServer, alice: Account) -> None:
    ws = await feed(server, alice.token)
    for i in range(10):
        await send(ws, {"op": "subscribe", "channel": f"ticks:SYM{i}"})
        assert (await recv(ws))["op"] == "subscribed"
    await send(ws, {"op": "subscribe", "channel": "ticks:SYM10"})
    error = await recv(ws)
    assert error["code"] == "too_many_subscriptions" and "10" in error["message"]
    await send(ws, {"op": "unsubscribe", "channel": "ticks:SYM0"})
    assert (await recv(ws))["op"] == "unsubscribed"
    await send(ws, {"op": "subscribe", "channel": "ticks:SYM10"})
    assert (await recv(ws))["op"] == "subscribed"
    await ws.close()


async def _read_until(ws: Any, channel: str, stop_after: int, got: list[int]) -> None:
    while len(got) < stop_after:
        message = await recv(ws, timeout=20)
        if message.get("channel") == channel and "seq" in message and "data" in message:
            got.append(message["seq"])


@hsettings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    pauses=st.lists(st.integers(min_value=1, max_value=25), min_size=1, max_size=8),
    abrupt=st.lists(st.booleans(), min_size=8, max_size=8),
    graphql=st.booleans(),
)
async def test_random_disconnects_resume_exactly_once_in_order(
    server: LiveServer,
    pool: asyncpg.Pool,
    alice: Account,
    pauses: list[int],
    abrupt: list[bool],
    graphql: bool,
) -> None:
    total = 120
    job_id = await new_job(server, alice)
    channel = f"job:{job_id}:log"
    bus = server.lifespan_state.bus
    await append_events(pool, bus, channel, [{"n": i} for i in range(1, 31)])

    async def writer() -> None:
        n = 31
        while n <= total:
            batch = list(range(n, min(n + 7, total + 1)))
            await append_events(pool, bus, channel, [{"n": i} for i in batch])
            n += len(batch)
            await asyncio.sleep(0.005)

    task = asyncio.create_task(writer())
    received: list[int] = []
    schedule = iter(pauses)
    attempt = 0
    async with asyncio.timeout(60):
        while len(received) < total:
            last = received[-1] if received else 0
            read = next(schedule, total)
            got: list[int] = []
            if graphql:
                # max_queue=None: a client that stops reading mid-stream still sees the close
                # handshake at once (a full queue pauses its reads until close_timeout).
                ws = await websockets.connect(
                    f"{server.ws_url}/graphql",
                    subprotocols=["graphql-transport-ws"],
                    max_queue=None,
                )
                await ws.send(
                    orjson.dumps(
                        {"type": "connection_init", "payload": {"token": alice.token}}
                    ).decode()
                )
                assert orjson.loads(await ws.recv())["type"] == "connection_ack"
                await ws.send(
                    orjson.dumps(
                        {
                            "id": "r",
                            "type": "subscribe",
                            "payload": {
                                "query": operation("JobLog"),
                                "variables": {"jobId": job_id, "sinceSequence": last},
                            },
                        }
                    ).decode()
                )
                while len(got) < min(read, total - len(received)):
                    message = orjson.loads(await ws.recv())
                    if message["type"] == "next":
                        got.append(message["payload"]["data"]["jobLog"]["sequence"])
            else:
                ws = await feed(server, alice.token, max_queue=None)
                await send(ws, {"op": "subscribe", "channel": channel, "since": last})
                await _read_until(ws, channel, min(read, total - len(received)), got)
            received.extend(got)
            if abrupt[attempt % len(abrupt)]:
                ws.transport.abort()  # the network drops: no close handshake
            else:
                await ws.close()
            attempt += 1
    await task
    assert received == list(range(1, total + 1))


async def test_a_client_that_never_reads_does_not_delay_the_others(
    settings: Settings, pool: asyncpg.Pool, alice: Account
) -> None:
    live = LiveServer(settings.model_copy(update={"bus_queue_size": 64, "ws_send_timeout": 1.0}))
    await live.start()
    try:
        job_id = await new_job(live, alice)
        channel = f"job:{job_id}:log"
        # A reader that never reads: a tiny receive buffer and no recv() calls.
        stuck = await feed(live, alice.token, max_queue=1, max_size=None)
        stuck.transport.get_extra_info("socket").setsockopt(
            socket.SOL_SOCKET, socket.SO_RCVBUF, 4096
        )
        await send(stuck, {"op": "subscribe", "channel": channel})
        assert (await recv(stuck))["op"] == "subscribed"
        healthy = await feed(live, alice.token)
        await send(healthy, {"op": "subscribe", "channel": channel})
        assert (await recv(healthy))["op"] == "subscribed"
        blob = "x" * 8000
        got: list[int] = []
        reader = asyncio.create_task(_read_until(healthy, channel, 600, got))
        for start in range(0, 600, 50):
            await append_events(
                pool,
                live.lifespan_state.bus,
                channel,
                [{"n": i, "pad": blob} for i in range(start, start + 50)],
            )
        await reader
        assert got == list(range(1, 601))
        # The stuck one was cut off (its queue overflowed or its socket stayed full): only the
        # healthy subscriber is left on the bus.
        await eventually(
            lambda: asyncio.sleep(0, result=live.lifespan_state.bus.local_subscriber_count() == 1)
        )
        # ...and its connection was released: the handler returned (the open-sockets gauge
        # counts only the healthy one) although the client still has not read a byte.
        gauge = live.lifespan_state.metrics.websockets.labels("/ws")
        await eventually(lambda: asyncio.sleep(0, result=gauge._value.get() == 1), timeout=30)
        await healthy.close()
        stuck.transport.abort()
    finally:
        await live.stop()


async def test_a_client_that_stops_reading_is_closed_after_the_send_timeout(
    settings: Settings, alice: Account
) -> None:
    live = LiveServer(settings.model_copy(update={"ws_send_timeout": 1.0}))
    await live.start()
    try:
        stuck = await feed(live, alice.token, max_queue=1, max_size=None)
        stuck.transport.get_extra_info("socket").setsockopt(
            socket.SOL_SOCKET, socket.SO_RCVBUF, 4096
        )
        await send(stuck, {"op": "subscribe", "channel": "ticks:STUCK"})
        assert (await recv(stuck))["op"] == "subscribed"
        bus = live.lifespan_state.bus
        blob = "x" * 16_000
        # 9.6 MB: more than the sockets hold (the kernel's send buffer grows to 4 MB), far
        # fewer events than the queue: only a send that waits too long can end this subscriber.
        for i in range(600):
            await marketdata.publish_tick(bus, "STUCK", {"price": float(i), "pad": blob})
        metrics = live.lifespan_state.metrics
        gauge = metrics.websockets.labels("/ws")
        await eventually(lambda: asyncio.sleep(0, result=gauge._value.get() == 0), timeout=30)
        assert bus.local_subscriber_count() == 0
        assert metrics.slow_consumers._value.get() == 0
        stuck.transport.abort()
    finally:
        await live.stop()


async def test_a_subscriber_on_another_hub_process_sees_a_worker_process_publish(
    settings: Settings, alice: Account, server: LiveServer
) -> None:
    assert settings.database_url and settings.redis_url
    port = free_port()
    env = hub_env(settings, TRADEHUB_PORT=str(port))
    hub = subprocess.Popen(
        [sys.executable, "-m", "hub", "serve"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    worker = subprocess.Popen(
        [sys.executable, "-m", "hub", "worker"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        async def ready() -> bool:
            try:
                async with httpx.AsyncClient() as http:
                    return (await http.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200
            except httpx.HTTPError:
                return False

        await eventually(ready, timeout=60, pause=0.2)
        # The job is created through this process's hub; the other hub serves the subscriber.
        job_id = await new_job(server, alice, "test.steps", {"steps": 5, "pause": 0.05})
        ws = await websockets.connect(f"ws://127.0.0.1:{port}/ws")
        await send(ws, {"op": "auth", "token": alice.token})
        assert (await recv(ws))["op"] == "authenticated"
        await send(ws, {"op": "subscribe", "channel": f"job:{job_id}"})
        assert (await recv(ws))["op"] == "subscribed"
        statuses = []
        seqs = []
        while not statuses or statuses[-1] not in ("COMPLETED", "FAILED"):
            message = await recv(ws, timeout=60)
            statuses.append(message["data"]["status"])
            seqs.append(message["seq"])
        assert statuses[-1] == "COMPLETED" and "RUNNING" in statuses
        assert seqs == sorted(set(seqs))
        await ws.close()
    finally:
        for proc in (hub, worker):
            proc.terminate()
        for proc in (hub, worker):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
