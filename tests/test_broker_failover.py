"""The matcher's process killed mid-stream (SIGKILL): another hub takes the symbol's lease,
reloads the working orders from Postgres, replays the ticks it missed, and no order is lost and
no fill is applied twice."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from hub.settings import Settings
from tests.brokerdesk import Desk, new_symbol
from tests.conftest import ROOT, Account, LiveServer, free_port
from tests.helpers import eventually, hub_env

ORDERS = 20


@pytest.fixture
async def other_hub(settings: Settings) -> AsyncIterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "hub", "serve"],
        env=hub_env(settings, TRADEHUB_PORT=str(port)),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=5) as http:

            async def ready() -> bool:
                try:
                    return (await http.get("/readyz")).status_code == 200
                except httpx.TransportError:
                    return False

            await eventually(ready, timeout=60, pause=0.2)
        yield process, base
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)


async def test_a_killed_matcher_loses_no_order_and_fills_nothing_twice(
    server: LiveServer,
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    alice: Account,
    admin: Account,
    other_hub: tuple[subprocess.Popen[bytes], str],
) -> None:
    process, base = other_hub
    symbol = new_symbol()
    limits = [round(99.9 - 0.1 * i, 2) for i in range(ORDERS)]
    async with httpx.AsyncClient(base_url=base, timeout=30) as there:
        # Orders placed through the other hub: it takes the symbol's lease.
        remote = Desk(there, alice, admin)
        await remote.ticks(symbol, 100.0)
        account = await remote.account(maxOrdersPerSecond=1000)
        placed = [
            await remote.place(account, symbol, type="LIMIT", price=price, quantity=1)
            for price in limits
        ]
    keys = server.lifespan_state.keys
    holder = await server.lifespan_state.redis.get(keys.matcher_lease(symbol))
    here = server.lifespan_state.broker.matchers
    assert holder is not None and holder.decode() != here.owner_id  # the other hub matches

    local = Desk(client, alice, admin)
    # Ticks at each limit in turn, each filling exactly one order; the matcher dies halfway.
    for i, price in enumerate(limits):
        if i == ORDERS // 2:
            process.send_signal(signal.SIGKILL)
            killed_at = await pool.fetchval("select clock_timestamp()")
        await local.ticks(symbol, price)
    assert process.wait(timeout=30) == -signal.SIGKILL

    async def all_filled() -> bool:
        statuses = await pool.fetch(
            "select status from broker_orders where account_id = $1", account
        )
        return len(statuses) == ORDERS and all(r["status"] == "filled" for r in statuses)

    await eventually(all_filled, timeout=60, pause=0.2)
    after = await pool.fetchval(
        "select count(*) from broker_fills where account_id = $1 and created_at > $2",
        account,
        killed_at,
    )
    assert after >= ORDERS // 2  # what the dead hub never saw, this one filled
    fills = await pool.fetch(
        "select order_id, quantity, price from broker_fills where account_id = $1 order by price desc",
        account,
    )
    assert [(r["quantity"], r["price"]) for r in fills] == [(1.0, p) for p in limits]
    assert sorted(r["order_id"] for r in fills) == sorted(int(o["id"]) for o in placed)
    position = await pool.fetchrow(
        "select quantity, average_price from broker_positions where account_id = $1", account
    )
    assert position["quantity"] == ORDERS
    assert position["average_price"] == pytest.approx(sum(limits) / ORDERS)
    sequences = [
        r["seq"]
        for r in await pool.fetch(
            "select seq from topic_events where topic = $1 order by seq", f"account:{account}:orders"
        )
    ]
    assert sequences == list(range(1, 2 * ORDERS + 1))  # created and filled, once each
    cash = await pool.fetchval("select cash from broker_accounts where account_id = $1", account)
    assert cash == pytest.approx(100_000 - sum(limits))
