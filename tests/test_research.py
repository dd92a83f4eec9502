"""Sigma Lab's research pipeline end to end through real HTTP, with a worker running the jobs:
template -> model -> matrix (the same request, the same sha) -> training -> walk-forward
backtest (its predictions read through Stage1's route) -> sweep (equal to single backtests) ->
leaderboard and exports; the errors in Sigma Lab's format; ownership and admin refusals."""

from __future__ import annotations

import csv
import hashlib
import io
import uuid
from typing import Any

import httpx
import numpy as np
import pytest

from hub.research import evaluate
from hub.research.runner import BAR_COLUMNS
from hub.settings import Settings
from tests.conftest import Account, LiveServer
from tests.helpers import eventually, generate_dataset, running_worker
from tests.stage1runs import dataset_bars

SYMBOL = "RSCH/USD"
BARS = 2400


@pytest.fixture(scope="module")
async def dataset_id(server: LiveServer, settings: Settings, admin: Account) -> str:
    async with running_worker(settings), httpx.AsyncClient(base_url=server.url) as http:
        await generate_dataset(server.url, admin, SYMBOL, BARS, seed=13)
        listed = (await http.get("/api/datasets?limit=1000", headers=admin.headers)).json()
    return str(next(d["dataset_id"] for d in listed["datasets"] if d["symbol"] == SYMBOL))


def sigmalab_error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"error", "request_id"} and body["request_id"]
    error: dict[str, Any] = body["error"]
    assert set(error) == {"code", "message", "details"}
    return error


async def create_model(client: httpx.AsyncClient, account: Account, **config: Any) -> str:
    created = await client.post(
        "/api/v1/models",
        headers=account.headers,
        json={
            "template_id": "zerosigma_default",
            "name": "RSCH hourly",
            "risk_profile": "Aggressive",
            "config": {"ticker": SYMBOL, "indicators": ["RSI", "MACD", "BB"], **config},
        },
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["pack_id"] == "zerosigma" and body["status"] == "created"
    return str(body["model_id"])


async def job_done(client: httpx.AsyncClient, account: Account, job_id: str) -> None:
    async def done() -> bool:
        got = (await client.get(f"/api/jobs/{job_id}", headers=account.headers)).json()
        assert got["status"] not in ("FAILED", "CANCELLED"), got
        return bool(got["status"] == "COMPLETED")

    await eventually(done, timeout=180)


async def completed(client: httpx.AsyncClient, account: Account, url: str) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        got: dict[str, Any] = (await client.get(url, headers=account.headers)).json()
        assert got["status"] not in ("failed", "cancelled"), got
        return got if got["status"] == "completed" else None

    return await eventually(check, timeout=180)


MATRIX = {"start_date": "2020-01-01", "end_date": "2020-12-31"}


async def test_template_to_leaderboard(
    server: LiveServer,
    client: httpx.AsyncClient,
    settings: Settings,
    alice: Account,
    bob: Account,
    admin: Account,
    dataset_id: str,
    pool: Any,
) -> None:
    headers = alice.headers
    templates = (await client.get("/api/v1/templates", headers=headers)).json()["items"]
    assert {t["template_id"] for t in templates} >= {"swingsigma_default", "zerosigma_default"}

    model_id = await create_model(client, alice)
    assert model_id.startswith("RSCHUSD_options_0d_intraday")
    second = await create_model(client, alice)
    assert second != model_id and second.startswith(model_id + "_")  # ids stay unique

    # -- the matrix: the same request gives the same bytes, so the same sha
    body = {
        "model_id": model_id,
        **MATRIX,
        "features": ["close", "volume", "RSI", "MACD", "BB", "willr"],
    }
    first = await client.post("/api/v1/build_matrix", headers=headers, json=body)
    assert first.status_code == 200, first.text
    matrix = first.json()
    again = (await client.post("/api/v1/build_matrix", headers=headers, json=body)).json()
    assert again["matrix_sha"] == matrix["matrix_sha"] and len(matrix["matrix_sha"]) == 64
    assert matrix["status"] == "completed" and matrix["rows"] == BARS
    assert matrix["column_names"][:2] == ["ts", "hour"] and matrix["column_names"][-1] == "target"
    assert matrix["columns"] == len(matrix["column_names"]) == 2 + 2 + 1 + 3 + 3 + 1 + 1
    path = settings.data_dir / "research" / matrix["path"]
    assert path.exists() and hashlib.sha256(path.read_bytes()).hexdigest() == matrix["matrix_sha"]
    unknown = await client.post(
        "/api/v1/build_matrix",
        headers=headers,
        json={**body, "features": ["close", "FOO", "rsi_0"]},
    )
    error = sigmalab_error(unknown, 400)
    assert error["code"] == "INVALID_PARAMETER" and error["details"]["unknown"] == ["FOO", "rsi_0"]
    assert "FOO" in error["message"]
    refused = await client.post("/api/v1/build_matrix", headers=bob.headers, json=body)
    assert sigmalab_error(refused, 403)["code"] == "FORBIDDEN"

    # -- training: a queued job with its real place in the queue, then a stored version
    trained = await client.post(
        "/api/v1/train",
        headers=headers,
        json={"model_id": model_id, "matrix_sha": matrix["matrix_sha"][:16],
              "allowed_hours": [9, 10, 11, 12, 13, 14, 15],
              "config": {"learning_rate": 0.05, "epochs": 40, "batch_size": 20}},
    )  # fmt: skip
    assert trained.status_code == 200, trained.text
    job = trained.json()
    assert job["status"] == "queued" and job["queue_position"] >= 1 and job["estimated_time"] >= 1
    no_hours = await client.post(
        "/api/v1/train", headers=headers,
        json={"model_id": model_id, "matrix_sha": matrix["matrix_sha"], "allowed_hours": []},
    )  # fmt: skip
    sigmalab_error(no_hours, 400)

    backtest = await client.post(
        "/api/v1/backtest",
        headers=headers,
        json={"model_id": model_id, "matrix_sha": matrix["matrix_sha"], "tag": "e2e",
              "config": {"kind": "thresholds", "value": 0.52, "allowed_hours": None,
                         "splits": 3, "epochs": 30}},
    )  # fmt: skip
    assert backtest.status_code == 200, backtest.text
    started = backtest.json()
    assert started["status"] == "running" and started["metrics"] is None
    assert started["estimated_completion"].endswith("Z")
    async with running_worker(settings):
        await job_done(client, alice, job["job_id"])
        done = await completed(client, alice, f"/api/v1/backtest/{started['backtest_id']}")
    predictor = await server.lifespan_state.research.predictor(model_id)
    bars = await dataset_bars(pool, dataset_id)
    bars["volume"] = np.ones(len(bars["ts"]))
    latest = predictor.predict_latest(bars)
    assert 0.0 <= latest <= 1.0

    metrics = done["metrics"]
    assert {"sharpe", "cum_ret", "max_drawdown", "win_rate", "trades"} <= set(metrics)
    assert done["gate"]["pass"] in (True, False) and isinstance(done["gate"]["reasons"], list)

    # -- the walk-forward predictions are a Stage1 run, read by seed 000's route
    run_id = done["run_id"]
    read = await client.get(f"/api/runs/{run_id}/predictions?format=csv", headers=headers)
    assert read.status_code == 200, read.text
    rows = list(csv.DictReader(io.StringIO(read.text)))
    assert len(rows) == metrics["predictions"] and {r["fold_number"] for r in rows} == {
        "1",
        "2",
        "3",
    }

    # -- its trades and equity are an execution, read by seed 003's routes
    execution_id = done["execution_id"]
    base = f"/api/trading/executions/{execution_id}"
    status = (await client.get(f"{base}/status/", headers=headers)).json()
    assert status["status"] == "completed", status
    trades = (await client.get(f"{base}/trades/", headers=headers)).json()
    assert trades["count"] == metrics["trades"], trades
    denied = await client.get(f"{base}/status/", headers=bob.headers)
    assert denied.status_code == 403

    # -- the model shows its best backtest and lineage
    detail = (await client.get(f"/api/v1/models/{model_id}", headers=headers)).json()
    assert detail["metrics"]["sharpe"] == metrics["sharpe"]
    assert detail["lineage"]["matrix_sha"] == matrix["matrix_sha"]
    assert detail["lineage"]["created_by"] == alice.user_id and detail["trained_versions"] == 1
    listed = (await client.get(f"/api/v1/models?model_id={model_id}", headers=headers)).json()
    assert (
        listed["total"] == 1
        and listed["items"][0]["lineage"]["config_sha"] == detail["lineage"]["config_sha"]
    )

    # -- export: the seed's columns, cumulative pnl adding up
    exported = await client.get(
        f"/api/v1/export/backtest/{started['backtest_id']}?format=csv", headers=headers
    )
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    lines = list(csv.DictReader(io.StringIO(exported.text)))
    assert list(lines[0]) == ["timestamp", "action", "price", "quantity", "pnl", "cumulative_pnl"]
    sells = [line for line in lines if line["action"] == "SELL"]
    assert sells and float(sells[-1]["cumulative_pnl"]) == pytest.approx(
        sum(float(s["pnl"]) for s in sells)
    )

    # -- the sweep: every config equals a single backtest on the same predictions
    tag = f"sweep_{uuid.uuid4().hex[:6]}"
    grid = {"thresholds": [0.5, 0.52, 0.55], "allowed_hours": [[9, 10, 11], list(range(24))],
            "top_pct": [30, 100]}  # fmt: skip
    swept = await client.post(
        "/api/v1/backtest_sweep", headers=headers,
        json={"model_id": model_id, "risk_profile": "Balanced", "sweep": grid, "tag": tag},
    )  # fmt: skip
    assert swept.status_code == 200, swept.text
    sweep = swept.json()
    assert sweep["total_configs"] == 12 and sweep["status"] == "running" and sweep["tag"] == tag
    assert type(sweep["progress"]) is int  # a whole percent, as the seed's "progress": 0
    assert len(sweep["job_ids"]) == 2  # chunks: jobs any worker takes
    async with running_worker(settings), running_worker(settings):
        finished = await completed(client, alice, f"/api/v1/backtest_sweep/{sweep['sweep_id']}")
    assert finished["progress"] == 100 and finished["completed_configs"] == 12
    assert type(finished["progress"]) is int
    board = (await client.get(f"/api/v1/leaderboard?tag={tag}&limit=100", headers=headers)).json()
    assert board["total"] == 12 and [i["rank"] for i in board["items"]] == list(range(1, 13))
    sharpes = [i["metrics"]["sharpe"] for i in board["items"] if i["metrics"]["sharpe"] is not None]
    assert sharpes == sorted(sharpes, reverse=True)
    ts = np.array([int(r["timestamp"]) for r in rows], dtype=np.int64) * 1000
    pred = np.array([float(r["prediction"]) for r in rows])
    datasets = server.lifespan_state.datasets
    stored = await datasets.bars(await datasets.find(SYMBOL, "1h"), None, None, BAR_COLUMNS)
    data = evaluate.joined(stored, ts, pred)
    exit_ = detail["config"]["thresholds"]["exit"]
    for item in board["items"]:
        config = {"threshold": item["config"]["threshold"], "allowed_hours": item["config"]["allowed_hours"],
                  "top_pct": item["config"]["top_pct"]}  # fmt: skip
        single, _ = evaluate.single_metrics(data, config, exit_)
        for key in ("sharpe", "cum_ret", "max_drawdown", "win_rate", "trades"):
            assert item["metrics"][key] == pytest.approx(single[key], nan_ok=True), (config, key)
        assert item["gate"]["pass"] == (not item["gate"]["reasons"])
    passing = (
        await client.get(f"/api/v1/leaderboard?tag={tag}&pass_gate=true", headers=headers)
    ).json()
    assert passing["total"] == sum(1 for i in board["items"] if i["gate"]["pass"])
    for spelled in ("1", "True", "yes"):  # FastAPI's booleans, as the seed's server read them
        again = await client.get(
            f"/api/v1/leaderboard?tag={tag}&pass_gate={spelled}", headers=headers
        )
        assert again.json()["total"] == passing["total"], spelled
    failing = await client.get(f"/api/v1/leaderboard?tag={tag}&pass_gate=0", headers=headers)
    assert failing.json()["total"] == 12 - passing["total"]
    table = await client.get(f"/api/v1/export/leaderboard?tag={tag}&format=csv", headers=headers)
    assert table.status_code == 200
    assert len(list(csv.DictReader(io.StringIO(table.text)))) == 12

    # -- health, and its ticker / pack / model variant
    health = await client.get(
        f"/api/v1/healthz?ticker={SYMBOL}&pack_id=zerosigma&model_id={model_id}", headers=headers
    )
    assert health.status_code == 200, health.text
    h = health.json()
    assert h["components"]["database"] == "healthy" and h["components"]["cache"] == "healthy"
    assert h["components"]["polygon_api"] == h["components"]["market_data"]  # the seed's name
    assert h["ticker"]["data_quality"] == 1.0 and h["pack"]["models_count"] >= 2
    assert h["model"]["last_backtest"] is not None

    # -- admin: a user is refused, an admin changes and deletes (files too)
    patch = {"config": {"thresholds": {"entry": 0.75, "exit": 0.25}}}
    denied = await client.patch(f"/api/v1/admin/models/{model_id}", headers=headers, json=patch)
    assert sigmalab_error(denied, 403)["code"] == "FORBIDDEN"
    denied = await client.delete(f"/api/v1/admin/models/{model_id}", headers=headers)
    sigmalab_error(denied, 403)
    patched = await client.patch(
        f"/api/v1/admin/models/{model_id}", headers=admin.headers, json=patch
    )
    assert patched.status_code == 200 and patched.json()["config"]["thresholds"]["entry"] == 0.75
    assert patched.json()["lineage"]["config_sha"] != detail["lineage"]["config_sha"]
    model_files = list((settings.data_dir / "research" / "models").glob("*.txt"))
    assert [f.stem for f in model_files] == [predictor.version_id and f.stem for f in model_files]
    deleted = await client.delete(f"/api/v1/admin/models/{model_id}", headers=admin.headers)
    assert deleted.status_code == 200 and deleted.json()["artifacts_removed"] == 2
    assert not path.exists() and model_files and not any(f.exists() for f in model_files)
    sigmalab_error(await client.get(f"/api/v1/models/{model_id}", headers=headers), 404)


async def test_bad_input_is_refused_in_sigmalab_format(
    client: httpx.AsyncClient, alice: Account, dataset_id: str
) -> None:
    bad = await client.post(
        "/api/v1/models", headers=alice.headers,
        json={"template_id": "nope", "name": "x", "config": {"ticker": SYMBOL}},
    )  # fmt: skip
    assert "template" in sigmalab_error(bad, 400)["message"]
    missing = await client.post(
        "/api/v1/models", headers=alice.headers,
        json={"template_id": "swingsigma_default", "name": "x", "config": {"ticker": "NOPE"}},
    )  # fmt: skip
    refused = sigmalab_error(missing, 400)
    # The details name the field and say why, as seed 001's error example does.
    assert refused["details"]["field"] == "config.ticker"
    assert refused["details"]["reason"] == refused["message"]
    sigmalab_error(await client.get("/api/v1/models/NOPE_x", headers=alice.headers), 404)
    sigmalab_error(await client.get("/api/v1/leaderboard?sort_by=luck", headers=alice.headers), 400)
    maybe = await client.get("/api/v1/leaderboard?pass_gate=maybe", headers=alice.headers)
    assert sigmalab_error(maybe, 400)["details"]["field"] == "pass_gate"
    sigmalab_error(await client.get("/api/v1/models"), 401)
    model_id = await create_model(client, alice)
    early = await client.post(
        "/api/v1/backtest_sweep", headers=alice.headers,
        json={"model_id": model_id, "sweep": {"thresholds": [0.5]}},
    )  # fmt: skip
    assert "POST /backtest first" in sigmalab_error(early, 400)["message"]
    no_matrix = await client.post(
        "/api/v1/backtest", headers=alice.headers, json={"model_id": model_id}
    )
    assert "build_matrix" in sigmalab_error(no_matrix, 400)["message"]


async def test_hours_that_hold_no_bar_are_refused_before_anything_is_written(
    server: LiveServer, client: httpx.AsyncClient, settings: Settings, alice: Account,
    admin: Account, pool: Any,
) -> None:  # fmt: skip
    """Seed 001's example asks hours 9-15 of a daily model, whose bars all start at hour 0:
    training and backtesting are a 400 naming allowed_hours, not a job that can only fail."""
    async with running_worker(settings):
        await generate_dataset(server.url, admin, "RSCHD/USD", 400, seed=5, timeframe="1d")
    created = await client.post(
        "/api/v1/models", headers=alice.headers,
        json={"template_id": "swingsigma_default", "name": "daily", "risk_profile": "Balanced",
              "config": {"ticker": "RSCHD/USD"}},
    )  # fmt: skip
    assert created.status_code == 201, created.text
    model_id = created.json()["model_id"]
    built = await client.post(
        "/api/v1/build_matrix", headers=alice.headers,
        json={"model_id": model_id, "start_date": "2020-01-01", "end_date": "2021-12-31"},
    )  # fmt: skip
    assert built.status_code == 200, built.text
    sha = built.json()["matrix_sha"]
    hours = list(range(9, 16))
    for path, body in [
        ("/api/v1/train", {"allowed_hours": hours}),
        ("/api/v1/backtest", {"config": {"kind": "thresholds", "allowed_hours": hours}}),
    ]:
        refused = await client.post(
            path, headers=alice.headers, json={"model_id": model_id, "matrix_sha": sha, **body}
        )
        error = sigmalab_error(refused, 400)
        assert error["details"]["field"] == "allowed_hours" and "hour" in error["message"]
    # So is a backtest whose dates hold no row of the matrix.
    empty = await client.post(
        "/api/v1/backtest", headers=alice.headers,
        json={"model_id": model_id, "matrix_sha": sha, "start_date": "2025-01-01",
              "end_date": "2025-02-01", "config": {"kind": "thresholds"}},
    )  # fmt: skip
    assert sigmalab_error(empty, 400)["details"]["field"] == "start_date"
    counted = (
        "select (select count(*) from research.backtests where model_id = $1) + "
        "(select count(*) from research.model_versions where model_id = $1)"
    )
    assert await pool.fetchval(counted, model_id) == 0
