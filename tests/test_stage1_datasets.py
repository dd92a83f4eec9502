"""Stage1's datasets (seed 000) over real HTTP and GraphQL: every field of the seed's dataset
object, the row counts and first/last times counted from the measurements a dataset names,
create or update, pagination, 401/403/404/409, and bad input refused with nothing written."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import numpy as np
import pytest

from hub import pgcopy
from hub.settings import Settings
from tests.conftest import Account, LiveServer, operation
from tests.helpers import generate_dataset, graphql, running_worker

SYMBOL = "S1DS/USD"
BARS = 480
HOUR_US = 3_600_000_000
START_US = int(datetime(2020, 1, 1, tzinfo=UTC).timestamp()) * 1_000_000
SEED_FIELDS = {
    "dataset_id",
    "dataset_slug",
    "symbol",
    "granularity",
    "source",
    "ohlcv_measurement",
    "indicator_measurement",
    "ohlcv_row_count",
    "indicator_row_count",
    "ohlcv_first_ts",
    "ohlcv_last_ts",
    "indicator_first_ts",
    "indicator_last_ts",
    "metadata",
}


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
async def synthetic(server: LiveServer, settings: Settings, admin: Account) -> None:
    async with running_worker(settings):
        await generate_dataset(server.url, admin, SYMBOL, BARS, seed=5)


async def all_datasets(client: httpx.AsyncClient, account: Account) -> list[dict[str, Any]]:
    got = await client.get("/api/datasets", params={"limit": 1000}, headers=account.headers)
    assert got.status_code == 200, got.text
    datasets: list[dict[str, Any]] = got.json()["datasets"]
    return datasets


async def create_table(pool: asyncpg.Pool, name: str, time_column: str, rows: int) -> list[int]:
    """A measurement of ``rows`` hourly rows with the time in ``time_column``; its times (µs)."""
    times = [START_US + (7 + i) * HOUR_US for i in range(rows)]
    async with pool.acquire() as conn:
        await conn.execute(f'create table ts."{name}" ("{time_column}" timestamptz, value float8)')
        payload = pgcopy.encode(
            [(np.array(times, dtype=np.int64) * 1000, "timestamptz"), (np.ones(rows), "float8")]
        )
        await conn.copy_to_table(
            name, schema_name="ts", source=memoryview(payload), format="binary"
        )
    return times


async def test_a_synthetic_dataset_answers_every_seed_field(
    client: httpx.AsyncClient, alice: Account, synthetic: None
) -> None:
    listed = [d for d in await all_datasets(client, alice) if d["symbol"] == SYMBOL]
    assert len(listed) == 1
    dataset = listed[0]
    assert set(dataset) == SEED_FIELDS
    assert uuid.UUID(dataset["dataset_id"])
    assert dataset["granularity"] == "1h" and dataset["source"] == "synthetic"
    assert dataset["dataset_slug"].startswith("s1ds_usd_1h_")
    assert dataset["ohlcv_measurement"] == dataset["dataset_slug"] + "_ohlcv"
    assert dataset["indicator_measurement"] is None
    assert dataset["ohlcv_row_count"] == BARS and dataset["indicator_row_count"] == 0
    assert dataset["ohlcv_first_ts"] == START_US
    assert dataset["ohlcv_last_ts"] == START_US + (BARS - 1) * HOUR_US
    assert dataset["indicator_first_ts"] is None and dataset["indicator_last_ts"] is None
    assert dataset["metadata"] == {"generator": "gbm", "seed": 5}
    one = await client.get(f"/api/datasets/{dataset['dataset_id']}", headers=alice.headers)
    assert one.status_code == 200 and one.json() == dataset
    # Seed 000's X-Stage1-Token carries the same API keys.
    token = {"X-Stage1-Token": alice.token}
    assert (await client.get(f"/api/datasets/{dataset['dataset_id']}", headers=token)).json() == (
        dataset
    )


async def test_counts_and_times_come_from_the_named_measurements(
    client: httpx.AsyncClient, pool: asyncpg.Pool, alice: Account
) -> None:
    ohlcv, indicators = unique("s1_ohlcv_"), unique("s1_ind_")
    body = {
        "dataset_id": str(uuid.uuid4()),
        "dataset_slug": unique("btc-1h-"),
        "symbol": unique("BTC/"),
        "granularity": "1h",
        "source": "exchange_name",
        "ohlcv_measurement": ohlcv,
        "indicator_measurement": indicators,
    }
    created = await client.post("/api/datasets", json=body, headers=alice.headers)
    assert created.status_code == 201, created.text
    assert created.json() == {
        "success": True,
        "message": "Dataset created successfully",
        "dataset_id": body["dataset_id"],
    }
    url = f"/api/datasets/{body['dataset_id']}"
    empty = (await client.get(url, headers=alice.headers)).json()
    assert empty == {
        **body,
        "ohlcv_row_count": 0,
        "indicator_row_count": 0,
        "ohlcv_first_ts": None,
        "ohlcv_last_ts": None,
        "indicator_first_ts": None,
        "indicator_last_ts": None,
        "metadata": {},
    }
    # Written later, by anything: counted when read.
    bars = await create_table(pool, ohlcv, "ts", 25)
    marks = await create_table(pool, indicators, "timestamp", 9)
    counted = (await client.get(url, headers=alice.headers)).json()
    assert counted["ohlcv_row_count"] == 25 and counted["indicator_row_count"] == 9
    assert (counted["ohlcv_first_ts"], counted["ohlcv_last_ts"]) == (bars[0], bars[-1])
    assert (counted["indicator_first_ts"], counted["indicator_last_ts"]) == (marks[0], marks[-1])
    listed = [d for d in await all_datasets(client, alice) if d["dataset_id"] == body["dataset_id"]]
    assert listed == [counted]
    # Kept with the dataset, too (what backtests and the bars cache read).
    stored = await pool.fetchrow(
        "select ohlcv_row_count, indicator_last_ts from datasets where dataset_id = $1",
        uuid.UUID(body["dataset_id"]),
    )
    assert stored is not None and tuple(stored) == (25, marks[-1])


async def test_update_replaces_the_fields_sent(
    client: httpx.AsyncClient, alice: Account, bob: Account, admin: Account
) -> None:
    dataset_id = str(uuid.uuid4())
    body = {"dataset_id": dataset_id, "symbol": unique("ETH/"), "granularity": "4h"}
    assert (await client.post("/api/datasets", json=body, headers=alice.headers)).status_code == 201
    url = f"/api/datasets/{dataset_id}"
    first = (await client.get(url, headers=alice.headers)).json()
    assert first["dataset_slug"].startswith("eth_") and first["source"] == ""
    change = {"dataset_id": dataset_id, "source": "binance", "metadata": {"note": "x"}}
    updated = await client.post("/api/datasets", json=change, headers=alice.headers)
    assert updated.status_code == 201
    assert updated.json()["message"] == "Dataset updated successfully"
    second = (await client.get(url, headers=alice.headers)).json()
    assert second == {**first, "source": "binance", "metadata": {"note": "x"}}
    # Shared read-only: another user reads it but may not change it; an admin may.
    assert (await client.get(url, headers=bob.headers)).json() == second
    refused = await client.post("/api/datasets", json=change, headers=bob.headers)
    assert refused.status_code == 403 and set(refused.json()) == {"error"}
    cleared = {"dataset_id": dataset_id, "ohlcv_measurement": None, "source": "admin"}
    assert (
        await client.post("/api/datasets", json=cleared, headers=admin.headers)
    ).status_code == (201)
    assert (await client.get(url, headers=bob.headers)).json()["source"] == "admin"


async def test_slug_and_symbol_at_granularity_are_unique(
    client: httpx.AsyncClient, alice: Account, synthetic: None
) -> None:
    taken = next(d for d in await all_datasets(client, alice) if d["symbol"] == SYMBOL)
    same_series = {"symbol": SYMBOL, "granularity": "1h"}
    clash = await client.post("/api/datasets", json=same_series, headers=alice.headers)
    assert clash.status_code == 409 and taken["dataset_id"] in clash.json()["error"]
    same_slug = {"symbol": unique("X/"), "granularity": "1h", "dataset_slug": taken["dataset_slug"]}
    clash = await client.post("/api/datasets", json=same_slug, headers=alice.headers)
    assert clash.status_code == 409 and "slug" in clash.json()["error"]
    assert [d for d in await all_datasets(client, alice) if d["symbol"] == SYMBOL] == [taken]


@pytest.mark.parametrize(
    ("body", "names"),
    [
        ({"granularity": "1h"}, "symbol"),
        ({"symbol": "A/B"}, "granularity"),
        ({"symbol": "A/B", "granularity": "1x"}, "granularity"),
        ({"symbol": "A B", "granularity": "1h"}, "symbol"),
        ({"symbol": None, "granularity": "1h"}, "symbol"),
        ({"symbol": "A/B", "granularity": "1h", "dataset_slug": "Not A Slug"}, "dataset_slug"),
        ({"symbol": "A/B", "granularity": "1h", "ohlcv_measurement": "ts.x; drop"}, "ohlcv"),
        ({"symbol": "A/B", "granularity": "1h", "colour": "red"}, "colour"),
        ({"symbol": "A/B", "granularity": "1h", "metadata": [1]}, "metadata"),
        ({"symbol": "A/B", "granularity": "1h", "dataset_id": "nope"}, "dataset_id"),
    ],
)
async def test_bad_input_is_a_400_and_writes_nothing(
    client: httpx.AsyncClient, alice: Account, body: dict[str, Any], names: str
) -> None:
    dataset_id = str(uuid.uuid4())
    sent = {"dataset_id": dataset_id, **body}
    before = len(await all_datasets(client, alice))
    refused = await client.post("/api/datasets", json=sent, headers=alice.headers)
    assert refused.status_code == 400, refused.text
    assert set(refused.json()) == {"error"} and names in refused.json()["error"]
    assert (await client.get(f"/api/datasets/{dataset_id}", headers=alice.headers)).status_code == (
        404
    )
    assert len(await all_datasets(client, alice)) == before


async def test_malformed_bodies_and_missing_datasets(
    client: httpx.AsyncClient, alice: Account
) -> None:
    for content in (b"", b"{", b"[1, 2]", b'"text"'):
        bad = await client.post(
            "/api/datasets",
            content=content,
            headers={**alice.headers, "content-type": "application/json"},
        )
        assert bad.status_code == 400 and isinstance(bad.json()["error"], str)
    for missing in (str(uuid.uuid4()), "not-a-uuid"):
        gone = await client.get(f"/api/datasets/{missing}", headers=alice.headers)
        assert gone.status_code == 404 and set(gone.json()) == {"error"}
        runs = await client.get(f"/api/datasets/{missing}/runs", headers=alice.headers)
        assert runs.status_code == 404 and set(runs.json()) == {"error"}
    assert (await client.get("/api/datasets")).status_code == 401
    assert (await client.post("/api/datasets", json={})).status_code == 401
    wrong = await client.delete("/api/datasets", headers=alice.headers)
    assert wrong.status_code == 405 and set(wrong.json()) == {"error"}


async def test_pagination_is_newest_first_and_disjoint(
    client: httpx.AsyncClient, alice: Account
) -> None:
    made = []
    for _ in range(3):
        body = {"symbol": unique("PG/"), "granularity": "1d"}
        answer = await client.post("/api/datasets", json=body, headers=alice.headers)
        made.append(answer.json()["dataset_id"])
    first = await client.get("/api/datasets", params={"limit": 2}, headers=alice.headers)
    second = await client.get(
        "/api/datasets", params={"limit": 2, "offset": 2}, headers=alice.headers
    )
    assert first.json()["count"] == 2 and len(first.json()["datasets"]) == 2
    ids = [d["dataset_id"] for d in first.json()["datasets"] + second.json()["datasets"]]
    assert ids[:3] == made[::-1] and len(set(ids)) == len(ids)
    default = (await client.get("/api/datasets", headers=alice.headers)).json()
    assert default["count"] == len(default["datasets"]) <= 50
    for params in ({"limit": 0}, {"limit": 1001}, {"offset": -1}, {"limit": "x"}):
        bad = await client.get("/api/datasets", params=params, headers=alice.headers)
        assert bad.status_code == 400 and set(bad.json()) == {"error"}


async def test_graphql_datasets_have_the_same_fields(
    client: httpx.AsyncClient, alice: Account, synthetic: None
) -> None:
    rest = next(d for d in await all_datasets(client, alice) if d["symbol"] == SYMBOL)
    body = await graphql(client, operation("Datasets"), {"limit": 500}, token=alice.token)
    assert "errors" not in body, body
    found = [d for d in body["data"]["datasets"] if d["symbol"] == SYMBOL]
    one = await graphql(client, operation("Dataset"), {"id": rest["dataset_id"]}, token=alice.token)
    assert found == [one["data"]["dataset"]]
    camel = {
        "".join(w.title() if i else w for i, w in enumerate(k.split("_"))): v
        for k, v in rest.items()
    }
    assert found[0] == camel
    missing = await graphql(
        client, operation("Dataset"), {"id": str(uuid.uuid4())}, token=alice.token
    )
    assert missing["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    too_many = await graphql(client, operation("Datasets"), {"limit": 501}, token=alice.token)
    assert too_many["errors"][0]["extensions"]["field"] == "limit"
