"""GraphQL over WebSocket: both protocols, their rules, limits, shared execution, cleanup."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import jwt as pyjwt
import orjson
import pytest
import websockets
from gql import GraphQLRequest, gql

from hub.gql.ws import GraphQLWebSocket
from hub.settings import Settings
from tests.conftest import Account, LiveServer, operation
from tests.helpers import eventually, gql_session
from tests.test_bus import append as append_events


def ws_endpoint(server: LiveServer) -> GraphQLWebSocket:
    for route in server.app.routes:
        if getattr(route, "path", None) == "/graphql" and isinstance(
            getattr(route, "app", None), GraphQLWebSocket
        ):
            return route.app
    raise AssertionError("no GraphQL WebSocket route")


async def connect(server: LiveServer, protocol: str = "graphql-transport-ws") -> Any:
    return await websockets.connect(f"{server.ws_url}/graphql", subprotocols=[protocol])


async def recv(ws: Any, timeout: float = 10) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            message = orjson.loads(await ws.recv())
            if message.get("type") not in ("ping", "ka"):
                return message  # type: ignore[no-any-return]


async def closed_with(ws: Any, timeout: float = 10) -> tuple[int, str]:
    async with asyncio.timeout(timeout):
        try:
            while True:
                await ws.recv()
        except websockets.ConnectionClosed as closed:
            assert closed.rcvd is not None
            return closed.rcvd.code, closed.rcvd.reason


async def init(ws: Any, token: str) -> None:
    await ws.send(
        orjson.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}})
    )
    assert (await recv(ws))["type"] == "connection_ack"


def subscribe(op_id: str, document: str, variables: dict[str, Any] | None = None) -> bytes:
    return orjson.dumps(
        {
            "id": op_id,
            "type": "subscribe",
            "payload": {"query": document, "variables": variables or {}},
        }
    )


async def new_job(server: LiveServer, who: Account) -> str:
    from hub.auth import Identity, Role

    row = await server.lifespan_state.jobs.create(
        Identity(who.user_id, who.username, Role.USER), "test.steps", {"steps": 1}
    )
    return str(row["job_id"])


async def test_connection_init_timeout_closes_4408(settings: Settings) -> None:
    live = LiveServer(settings.model_copy(update={"ws_init_timeout": 0.3}))
    await live.start()
    try:
        ws = await connect(live)
        assert (await closed_with(ws))[0] == 4408
    finally:
        await live.stop()


async def test_init_rules(server: LiveServer, alice: Account) -> None:
    no_credentials = await connect(server)
    await no_credentials.send(orjson.dumps({"type": "connection_init"}))
    assert (await closed_with(no_credentials))[0] == 4403

    bad_credentials = await connect(server)
    await bad_credentials.send(
        orjson.dumps({"type": "connection_init", "payload": {"Authorization": "Bearer nope"}})
    )
    assert (await closed_with(bad_credentials))[0] == 4403

    early = await connect(server)
    await early.send(subscribe("1", "{ me { username } }"))
    assert (await closed_with(early))[0] == 4401

    twice = await connect(server)
    await init(twice, alice.token)
    await twice.send(orjson.dumps({"type": "connection_init"}))
    assert (await closed_with(twice))[0] == 4429

    garbage = await connect(server)
    await init(garbage, alice.token)
    await garbage.send("{not json")
    assert (await closed_with(garbage))[0] == 4400

    header_auth = await websockets.connect(
        f"{server.ws_url}/graphql",
        subprotocols=["graphql-transport-ws"],
        additional_headers={"Authorization": f"Bearer {alice.token}"},
    )
    await header_auth.send(orjson.dumps({"type": "connection_init"}))
    assert (await recv(header_auth))["type"] == "connection_ack"
    await header_auth.close()

    with pytest.raises(websockets.InvalidStatus):
        await websockets.connect(f"{server.ws_url}/graphql", subprotocols=["something-else"])


async def test_queries_errors_duplicate_ids_and_ping(server: LiveServer, alice: Account) -> None:
    ws = await connect(server)
    await init(ws, alice.token)
    await ws.send(orjson.dumps({"type": "ping"}))
    assert (await recv(ws))["type"] == "pong"
    await ws.send(subscribe("q", operation("Me")))
    answer = await recv(ws)
    assert answer == {
        "id": "q",
        "type": "next",
        "payload": {
            "data": {"me": {"userId": alice.user_id, "username": alice.username, "role": "USER"}}
        },
    }
    assert await recv(ws) == {"id": "q", "type": "complete"}
    await ws.send(subscribe("bad", "subscription { nope }"))
    error = await recv(ws)
    assert error["type"] == "error" and "nope" in error["payload"][0]["message"]
    job_id = await new_job(server, alice)
    await ws.send(subscribe("s", operation("JobProgress"), {"jobId": job_id}))
    assert (await recv(ws))["payload"]["data"]["jobProgress"]["job"]["status"] == "PENDING"
    await ws.send(subscribe("s", operation("JobProgress"), {"jobId": job_id}))
    assert (await closed_with(ws))[0] == 4409


async def test_forbidden_and_unknown_topics_are_operation_errors(
    server: LiveServer, alice: Account, bob: Account
) -> None:
    job_id = await new_job(server, alice)
    ws = await connect(server)
    await init(ws, bob.token)
    await ws.send(subscribe("x", operation("JobProgress"), {"jobId": job_id}))
    error = await recv(ws)
    assert error["type"] == "error" and error["payload"][0]["extensions"]["code"] == "FORBIDDEN"
    await ws.send(
        subscribe("y", operation("JobProgress"), {"jobId": "00000000-0000-0000-0000-000000000000"})
    )
    assert (await recv(ws))["payload"][0]["extensions"]["code"] == "NOT_FOUND"
    await ws.send(subscribe("z", operation("JobLog"), {"jobId": job_id, "sinceSequence": 0}))
    assert (await recv(ws))["payload"][0]["extensions"]["code"] == "FORBIDDEN"
    # The connection is still fine.
    await ws.send(subscribe("q", operation("Me")))
    assert (await recv(ws))["payload"]["data"]["me"]["username"] == bob.username
    await ws.close()


async def test_operation_cap_per_connection(server: LiveServer, alice: Account) -> None:
    endpoint = ws_endpoint(server)
    job_id = await new_job(server, alice)
    ws = await connect(server)
    await init(ws, alice.token)
    for i in range(endpoint.max_operations):
        await ws.send(subscribe(f"s{i}", operation("JobProgress"), {"jobId": job_id}))
        await recv(ws)
    await ws.send(subscribe("one-too-many", operation("JobProgress"), {"jobId": job_id}))
    error = await recv(ws)
    assert (
        error["id"] == "one-too-many"
        and error["payload"][0]["extensions"]["code"] == "TOO_MANY_SUBSCRIPTIONS"
    )
    await ws.close()


async def test_jwt_expiry_closes_the_socket(
    server: LiveServer, settings: Settings, alice: Account
) -> None:
    token = pyjwt.encode(
        {"sub": alice.user_id, "name": alice.username, "role": "user", "exp": int(time.time()) + 2},
        settings.jwt_secret,
        algorithm="HS256",
    )
    ws = await connect(server)
    await init(ws, token)
    code, reason = await closed_with(ws, timeout=10)
    assert (code, reason) == (4401, "token expired")


async def test_legacy_graphql_ws_protocol(server: LiveServer, pool: Any, alice: Account) -> None:
    job_id = await new_job(server, alice)
    ws = await connect(server, "graphql-ws")
    await ws.send(
        orjson.dumps(
            {"type": "connection_init", "payload": {"authorization": f"Bearer {alice.token}"}}
        )
    )
    assert (await recv(ws))["type"] == "connection_ack"
    await ws.send(
        orjson.dumps(
            {
                "id": "1",
                "type": "start",
                "payload": {
                    "query": operation("JobLog"),
                    "variables": {"jobId": job_id, "sinceSequence": 0},
                },
            }
        )
    )
    await append_events(
        pool, server.lifespan_state.bus, f"job:{job_id}:log", [{"message": "hello"}]
    )
    data = await recv(ws)
    assert data["type"] == "data" and data["payload"]["data"]["jobLog"]["message"] == "hello"
    await ws.send(orjson.dumps({"id": "1", "type": "stop"}))
    await ws.send(orjson.dumps({"type": "connection_terminate"}))
    assert (await closed_with(ws))[0] == 1000


async def test_depth_alias_and_token_limits(
    server: LiveServer, client: httpx.AsyncClient, alice: Account
) -> None:
    deep = "{ me " + "{ username " * 0 + "{ username } }"
    aliases = "{ " + " ".join(f"a{i}: me {{ username }}" for i in range(40)) + " }"
    tokens = "{ " + " ".join("me { username }" for _ in range(800)) + " }"
    nested = "query { jobs { items { payload result " + "} } }"
    for document in (aliases, tokens):
        body = (
            await client.post("/graphql", json={"query": document}, headers=alice.headers)
        ).json()
        assert body["data"] is None and body["errors"], document[:40]
    assert (
        "errors"
        not in (await client.post("/graphql", json={"query": deep}, headers=alice.headers)).json()
    )
    assert (
        "errors"
        not in (await client.post("/graphql", json={"query": nested}, headers=alice.headers)).json()
    )
    ws = await connect(server)
    await init(ws, alice.token)
    await ws.send(subscribe("a", aliases))
    assert "aliases" in (await recv(ws))["payload"][0]["message"]
    await ws.send(subscribe("t", tokens))
    assert "token" in (await recv(ws))["payload"][0]["message"].lower()
    await ws.close()


async def test_an_event_is_executed_once_for_all_subscribers(
    server: LiveServer, pool: Any, alice: Account
) -> None:
    endpoint = ws_endpoint(server)
    job_id = await new_job(server, alice)
    bus = server.lifespan_state.bus
    attached = bus.local_subscriber_count()
    sockets = []
    for i in range(20):
        ws = await connect(server)
        await init(ws, alice.token)
        # Different resume points, same rendering: they share executions once live.
        await ws.send(
            subscribe(
                "log", operation("JobLog"), {"jobId": job_id, "sinceSequence": None if i % 2 else 0}
            )
        )
        sockets.append(ws)

    async def all_attached() -> bool:
        # graphql-transport-ws acknowledges no subscribe: a live-only one that is not attached
        # yet when the events go out would rightly never see them.
        return bool(bus.local_subscriber_count() >= attached + 20)

    await eventually(all_attached, timeout=30)
    hits, misses = endpoint.shared.hits, endpoint.shared.misses
    await append_events(
        pool,
        server.lifespan_state.bus,
        f"job:{job_id}:log",
        [{"message": f"m{i}"} for i in range(5)],
    )
    for ws in sockets:
        got = [(await recv(ws))["payload"]["data"]["jobLog"] for _ in range(5)]
        assert [g["message"] for g in got] == [f"m{i}" for i in range(5)]
        assert [g["sequence"] for g in got] == [1, 2, 3, 4, 5]
        await ws.close()
    assert endpoint.shared.misses - misses == 5
    assert endpoint.shared.hits - hits == 95


async def test_cancellation_cleans_up_after_a_thousand_cycles(
    server: LiveServer, alice: Account
) -> None:
    bus = server.lifespan_state.bus
    job_id = await new_job(server, alice)
    ws = await connect(server)
    await init(ws, alice.token)
    baseline_tasks = len(asyncio.all_tasks())
    # Other tests' open orders keep this hub's matchers subscribed to their symbols.
    subscribers, channels = bus.local_subscriber_count(), bus.channel_count()
    for i in range(1000):
        await ws.send(subscribe(f"c{i}", operation("JobProgress"), {"jobId": job_id}))
        assert (await recv(ws))["id"] == f"c{i}"
        await ws.send(orjson.dumps({"id": f"c{i}", "type": "complete"}))
    await eventually(lambda: asyncio.sleep(0, result=bus.local_subscriber_count() == subscribers))
    await eventually(lambda: asyncio.sleep(0, result=bus.channel_count() == channels))
    assert len(asyncio.all_tasks()) <= baseline_tasks + 2
    await ws.close()


async def test_gql_client_follows_a_job_log_from_zero(
    server: LiveServer, pool: Any, alice: Account
) -> None:
    job_id = await new_job(server, alice)
    topic = f"job:{job_id}:log"
    await append_events(
        pool, server.lifespan_state.bus, topic, [{"message": f"old {i}"} for i in range(3)]
    )
    received = []
    async with gql_session(server.ws_url, alice.token) as session:
        request = GraphQLRequest(
            gql(operation("JobLog")), variable_values={"jobId": job_id, "sinceSequence": 0}
        )
        async with asyncio.timeout(20):
            async for item in session.subscribe(request):
                received.append(item["jobLog"])
                if len(received) == 3:
                    await append_events(
                        pool, server.lifespan_state.bus, topic, [{"message": "new"}]
                    )
                if len(received) == 4:
                    break
    assert [r["sequence"] for r in received] == [1, 2, 3, 4]
    assert received[-1]["message"] == "new"


async def test_ticks_resume_tells_when_history_is_gone(server: LiveServer, alice: Account) -> None:
    from hub import marketdata

    bus = server.lifespan_state.bus
    seq, epoch = await marketdata.publish_tick(bus, "GQLT", {"price": 1.0})
    await marketdata.publish_tick(bus, "GQLT", {"price": 2.0})
    ws = await connect(server)
    await init(ws, alice.token)
    await ws.send(subscribe("ok", operation("Ticks"), {"symbol": "GQLT", "sinceSequence": seq}))
    item = await recv(ws)
    assert item["payload"]["data"]["ticks"]["sequence"] == seq + 1
    assert item["payload"]["data"]["ticks"]["epoch"] == epoch
    await ws.send(
        subscribe(
            "gone",
            operation("Ticks"),
            {"symbol": "GQLT", "sinceSequence": 1, "epoch": "an-old-epoch"},
        )
    )
    error = await recv(ws)
    assert error["type"] == "error" and error["id"] == "gone"
    assert error["payload"][0]["extensions"]["code"] == "STREAM_INTERRUPTED"
    await ws.close()
