"""Each REST family answers in its own error format everywhere under its base path (its routes,
its auth failures, unknown paths and wrong methods), and what a legacy client of seeds 003 and
004 tried is answered as the seeds show it."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import numpy as np
import pytest

from hub.executions.documents import VALUE_METRICS, num
from hub.settings import Settings
from rest.executions import checkpoint_body, fixed2
from tests.conftest import Account, LiveServer, operation
from tests.helpers import eventually, generate_dataset, graphql, running_worker

SYMBOL = "FAM/USD"


@pytest.fixture(scope="module")
async def run_id(server: LiveServer, settings: Settings, admin: Account) -> AsyncIterator[int]:
    """A finished backtest of ``admin``'s on a small synthetic dataset."""
    async with (
        running_worker(settings),
        httpx.AsyncClient(base_url=server.url, timeout=30) as http,
    ):
        await generate_dataset(server.url, admin, SYMBOL, 3000, seed=7)
        await http.delete("/api/v1/run/reset", headers=admin.headers)
        started = await http.post(
            "/api/v1/run/backtest",
            headers=admin.headers,
            json={
                "strategy_name": "sma_crossover",
                "strategy_params": {"fast": 5, "slow": 20},
                "symbols": [SYMBOL],
                "timeframe": "1h",
                "initial_cash": 10_000.0,
                "exchange": "binance",
            },
        )
        assert started.status_code == 200, started.text
        number = int(started.json()["run_id"])

        async def finished() -> bool:
            url = f"/api/trading/executions/{number}/status/"
            status = (await http.get(url, headers=admin.headers)).json()
            return bool(status["status"] == "completed")

        await eventually(finished, timeout=120)
        yield number


def _sigmalab(body: Any) -> bool:
    return set(body) == {"error", "request_id"} and set(body["error"]) == {
        "code",
        "message",
        "details",
    }


async def test_unknown_paths_and_methods_answer_in_the_family_format(
    client: httpx.AsyncClient, alice: Account
) -> None:
    h = alice.headers
    executions = await client.get("/api/trading/executions/1/nothing/", headers=h)
    assert executions.status_code == 404 and set(executions.json()) == {"error"}
    wrong_method = await client.post("/api/trading/executions/1/status/", headers=h)
    assert wrong_method.status_code == 405 and set(wrong_method.json()) == {"error"}
    assert "GET" in wrong_method.headers["allow"]
    orca = await client.get("/api/v1/trading/nothing", headers=h)
    assert orca.status_code == 404 and orca.json() == {"detail": "Not Found", "status_code": 404}
    bot = await client.get("/api/v1/run-bot/nothing", headers=h)
    assert bot.json()["status_code"] == 404
    sigma = await client.get("/api/v1/nothing", headers=h)
    assert sigma.status_code == 404 and _sigmalab(sigma.json())
    assert sigma.json()["error"]["code"] == "NOT_FOUND"
    assert sigma.json()["request_id"] == sigma.headers["x-request-id"]
    cracktrader_method = await client.get("/api/v1/run/backtest", headers=h)
    # A wrong method on one of Cracktrader's routes answers in Cracktrader's format (no
    # request_id), though its paths lie under Sigma Lab's /api/v1.
    assert cracktrader_method.status_code == 405
    assert list(cracktrader_method.json()) == ["error"]
    assert cracktrader_method.json()["error"]["code"] == "METHOD_NOT_ALLOWED"
    stage1 = await client.get("/api/nothing", headers=h)
    assert stage1.status_code == 404 and stage1.json() == {"error": "Not Found"}


async def test_auth_failures_answer_in_the_family_format(client: httpx.AsyncClient) -> None:
    executions = await client.get("/api/trading/executions/1/status/")
    assert executions.status_code == 401 and isinstance(executions.json()["error"], str)
    stage1 = await client.get("/api/jobs", headers={"X-Stage1-Token": "th_nope"})
    assert stage1.status_code == 401 and isinstance(stage1.json()["error"], str)
    cracktrader = await client.get("/api/v1/results")
    assert cracktrader.status_code == 401
    assert cracktrader.json()["error"]["code"] == "UNAUTHORIZED"
    sigma = await client.post("/api/v1/auth/token", json={"username": "x", "password": "y"})
    assert sigma.status_code == 401 and _sigmalab(sigma.json())


async def test_sequences_past_int64_are_400_not_500(
    client: httpx.AsyncClient, admin: Account, run_id: int
) -> None:
    base = f"/api/trading/executions/{run_id}"
    for path, params in (
        ("events/", {"since_sequence": "99999999999999999999"}),
        ("trades/", {"since_sequence": "9223372036854775808"}),
        ("equity/", {"since_sequence": "-99999999999999999999"}),
        ("equity/", {"max_points": "99999999999999999999"}),
        ("events/", {"page": "1e3"}),
        ("events/", {"page_size": "１０"}),  # full-width digits are not an integer here
    ):
        bad = await client.get(f"{base}/{path}", params=params, headers=admin.headers)
        assert bad.status_code == 400, (path, params, bad.text)
        assert set(bad.json()) == {"error"}
    ok = await client.get(
        f"{base}/events/", params={"since_sequence": str(2**63 - 1)}, headers=admin.headers
    )
    assert ok.status_code == 200 and ok.json()["events"] == []


async def test_two_equity_points_are_the_first_and_last(
    client: httpx.AsyncClient, admin: Account, run_id: int
) -> None:
    url = f"/api/trading/executions/{run_id}/equity/"
    every = (await client.get(url, params={"page_size": 1000}, headers=admin.headers)).json()
    two = await client.get(url, params={"max_points": 2}, headers=admin.headers)
    assert two.status_code == 200, two.text
    points = two.json()["equity_curve"]
    assert len(points) == 2 and points[0] == every["equity_curve"][0]
    assert points[1]["sequence"] == every["count"]


async def test_granularity_is_set_only_when_points_were_dropped(
    client: httpx.AsyncClient, admin: Account, run_id: int
) -> None:
    """Seed 003 sets ``granularity_seconds`` "if downsampling was applied": a ``max_points``
    at or above the points there are returns them all, with ``null``."""
    url = f"/api/trading/executions/{run_id}/equity/"
    count = (await client.get(url, params={"page_size": 1}, headers=admin.headers)).json()["count"]
    for params, points, dropped in (
        ({"max_points": 1_000_000}, count, False),
        ({"max_points": 3, "since_sequence": count - 3}, 3, False),
        ({"max_points": 2, "since_sequence": count - 3}, 2, True),
    ):
        body = (await client.get(url, params=params, headers=admin.headers)).json()
        assert body["count"] == points, (params, body)
        assert (body["granularity_seconds"] is not None) is dropped, (params, body)


async def test_money_never_uses_an_exponent(
    client: httpx.AsyncClient, admin: Account, run_id: int
) -> None:
    trades = (
        await client.get(f"/api/trading/executions/{run_id}/trades/", headers=admin.headers)
    ).json()["trades"]
    assert trades
    decimal = re.compile(r"-?\d+\.\d+")
    for item in trades:
        for key in ("entry_price", "exit_price", "pnl", "pips", "fees", "return"):
            assert decimal.fullmatch(item["trade"][key]), (key, item["trade"][key])
    assert num(9.96865616639383e-06) == "0.00000996865616639383"
    assert num(1e16) == "10000000000000000.0" and float(num(1e16) or 0) == 1e16
    assert num(-2.5e-12) == "-0.0000000000025"
    for value in np.random.default_rng(3).lognormal(0, 12, 500):
        text = num(float(value))
        assert text is not None and "e" not in text and float(text) == float(value)


async def test_whole_units_are_integers_as_seed_003_shows_them(
    client: httpx.AsyncClient, alice: Account, run_id: int
) -> None:
    """Seed 003 shows ``"units": 1000``; a typed client reading an integer refused ``1000.0``.
    (``run_id`` keeps the module's worker running.)"""
    await client.delete("/api/v1/run/reset", headers=alice.headers)
    started = await client.post(
        "/api/v1/run/backtest",
        headers=alice.headers,
        json={
            "strategy_name": "sma_crossover",
            "strategy_params": {"fast": 5, "slow": 20},
            "symbols": [SYMBOL],
            "timeframe": "1h",
            "initial_cash": 1_000_000.0,
            "exchange": "binance",
            "options": {"sizing": "units", "size": 1000},
        },
    )
    assert started.status_code == 200, started.text
    base = f"/api/trading/executions/{started.json()['run_id']}"

    async def finished() -> bool:
        status = (await client.get(f"{base}/status/", headers=alice.headers)).json()
        return bool(status["status"] == "completed")

    await eventually(finished, timeout=120)
    trades = (await client.get(f"{base}/trades/", headers=alice.headers)).text
    events = (
        await client.get(
            f"{base}/events/", params={"event_type": "trade_executed"}, headers=alice.headers
        )
    ).text
    for text in (trades, events):
        assert '"units":1000,' in text and '"units":1000.0' not in text, text[:400]


def test_undefined_checkpoint_metrics_are_the_seed_strings() -> None:
    doc: dict[str, Any] = {
        "id": 1,
        "processed": 10,
        "total_trades": 0,
        "winning_trades": 0,
        "losing_trades": 0,
        "created_at": "2026-01-12T10:30:00Z",
    }
    for key in VALUE_METRICS:
        doc[key] = None
    doc["profit_factor"] = float("inf")
    doc["total_pnl"] = 1250.0
    body = checkpoint_body(doc)
    assert body is not None and body["win_rate"] == "0.00" and body["profit_factor"] == "0.00"
    assert body["total_pnl"] == "1250.00" and body["total_trades"] == 0
    counts = ("id", "processed", "total_trades", "winning_trades", "losing_trades")
    assert all(isinstance(v, str) for k, v in body.items() if k not in counts)
    assert list(body)[:4] == ["id", "processed", "total_return", "total_pnl"]
    assert fixed2(12.5) == "12.50" and fixed2(float("nan")) == "0.00"


async def test_an_unknown_symbol_names_the_supported_ones(
    client: httpx.AsyncClient, admin: Account, run_id: int
) -> None:
    await client.delete("/api/v1/run/reset", headers=admin.headers)
    refused = await client.post(
        "/api/v1/run/backtest",
        headers=admin.headers,
        json={
            "strategy_name": "sma_crossover",
            "symbols": ["BTC/USDT"],
            "timeframe": "1h",
            "initial_cash": 1000.0,
            "exchange": "binance",
        },
    )
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert error["code"] == "INVALID_SYMBOL" and "BTC/USDT" in error["message"]
    assert SYMBOL in error["details"]["supported_symbols"]


async def test_statuses_are_numbers_in_the_domain_and_strings_in_seed_003(
    server: LiveServer, client: httpx.AsyncClient, admin: Account, run_id: int
) -> None:
    rest = (
        await client.get(f"/api/trading/executions/{run_id}/status/", headers=admin.headers)
    ).json()
    assert isinstance(rest["checkpoint"]["total_pnl"], str)
    doc = await server.lifespan_state.executions.status_document(
        await server.lifespan_state.executions.get(_admin(admin), run_id)
    )
    assert isinstance(doc["checkpoint"]["total_pnl"], float)
    assert rest["checkpoint"]["total_pnl"] == f"{doc['checkpoint']['total_pnl']:.2f}"
    body = await graphql(
        client,
        "query($id: ID!) { execution(id: $id) { latestCheckpoint { metrics } } }",
        {"id": str(run_id)},
        token=admin.token,
    )
    metrics = body["data"]["execution"]["latestCheckpoint"]["metrics"]
    assert metrics["total_pnl"] == doc["checkpoint"]["total_pnl"]


async def test_graphql_errors_name_graphql_inputs(
    client: httpx.AsyncClient, admin: Account, run_id: int
) -> None:
    body = await graphql(
        client,
        operation("StartBacktest"),
        {"input": {"strategy": "sma_crossover", "symbol": SYMBOL, "initialCapital": -1}},
        token=admin.token,
    )
    extensions = body["errors"][0]["extensions"]
    assert extensions["code"] == "INVALID_PARAMETER" and extensions["field"] == "initialCapital"


def _admin(account: Account) -> Any:
    from hub.auth import Identity, Role

    return Identity(account.user_id, account.username, Role.ADMIN)


async def test_health_routes_keep_their_own_family_and_405_names_every_method(
    client: httpx.AsyncClient, admin: Account
) -> None:
    stage1 = await client.post("/api/health")
    assert stage1.status_code == 405 and set(stage1.json()) == {"error"}
    orca = await client.post("/api/health/")
    assert orca.status_code == 405 and set(orca.json()) == {"detail", "status_code"}
    cracktrader = await client.post("/api/v1/health")  # seed 004's; Sigma Lab's is /healthz
    assert cracktrader.status_code == 405 and list(cracktrader.json()) == ["error"]
    both = await client.put("/api/admin/users", headers=admin.headers)
    assert both.status_code == 405 and both.headers["allow"] == "GET, HEAD, POST"
