from __future__ import annotations

import time
from typing import Any

import httpx

from tests.conftest import Account, LiveServer, operation
from tests.helpers import eventually, graphql


async def tick(server: LiveServer, symbol: str, price: float, **extra: Any) -> None:
    md = server.lifespan_state.marketdata
    await md.publish_tick(
        symbol, {"ts": time.time_ns(), "price": price, "recv_ns": time.time_ns(), **extra}
    )


async def test_smoke(server: LiveServer, client: httpx.AsyncClient, alice: Account) -> None:
    await tick(server, "SMK", 100.0)
    acct = await graphql(
        client,
        operation("CreatePaperAccount"),
        {"input": {"name": f"s{time.time_ns()}", "initialBalance": 10000, "feeRate": 0.001}},
        token=alice.token,
    )
    assert "errors" not in acct, acct
    aid = acct["data"]["createPaperAccount"]["id"]
    placed = await graphql(
        client,
        operation("PlaceOrder"),
        {
            "input": {
                "accountId": aid,
                "symbol": "SMK",
                "side": "BUY",
                "type": "MARKET",
                "quantity": 10,
                "clientOrderId": "c1",
            }
        },
        token=alice.token,
    )
    assert "errors" not in placed, placed
    assert placed["data"]["placeOrder"]["status"] == "WORKING"
    await tick(server, "SMK", 101.0, bid=100.9, ask=101.1)

    async def filled() -> Any:
        r = await graphql(client, operation("Orders"), {"accountId": aid}, token=alice.token)
        o = r["data"]["orders"][0]
        return o if o["status"] == "FILLED" else None

    o = await eventually(filled, timeout=10)
    assert o["averagePrice"] == 101.1
    b = await graphql(client, operation("Balances"), {"accountId": aid}, token=alice.token)
    print(b)
    p = await graphql(client, operation("Positions"), {"accountId": aid}, token=alice.token)
    print(p)
    assert p["data"]["positions"]["positions"][0]["quantity"] == 10
