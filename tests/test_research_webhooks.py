"""A research backtest and a sweep tell their owner's webhooks: ``backtest.completed`` with
the backtest's metrics and ``sweep.completed`` with its tag, received by a real local HTTP
server and signed as the README shows."""

from __future__ import annotations

import json
import secrets
from typing import Any

import httpx

from hub.settings import Settings
from tests.conftest import LiveServer, make_account
from tests.helpers import eventually, generate_dataset, running_worker
from tests.test_webhooks import Receiver, local_hub, local_settings, receiver, register, verify  # noqa: F401

SYMBOL = "RWH/USD"


async def test_backtest_and_sweep_completions_reach_webhooks(
    local_hub: LiveServer,  # noqa: F811
    local_settings: Settings,  # noqa: F811
    receiver: Receiver,  # noqa: F811
) -> None:
    admin = await make_account(local_settings, admin=True)
    user = await make_account(local_settings)
    secret = f"research-{secrets.token_hex(8)}"
    async with (
        running_worker(local_settings),
        httpx.AsyncClient(base_url=local_hub.url, timeout=30) as http,
    ):
        await generate_dataset(local_hub.url, admin, SYMBOL, 900, seed=4)
        await register(
            http, user, receiver.url("/research"), ["backtest.completed", "sweep.completed"], secret
        )
        created = await http.post(
            "/api/v1/models",
            headers=user.headers,
            json={
                "template_id": "zerosigma_default",
                "name": "hooks",
                "config": {"ticker": SYMBOL},
            },
        )
        model_id = created.json()["model_id"]
        matrix = await http.post(
            "/api/v1/build_matrix",
            headers=user.headers,
            json={"model_id": model_id, "start_date": "2020-01-01", "end_date": "2020-12-31"},
        )
        assert matrix.status_code == 200, matrix.text
        started = await http.post(
            "/api/v1/backtest",
            headers=user.headers,
            json={"model_id": model_id, "config": {"value": 0.5, "splits": 2, "epochs": 10}},
        )
        backtest_id = started.json()["backtest_id"]
        first = verify((hit := await receiver.next()).body, hit.headers["x-signature-256"], secret)
        assert first["event"] == "backtest.completed"
        assert first["data"]["backtest_id"] == backtest_id and first["data"]["status"] == "success"
        done = (await http.get(f"/api/v1/backtest/{backtest_id}", headers=user.headers)).json()
        assert first["data"]["metrics"] == json.loads(json.dumps(done["metrics"]))

        swept = await http.post(
            "/api/v1/backtest_sweep",
            headers=user.headers,
            json={"model_id": model_id, "sweep": {"thresholds": [0.5, 0.55]}, "tag": "hooked"},
        )
        assert swept.status_code == 200, swept.text
        second = verify((hit := await receiver.next()).body, hit.headers["x-signature-256"], secret)
        assert second["event"] == "sweep.completed"
        data: dict[str, Any] = second["data"]
        assert data["sweep_id"] == swept.json()["sweep_id"] and data["tag"] == "hooked"
        assert data["status"] == "completed" and data["total_configs"] == 2

        async def board() -> bool:
            got = (await http.get("/api/v1/leaderboard?tag=hooked", headers=user.headers)).json()
            return bool(got["total"] == 2)

        await eventually(board)
