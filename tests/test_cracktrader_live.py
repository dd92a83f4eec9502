"""Cracktrader's paper trading (seed 004): ``/run/live`` on the caller's paper account, the live
run's ``/status``, ``/status/detailed`` and ``/results``, ``/run/stop`` and ``/run/reset``, and its
``orders`` channel on ``/ws`` frame by frame against the seed's fields."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from hub.settings import Settings
from tests.conftest import Account, LiveServer
from tests.helpers import eventually, running_worker
from tests.test_feed import feed, recv, send
from tests.test_live_runs import Feed, new_symbol

ORDER_FIELDS = {"order_id", "status", "symbol", "side", "amount", "price", "timestamp"}


@pytest.fixture
async def worker(settings: Settings) -> AsyncIterator[None]:
    async with running_worker(settings):
        yield


def body(symbol: str, **extra: Any) -> dict[str, Any]:
    return {
        "strategy_name": "sma_crossover",
        "strategy_params": {"fast": 1, "slow": 2},
        "symbols": [symbol],
        "timeframe": "1s",
        "exchange": "binance",
        "exchange_config": {
            "apiKey": "AK-visible-nowhere",
            "secret": "S3CR3T-value",
            "sandbox": True,
        },
        "mode": "paper",
        **extra,
    }


async def test_paper_trading_through_cracktrader_from_start_to_reset(
    server: LiveServer,
    client: httpx.AsyncClient,
    worker: None,
    admin: Account,
    bob: Account,
    pool: asyncpg.Pool,
) -> None:
    trader = bob
    await client.delete("/api/v1/run/reset", headers=trader.headers)
    ticks = Feed(client, admin, new_symbol())
    await ticks.send(10.0)
    started = await client.post(
        "/api/v1/run/live", json=body(ticks.symbol, initial_cash=25_000.0), headers=trader.headers
    )
    assert started.status_code == 200, started.text
    run_id = started.json()["run_id"]
    assert started.json()["status"] == "created"

    # A second live run while this one is active: 409, nothing started.
    again = await client.post("/api/v1/run/live", json=body(ticks.symbol), headers=trader.headers)
    assert again.status_code == 409 and again.json()["error"]["code"] == "CONFLICT"

    async def running() -> bool:
        status = (await client.get("/api/v1/status", headers=trader.headers)).json()
        return bool(status["status"] == "running")

    await eventually(running, timeout=60)
    ws = await feed(server, trader.token)
    try:
        await send(ws, {"op": "subscribe", "channel": "orders"})
        ack = await recv(ws)
        assert ack["op"] == "subscribed" and ack["channel"] == "orders"
        await ticks.send(10.0, 9.0, 10.0, 10.5)  # a cross up: the entry fills at 10.5
        frames = [await recv(ws), await recv(ws)]
    finally:
        await ws.close()
    assert [f["data"]["status"] for f in frames] == ["working", "filled"]
    for frame in frames:
        assert frame["channel"] == "orders" and isinstance(frame["seq"], int)
        assert set(frame["data"]) == ORDER_FIELDS
        data = frame["data"]
        assert data["symbol"] == ticks.symbol and data["side"] == "buy"
        assert isinstance(data["timestamp"], int)
    filled = frames[1]["data"]
    assert filled["price"] == 10.5
    assert filled["amount"] == pytest.approx(25_000.0 / 10.5)
    assert filled["timestamp"] == (ticks.ts - 1_000_000_000) // 1_000_000  # the fill's market time

    status = (await client.get("/api/v1/status", headers=trader.headers)).json()
    assert status["run_id"] == run_id and status["mode"] == "paper"
    assert status["cash"] == pytest.approx(0.0, abs=1e-6)
    assert status["value"] == pytest.approx(25_000.0)
    # Seed 003 names task types `backtest` and `trading`: the domain's `live` is `trading` there.
    seed003 = f"/api/trading/executions/{run_id}"
    for path in ("status/", "trades/", "metrics/latest/"):
        answer = (await client.get(f"{seed003}/{path}", headers=trader.headers)).json()
        assert answer["task_type"] == "trading", (path, answer)
    detailed = (await client.get("/api/v1/status/detailed", headers=trader.headers)).json()
    assert detailed["mode"] == "paper" and detailed["health"]["status"]

    stopped = await client.post("/api/v1/run/stop", headers=trader.headers)
    assert stopped.status_code == 200 and stopped.json()["run_id"] == run_id

    async def ended() -> bool:
        status = (await client.get("/api/v1/status", headers=trader.headers)).json()
        return bool(status["status"] == "stopped")

    await eventually(ended, timeout=30)
    results = (await client.get("/api/v1/results", headers=trader.headers)).json()
    assert results["run_id"] == run_id and results["status"] == "stopped"
    assert [t["exit_reason"] for t in results["trades"]] == ["stopped"]
    assert results["config"]["exchange"] == "binance"
    assert results["final_value"] == pytest.approx(25_000.0)
    # The exchange secrets are kept encrypted and never echoed.
    for text in (started.text, results.__repr__(), str(detailed)):
        assert "S3CR3T" not in text and "AK-visible" not in text
    stored = await pool.fetchval(
        "select exchange_secret from execution_tasks t join executions e using (task_id) "
        "where e.execution_id = $1",
        run_id,
    )
    assert stored is not None and b"S3CR3T" not in bytes(stored)

    # The run's other channels, from the start: its closed trade, its equity, its status.
    ws = await feed(server, trader.token)
    try:
        for channel in ("trades", "equity", "status"):
            await send(ws, {"op": "subscribe", "channel": channel, "since": 0})
            assert (await recv(ws))["op"] == "subscribed"
            frame = await recv(ws)
            assert frame["channel"] == channel and frame["seq"] >= 1, frame
            if channel == "trades":
                assert frame["data"]["exit_reason"] == "stopped"
            if channel == "status":
                assert frame["data"]["status"] == "stopped"
            await send(ws, {"op": "unsubscribe", "channel": channel})
            while (await recv(ws)).get("op") != "unsubscribed":
                pass
    finally:
        await ws.close()

    reset = await client.delete("/api/v1/run/reset", headers=trader.headers)
    assert reset.status_code == 200
    assert (await client.get("/api/v1/status", headers=trader.headers)).json()["status"] == "idle"


async def test_live_mode_and_bad_requests_answer_in_cracktraders_format(
    server: LiveServer, client: httpx.AsyncClient, admin: Account, alice: Account
) -> None:
    ticks = Feed(client, admin, new_symbol())
    await ticks.send(10.0)
    cases = [
        (body(ticks.symbol, mode="live"), 400, "mode"),
        (body(ticks.symbol, strategy_name="nope"), 400, "strategy_name"),
        (body(ticks.symbol, strategy_params={"fast": 5, "slow": 2}), 400, "strategy_params"),
        (body("NOSUCH9"), 400, "symbols"),
        (body(ticks.symbol, symbols=[]), 400, "symbols"),
        (body(ticks.symbol, timeframe="9x"), 400, "timeframe"),
    ]
    for request, status, field in cases:
        answer = await client.post("/api/v1/run/live", json=request, headers=alice.headers)
        assert answer.status_code == status, (request, answer.text)
        error = answer.json()["error"]
        assert set(error) == {"code", "message", "details"}
        assert error["details"].get("field") == field, (request, error)
    live = await client.post(
        "/api/v1/run/live", json=body(ticks.symbol, mode="live"), headers=alice.headers
    )
    assert "no live broker adapter" in live.json()["error"]["message"]
    anonymous = await client.post("/api/v1/run/live", json=body(ticks.symbol))
    assert anonymous.status_code == 401
