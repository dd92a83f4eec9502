"""A research backtest takes one of its owner's concurrent-backtest slots: a free-tier user
(one at a time) is refused a second while the first runs (429 in Sigma Lab's format, nothing
written), and runs another once the first completed (the slot given back)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from hub.settings import Settings
from tests.conftest import LiveServer, make_account
from tests.helpers import eventually, generate_dataset, running_worker
from tests.test_ratelimits import limited_settings

SYMBOL = "RLIM/USD"


@pytest.fixture(scope="module")
async def limited(settings: Settings) -> AsyncIterator[tuple[LiveServer, Settings]]:
    own = limited_settings(settings)
    live = LiveServer(own)
    await live.start()
    try:
        yield live, own
    finally:
        await live.stop()


async def test_a_free_user_runs_one_research_backtest_at_a_time(
    limited: tuple[LiveServer, Settings],
) -> None:
    hub, own = limited
    admin = await make_account(own, admin=True)
    user = await make_account(own)  # no tier set: free, one backtest at a time
    async with httpx.AsyncClient(base_url=hub.url, timeout=30) as http:
        async with running_worker(own):
            await generate_dataset(hub.url, admin, SYMBOL, 600, seed=9)
        created = await http.post(
            "/api/v1/models",
            headers=user.headers,
            json={"template_id": "zerosigma_default", "name": "one", "config": {"ticker": SYMBOL}},
        )
        model_id = created.json()["model_id"]
        built = await http.post(
            "/api/v1/build_matrix",
            headers=user.headers,
            json={"model_id": model_id, "start_date": "2020-01-01", "end_date": "2020-12-31"},
        )
        assert built.status_code == 200, built.text
        body: dict[str, Any] = {"model_id": model_id, "config": {"splits": 2, "epochs": 5}}
        first = await http.post("/api/v1/backtest", headers=user.headers, json=body)
        assert first.status_code == 200, first.text
        second = await http.post("/api/v1/backtest", headers=user.headers, json=body)
        assert second.status_code == 429, second.text
        refused = second.json()
        assert refused["request_id"] and refused["error"]["details"]["limit"] == 1
        assert second.headers["X-RateLimit-Limit"] == "1"
        assert second.headers["X-RateLimit-Remaining"] == "0"

        async with running_worker(own):

            async def done() -> bool:
                url = f"/api/v1/backtest/{first.json()['backtest_id']}"
                got = (await http.get(url, headers=user.headers)).json()
                assert got["status"] not in ("failed", "cancelled"), got
                return bool(got["status"] == "completed")

            await eventually(done, timeout=120)
        third = await http.post("/api/v1/backtest", headers=user.headers, json=body)
        assert third.status_code == 200, third.text  # the slot was given back
        listed = (await http.get(f"/api/v1/models/{model_id}", headers=user.headers)).json()
        assert listed["best_backtest_id"] == first.json()["backtest_id"]
        cancel = "mutation Cancel($id: ID!) { cancelJob(id: $id) { status } }"
        await http.post(
            "/graphql",
            headers=user.headers,
            json={"query": cancel, "variables": {"id": third.json()["job_id"]}},
        )
