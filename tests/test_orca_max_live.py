"""ORCA's live Max bot (seed 002, ``POST /api/v1/run-bot/max``): ``DEMO`` runs ``max_points`` on
paper on every tick, trading as the engine's tick simulator does on the same ticks; its
``bot_id`` reads through seed 003's routes; ``LIVE`` and bad forms answer in ORCA's format."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import asyncpg
import httpx
import numpy as np
import pytest

from engine.records import TradeStatus
from engine.ticks import simulate_ticks
from hub.settings import Settings
from tests.conftest import Account, LiveServer, operation
from tests.helpers import eventually, graphql, running_worker
from tests.test_live_runs import Feed

BOT = "/api/v1/run-bot/max"


@pytest.fixture
async def worker(settings: Settings) -> AsyncIterator[None]:
    async with running_worker(settings):
        yield


def form(contract: str, **extra: str) -> dict[str, str]:
    return {
        "accountName": f"APEX_{secrets.token_hex(3)}",
        "contract": contract,
        "maxMode": "max",
        "trading_mode": "both",
        "trading_side": "both",
        "point_strategy_key": "15_7_5_2",
        "exit_strategy_key": "15_15",
        "quantity": "2",
        "environment": "DEMO",
        **extra,
    }


async def test_a_demo_max_bot_trades_every_tick_like_the_tick_simulator(
    server: LiveServer,
    client: httpx.AsyncClient,
    worker: None,
    admin: Account,
    alice: Account,
    pool: asyncpg.Pool,
) -> None:
    ticks = Feed(client, admin, f"NQ{secrets.token_hex(2).upper()}")
    await ticks.send(21_000.0)
    answer = await client.post(BOT, data=form(ticks.symbol), headers=alice.headers)
    assert answer.status_code == 200, answer.text
    started = answer.json()
    assert set(started) == {"status", "bot_id", "config", "message"}
    assert started["status"] == "running"
    bot_id = started["bot_id"]
    status_url = f"/api/trading/executions/{bot_id}/status/"

    async def running() -> bool:
        got = await client.get(status_url, headers=alice.headers)
        return bool(got.status_code == 200 and got.json()["status"] == "running")

    await eventually(running, timeout=60)
    rng = np.random.default_rng(3)
    prices = (21_000.0 + np.cumsum(rng.choice([-3.0, -2.0, -1.0, 1.0, 2.0, 3.0], 600))).tolist()
    for start in range(0, len(prices), 100):
        await ticks.send(*prices[start : start + 100])
    expected = simulate_ticks(
        np.arange(len(prices), dtype=np.int64),
        np.array(prices),
        point_key="15_7_5_2",
        exit_strategy_key="15_15",
        units=2.0,
        direction="both",
    )
    closed = expected.trades[expected.trades["status"] == TradeStatus.Closed]
    assert len(closed) >= 2, "the oracle should trade"

    async def traded() -> bool:
        count = await pool.fetchval(
            "select count(*) from execution_trades where execution_id = $1", int(bot_id)
        )
        return bool(count >= len(closed))

    await eventually(traded, timeout=60)
    trades = await pool.fetch(
        "select direction, entry_price, exit_price, units, exit_reason from execution_trades "
        "where execution_id = $1 order by sequence",
        int(bot_id),
    )
    assert [(t["direction"], t["entry_price"], t["exit_price"], t["units"]) for t in trades] == [
        (
            "long" if t["direction"] == 0 else "short",
            float(t["entry_price"]),
            float(t["exit_price"]),
            2.0,
        )
        for t in closed
    ]
    assert {t["exit_reason"] for t in trades} <= {"take_profit", "stop_loss"}
    stopped = await client.post(f"/api/trading/executions/{bot_id}/status/", headers=alice.headers)
    assert stopped.status_code in (404, 405)  # seed 003 reads; GraphQL and Cracktrader stop


async def test_seed_002s_example_request_starts_without_max_mode(
    server: LiveServer, client: httpx.AsyncClient, worker: None, admin: Account, alice: Account
) -> None:
    """The seed's curl example sends no maxMode (its table calls it required): it starts, and
    config records maxMode as null."""
    ticks = Feed(client, admin, f"NQ{secrets.token_hex(2).upper()}")
    await ticks.send(21_000.0)
    tv, ta = f"D{secrets.token_hex(4)}", f"PAAPEX{secrets.token_hex(4)}"
    example = {
        "accountName": f"APEX_{secrets.token_hex(3)}",
        "contract": ticks.symbol,
        "trading_mode": "both",
        "trading_side": "both",
        "quantity": "1",
        "environment": "DEMO",
        "accounts_ids": f'[{{"tv_id":"{tv}","ta_id":"{ta}"}}]',
    }
    answer = await client.post(
        BOT, files={k: (None, v) for k, v in example.items()}, headers=alice.headers
    )  # multipart, as curl -F sends it
    assert answer.status_code == 200, answer.text
    config = answer.json()["config"]
    assert config["maxMode"] is None and config["trading_side"] == "both"
    assert [run["account"] for run in config["accounts"]] == [example["accountName"], ta]
    for run in config["accounts"]:
        stopped = await graphql(
            client, operation("StopExecution"), {"id": run["bot_id"]}, token=alice.token
        )
        assert "errors" not in stopped, stopped


async def test_live_environment_and_bad_forms_answer_in_orcas_format(
    server: LiveServer, client: httpx.AsyncClient, admin: Account, alice: Account
) -> None:
    ticks = Feed(client, admin, f"ES{secrets.token_hex(2).upper()}")
    await ticks.send(5_000.0)
    live = await client.post(
        BOT, data=form(ticks.symbol, environment="LIVE"), headers=alice.headers
    )
    assert live.status_code == 400
    assert set(live.json()) == {"detail", "status_code"} and live.json()["status_code"] == 400
    assert "no live broker adapter" in str(live.json()["detail"])
    cases = [
        form("NOSUCH7"),
        form(ticks.symbol, environment="TEST"),
        form(ticks.symbol, trading_mode="sideways"),
        form(ticks.symbol, point_strategy_key="15_x"),
        form(ticks.symbol, quantity="0"),
        form(ticks.symbol, accounts_ids="{not json"),
        {k: v for k, v in form(ticks.symbol).items() if k != "contract"},
    ]
    for data in cases:
        answer = await client.post(BOT, data=data, headers=alice.headers)
        assert answer.status_code == 422, (data, answer.text)
        assert set(answer.json()) == {"detail", "status_code"}
    assert (await client.post(BOT, data=form(ticks.symbol))).status_code == 401
