"""What an outside probe did to the hub, as an attacker and a careless client would: each case
failed before its fix (expensive GraphQL, bad text and numbers, malformed GraphQL bodies,
password guessing, unbounded jobs, GraphQL defects, out-of-range dates)."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from graphql import get_introspection_query

from hub.settings import Settings
from tests.conftest import Account, LiveServer, make_account, operation
from tests.helpers import generate_dataset, graphql, running_worker

SYMBOL = "ABUSE/USD"
BARS = 100_000


@pytest.fixture(scope="module")
async def strict(settings: Settings) -> AsyncIterator[LiveServer]:
    """A hub with the default caps and login limits, a small response cap, and its own Redis
    prefix (fresh rate-limit counters, its own job queue: its jobs stay pending)."""
    live = LiveServer(
        settings.model_copy(
            update={
                "redis_prefix": f"{settings.redis_prefix}strict{secrets.token_hex(3)}:",
                "max_active_jobs_per_user": Settings.model_fields[
                    "max_active_jobs_per_user"
                ].default,
                "login_failures_per_address": 20,
                "graphql_max_response_bytes": 256 * 1024,
            }
        )
    )
    await live.start()
    try:
        yield live
    finally:
        await live.stop()


@pytest.fixture(scope="module")
async def candles_dataset(server: LiveServer, settings: Settings, admin: Account) -> str:
    async with running_worker(settings):
        await generate_dataset(server.url, admin, SYMBOL, BARS, seed=5)
    return SYMBOL


def aliases(count: int, field: str) -> str:
    return "{ " + " ".join(f"a{i}: {field}" for i in range(count)) + " }"


# -- 1. one request cannot stall the hub ------------------------------------------------


async def test_an_operation_over_the_row_budget_is_refused_before_it_runs(
    client: httpx.AsyncClient, alice: Account
) -> None:
    heavy = aliases(30, f'candles(symbol: "{SYMBOL}", timeframe: "1h", limit: 100000) {{ ts }}')
    body = await graphql(client, heavy, token=alice.token)
    error = body["errors"][0]
    assert body["data"] is None and error["extensions"]["code"] == "QUERY_TOO_EXPENSIVE"
    assert error["extensions"]["cost"] == 3_000_000 and error["extensions"]["budget"] == 250_000
    nested = aliases(30, "executions(limit: 500) { equity(maxPoints: 100000) { balance } }")
    refused = await graphql(client, nested, token=alice.token)
    assert refused["errors"][0]["extensions"]["code"] == "QUERY_TOO_EXPENSIVE"
    # Variables count too.
    by_variable = await graphql(
        client,
        'query($n: Int!) { a: candles(symbol: "X", timeframe: "1h", limit: $n) { ts } '
        'b: candles(symbol: "X", timeframe: "1h", limit: $n) { ts } '
        'c: candles(symbol: "X", timeframe: "1h", limit: $n) { ts } }',
        {"n": 100_000},
        token=alice.token,
    )
    assert by_variable["errors"][0]["extensions"]["cost"] == 300_000


async def test_the_heaviest_allowed_query_lets_others_through(
    server: LiveServer, candles_dataset: str, alice: Account
) -> None:
    """While 200,000 candles are resolved and encoded, health checks are answered: the loop is
    handed back between slices of the answer, and the encoding runs in a thread."""
    heaviest = aliases(
        2,
        f'candles(symbol: "{candles_dataset}", timeframe: "1h", limit: 100000) {{ ts open high low close volume }}',
    )
    async with httpx.AsyncClient(base_url=server.url, timeout=120) as http:
        query = asyncio.create_task(graphql(http, heaviest, token=alice.token))
        answered = 0
        async with asyncio.timeout(60):
            while not query.done() and answered < 20:
                if (await http.get("/healthz")).status_code == 200:
                    answered += 1
        body = await query
    assert "errors" not in body and len(body["data"]["a0"]) == BARS == len(body["data"]["a1"])
    assert answered == 20, "health checks waited for the heavy query"


async def test_an_answer_over_the_response_cap_is_replaced_by_an_error(
    strict: LiveServer, candles_dataset: str, alice: Account
) -> None:
    async with httpx.AsyncClient(base_url=strict.url, timeout=60) as http:
        body = await graphql(
            http,
            f'{{ candles(symbol: "{candles_dataset}", timeframe: "1h", limit: 20000) {{ ts close }} }}',
            token=alice.token,
        )
    error = body["errors"][0]
    assert body["data"] is None and error["extensions"]["code"] == "RESPONSE_TOO_LARGE"
    assert error["extensions"]["limit"] == 256 * 1024


# -- 3. text and numbers are checked once, at the edge -------------------------------------


async def test_nul_bytes_invalid_utf8_and_huge_integers_are_400s(
    client: httpx.AsyncClient, alice: Account
) -> None:
    h = alice.headers
    for url in (
        "/api/jobs?job_type=%00",
        "/api/jobs?job_type=%ff%fe",
        "/api/jobs?offset=9223372036854775808",
        "/api/jobs/%00",
        "/api/jobs/%c3%28",
    ):
        response = await client.get(url, headers=h)
        assert response.status_code == 400, (url, response.text)
        assert isinstance(response.json()["error"], str)
    assert (await client.delete("/api/auth/keys/%00", headers=h)).status_code == 400
    key = await client.post("/api/auth/keys", json={"name": "bad\u0000name"}, headers=h)
    assert key.status_code == 400 and "NUL" in key.json()["error"]
    login = await client.post("/api/auth/login", json={"username": "\u0000", "password": "x"})
    assert login.status_code == 400
    backtest = await client.post(
        "/api/v1/run/backtest",
        headers=h,
        json={
            "strategy_name": "sma_crossover",
            "symbols": ["BTC/USD"],
            "timeframe": "1h",
            "initial_cash": 1000,
            "exchange": "bin\u0000ance",
        },
    )
    assert backtest.status_code == 400
    assert backtest.json()["error"]["details"]["field"] == "body.exchange"
    unicode_path = await client.get("/api/trading/executions/%e2%82%ac/status/", headers=h)
    assert unicode_path.status_code == 404  # valid UTF-8 is not refused, just not found


async def test_graphql_text_is_checked_without_leaking_postgres(
    client: httpx.AsyncClient, alice: Account
) -> None:
    literal = await graphql(client, '{ jobs(jobType: "\\u0000") { count } }', token=alice.token)
    error = literal["errors"][0]
    assert "NUL" in error["message"] and error["extensions"]["code"] == "BAD_REQUEST"
    variable = await client.post(
        "/graphql",
        json={
            "query": "query($t: String) { jobs(jobType: $t) { count } }",
            "variables": {"t": "\u0000"},
        },
        headers=alice.headers,
    )
    assert variable.status_code == 400 and "NUL" in variable.json()["errors"][0]["message"]
    too_big = await graphql(
        client, "{ jobs(offset: 9223372036854775808) { count } }", token=alice.token
    )
    assert too_big["errors"][0]["extensions"]["code"] == "BAD_REQUEST"


# -- 4. POST /graphql bodies ---------------------------------------------------------------


async def test_graphql_bodies_that_are_not_one_operation_are_400s(
    client: httpx.AsyncClient, alice: Account
) -> None:
    h = {**alice.headers, "Content-Type": "application/json"}
    for content in (
        b"null",
        b'"x"',
        b"1",
        b'[{"query": "{ me { username } }"}]',
        b'{"query": "{ me { username } }", "variables": [1]}',
        b'{"query": 5}',
        b'{"query": "{ me { username } }"}\xff',
        b'{"query": "{ me { username \xc3\x28 } }"}',
        b'{"query": "{ me { username } }", "variables": ' + b'{"x": ' * 990 + b"1" + b"}" * 991,
    ):
        response = await client.post("/graphql", content=content, headers=h)
        assert response.status_code == 400, (content[:60], response.status_code)
        assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    huge = b'{"query": "' + b" " * (16 << 20) + b'{ me { username } }"}'
    too_large = await client.post("/graphql", content=huge, headers=h)
    assert too_large.status_code == 413  # the REST body limit (1 MiB), as REST answers it
    assert too_large.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"
    ok = await client.post("/graphql", json={"query": "{ me { username } }"}, headers=alice.headers)
    assert ok.status_code == 200 and ok.json()["data"]["me"]["username"] == alice.username
    subscription = await client.post(
        "/graphql", json={"query": 'subscription { ticks(symbol: "X") { sequence } }'}, headers=h
    )
    assert subscription.status_code == 400


# -- 7. throttling ---------------------------------------------------------------------------


async def test_password_guessing_is_throttled_per_username_and_per_address(
    strict: LiveServer, settings: Settings
) -> None:
    password = "the right one, for once"
    victim = await make_account(settings, password=password)
    async with httpx.AsyncClient(base_url=strict.url, timeout=30) as http:
        for _ in range(5):
            wrong = await http.post(
                "/api/auth/login", json={"username": victim.username, "password": "guess"}
            )
            assert wrong.status_code == 401
        locked = await http.post(
            "/api/auth/login", json={"username": victim.username, "password": password}
        )
        assert locked.status_code == 429 and int(locked.headers["retry-after"]) > 0
        assert locked.headers["x-ratelimit-remaining"] == "0"
        sigma = await http.post(
            "/api/v1/auth/token", json={"username": victim.username, "password": password}
        )
        assert sigma.status_code == 429 and sigma.json()["error"]["code"] == "RATE_LIMITED"
        # From one address, guessing many usernames is throttled too.
        codes = [
            (
                await http.post(
                    "/api/auth/login",
                    json={"username": f"nobody-{i}", "password": "guess"},
                )
            ).status_code
            for i in range(16)
        ]
    assert codes[:15] == [401] * 15 and codes[15] == 429  # 5 + 15 failures = the address's 20


async def test_jobs_per_user_are_capped(strict: LiveServer, settings: Settings) -> None:
    user = await make_account(settings)
    created: list[str] = []
    async with httpx.AsyncClient(base_url=strict.url, timeout=30) as http:
        for i in range(5):
            body = await graphql(
                http,
                operation("GenerateSyntheticDataset"),
                {"input": {"symbol": f"CAP{i}/{user.username[-4:]}", "bars": 1000}},
                token=user.token,
            )
            if i < 4:
                created.append(body["data"]["generateSyntheticDataset"]["jobId"])
            else:
                error = body["errors"][0]
                assert error["extensions"]["code"] == "LIMIT_REACHED", error
                assert "TRADEHUB_MAX_ACTIVE_JOBS_PER_USER" in error["message"]
        for job_id in created[1:]:
            await graphql(http, operation("CancelJob"), {"id": job_id}, token=user.token)
        bars: list[dict[str, Any]] = []
        for i in range(2):
            bars.append(
                await graphql(
                    http,
                    operation("GenerateSyntheticDataset"),
                    {
                        "input": {
                            "symbol": f"HUGE{i}/{user.username[-4:]}",
                            "bars": 20_000_000,
                            "timeframe": "1m",
                        }
                    },
                    token=user.token,
                )
            )
        assert "errors" not in bars[0], bars[0]
        error = bars[1]["errors"][0]
        assert error["extensions"]["code"] == "LIMIT_REACHED"
        assert "TRADEHUB_MAX_ACTIVE_BARS_PER_USER" in error["message"]
        for job_id in (created[0], bars[0]["data"]["generateSyntheticDataset"]["jobId"]):
            await graphql(http, operation("CancelJob"), {"id": job_id}, token=user.token)


# -- 8. GraphQL defects ----------------------------------------------------------------------


async def test_strategies_and_introspection_answer_without_errors(
    client: httpx.AsyncClient, alice: Account, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="tradehub.graphql"):
        strategies = await graphql(
            client, "{ strategies { name params { name default bounds } } }", token=alice.token
        )
        introspection = await graphql(client, get_introspection_query(), token=alice.token)
        refused = await graphql(client, "{ jobs(limit: 98765) { count } }", token=alice.token)
    assert "errors" not in strategies and len(strategies["data"]["strategies"]) >= 5
    params = [p for s in strategies["data"]["strategies"] for p in s["params"]]
    assert any(p["default"] is None for p in params) or any(p["bounds"] is None for p in params)
    assert "errors" not in introspection and introspection["data"]["__schema"]["types"]
    assert refused["errors"][0]["extensions"]["code"] == "INVALID_PARAMETER"
    records = [r for r in caplog.records if r.name == "tradehub.graphql"]
    assert records and all(r.levelno == logging.INFO for r in records)
    assert all("98765" not in r.getMessage() + str(r.__dict__) for r in records)
    assert len([r for r in records if getattr(r, "code", None) == "INVALID_PARAMETER"]) == 1


# -- 9. dates the hub cannot hold ----------------------------------------------------------


async def test_out_of_range_dates_are_refused_before_anything_is_written(
    client: httpx.AsyncClient, alice: Account
) -> None:
    for start in ("1000-01-01T00:00:00Z", "9000-01-01T00:00:00Z"):
        crack = await client.post(
            "/api/v1/run/backtest",
            headers=alice.headers,
            json={
                "strategy_name": "sma_crossover",
                "symbols": [SYMBOL],
                "timeframe": "1h",
                "initial_cash": 1000,
                "exchange": "binance",
                "start_date": start,
            },
        )
        assert crack.status_code == 400, crack.text
        assert crack.json()["error"]["details"]["field"] == "start_date"
        synthetic = await graphql(
            client,
            operation("GenerateSyntheticDataset"),
            {"input": {"symbol": "RANGE/USD", "bars": 10, "start": start}},
            token=alice.token,
        )
        assert synthetic["errors"][0]["extensions"]["code"] == "INVALID_PARAMETER"
        candles = await graphql(
            client,
            f'{{ candles(symbol: "{SYMBOL}", timeframe: "1h", start: "{start}") {{ ts }} }}',
            token=alice.token,
        )
        assert candles["errors"][0]["extensions"]["field"] == "start"
    late = await graphql(
        client,
        operation("GenerateSyntheticDataset"),
        {
            "input": {
                "symbol": "RANGE/USD",
                "bars": 1_000_000,
                "timeframe": "1w",
                "start": "2250-01-01T00:00:00Z",
            }
        },
        token=alice.token,
    )
    assert "2262" in late["errors"][0]["message"]
