"""Stage1's simulations (seed 000) over real HTTP and GraphQL: a simulation's metrics and
trades equal the engine's ``run_backtest`` called directly on the same bars and predictions;
every field of the seed, pagination, 404s, bad input refused with nothing written, a
cancelled job's simulation."""

from __future__ import annotations

import math
import re
import uuid
from typing import Any

import asyncpg
import httpx
import numpy as np
import pytest

from engine.backtest import run_backtest
from hub.settings import Settings
from tests.conftest import Account, LiveServer, operation
from tests.helpers import eventually, graphql, running_worker
from tests.stage1runs import (
    BARS,
    FIRST_PREDICTED,
    Setup,
    Stored,
    create_run,
    dataset_bars,
    identity_of,
    make_setup,
    write,
)

SYMBOL = "S1SIM/USD"
SIMULATION_FIELDS = {"simulation_id", "run_id", "initial_capital", "parameters", "results"}
TRADE_FIELDS = {
    "trade_id",
    "simulation_id",
    "bar_timestamp",
    "side",
    "size",
    "entry_price",
    "exit_price",
    "pnl",
    "return_pct",
    "metadata",
}
STAGE1_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


@pytest.fixture(scope="module")
async def setup(
    server: LiveServer, settings: Settings, admin: Account, alice: Account, pool: asyncpg.Pool
) -> Setup:
    return await make_setup(server, settings, admin, alice, pool, SYMBOL)


def engine_result(
    bars: dict[str, np.ndarray], stored: Stored, params: dict[str, Any], **options: Any
) -> Any:
    """``run_backtest`` on the bars that have a prediction, joined by time here."""
    wanted = {int(t): p for t, p in zip(stored.timestamp * 1000, stored.prediction, strict=True)}
    keep = np.array([int(t) in wanted for t in bars["ts"]])
    ohlcv = {name: column[keep] for name, column in bars.items()}
    ohlcv["prediction"] = np.array([wanted[int(t)] for t in ohlcv["ts"]])
    return run_backtest(ohlcv, "threshold", {"column": "prediction", **params}, **options)


async def simulated(
    client: httpx.AsyncClient, account: Account, body: dict[str, Any]
) -> dict[str, Any]:
    created = await client.post("/api/simulations", json=body, headers=account.headers)
    assert created.status_code == 201, created.text
    answer = created.json()
    assert answer["success"] is True and answer["message"] == "Simulation created successfully"
    url = f"/api/simulations/{answer['simulation_id']}"

    async def completed() -> dict[str, Any] | None:
        got: dict[str, Any] = (await client.get(url, headers=account.headers)).json()
        assert got["status"] not in ("failed", "cancelled"), got
        return got if got["status"] == "completed" else None

    return await eventually(completed, timeout=120)


def assert_same(
    stored_trades: list[dict[str, Any]], expected: np.ndarray, simulation_id: str
) -> None:
    assert len(stored_trades) == len(expected) > 3
    for trade, record in zip(stored_trades, expected.tolist(), strict=True):
        r = dict(zip(expected.dtype.names or (), record, strict=True))
        assert set(trade) == TRADE_FIELDS and trade["simulation_id"] == simulation_id
        assert trade["bar_timestamp"] == r["entry_ts"] // 1000
        assert trade["side"] == ("long" if r["direction"] == 0 else "short")
        assert (trade["size"], trade["entry_price"], trade["exit_price"]) == (
            r["units"], r["entry_price"], r["exit_price"],
        )  # fmt: skip
        assert trade["pnl"] == r["pnl"] and trade["return_pct"] == r["return"] * 100
        assert trade["metadata"]["exit_bar_timestamp"] == r["exit_ts"] // 1000
        assert trade["metadata"]["status"] == ("open" if r["status"] == 0 else "closed")


def same_metrics(results: dict[str, Any], metrics: dict[str, Any]) -> bool:
    expected = {
        k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in metrics.items()
    }
    return results == expected


async def test_a_simulation_equals_the_engine_on_the_same_bars_and_predictions(
    client: httpx.AsyncClient,
    settings: Settings,
    setup: Setup,
    pool: asyncpg.Pool,
    alice: Account,
    bob: Account,
) -> None:
    bars = await dataset_bars(pool, setup.dataset_id)
    simulation_id = str(uuid.uuid4())
    parameters = {"threshold": 0.6, "fees": 0.001}
    body = {
        "simulation_id": simulation_id,
        "run_id": setup.run_id,
        "initial_capital": 10000,
        "parameters": parameters,
    }
    async with running_worker(settings):
        done = await simulated(client, bob, body)
        # A band and both sides: entry_threshold / exit_threshold and the simulator's options.
        band = {
            "entry_threshold": 0.65, "exit_threshold": 0.35, "direction": "both",
            "stop_loss": 0.02, "fill": "next_open",
        }  # fmt: skip
        banded = await simulated(
            client, bob, {"run_id": setup.run_id, "initial_capital": 5000.5, "parameters": band}
        )
        by_index = await simulated(
            client, alice, {"run_id": setup.run_id, "parameters": {"threshold_index": 2}}
        )
    assert set(done) == SIMULATION_FIELDS | {"created_at", "status", "job_id"}
    assert done["simulation_id"] == simulation_id and done["run_id"] == setup.run_id
    assert done["initial_capital"] == 10000 and done["parameters"] == parameters
    # Written as the seed shows it: 10000, not 10000.0 (a typed client reads an integer).
    assert type(done["initial_capital"]) is int and banded["initial_capital"] == 5000.5
    assert STAGE1_TIME.match(done["created_at"])
    below = math.nextafter(0.6, -math.inf)  # "threshold": long while at or above it
    expected = engine_result(
        bars, setup.stored, {"entry_threshold": 0.6, "exit_threshold": below},
        initial_capital=10000.0, fees=0.001,
    )  # fmt: skip
    assert same_metrics(done["results"], expected.metrics), (done["results"], expected.metrics)
    assert done["results"]["processed"] == BARS - FIRST_PREDICTED
    trades = await client.get(f"/api/simulations/{simulation_id}/trades", headers=alice.headers)
    assert trades.json()["count"] == len(trades.json()["trades"])
    assert_same(trades.json()["trades"], expected.trades, simulation_id)
    window = await client.get(
        f"/api/simulations/{simulation_id}/trades", params={"limit": 2, "offset": 1},
        headers=alice.headers,
    )  # fmt: skip
    assert window.json() == {"trades": trades.json()["trades"][1:3], "count": 2}

    options = {k: v for k, v in band.items() if not k.endswith("threshold")}
    expected_band = engine_result(
        bars, setup.stored, {"entry_threshold": 0.65, "exit_threshold": 0.35},
        initial_capital=5000.5, **options,
    )  # fmt: skip
    assert same_metrics(banded["results"], expected_band.metrics)
    band_trades = await client.get(
        f"/api/simulations/{banded['simulation_id']}/trades", headers=alice.headers
    )
    assert_same(band_trades.json()["trades"], expected_band.trades, banded["simulation_id"])
    assert {t["side"] for t in band_trades.json()["trades"]} == {"long", "short"}

    at_07 = {"entry_threshold": 0.7, "exit_threshold": math.nextafter(0.7, -math.inf)}
    assert same_metrics(by_index["results"], engine_result(bars, setup.stored, at_07).metrics)
    assert by_index["initial_capital"] == 10000  # the seed's default
    assert type(by_index["initial_capital"]) is int

    listed = await client.get(
        "/api/simulations", params={"run_id": setup.run_id}, headers=alice.headers
    )
    ids = [s["simulation_id"] for s in listed.json()["simulations"]]
    assert ids == [by_index["simulation_id"], banded["simulation_id"], simulation_id]
    page = await client.get(
        "/api/simulations", params={"run_id": setup.run_id, "limit": 1, "offset": 1},
        headers=alice.headers,
    )  # fmt: skip
    assert page.json() == {"simulations": [banded], "count": 1}
    # Created again with the same values: the same simulation, nothing started.
    again = await client.post("/api/simulations", json=body, headers=bob.headers)
    assert again.status_code == 201 and again.json()["job_id"] == done["job_id"]
    other = await client.post(
        "/api/simulations", json={**body, "initial_capital": 1}, headers=bob.headers
    )
    assert other.status_code == 409

    gql = await graphql(client, operation("Simulations"), {"runId": setup.run_id}, token=bob.token)
    assert [s["simulationId"] for s in gql["data"]["simulations"]] == ids
    first = gql["data"]["simulations"][2]
    assert first["results"] == done["results"] and first["status"] == "COMPLETED"
    one = await graphql(client, operation("Simulation"), {"id": simulation_id}, token=bob.token)
    assert one["data"]["simulation"] == first


@pytest.mark.parametrize(
    ("change", "word"),
    [
        ({"run_id": str(uuid.uuid4())}, "run"),
        ({"run_id": "nope"}, "run_id"),
        ({"initial_capital": 0}, "initial_capital"),
        ({"initial_capital": "lots"}, "initial_capital"),
        ({"parameters": {"threshold": 0.6, "colour": 1}}, "colour"),
        ({"parameters": {"threshold_index": 3}}, "threshold_index"),
        ({"parameters": {"threshold": 0.6, "threshold_index": 0}}, "threshold"),
        ({"parameters": {"entry_threshold": 0.3, "exit_threshold": 0.6}}, "exit_threshold"),
        ({"parameters": {"exit_threshold": 0.2}}, "exit_threshold"),
        ({"parameters": {"threshold": 0.6, "sizing": "cash", "size": 2}}, "size"),
        ({"parameters": {"threshold": 0.6, "direction": "sideways"}}, "direction"),
        ({"parameters": {"threshold": 0.6, "allowed_hours": [24]}}, "allowed_hours"),
        ({"simulation_id": None}, "simulation_id"),
    ],
)
async def test_bad_simulations_are_400s_and_write_nothing(
    client: httpx.AsyncClient, setup: Setup, alice: Account, change: dict[str, Any], word: str
) -> None:
    simulation_id = str(uuid.uuid4())
    body = {"simulation_id": simulation_id, "run_id": setup.run_id, **change}
    jobs_before = (await client.get("/api/jobs?limit=1000", headers=alice.headers)).json()["count"]
    refused = await client.post("/api/simulations", json=body, headers=alice.headers)
    assert refused.status_code == 400, refused.text
    assert set(refused.json()) == {"error"} and word in refused.json()["error"]
    gone = await client.get(f"/api/simulations/{simulation_id}", headers=alice.headers)
    assert gone.status_code == 404
    jobs_after = (await client.get("/api/jobs?limit=1000", headers=alice.headers)).json()["count"]
    assert jobs_after == jobs_before


async def test_a_run_needs_predictions_before_a_simulation(
    client: httpx.AsyncClient, setup: Setup, alice: Account
) -> None:
    run_id = await create_run(client, alice, setup.dataset_id)
    refused = await client.post("/api/simulations", json={"run_id": run_id}, headers=alice.headers)
    assert refused.status_code == 400 and "no predictions" in refused.json()["error"]
    listed = await client.get("/api/simulations", params={"run_id": run_id}, headers=alice.headers)
    assert listed.json() == {"simulations": [], "count": 0}


async def test_a_cancelled_job_cancels_its_simulation(
    client: httpx.AsyncClient, server: LiveServer, setup: Setup, bob: Account
) -> None:
    created = await client.post(
        "/api/simulations", json={"run_id": setup.run_id, "parameters": {"threshold": 0.5}},
        headers=bob.headers,
    )  # fmt: skip
    answer = created.json()
    job = await server.lifespan_state.jobs.cancel(identity_of(bob), answer["job_id"])  # no worker
    assert job["status"] == "CANCELLED"
    got = await client.get(f"/api/simulations/{answer['simulation_id']}", headers=bob.headers)
    assert got.json()["status"] == "cancelled" and got.json()["results"] == {}
    trades = await client.get(
        f"/api/simulations/{answer['simulation_id']}/trades", headers=bob.headers
    )
    assert trades.json() == {"trades": [], "count": 0}


async def test_missing_simulations_are_404s(client: httpx.AsyncClient, alice: Account) -> None:
    for simulation_id in (str(uuid.uuid4()), "nope"):
        for path in ("", "/trades"):
            gone = await client.get(
                f"/api/simulations/{simulation_id}{path}", headers=alice.headers
            )
            assert gone.status_code == 404 and set(gone.json()) == {"error"}
    for params in ({"run_id": "nope"}, {"limit": 1001}, {"offset": -1}):
        bad = await client.get("/api/simulations", params=params, headers=alice.headers)
        assert bad.status_code == 400
    trades = await client.get(
        f"/api/simulations/{uuid.uuid4()}/trades", params={"limit": 10_001}, headers=alice.headers
    )
    assert trades.status_code == 400
    assert (await client.get("/api/simulations")).status_code == 401
    assert (await client.post("/api/simulations", json={})).status_code == 401


async def test_a_dataset_over_an_imported_measurement_simulates(
    client: httpx.AsyncClient,
    settings: Settings,
    server: LiveServer,
    setup: Setup,
    pool: asyncpg.Pool,
    alice: Account,
) -> None:
    """A dataset created by ``POST /api/datasets`` may name any measurement: one written by an
    import or line protocol has its time in ``timestamp`` and may hold integers and NULLs.
    Its bars are read by that column, numbers as floats (a NULL as NaN), and a simulation on
    it equals the engine's; a measurement without a numeric ``close`` is a 400 at creation,
    naming it, with nothing written."""
    from hub.timeseries import store

    bars = await dataset_bars(pool, setup.dataset_id)
    bars["close"] = np.round(bars["close"])  # stored as bigint below
    measurement, bare = f"s1_imported_{uuid.uuid4().hex[:8]}", f"s1_bare_{uuid.uuid4().hex[:8]}"
    columns = {
        "timestamp": bars["ts"],
        "open": bars["open"],
        "high": bars["high"],
        "low": bars["low"],
        "close": bars["close"].astype(np.int64),
        "volume": np.ma.masked_array(np.ones(BARS), mask=np.arange(BARS) % 5 == 0),
    }
    async with pool.acquire() as conn, conn.transaction():
        await store.write(conn, measurement, columns, owner=alice.user_id)
        await store.write(conn, bare, {"timestamp": bars["ts"], "open": bars["open"]})
    kinds = dict(
        await pool.fetch(
            "select column_name, data_type from information_schema.columns "
            "where table_schema = 'ts' and table_name = $1",
            measurement,
        )
    )
    assert kinds["timestamp"] == "timestamp with time zone" and kinds["close"] == "bigint"

    async def dataset_on(name: str) -> str:
        body = {
            "symbol": f"IMP{uuid.uuid4().hex[:6].upper()}",
            "granularity": "1h",
            "source": "import",
            "ohlcv_measurement": name,
        }
        created = await client.post("/api/datasets", json=body, headers=alice.headers)
        assert created.status_code == 201, created.text
        return str(created.json()["dataset_id"])

    dataset_id = await dataset_on(measurement)
    run_id = await create_run(client, alice, dataset_id)
    assert await write(server, alice, run_id, setup.stored) == len(setup.stored.timestamp)
    parameters = {"threshold": 0.6}
    async with running_worker(settings):
        done = await simulated(client, alice, {"run_id": run_id, "parameters": parameters})
    below = math.nextafter(0.6, -math.inf)
    expected = engine_result(
        bars, setup.stored, {"entry_threshold": 0.6, "exit_threshold": below},
        initial_capital=10000.0,
    )  # fmt: skip
    assert same_metrics(done["results"], expected.metrics), (done["results"], expected.metrics)
    assert done["results"]["processed"] == BARS - FIRST_PREDICTED
    trades = await client.get(
        f"/api/simulations/{done['simulation_id']}/trades", headers=alice.headers
    )
    assert_same(trades.json()["trades"], expected.trades, done["simulation_id"])

    bare_run = await create_run(client, alice, await dataset_on(bare))
    assert await write(server, alice, bare_run, setup.stored) == len(setup.stored.timestamp)
    jobs_before = (await client.get("/api/jobs?limit=1000", headers=alice.headers)).json()["count"]
    refused = await client.post(
        "/api/simulations", json={"run_id": bare_run}, headers=alice.headers
    )
    assert refused.status_code == 400, refused.text
    assert "high" in refused.json()["error"] and bare in refused.json()["error"]
    listed = await client.get(
        "/api/simulations", params={"run_id": bare_run}, headers=alice.headers
    )
    assert listed.json() == {"simulations": [], "count": 0}
    jobs_after = (await client.get("/api/jobs?limit=1000", headers=alice.headers)).json()["count"]
    assert jobs_after == jobs_before
