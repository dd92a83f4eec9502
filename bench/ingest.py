"""The data plane's rates (issue 12), each beside its bare limit measured in the same run:

- CSV import: 5,000,000 OHLCV rows as one CSV file (``timestamp`` as ISO 8601 UTC, ``symbol``,
  ``open``, ``high``, ``low``, ``close``, ``volume``: 300 MB) sent to
  ``POST /api/questdb/import/async`` as seed 000's JSON body, from the request's first byte to
  the job's ``COMPLETED`` on ``GET /api/jobs/{id}`` (upload, parse, binary COPY, commit).
  Target: at least 0.7 of the anchor's rate.
- Line protocol: the same rows as 5,000,000 lines through ``POST /write``, batches of 250,000
  lines (about 28 MB, under ``TRADEHUB_LINE_PROTOCOL_MAX_BYTES``),
  two in flight, as InfluxDB's and QuestDB's clients batch. Target: at least 0.7 of the anchor.
- The anchor of both: ``psql \\copy`` of that same CSV file into a fresh table of the shape the
  hub makes (``"timestamp" timestamptz not null`` with a btree index, ``symbol text``, five
  ``double precision``), run before the import, between the two and after the ingest; each is
  compared with the mean of the two copies beside it, since the load of a shared machine
  drifts (all three times are printed).
- CSV export: 1,000,000 of the imported rows (``SELECT * FROM <it> LIMIT 1000000``) through
  ``POST /api/questdb/export``, read to the end by an httpx client, against psql running
  ``COPY (SELECT * FROM ts.<it> LIMIT 1000000) TO STDOUT (FORMAT csv)`` into /dev/null; the
  best of five each, alternating. Target: at least 0.8 of the anchor's rate.

    python bench/ingest.py [--rows 5000000] [--export-rows 1000000] [--clients 2]

Needs Postgres, Redis and ``psql``: ``TRADEHUB_TEST_DATABASE_URL`` / ``TRADEHUB_TEST_REDIS_URL``,
defaulting to the local services. The hub and its worker run as their own processes on a
database of their own (``bench/_hub.py``; the import's body cap raised to 1 GiB for the 300 MB
file); this process is the client, and on this shared two-core machine it competes with them
for CPU, as psql does with Postgres for the anchors.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.csv as pacsv

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from _hub import RunningHub, running_hub

from engine.ilp import encode_ilp

BATCH_ROWS = 250_000
T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z in ns
COLUMNS = ("open", "high", "low", "close", "volume")
SHAPE = (
    '"timestamp" timestamptz not null, symbol text, open float8, high float8, low float8, '
    "close float8, volume float8"
)
IMPORT_TARGET, LINE_TARGET, EXPORT_TARGET = 0.7, 0.7, 0.8


def ohlcv(rows: int, seed: int = 1) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Columns of ``rows`` one-minute bars of three symbols, and their times (epoch ns)."""
    rng = np.random.default_rng(seed)
    close = np.round(100.0 * np.exp(np.cumsum(rng.normal(0.0, 1e-3, rows))), 2)
    open_ = np.round(close * (1.0 + rng.normal(0.0, 1e-4, rows)), 2)
    columns = {
        "symbol": np.array(["BTC-USD", "ETH-USD", "SOL-USD"], dtype=object)[
            rng.integers(0, 3, rows)
        ],
        "open": open_,
        "high": np.round(np.maximum(open_, close) * 1.001, 2),
        "low": np.round(np.minimum(open_, close) * 0.999, 2),
        "close": close,
        "volume": np.round(rng.exponential(1_000.0, rows), 4),
    }
    return columns, T0 + np.arange(rows, dtype=np.int64) * 60_000_000_000


def write_csv(path: Path, columns: dict[str, np.ndarray], at: np.ndarray) -> None:
    table = pa.table(
        {
            "timestamp": pa.array(at // 1_000_000_000, pa.timestamp("s", "UTC")),
            "symbol": pa.array(columns["symbol"].tolist(), pa.string()),
            **{name: pa.array(columns[name]) for name in COLUMNS},
        }
    )
    pacsv.write_csv(table, path)


def line_bodies(measurement: str, columns: dict[str, np.ndarray], at: np.ndarray) -> list[bytes]:
    return [
        encode_ilp(
            measurement,
            {name: values[start : start + BATCH_ROWS] for name, values in columns.items()},
            symbols=["symbol"],
            at=at[start : start + BATCH_ROWS],
        )
        for start in range(0, len(at), BATCH_ROWS)
    ]


def psql(database_url: str, command: str, stdout: int | None = None) -> None:
    argv = ["psql", database_url, "-v", "ON_ERROR_STOP=1", "-qc", command]
    subprocess.run(argv, check=True, stdout=stdout)


def copy_in(database_url: str, path: Path, table: str) -> float:
    """The anchor of import and ingest: ``psql \\copy`` of the file into a fresh table of the
    hub's shape (timed: the copy alone)."""
    psql(
        database_url,
        f"set client_min_messages = warning; drop table if exists ts.{table}; create table ts.{table} ({SHAPE}); "
        f'create index on ts.{table} ("timestamp")',
    )
    started = time.perf_counter()
    psql(database_url, f"\\copy ts.{table} from '{path}' with (format csv, header true)")
    return time.perf_counter() - started


def copy_out(database_url: str, sql: str) -> float:
    """The anchor of the export: ``COPY (SELECT ...) TO STDOUT CSV`` read by psql."""
    started = time.perf_counter()
    psql(database_url, f"copy ({sql}) to stdout (format csv)", stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


async def import_csv(
    http: httpx.AsyncClient, measurement: str, path: Path
) -> tuple[float, dict[str, float]]:
    """Seed 000's JSON body to the import route, then the job polled to its end: the seconds
    in all, and when the 202 came and the job was first seen running (from the start)."""
    body = orjson.dumps(
        {"measurement": measurement, "data": path.read_text(), "filename": path.name}
    )
    headers = {"Content-Type": "application/json"}
    started = time.perf_counter()
    answer = await http.post("/api/questdb/import/async", content=body, headers=headers)
    assert answer.status_code == 202, answer.text
    marks = {"accepted": time.perf_counter() - started}
    job_url = answer.json()["poll_url"]
    async with asyncio.timeout(1800):
        while (job := (await http.get(job_url)).json())["status"] not in (
            "COMPLETED",
            "FAILED",
            "CANCELLED",
        ):
            if job["status"] == "RUNNING":
                marks.setdefault("running", time.perf_counter() - started)
            await asyncio.sleep(0.05)
    elapsed = time.perf_counter() - started
    assert job["status"] == "COMPLETED", job
    return elapsed, marks


async def write_lines(http: httpx.AsyncClient, bodies: list[bytes], clients: int) -> float:
    queue = list(reversed(bodies))

    async def client() -> None:
        while queue:
            response = await http.post("/write", content=queue.pop())
            assert response.status_code == 204, response.text

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return time.perf_counter() - started


async def export_csv(http: httpx.AsyncClient, sql: str) -> tuple[float, int]:
    started = time.perf_counter()
    size = 0
    async with http.stream("POST", "/api/questdb/export", json={"sql": sql}) as response:
        assert response.status_code == 200, (await response.aread()).decode()
        async for chunk in response.aiter_raw():
            size += len(chunk)
    return time.perf_counter() - started, size


async def warm_up(http: httpx.AsyncClient, folder: Path, tag: int) -> float:
    """A ten-row import and a ten-line write, untimed: the worker picks jobs up only once its
    kernels are loaded (minutes on a fresh machine), and the hub's parser loads at start."""
    started = time.perf_counter()
    columns, at = ohlcv(10)
    path = folder / "warm.csv"
    write_csv(path, columns, at)
    await import_csv(http, f"bench_warm_csv_{tag}", path)
    await write_lines(http, line_bodies(f"bench_warm_lp_{tag}", columns, at), 1)
    return time.perf_counter() - started


async def count(http: httpx.AsyncClient, measurement: str) -> int:
    answer = await http.get(f"/api/questdb/measurement/{measurement}")
    assert answer.status_code == 200, answer.text
    return int(answer.json()["row_count"])


def line(
    label: str, ours: float, rows: int, anchor: float, label_anchor: str, target: float
) -> None:
    ratio = anchor / ours
    print(
        f"{label}: {rows:,} rows in {ours:.2f} s = {rows / ours:,.0f}/s; {label_anchor} "
        f"{anchor:.2f} s = {rows / anchor:,.0f}/s; ratio {ratio:.2f} (target {target:.2f})"
    )  # fmt: skip


async def bench(hub: RunningHub, rows: int, export_rows: int, clients: int) -> None:
    tag = os.getpid()
    imported, ingested, anchor = f"bench_csv_{tag}", f"bench_lp_{tag}", f"anchor_copy_{tag}"
    columns, at = ohlcv(rows)
    bodies = line_bodies(ingested, columns, at)
    headers = {"Authorization": f"Bearer {hub.admin_token}"}
    limits = httpx.Limits(max_connections=max(clients, 2))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "ohlcv.csv"
        write_csv(path, columns, at)
        del columns
        csv_mb = path.stat().st_size / 1e6
        lp_mb = sum(map(len, bodies)) / 1e6
        print(
            f"{rows:,} OHLCV rows: a {csv_mb:,.0f} MB CSV, {lp_mb:,.0f} MB of line protocol "
            f"in {len(bodies)} batches ({clients} in flight)"
        )
        async with httpx.AsyncClient(
            base_url=hub.base, timeout=1800, limits=limits, headers=headers
        ) as http:
            print(
                f"warm-up (worker and parser ready): {await warm_up(http, Path(folder), tag):.1f} s"
            )
            copies = [await asyncio.to_thread(copy_in, hub.database_url, path, anchor)]
            ours_import, marks = await import_csv(http, imported, path)
            copies.append(await asyncio.to_thread(copy_in, hub.database_url, path, anchor))
            ours_lines = await write_lines(http, bodies, clients)
            copies.append(await asyncio.to_thread(copy_in, hub.database_url, path, anchor))
            assert await count(http, imported) == rows
            assert await count(http, ingested) == rows
            print(
                "psql \\copy of the CSV, before, between and after: "
                + ", ".join(f"{c:.2f} s" for c in copies)
            )
            before_after = "psql \\copy (the mean of the two beside it)"
            line(
                "CSV import", ours_import, rows, (copies[0] + copies[1]) / 2, before_after,
                IMPORT_TARGET,
            )  # fmt: skip
            print(
                f"  (the {csv_mb:,.0f} MB CSV answered 202 after "
                f"{marks['accepted']:.2f} s, the job seen running at "
                f"{marks.get('running', float('nan')):.2f} s, completed at {ours_import:.2f} s)"
            )
            line(
                "line protocol", ours_lines, rows, (copies[1] + copies[2]) / 2, before_after,
                LINE_TARGET,
            )  # fmt: skip

            sql = f"SELECT * FROM {imported} LIMIT {export_rows}"
            bare = f"SELECT * FROM ts.{imported} LIMIT {export_rows}"
            ours_export, anchor_export, size = [], [], 0
            for _ in range(5):
                seconds, size = await export_csv(http, sql)
                ours_export.append(seconds)
                anchor_export.append(await asyncio.to_thread(copy_out, hub.database_url, bare))
            line(
                f"CSV export ({size / 1e6:,.0f} MB)",
                min(ours_export),
                export_rows,
                min(anchor_export),
                "COPY (SELECT ...) TO STDOUT CSV",
                EXPORT_TARGET,
            )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--export-rows", type=int, default=1_000_000)
    parser.add_argument("--clients", type=int, default=2, help="line-protocol batches in flight")
    args = parser.parse_args()
    env = {"TRADEHUB_IMPORT_MAX_BYTES": str(1 << 30)}
    async with running_hub(env=env) as hub:
        await bench(hub, args.rows, min(args.export_rows, args.rows), args.clients)


if __name__ == "__main__":
    asyncio.run(main())
