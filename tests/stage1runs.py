"""What the Stage1 run and simulation tests share: a synthetic dataset with a run whose
predictions are stored, and the helpers that write and read predictions."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import numpy as np

from hub.auth import Identity, Role
from hub.settings import Settings
from tests.conftest import Account, LiveServer
from tests.helpers import generate_dataset, running_worker

BARS = 3000
FIRST_PREDICTED = 400  # predictions start after the first training window...
BEYOND = 50  # ...and run 50 bars past the dataset's last bar (no bar: left out of a simulation)
THRESHOLDS = [0.5, 0.6, 0.7]
HOUR_US = 3_600_000_000


@dataclass(frozen=True)
class Stored:
    """What a test wrote as a run's predictions."""

    timestamp: np.ndarray  # epoch µs
    bar_index: np.ndarray
    fold_number: np.ndarray
    prediction: np.ndarray
    target: np.ndarray
    thresholds: list[np.ndarray]

    def rows(self) -> list[list[Any]]:
        columns = [self.timestamp, self.bar_index, self.fold_number, self.prediction, self.target]
        return [
            list(row) for row in zip(*(c.tolist() for c in columns + self.thresholds), strict=True)
        ]


@dataclass(frozen=True)
class Setup:
    dataset_id: str
    run_id: str
    stored: Stored


def identity_of(account: Account) -> Identity:
    return Identity(account.user_id, account.username, Role.USER)


def predictions_for(times_us: np.ndarray, seed: int, thresholds: int) -> Stored:
    rng = np.random.default_rng(seed)
    n = len(times_us)
    prediction = rng.random(n)
    prediction[::97] = np.nan  # a missing prediction: stored NaN, JSON null, never traded on
    return Stored(
        timestamp=times_us,
        bar_index=np.arange(n, dtype=np.int64) + FIRST_PREDICTED,
        fold_number=(np.arange(n) * 5 // max(n, 1) + 1).astype(np.int64),
        prediction=prediction,
        target=(rng.random(n) > 0.5).astype(np.float64),
        thresholds=[np.full(n, 0.5 + 0.1 * k) for k in range(thresholds)],
    )


async def write(server: LiveServer, account: Account, run_id: str, stored: Stored) -> int:
    written: int = await server.lifespan_state.runs.write_predictions(
        identity_of(account),
        run_id,
        timestamp=stored.timestamp,
        bar_index=stored.bar_index,
        fold_number=stored.fold_number,
        prediction=stored.prediction,
        target=stored.target,
        thresholds=stored.thresholds,
    )
    return written


async def create_run(
    client: httpx.AsyncClient, account: Account, dataset_id: str, **extra: Any
) -> str:
    body = {
        "run_id": str(uuid.uuid4()),
        "dataset_id": dataset_id,
        "fold_count": 5,
        "features": ["feature1", "feature2"],
        "thresholds": THRESHOLDS,
        **extra,
    }
    created = await client.post("/api/runs", json=body, headers=account.headers)
    assert created.status_code == 201, created.text
    return str(body["run_id"])


async def dataset_bars(pool: asyncpg.Pool, dataset_id: str) -> dict[str, np.ndarray]:
    """The dataset's bars as the test reads them itself (not through the hub's reader)."""
    measurement = await pool.fetchval(
        "select ohlcv_measurement from datasets where dataset_id = $1", uuid.UUID(dataset_id)
    )
    rows = await pool.fetch(
        f"select (extract(epoch from ts) * 1000000)::int8 as us, open, high, low, close "
        f'from ts."{measurement}" order by ts'
    )
    return {
        "ts": np.array([r["us"] for r in rows], dtype=np.int64) * 1000,
        "open": np.array([r["open"] for r in rows]),
        "high": np.array([r["high"] for r in rows]),
        "low": np.array([r["low"] for r in rows]),
        "close": np.array([r["close"] for r in rows]),
    }


async def make_setup(
    server: LiveServer,
    settings: Settings,
    admin: Account,
    alice: Account,
    pool: asyncpg.Pool,
    symbol: str,
) -> Setup:
    """A synthetic dataset of ``symbol`` and a run of alice's on it, with predictions for the
    bars from ``FIRST_PREDICTED`` on and ``BEYOND`` hours past the last bar."""
    async with running_worker(settings), httpx.AsyncClient(base_url=server.url) as http:
        await generate_dataset(server.url, admin, symbol, BARS, seed=21)
        listed = (await http.get("/api/datasets?limit=1000", headers=alice.headers)).json()
        dataset_id = next(d["dataset_id"] for d in listed["datasets"] if d["symbol"] == symbol)
        run_id = await create_run(http, alice, dataset_id)
    bars = await dataset_bars(pool, dataset_id)
    times = bars["ts"][FIRST_PREDICTED:] // 1000
    times = np.concatenate([times, times[-1] + HOUR_US * np.arange(1, BEYOND + 1)])
    stored = predictions_for(times, seed=3, thresholds=len(THRESHOLDS))
    assert await write(server, alice, run_id, stored) == len(times)
    return Setup(dataset_id, run_id, stored)
