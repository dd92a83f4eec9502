"""Many clients at once on the real hub: 200 REST and GraphQL clients and 300 /ws subscribers
together, every answer right and every tick delivered in order. Outcomes only, never timings."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import httpx
import orjson
import websockets

from hub.marketdata import publish_tick
from tests.conftest import Account, LiveServer, operation

HTTP_CLIENTS = 200
SUBSCRIBERS = 300
TICKS = 5
ROUNDS = 2  # each HTTP client's rounds of its three requests, on one kept-alive connection


async def http_client(server: LiveServer, who: Account) -> list[str]:
    """One client's requests; returns what went wrong (nothing, when all is well)."""
    problems: list[str] = []
    async with httpx.AsyncClient(base_url=server.url, headers=who.headers, timeout=60) as http:
        for _ in range(ROUNDS):
            me = await http.get("/api/me")
            if me.status_code != 200 or me.json().get("username") != who.username:
                problems.append(f"/api/me: {me.status_code} {me.text[:200]}")
            jobs = await http.get("/api/jobs")
            if jobs.status_code != 200 or "jobs" not in jobs.json():
                problems.append(f"/api/jobs: {jobs.status_code} {jobs.text[:200]}")
            gql = await http.post("/graphql", json={"query": operation("Me")})
            body = gql.json() if gql.status_code == 200 else {}
            if body.get("data", {}).get("me", {}).get("username") != who.username:
                problems.append(f"/graphql: {gql.status_code} {gql.text[:200]}")
    return problems


async def subscriber(server: LiveServer, who: Account, channel: str, ready: Any) -> Any:
    ws = await websockets.connect(
        f"{server.ws_url}/ws",
        additional_headers={"Authorization": f"Bearer {who.token}"},
        open_timeout=60,
    )
    await ws.send(orjson.dumps({"op": "subscribe", "channel": channel}).decode())
    async with asyncio.timeout(60):
        reply = orjson.loads(await ws.recv())
    assert reply["op"] == "subscribed", reply
    ready()
    return ws


async def received(ws: Any, count: int) -> list[dict[str, Any]]:
    async with asyncio.timeout(60):
        return [orjson.loads(await ws.recv()) for _ in range(count)]


async def test_200_http_clients_and_300_subscribers_at_once(
    server: LiveServer, alice: Account, bob: Account, admin: Account
) -> None:
    people = [alice, bob, admin]
    symbol = f"LOAD{secrets.token_hex(4).upper()}"
    channel = f"ticks:{symbol}"
    subscribed = 0
    all_subscribed = asyncio.Event()

    def ready() -> None:
        nonlocal subscribed
        subscribed += 1
        if subscribed == SUBSCRIBERS:
            all_subscribed.set()

    # Subscribers connect while the HTTP clients run; the ticks go out once all have subscribed.
    http_work = asyncio.gather(
        *(http_client(server, people[i % len(people)]) for i in range(HTTP_CLIENTS))
    )
    sockets = await asyncio.gather(
        *(subscriber(server, people[i % len(people)], channel, ready) for i in range(SUBSCRIBERS))
    )
    try:
        assert all_subscribed.is_set()
        published = [
            await publish_tick(
                server.lifespan_state.bus, symbol, {"ts": n, "price": 100.0 + n, "size": 1.0}
            )
            for n in range(TICKS)
        ]
        deliveries = await asyncio.gather(*(received(ws, TICKS) for ws in sockets))
        problems = [p for client in await http_work for p in client]
        assert problems == [], problems[:5]
        expected = [
            {
                "channel": channel,
                "seq": seq,
                "epoch": epoch,
                "data": {"symbol": symbol, "ts": n, "price": 100.0 + n, "size": 1.0},
            }
            for n, (seq, epoch) in enumerate(published)
        ]
        wrong = [events for events in deliveries if events != expected]
        assert wrong == [], (len(wrong), wrong[:1], expected)
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets))
        if not http_work.done():
            http_work.cancel()
