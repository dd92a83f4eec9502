"""Rate limits as clients meet them: Sigma Lab's tiers counted across two hub processes, the
admin's tier route, Cracktrader's limit per API key, ORCA's per-address limits when switched
on, every refusal in its family's error format, and the concurrent-backtest slots."""

from __future__ import annotations

import secrets
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from hub.errors import LimitReached
from hub.settings import Settings
from tests.conftest import ROOT, Account, LiveServer, free_port, make_account
from tests.helpers import eventually, hub_env


def limited_settings(settings: Settings, **update: Any) -> Settings:
    """The suite's settings with rate limits on and a Redis prefix of their own (fresh
    counters nobody else in the run touches)."""
    prefix = f"{settings.redis_prefix}rl{secrets.token_hex(3)}:"
    return settings.model_copy(update={"rate_limits": True, "redis_prefix": prefix, **update})


@pytest.fixture(scope="module")
async def hubs(settings: Settings) -> AsyncIterator[tuple[LiveServer, str]]:
    """Two hub processes sharing Postgres and Redis (and the Redis prefix): this one, and a
    ``python -m hub serve`` subprocess."""
    own = limited_settings(settings)
    here = LiveServer(own)
    await here.start()
    port = free_port()
    env = hub_env(own, TRADEHUB_PORT=str(port), TRADEHUB_REDIS_PREFIX=own.redis_prefix)
    process = subprocess.Popen(
        [sys.executable, "-m", "hub", "serve"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    there = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=there, timeout=5) as http:

            async def ready() -> bool:
                try:
                    return (await http.get("/readyz")).status_code == 200
                except httpx.TransportError:
                    return False

            await eventually(ready, timeout=60, pause=0.2)
        yield here, there
    finally:
        if process.poll() is None:
            process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)
        await here.stop()


def tier_path(account: Account) -> str:
    return f"/api/v1/admin/users/{account.username}/tier"


def assert_sigmalab_429(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    body = response.json()
    assert set(body) == {"error", "request_id"} and body["request_id"]
    assert body["error"]["code"] == "RATE_LIMITED"
    assert set(body["error"]) == {"code", "message", "details"}
    assert int(response.headers["retry-after"]) >= 1
    assert response.headers["x-ratelimit-remaining"] == "0"


async def test_a_users_requests_are_counted_once_across_two_hub_processes(
    hubs: tuple[LiveServer, str], settings: Settings
) -> None:
    here, there = hubs
    user = await make_account(settings)
    async with (
        httpx.AsyncClient(base_url=here.url, timeout=30) as a,
        httpx.AsyncClient(base_url=there, timeout=30) as b,
    ):
        before = int(time.time())
        resets = set()
        for i in range(60):  # the free tier's minute, alternating between the processes
            response = await (a if i % 2 == 0 else b).get(tier_path(user), headers=user.headers)
            assert response.status_code == 200, response.text
            assert response.json()["tier"] == "free"
            assert response.headers["x-ratelimit-limit"] == "60"
            assert response.headers["x-ratelimit-remaining"] == str(59 - i)
            resets.add(int(response.headers["x-ratelimit-reset"]))
        # One window: its end, in epoch seconds, about a minute after its first request.
        assert len(resets) <= 2 and before + 55 <= min(resets) <= before + 62 + 60
        for http in (a, b):  # the 61st is refused by both processes
            refused = await http.get(tier_path(user), headers=user.headers)
            assert_sigmalab_429(refused)
            assert refused.json()["error"]["details"]["limit"] == 60
            assert refused.headers["x-ratelimit-limit"] == "60"


async def test_an_admin_sets_a_tier_and_its_limits_apply(
    hubs: tuple[LiveServer, str], settings: Settings
) -> None:
    here, _ = hubs
    admin = await make_account(settings, admin=True)
    user = await make_account(settings)
    async with httpx.AsyncClient(base_url=here.url, timeout=30) as http:
        first = await http.get(tier_path(user), headers=user.headers)
        assert first.headers["x-ratelimit-limit"] == "60"

        refused = await http.patch(tier_path(user), json={"tier": "pro"}, headers=user.headers)
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "FORBIDDEN" and refused.json()["request_id"]
        anonymous = await http.patch(tier_path(user), json={"tier": "pro"})
        assert anonymous.status_code == 401

        bad = await http.patch(tier_path(user), json={"tier": "platinum"}, headers=admin.headers)
        assert bad.status_code == 400 and bad.json()["error"]["details"]["field"] == "tier"
        assert "free, basic, pro, enterprise" in bad.json()["error"]["message"]
        nobody = await http.patch(
            "/api/v1/admin/users/nobody-at-all/tier", json={"tier": "pro"}, headers=admin.headers
        )
        assert nobody.status_code == 404 and nobody.json()["error"]["code"] == "NOT_FOUND"

        set_basic = await http.patch(tier_path(user), json={"tier": "basic"}, headers=admin.headers)
        assert set_basic.status_code == 200, set_basic.text
        assert set_basic.json() == {
            "username": user.username,
            "tier": "basic",
            "limits": {
                "requests_per_minute": 300,
                "requests_per_hour": 10_000,
                "concurrent_backtests": 5,
            },
        }
        now_basic = await http.get(tier_path(user), headers=user.headers)
        assert now_basic.json()["tier"] == "basic"
        assert now_basic.headers["x-ratelimit-limit"] == "300"
        assert now_basic.headers["x-ratelimit-remaining"] == "299"  # a fresh window

        await http.patch(tier_path(user), json={"tier": "enterprise"}, headers=admin.headers)
        unlimited = await http.get(tier_path(user), headers=user.headers)
        assert unlimited.status_code == 200 and "x-ratelimit-limit" not in unlimited.headers

        other = await make_account(settings)
        peek = await http.get(tier_path(other), headers=user.headers)
        assert peek.status_code == 403  # a user reads only their own tier


async def test_cracktrader_allows_100_requests_a_minute_per_api_key(
    hubs: tuple[LiveServer, str], settings: Settings
) -> None:
    here, there = hubs
    user = await make_account(settings)
    async with (
        httpx.AsyncClient(base_url=here.url, timeout=30) as a,
        httpx.AsyncClient(base_url=there, timeout=30) as b,
    ):
        for i in range(100):
            response = await (a if i % 2 else b).get("/api/v1/strategies", headers=user.headers)
            assert response.status_code == 200, response.text
            assert response.headers["x-ratelimit-limit"] == "100"
            assert response.headers["x-ratelimit-remaining"] == str(99 - i)
        refused = await a.get("/api/v1/strategies", headers=user.headers)
        assert refused.status_code == 429
        assert refused.json() == {
            "error": {
                "code": "RATE_LIMITED",
                "message": refused.json()["error"]["message"],
                "details": {
                    "limit": 100,
                    "window_seconds": 60,
                    "retry_after": int(refused.headers["retry-after"]),
                },
            }
        }  # Cracktrader's format: no request_id
        # Another key is counted apart; Sigma Lab's routes count the user's tier, not the key.
        other = await make_account(settings)
        fresh = await a.get("/api/v1/strategies", headers=other.headers)
        assert fresh.status_code == 200 and fresh.headers["x-ratelimit-remaining"] == "99"
        sigma = await a.get(tier_path(user), headers=user.headers)
        assert sigma.status_code == 200 and sigma.headers["x-ratelimit-limit"] == "60"
        health = await a.get("/api/v1/health", headers=user.headers)  # Cracktrader's probe
        assert health.status_code == 200 and "x-ratelimit-limit" not in health.headers


async def test_orca_limits_per_address_only_when_switched_on(
    hubs: tuple[LiveServer, str], settings: Settings, alice: Account
) -> None:
    here, _ = hubs
    async with httpx.AsyncClient(base_url=here.url, timeout=30) as http:
        off = await http.get("/api/v1/trading/batch/snapshot", headers=alice.headers)
        assert off.status_code == 200 and "x-ratelimit-limit" not in off.headers
    live = LiveServer(
        limited_settings(
            settings,
            orca_rate_limits=True,
            orca_batch_per_minute=3,
            cors_origins=["https://dash.example"],
        )
    )
    await live.start()
    try:
        async with httpx.AsyncClient(base_url=live.url, timeout=30) as http:
            for i in range(3):
                ok = await http.get("/api/v1/trading/batch/snapshot", headers=alice.headers)
                assert ok.status_code == 200, ok.text
                assert ok.headers["x-ratelimit-remaining"] == str(2 - i)
            refused = await http.get("/api/v1/trading/batch/snapshot", headers=alice.headers)
            assert refused.status_code == 429
            assert refused.json() == {"detail": refused.json()["detail"], "status_code": 429}
            assert "100 requests" not in refused.json()["detail"]  # the configured 3
            assert int(refused.headers["retry-after"]) >= 1
            # Per address, whoever calls; HFT routes have their own (wider) count.
            other = await http.get("/api/v1/trading/batch/snapshot")
            assert other.status_code == 429
            hft = await http.get("/api/v1/trading/accounts", headers=alice.headers)
            assert hft.status_code == 200 and hft.headers["x-ratelimit-limit"] == "1000"
            # A dashboard in a browser may read them (CORS exposes them).
            browser = {**alice.headers, "Origin": "https://dash.example"}
            seen = await http.get("/api/v1/trading/accounts", headers=browser)
            exposed = seen.headers["access-control-expose-headers"].lower()
            assert {"x-ratelimit-remaining", "x-ratelimit-reset", "retry-after"} <= {
                name.strip() for name in exposed.split(",")
            }
            for path in ("/api/health/", "/api/v1/trading/health"):  # probes are never limited
                health = await http.get(path)
                assert health.status_code == 200 and "x-ratelimit-limit" not in health.headers
    finally:
        await live.stop()


async def test_concurrent_backtests_are_slots_that_cannot_leak(
    hubs: tuple[LiveServer, str], settings: Settings
) -> None:
    here, _ = hubs
    limits = here.lifespan_state.ratelimits
    user = await make_account(settings)
    await limits.acquire_backtest(user.user_id, "bt_one")
    await limits.acquire_backtest(user.user_id, "bt_one")  # the holder again: still one slot
    with pytest.raises(LimitReached) as refused:
        await limits.acquire_backtest(user.user_id, "bt_two")
    assert refused.value.status_code == 429
    assert refused.value.headers == {"X-RateLimit-Limit": "1", "X-RateLimit-Remaining": "0"}
    assert refused.value.details == {"limit": 1, "running": 1}
    await limits.release_backtest(user.user_id, "bt_one")
    async with limits.concurrent_backtest(user.user_id, "bt_two"):
        assert await limits.running_backtests(user.user_id) == 1
        assert await limits.renew_backtest(user.user_id, "bt_two")
    assert await limits.running_backtests(user.user_id) == 0

    # A holder that died without releasing: its lease lapses (scored in the past here).
    await limits.acquire_backtest(user.user_id, "bt_dead")
    await here.lifespan_state.redis.zadd(
        here.lifespan_state.keys.slots("backtests", user.user_id), {"bt_dead": 1}
    )
    await limits.acquire_backtest(user.user_id, "bt_next")
    assert not await limits.renew_backtest(user.user_id, "bt_dead")
    ttl = await here.lifespan_state.redis.pttl(
        here.lifespan_state.keys.slots("backtests", user.user_id)
    )
    assert 0 < ttl <= settings.backtest_slot_seconds * 1000
