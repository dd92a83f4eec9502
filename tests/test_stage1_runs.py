"""Stage1's runs and predictions (seed 000) over real HTTP and GraphQL: every field of the
seed, pagination, 404s, bad input refused with nothing written, and predictions streamed as CSV
and JSON equal to what was stored (a large run in constant memory; a reader that leaves ends
the query)."""

from __future__ import annotations

import csv
import io
import math
import re
import tracemalloc
import uuid
from typing import Any

import asyncpg
import httpx
import numpy as np
import orjson
import pytest

from hub.errors import BadRequest, Conflict, Forbidden
from hub.settings import Settings
from tests.conftest import Account, LiveServer, operation
from tests.helpers import eventually, graphql
from tests.stage1runs import (
    THRESHOLDS,
    Setup,
    Stored,
    create_run,
    make_setup,
    predictions_for,
    write,
)

SYMBOL = "S1RUN/USD"
RUN_FIELDS = {"run_id", "dataset_id", "fold_count", "features", "thresholds", "created_at"}
STAGE1_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


@pytest.fixture(scope="module")
async def setup(
    server: LiveServer, settings: Settings, admin: Account, alice: Account, pool: asyncpg.Pool
) -> Setup:
    return await make_setup(server, settings, admin, alice, pool, SYMBOL)


# -- runs ---------------------------------------------------------------------------------


async def test_run_routes_answer_every_seed_field(
    client: httpx.AsyncClient, setup: Setup, alice: Account, bob: Account
) -> None:
    got = await client.get(f"/api/runs/{setup.run_id}", headers=bob.headers)
    assert got.status_code == 200
    run = got.json()
    assert set(run) == RUN_FIELDS
    assert run["run_id"] == setup.run_id and run["dataset_id"] == setup.dataset_id
    assert run["fold_count"] == 5 and run["features"] == ["feature1", "feature2"]
    assert run["thresholds"] == THRESHOLDS and STAGE1_TIME.match(run["created_at"])
    of_dataset = await client.get(f"/api/datasets/{setup.dataset_id}/runs", headers=bob.headers)
    assert of_dataset.json() == {"runs": [run], "count": 1}
    filtered = await client.get(
        "/api/runs", params={"dataset_id": setup.dataset_id}, headers=bob.headers
    )
    assert filtered.json() == {"runs": [run], "count": 1}
    everything = (await client.get("/api/runs", params={"limit": 1000}, headers=bob.headers)).json()
    assert run in everything["runs"] and everything["count"] == len(everything["runs"])
    # Creating the same run again is answered like the first time; other values are a 409.
    same = {k: run[k] for k in RUN_FIELDS - {"created_at"}}
    again = await client.post("/api/runs", json=same, headers=alice.headers)
    assert again.status_code == 201 and again.json() == {
        "success": True,
        "message": "Run created successfully",
        "run_id": setup.run_id,
    }
    other = await client.post("/api/runs", json={**same, "fold_count": 6}, headers=alice.headers)
    assert other.status_code == 409 and set(other.json()) == {"error"}
    assert (await client.get(f"/api/runs/{setup.run_id}", headers=bob.headers)).json() == run


async def test_runs_page_newest_first(
    client: httpx.AsyncClient, setup: Setup, bob: Account
) -> None:
    made = [await create_run(client, bob, setup.dataset_id, fold_count=n) for n in range(3)]
    url = f"/api/datasets/{setup.dataset_id}/runs"
    pages = [
        (await client.get(url, params={"limit": 2, "offset": o}, headers=bob.headers)).json()
        for o in (0, 2)
    ]
    ids = [r["run_id"] for page in pages for r in page["runs"]]
    assert ids == [*made[::-1], setup.run_id]
    assert [page["count"] for page in pages] == [2, 2]
    by_filter = await client.get(
        "/api/runs", params={"dataset_id": setup.dataset_id, "limit": 1, "offset": 1},
        headers=bob.headers,
    )  # fmt: skip
    assert [r["run_id"] for r in by_filter.json()["runs"]] == [made[1]]
    for params in ({"limit": 0}, {"offset": -2}, {"dataset_id": "nope"}):
        bad = await client.get("/api/runs", params=params, headers=bob.headers)
        assert bad.status_code == 400 and set(bad.json()) == {"error"}
    unknown = await client.get(
        "/api/runs", params={"dataset_id": str(uuid.uuid4())}, headers=bob.headers
    )
    assert unknown.json() == {"runs": [], "count": 0}


@pytest.mark.parametrize(
    ("change", "word"),
    [
        ({"dataset_id": str(uuid.uuid4())}, "dataset"),
        ({"dataset_id": "nope"}, "dataset_id"),
        ({"fold_count": -1}, "fold_count"),
        ({"fold_count": None}, "fold_count"),
        ({"thresholds": ["high"]}, "thresholds"),
        ({"thresholds": [0.5] * 65}, "thresholds"),
        ({"features": [""]}, "features"),
        ({"run_id": None}, "run_id"),
        ({"colour": "red"}, "colour"),
    ],
)
async def test_bad_runs_are_400s_and_write_nothing(
    client: httpx.AsyncClient, setup: Setup, alice: Account, change: dict[str, Any], word: str
) -> None:
    run_id = str(uuid.uuid4())
    body = {"run_id": run_id, "dataset_id": setup.dataset_id, "fold_count": 1, **change}
    refused = await client.post("/api/runs", json=body, headers=alice.headers)
    assert refused.status_code == 400, refused.text
    assert set(refused.json()) == {"error"} and word in refused.json()["error"]
    assert (await client.get(f"/api/runs/{run_id}", headers=alice.headers)).status_code == 404


async def test_missing_runs_are_404s(client: httpx.AsyncClient, alice: Account) -> None:
    for run_id in (str(uuid.uuid4()), "nope"):
        for path in ("", "/predictions", "/predictions?format=json"):
            gone = await client.get(f"/api/runs/{run_id}{path}", headers=alice.headers)
            assert gone.status_code == 404 and set(gone.json()) == {"error"}
    assert (await client.get("/api/runs")).status_code == 401


# -- predictions --------------------------------------------------------------------------


def parse_csv(text: str) -> tuple[list[str], list[list[Any]]]:
    reader = csv.reader(io.StringIO(text))
    header = next(reader)
    rows = []
    for row in reader:
        ints = [int(v) for v in row[:3]]
        rows.append([*ints, *(float(v) for v in row[3:])])
    return header, rows


def same_rows(got: list[list[Any]], expected: list[list[Any]], *, json: bool = False) -> bool:
    """Equal value for value (exact floats), NaN (CSV) or null (JSON) where NaN was stored. In
    JSON a whole float is written as the CSV writes it (``1``), so it reads back as an int."""
    if len(got) != len(expected):
        return False
    for left, right in zip(got, expected, strict=True):
        for a, b in zip(left, right, strict=True):
            if isinstance(b, float) and math.isnan(b):
                if not (a is None or (isinstance(a, float) and math.isnan(a))):
                    return False
            elif json and isinstance(b, float) and b.is_integer():
                if a != b or type(a) is not int:
                    return False
            elif a != b or type(a) is not type(b):
                return False
    return True


async def test_predictions_csv_and_json_are_what_was_stored(
    client: httpx.AsyncClient, setup: Setup, bob: Account
) -> None:
    url = f"/api/runs/{setup.run_id}/predictions"
    as_csv = await client.get(url, headers=bob.headers)
    assert as_csv.status_code == 200 and as_csv.headers["content-type"].startswith("text/csv")
    header, rows = parse_csv(as_csv.text)
    assert header == [
        "timestamp", "bar_index", "fold_number", "prediction", "target",
        "threshold_0", "threshold_1", "threshold_2",
    ]  # fmt: skip
    expected = setup.stored.rows()
    assert same_rows(rows, expected)
    assert (
        as_csv.text == (await client.get(url, params={"format": "csv"}, headers=bob.headers)).text
    )
    as_json = await client.get(url, params={"format": "json"}, headers=bob.headers)
    assert as_json.headers["content-type"] == "application/json"
    body = as_json.json()
    assert list(body) == ["dataset"] and same_rows(body["dataset"], expected, json=True)
    bad = await client.get(url, params={"format": "xml"}, headers=bob.headers)
    assert bad.status_code == 400 and "format" in bad.json()["error"]


async def test_a_run_without_predictions_answers_the_header_alone(
    client: httpx.AsyncClient, setup: Setup, alice: Account
) -> None:
    run_id = await create_run(client, alice, setup.dataset_id, thresholds=[0.55])
    url = f"/api/runs/{run_id}/predictions"
    empty = await client.get(url, headers=alice.headers)
    assert empty.text == "timestamp,bar_index,fold_number,prediction,target,threshold_0\n"
    assert (await client.get(url, params={"format": "json"}, headers=alice.headers)).json() == {
        "dataset": []
    }


async def test_only_the_runs_creator_writes_checked_predictions(
    client: httpx.AsyncClient, server: LiveServer, setup: Setup, alice: Account, bob: Account
) -> None:
    run_id = await create_run(client, alice, setup.dataset_id, thresholds=[0.5, 0.6])
    first = predictions_for(np.arange(10, dtype=np.int64) * 60_000_000, seed=1, thresholds=2)
    assert await write(server, alice, run_id, first) == 10
    wrong: list[tuple[Account, Stored, type[Exception]]] = [
        (bob, first, Forbidden),
        (alice, predictions_for(first.timestamp, 1, thresholds=3), BadRequest),
        (alice, predictions_for(first.timestamp[::-1].copy(), 1, thresholds=2), BadRequest),
        (alice, predictions_for(first.timestamp - 10**18, 1, thresholds=2), BadRequest),
    ]
    for account, stored, error in wrong:
        with pytest.raises(error):
            await write(server, account, run_id, stored)
    got = await client.get(
        f"/api/runs/{run_id}/predictions", params={"format": "json"}, headers=bob.headers
    )
    assert same_rows(got.json()["dataset"], first.rows(), json=True)  # as first written
    second = predictions_for(np.arange(4, dtype=np.int64) * 60_000_000, seed=2, thresholds=2)
    await write(server, alice, run_id, second)  # replaces them
    got = await client.get(f"/api/runs/{run_id}/predictions", headers=bob.headers)
    assert same_rows(parse_csv(got.text)[1], second.rows())


async def test_predictions_loaded_like_a_csv_import_are_read_and_replaced(
    client: httpx.AsyncClient, server: LiveServer, setup: Setup, alice: Account, pool: asyncpg.Pool
) -> None:
    """A CSV import makes ``timestamp timestamptz``, integers ``bigint`` and numbers ``double
    precision``: read as the seed's columns, and written in place keeping those types."""
    run_id = await create_run(client, alice, setup.dataset_id, thresholds=[0.5])
    measurement = "wf_" + run_id.replace("-", "_")
    await pool.execute(
        f'create table ts."{measurement}" ("timestamp" timestamptz not null, bar_index bigint, '
        "fold_number bigint, prediction double precision, target bigint, "
        "threshold_0 double precision)"
    )
    await pool.execute(
        f'insert into ts."{measurement}" values '
        "(to_timestamp(1609459200), 0, 1, 0.65, 1, 0.5), "
        "(to_timestamp(1609462800), 1, 1, null, 0, 0.5)"
    )
    url = f"/api/runs/{run_id}/predictions"
    assert (await client.get(url, headers=alice.headers)).text == (
        "timestamp,bar_index,fold_number,prediction,target,threshold_0\n"
        "1609459200000000,0,1,0.65,1,0.5\n"
        "1609462800000000,1,1,,0,0.5\n"
    )
    # JSON writes numbers as the CSV does and as the seed shows them: a whole target is `1`.
    assert (await client.get(url, params={"format": "json"}, headers=alice.headers)).content == (
        b'{"dataset":[[1609459200000000,0,1,0.65,1,0.5],[1609462800000000,1,1,null,0,0.5]]}'
    )
    replaced = predictions_for(np.array([1609459200000000, 1609466400000000]), 4, thresholds=1)
    await write(server, alice, run_id, replaced)
    types = await pool.fetch(
        "select attname::text, format_type(atttypid, atttypmod) from pg_attribute "
        "where attrelid = $1::regclass and attnum > 0 order by attnum",
        f'ts."{measurement}"',
    )
    assert [tuple(t) for t in types][4] == ("target", "bigint")
    got = await client.get(url, params={"format": "json"}, headers=alice.headers)
    assert same_rows(got.json()["dataset"], replaced.rows(), json=True)
    # Values such a table cannot hold are refused, and the stored ones stay.
    halves = Stored(**{**replaced.__dict__, "target": np.array([0.5, 1.0])})
    with pytest.raises(Conflict):
        await write(server, alice, run_id, halves)
    await pool.execute(f'alter table ts."{measurement}" drop column bar_index')
    with pytest.raises(Conflict):
        await write(server, alice, run_id, replaced)
    got = await client.get(url, params={"format": "json"}, headers=alice.headers)
    assert [row[1] for row in got.json()["dataset"]] == [None, None]  # no bar_index: null
    assert [row[0] for row in got.json()["dataset"]] == replaced.timestamp.tolist()


async def streamed(
    client: httpx.AsyncClient, url: str, headers: dict[str, str]
) -> tuple[bytes, int]:
    """The body (its first and last 200 bytes and its size, not the whole) and how far the
    process's traced memory rose above where it started while it was streamed."""
    tracemalloc.start()
    try:
        start, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        head, tail, size = b"", b"", 0
        async with client.stream("GET", url, headers=headers) as response:
            assert response.status_code == 200
            async for chunk in response.aiter_raw():
                size += len(chunk)
                head = (head + chunk)[:200] if len(head) < 200 else head
                tail = (tail + chunk)[-200:]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return head + b"..." + tail + b"|" + str(size).encode(), peak - start


async def test_a_large_run_streams_in_constant_memory(
    client: httpx.AsyncClient, server: LiveServer, setup: Setup, alice: Account
) -> None:
    rises = {}
    for rows in (20_000, 200_000):
        run_id = await create_run(client, alice, setup.dataset_id)
        times = 1_600_000_000_000_000 + np.arange(rows, dtype=np.int64) * 60_000_000
        stored = predictions_for(times, seed=rows, thresholds=len(THRESHOLDS))
        assert await write(server, alice, run_id, stored) == rows
        url = f"/api/runs/{run_id}/predictions"
        for fmt in ("csv", "json"):
            summary, rise = await streamed(client, f"{url}?format={fmt}", alice.headers)
            size = int(summary.rsplit(b"|", 1)[1])
            rises[(rows, fmt)] = rise
            assert size > 40 * rows, (rows, fmt, size)
            if rows == 200_000:  # twelve megabytes pass through a window of about one
                assert rise < size / 4, (rows, fmt, size, rise)
            first, last = stored.rows()[0], stored.rows()[-1]
            if fmt == "csv":
                assert (
                    summary.startswith(b"timestamp,bar_index") and str(first[0]).encode() in summary
                )
            else:
                assert summary.startswith(b'{"dataset":[[') and summary.split(b"|")[0].endswith(
                    b"]]}"
                )
            assert str(last[0]).encode() in summary
    for fmt in ("csv", "json"):  # ten times the rows, about the same memory
        assert rises[(200_000, fmt)] < 2 * rises[(20_000, fmt)] + 1_000_000, rises


async def test_a_reader_that_leaves_mid_stream_frees_its_query(
    client: httpx.AsyncClient, server: LiveServer, setup: Setup, alice: Account, pool: asyncpg.Pool
) -> None:
    run_id = await create_run(client, alice, setup.dataset_id)
    times = 1_500_000_000_000_000 + np.arange(300_000, dtype=np.int64) * 1_000_000
    await write(server, alice, run_id, predictions_for(times, seed=9, thresholds=3))
    measurement = "wf_" + run_id.replace("-", "_")

    async def reading() -> bool:
        found = await pool.fetchval(
            "select count(*) from pg_stat_activity where state <> 'idle' and query like $1",
            f"%{measurement}%",
        )
        return bool(found == 0)

    for fmt in ("csv", "json"):
        async with client.stream(
            "GET", f"/api/runs/{run_id}/predictions?format={fmt}", headers=alice.headers
        ) as response:
            size = 0
            async for chunk in response.aiter_raw():
                size += len(chunk)
                if size > 100_000:
                    assert not await reading()  # Postgres is still sending
                    break  # gone long before the end
        await eventually(reading, timeout=10)
    # The pool is whole: the next reader gets every row.
    got = await client.get(f"/api/runs/{run_id}/predictions", headers=alice.headers)
    assert got.text.count("\n") == 300_001


async def test_graphql_runs_have_the_same_fields(
    client: httpx.AsyncClient, setup: Setup, alice: Account
) -> None:
    rest = (await client.get(f"/api/runs/{setup.run_id}", headers=alice.headers)).json()
    one = await graphql(client, operation("Run"), {"id": setup.run_id}, token=alice.token)
    run = one["data"]["run"]
    assert run["runId"] == rest["run_id"] and run["datasetId"] == rest["dataset_id"]
    assert (run["foldCount"], run["features"], run["thresholds"]) == (
        rest["fold_count"], rest["features"], rest["thresholds"],
    )  # fmt: skip
    assert run["createdAt"].startswith(rest["created_at"][:-1])
    of_dataset = await graphql(
        client, operation("Runs"), {"datasetId": setup.dataset_id, "limit": 500}, token=alice.token
    )
    assert run in of_dataset["data"]["runs"]
    missing = await graphql(client, operation("Run"), {"id": str(uuid.uuid4())}, token=alice.token)
    assert missing["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    bad = await graphql(client, operation("Runs"), {"datasetId": "nope"}, token=alice.token)
    assert bad["errors"][0]["extensions"]["code"] == "INVALID_PARAMETER"
    assert orjson.dumps(run)  # plain JSON all the way
