"""Order entry on the /ws bot feed through real WebSocket clients: acks, the orders channel,
idempotent resends, every refusal, and an op that waits on the database without stalling the
socket."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
import websockets

from tests.conftest import Account, LiveServer, operation
from tests.helpers import eventually, graphql
from tests.test_feed import feed, recv, send


async def tick(server: LiveServer, symbol: str, price: float) -> None:
    await server.lifespan_state.marketdata.publish_tick(
        symbol, {"ts": time.time_ns(), "price": price, "recv_ns": time.time_ns()}
    )


async def known_symbol(server: LiveServer) -> str:
    """A symbol of its own for the test, with a first tick so the hub can price orders."""
    symbol = f"FO{secrets.token_hex(4).upper()}"
    await tick(server, symbol, 100.0)
    return symbol


async def paper_account(client: httpx.AsyncClient, owner: Account, **limits: Any) -> str:
    body = await graphql(
        client,
        operation("CreatePaperAccount"),
        {"input": {"name": f"feed-{secrets.token_hex(4)}", **limits}},
        token=owner.token,
    )
    assert "errors" not in body, body
    account_id: str = body["data"]["createPaperAccount"]["id"]
    return account_id


async def reply(ws: Any) -> dict[str, Any]:
    """The next frame that is not a channel event."""
    while True:
        frame = await recv(ws)
        if "channel" not in frame or "op" in frame:
            return frame


async def next_event(ws: Any, channel: str) -> dict[str, Any]:
    while True:
        frame = await recv(ws)
        if frame.get("channel") == channel and "seq" in frame:
            return frame


def order(account: str, symbol: str, order_id: str, **fields: Any) -> dict[str, Any]:
    frame: dict[str, Any] = {
        "op": "place_order",
        "id": order_id,
        "account": account,
        "symbol": symbol,
        "side": "buy",
        "type": "market",
        "quantity": 3,
    }
    frame.update(fields)
    return frame


async def order_count(pool: asyncpg.Pool, account: str | None = None) -> int:
    count: int = await pool.fetchval(
        "select count(*) from broker_orders where $1::text is null or account_id = $1", account
    )
    return count


@pytest.fixture
async def ws(server: LiveServer, alice: Account) -> AsyncIterator[Any]:
    socket = await feed(server, alice.token)
    try:
        yield socket
    finally:
        await socket.close()


@pytest.fixture
async def held_account(pool: asyncpg.Pool) -> AsyncIterator[Any]:
    """``await hold(account)`` locks the account's row in an open transaction, so a place on it
    waits inside the broker until ``release()``; ``waiting()`` says a place is waiting on it."""
    conn = await pool.acquire()
    transaction = conn.transaction()
    holding = False

    class Hold:
        async def __call__(self, account: str) -> None:
            nonlocal holding
            await transaction.start()
            holding = True
            await conn.execute(
                "select 1 from broker_accounts where account_id = $1 for update", account
            )

        async def waiting(self) -> bool:
            count: int = await pool.fetchval(
                """select count(*) from pg_stat_activity
                   where datname = current_database() and wait_event_type = 'Lock'
                     and query like '%from broker_accounts%for update%'"""
            )
            return count > 0

        async def release(self) -> None:
            nonlocal holding
            holding = False
            await transaction.commit()

    try:
        yield Hold()
    finally:
        if holding:  # the test failed while holding it
            await transaction.rollback()
        await pool.release(conn)


async def test_a_placed_order_is_acked_then_streamed_then_filled(
    server: LiveServer, client: httpx.AsyncClient, pool: asyncpg.Pool, alice: Account, ws: Any
) -> None:
    symbol = await known_symbol(server)
    account = await paper_account(client, alice)
    await send(ws, order(account, symbol, "buy-1"))
    ack = await reply(ws)
    assert ack == {
        "op": "order_accepted",
        "id": "buy-1",
        "order_id": ack["order_id"],
        "status": "working",
    }
    # Durable before the ack: another connection reads it at once.
    row = await pool.fetchrow(
        "select account_id, client_order_id, status from broker_orders where order_id = $1",
        int(ack["order_id"]),
    )
    assert row is not None and dict(row) == {
        "account_id": account,
        "client_order_id": "buy-1",
        "status": "working",
    }
    channel = f"account:{account}:orders"
    await send(ws, {"op": "subscribe", "channel": channel, "since": 0})
    assert (await reply(ws))["op"] == "subscribed"
    created = await next_event(ws, channel)
    assert created["seq"] == 1 and created["data"]["event"] == "created"
    assert created["data"]["order"]["order_id"] == ack["order_id"]
    assert created["data"]["order"]["client_order_id"] == "buy-1"
    await tick(server, symbol, 101.0)
    filled = await next_event(ws, channel)
    assert filled["seq"] == 2 and filled["data"]["event"] == "filled"
    assert filled["data"]["order"]["order_id"] == ack["order_id"]
    assert filled["data"]["order"]["status"] == "filled"
    assert filled["data"]["fill"]["quantity"] == 3


async def test_a_resent_id_returns_the_first_order(
    server: LiveServer,
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    alice: Account,
    ws: Any,
) -> None:
    symbol = await known_symbol(server)
    account = await paper_account(client, alice)
    resting = order(account, symbol, "dup-1", type="limit", price=50.0, quantity=1)
    await send(ws, resting)
    first = await reply(ws)
    assert first["op"] == "order_accepted" and first["status"] == "working"
    await send(ws, resting)
    assert await reply(ws) == first
    # Whatever else the resend says, it is the first order.
    await send(ws, {**resting, "quantity": 7, "price": 60.0})
    assert await reply(ws) == first
    # Resent after a cancel: the same order, with its current status.
    await send(ws, {"op": "cancel_order", "order_id": first["order_id"]})
    assert (await reply(ws))["op"] == "order_cancelled"
    await send(ws, resting)
    assert await reply(ws) == {**first, "status": "cancelled"}

    # The same id from two sockets at once: one order, both told of it.
    other = await feed(server, alice.token)
    try:
        racing = order(account, symbol, "dup-2", type="limit", price=50.0, quantity=2)
        await asyncio.gather(send(ws, racing), send(other, racing))
        acks = await asyncio.gather(reply(ws), reply(other))
    finally:
        await other.close()
    assert acks[0] == acks[1] and acks[0]["op"] == "order_accepted"
    assert acks[0]["order_id"] != first["order_id"]
    rows = await pool.fetch(
        "select client_order_id, quantity from broker_orders where account_id = $1 "
        "order by order_id",
        account,
    )
    assert [tuple(row) for row in rows] == [("dup-1", 1.0), ("dup-2", 2.0)]


async def test_a_bad_order_is_refused_and_writes_nothing(
    server: LiveServer,
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    alice: Account,
    ws: Any,
) -> None:
    symbol = await known_symbol(server)
    account = await paper_account(client, alice)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"quantity": 0}, "quantity"),
        ({"quantity": -1}, "quantity"),
        ({"quantity": "10"}, "quantity"),
        ({"type": "limit"}, "price"),
        ({"price": 101.0}, "price"),
        ({"type": "stop"}, "stop_price"),
        ({"side": "hold"}, "side"),
        ({"type": "iceberg"}, "type"),
        ({"tif": "forever"}, "tif"),
        ({"account": "D999999999"}, "account"),
        ({"account": None}, "account"),
        ({"symbol": f"NOPE{secrets.token_hex(4)}"}, "symbol"),
        ({"symbol": "two words"}, "symbol"),
        ({"id": None}, "id"),
        ({"id": "has space"}, "id"),
        ({"id": 42}, "id"),
        ({"time_in_force": "ioc"}, "time_in_force"),  # the broker's word, not the feed's
    ]
    before = await order_count(pool)
    for number, (change, field) in enumerate(cases):
        frame = {**order(account, symbol, f"bad-{number}"), **change}
        await send(ws, {key: value for key, value in frame.items() if value is not None})
        error = await reply(ws)
        assert error["op"] == "error" and error["code"] == "bad_order", (change, error)
        assert error["field"] == field, (change, error)
        if isinstance(frame.get("id"), str | int):
            assert error["id"] == frame["id"]
        else:
            assert "id" not in error
    assert await order_count(pool) == before
    # Each refusal left the socket serving.
    await send(ws, order(account, symbol, "good-after-bad"))
    assert (await reply(ws))["op"] == "order_accepted"


async def test_another_users_account_is_forbidden(
    server: LiveServer,
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    alice: Account,
    bob: Account,
    ws: Any,
) -> None:
    symbol = await known_symbol(server)
    account = await paper_account(client, alice)
    await send(ws, order(account, symbol, "alices", type="limit", price=50.0))
    alices = await reply(ws)
    assert alices["op"] == "order_accepted"
    bobs = await feed(server, bob.token)
    try:
        await send(bobs, order(account, symbol, "bobs"))
        refused = await reply(bobs)
        assert refused["op"] == "error" and refused["code"] == "forbidden"
        assert refused["id"] == "bobs" and refused["field"] == "account"
        await send(bobs, {"op": "cancel_order", "order_id": alices["order_id"], "id": "c"})
        refused = await reply(bobs)
        assert refused["code"] == "forbidden" and refused["id"] == "c"
    finally:
        await bobs.close()
    rows = await pool.fetch(
        "select client_order_id, status from broker_orders where account_id = $1", account
    )
    assert [tuple(row) for row in rows] == [("alices", "working")]


async def test_orders_past_the_accounts_rate_are_refused(
    server: LiveServer,
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    alice: Account,
    ws: Any,
) -> None:
    symbol = await known_symbol(server)
    account = await paper_account(client, alice, maxOrdersPerSecond=2)
    accepted: list[str] = []
    refused: dict[str, Any] | None = None
    # Two a second: pipelined orders run past it within a few of them (up to 60 is a bound).
    for burst in range(20):
        ids = [f"r-{burst}-{n}" for n in range(3)]
        for order_id in ids:
            await send(ws, order(account, symbol, order_id, type="limit", price=50.0))
        for order_id in ids:
            answer = await reply(ws)
            assert answer["id"] == order_id
            if answer["op"] == "order_accepted":
                accepted.append(order_id)
            else:
                refused = answer
        if refused is not None:
            break
    assert refused is not None
    assert refused["code"] == "rate_limited" and refused["retry_after"] == 1
    assert "2 orders a second" in refused["message"]
    stored = await pool.fetch(
        "select client_order_id from broker_orders where account_id = $1 order by order_id",
        account,
    )
    assert [row["client_order_id"] for row in stored] == accepted


async def test_a_risk_refusal_is_a_rejected_order(
    server: LiveServer,
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    alice: Account,
    ws: Any,
) -> None:
    symbol = await known_symbol(server)
    account = await paper_account(client, alice, maxOrderQuantity=5)
    await send(ws, order(account, symbol, "too-big", quantity=10))
    rejected = await reply(ws)
    assert rejected["op"] == "error" and rejected["code"] == "order_rejected"
    assert rejected["id"] == "too-big"
    assert "max_order_quantity" in rejected["reason"]
    row = await pool.fetchrow(
        "select status, reject_reason from broker_orders where order_id = $1",
        int(rejected["order_id"]),
    )
    assert row is not None and tuple(row) == ("rejected", rejected["reason"])
    await send(ws, order(account, symbol, "too-big", quantity=10))
    assert await reply(ws) == rejected  # resent: the same stored order, not a second
    await send(ws, order(account, symbol, "small", quantity=5))
    assert (await reply(ws))["op"] == "order_accepted"
    assert await order_count(pool, account) == 2


async def test_cancel_an_open_order_and_not_a_finished_one(
    server: LiveServer,
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    alice: Account,
    ws: Any,
) -> None:
    symbol = await known_symbol(server)
    account = await paper_account(client, alice)
    await send(ws, order(account, symbol, "rest", type="limit", price=50.0))
    resting = await reply(ws)
    await send(ws, {"op": "cancel_order", "order_id": resting["order_id"], "id": "c-1"})
    assert await reply(ws) == {
        "op": "order_cancelled",
        "id": "c-1",
        "order_id": resting["order_id"],
        "status": "cancelled",
    }
    await send(ws, {"op": "cancel_order", "order_id": int(resting["order_id"])})
    again = await reply(ws)
    assert again["op"] == "error" and again["code"] == "conflict"
    assert again["order_id"] == resting["order_id"] and again["status"] == "cancelled"
    assert "id" not in again

    await send(ws, order(account, symbol, "fills"))
    market = await reply(ws)
    channel = f"account:{account}:orders"
    await send(ws, {"op": "subscribe", "channel": channel, "since": 0})
    assert (await reply(ws))["op"] == "subscribed"
    await tick(server, symbol, 99.0)
    while (await next_event(ws, channel))["data"]["event"] != "filled":
        pass
    await send(ws, {"op": "cancel_order", "order_id": market["order_id"], "id": "c-2"})
    assert await reply(ws) == {
        "op": "error",
        "code": "conflict",
        "message": f"order {market['order_id']} is filled; only open orders can be cancelled",
        "id": "c-2",
        "order_id": market["order_id"],
        "status": "filled",
    }

    for frame, code, field in [
        ({"order_id": "999999999999"}, "not_found", "order_id"),
        ({"order_id": "abc"}, "bad_order", "order_id"),
        ({}, "bad_order", "order_id"),
        ({"order_id": resting["order_id"], "account": account}, "bad_order", "account"),
    ]:
        await send(ws, {"op": "cancel_order", "id": "c-x", **frame})
        error = await reply(ws)
        assert (error["code"], error["field"], error["id"]) == (code, field, "c-x"), error
    status = await pool.fetchval(
        "select status from broker_orders where order_id = $1", int(resting["order_id"])
    )
    assert status == "cancelled"


async def test_an_op_waiting_on_the_database_stalls_neither_reads_nor_deliveries(
    server: LiveServer,
    client: httpx.AsyncClient,
    alice: Account,
    ws: Any,
    held_account: Any,
) -> None:
    symbol = await known_symbol(server)
    account = await paper_account(client, alice)
    await send(ws, {"op": "subscribe", "channel": f"ticks:{symbol}"})
    assert (await reply(ws))["op"] == "subscribed"
    await held_account(account)
    await send(ws, order(account, symbol, "first", type="limit", price=50.0))
    await send(ws, order(account, symbol, "second", type="limit", price=50.0))
    await eventually(held_account.waiting, timeout=10)
    # The first place is waiting for the account's row: pings and ticks still get through.
    await send(ws, {"op": "ping"})
    assert (await reply(ws))["op"] == "pong"
    await tick(server, symbol, 100.5)
    delivered = await next_event(ws, f"ticks:{symbol}")
    assert delivered["data"]["price"] == 100.5
    await held_account.release()
    # The acks come in the order the orders were sent.
    first, second = await reply(ws), await reply(ws)
    assert (first["op"], first["id"]) == ("order_accepted", "first")
    assert (second["op"], second["id"]) == ("order_accepted", "second")
    assert int(first["order_id"]) < int(second["order_id"])


async def test_an_order_in_flight_when_the_bot_leaves_is_placed_and_announced(
    server: LiveServer,
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    alice: Account,
    held_account: Any,
) -> None:
    symbol = await known_symbol(server)
    account = await paper_account(client, alice)
    channel = f"account:{account}:orders"
    watcher = await feed(server, alice.token)
    leaving = await feed(server, alice.token)
    try:
        await send(watcher, {"op": "subscribe", "channel": channel})
        assert (await reply(watcher))["op"] == "subscribed"
        await held_account(account)
        await send(leaving, order(account, symbol, "orphan", type="limit", price=50.0))
        await eventually(held_account.waiting, timeout=10)
        await leaving.close()
        with pytest.raises(websockets.ConnectionClosed):
            await leaving.recv()

        async def session_gone() -> bool:
            # The hub runs in this event loop: its session's order task ends at teardown.
            return not any(task.get_name() == "feed-orders" for task in asyncio.all_tasks())

        await eventually(session_gone, timeout=10)
        await held_account.release()
        # The place ran to its end: stored, and its event published live.
        created = await next_event(watcher, channel)
        assert created["data"]["event"] == "created"
        assert created["data"]["order"]["client_order_id"] == "orphan"
    finally:
        await watcher.close()
        await leaving.close()
    assert await order_count(pool, account) == 1
