"""Request to ``completed`` for a 1,000,000-bar SMA backtest through the hub, against the engine
kernel alone on the same bars, and the latency of its equity curve downsampled to 1,000 points.

    python bench/backtest_e2e.py [--bars 1000000] [--runs 3]

Needs Postgres and Redis: ``TRADEHUB_TEST_DATABASE_URL`` / ``TRADEHUB_TEST_REDIS_URL`` (an admin
database the bench creates its own database from), defaulting to the local services. The hub and
one worker run as separate processes, as in production; this process is the client.

Postgres, the worker and the hub share the machine's cores, so the numbers move with its load:
the load average is printed before and after, and each run's worker phases (``write`` sums the
time each chunk's transaction spent writing; two chunks are written at once, so it can exceed
``total``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

import httpx
import orjson
import websockets

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _hub import running_hub, synthetic_dataset


async def wait_status(
    ws_url: str, token: str, run_id: int, timeout: float = 300
) -> tuple[str, float]:
    """Follow execution:{id}:status over /ws until it ends; returns (status, time it ended)."""
    async with websockets.connect(f"{ws_url}/ws", max_queue=None) as ws:
        await ws.send(orjson.dumps({"op": "auth", "token": token}).decode())
        await ws.recv()
        await ws.send(
            orjson.dumps({"op": "subscribe", "channel": f"execution:{run_id}:status"}).decode()
        )
        async with asyncio.timeout(timeout):
            while True:
                message = orjson.loads(await ws.recv())
                status = message.get("data", {}).get("status")
                if status in ("completed", "failed", "stopped"):
                    return status, time.perf_counter()


def load_average() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


async def main(bars: int, runs: int) -> None:
    print(f"load average before (1, 5, 15 min): {load_average()} on {os.cpu_count()} cores")
    async with running_hub(admin=False) as hub:
        database_url, token, ws_url = hub.database_url, hub.admin_token, hub.ws_url
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=hub.base, timeout=120, headers=headers) as http:
            took = await synthetic_dataset(http, "BENCH/USD", bars)
            print(f"dataset: {bars:,} bars generated in {took:.1f} s (not part of the bench)")

            from engine import run_backtest
            from hub.datasets import repository as repo
            from hub.db import create_pool

            pool = await create_pool(database_url, min_size=1, max_size=2)
            dataset = await repo.get_by_symbol(pool, "BENCH/USD", "1h")
            assert dataset is not None
            async with pool.acquire() as c:
                ohlcv = await repo.read_bars(c, dataset["ohlcv_measurement"], None, None, None)
            await pool.close()
            run_backtest(
                ohlcv, "sma_crossover", {"fast": 10, "slow": 50}, fees=0.001
            )  # load kernels
            kernel = []
            for _ in range(max(3, runs)):
                t0 = time.perf_counter()
                run_backtest(ohlcv, "sma_crossover", {"fast": 10, "slow": 50}, fees=0.001)
                kernel.append(time.perf_counter() - t0)

            e2e, answered = [], []
            run_id = 0
            for _ in range(runs):
                await http.delete("/api/v1/run/reset")
                t0 = time.perf_counter()
                response = await http.post(
                    "/api/v1/run/backtest",
                    json={
                        "strategy_name": "sma_crossover",
                        "strategy_params": {"fast": 10, "slow": 50},
                        "symbols": ["BENCH/USD"],
                        "timeframe": "1h",
                        "initial_cash": 10000.0,
                        "exchange": "bench",
                        "options": {"fees": 0.001},
                    },
                )
                answered.append(time.perf_counter() - t0)
                run_id = response.json()["run_id"]
                status, ended = await wait_status(ws_url, token, run_id)
                assert status == "completed", status
                e2e.append(ended - t0)

            url = f"/api/trading/executions/{run_id}/equity/?max_points=1000&page_size=1000"
            t0 = time.perf_counter()
            first = await http.get(url)
            cold = time.perf_counter() - t0
            assert first.json()["count"] == 1000
            warm = []
            for _ in range(20):
                t0 = time.perf_counter()
                await http.get(url)
                warm.append(time.perf_counter() - t0)
            status_body = (await http.get(f"/api/trading/executions/{run_id}/status/")).json()
            jobs = (
                await http.get(
                    "/api/jobs", params={"job_type": "execution.backtest", "limit": runs}
                )
            ).json()
            print("worker phases of each run (s), first run first:")
            for job in reversed(jobs["jobs"]):
                print("  ", orjson.loads(job["result"])["seconds"] if job["result"] else job)

        k, e = min(kernel), min(e2e)
        print(
            f"bars: {bars:,}; SMA 10/50, fill at close, 0.1% fee, all in; {status_body['checkpoint']['total_trades']} trades"
        )
        print(
            f"engine kernel alone (run_backtest, trades + equity + metrics): best {k * 1000:.1f} ms, "
            f"median {statistics.median(kernel) * 1000:.1f} ms"
        )
        print(
            f"hub, request -> completed (job, chunks persisted, equity stored, status streamed): best {e:.3f} s, "
            f"median {statistics.median(e2e):.3f} s; each run: {', '.join(f'{x:.3f}' for x in e2e)} s "
            "(the first reads the bars from Postgres, later ones find them in the worker's cache)  [target < 1 s]"
        )
        print(
            f"hub overhead: {e / k:.1f}x the kernel alone; the start request answered in "
            f"{statistics.median(answered) * 1000:.1f} ms (median)"
        )
        print(
            f"equity max_points=1000 on the {bars:,}-point curve: first {cold * 1000:.1f} ms, "
            f"then median {statistics.median(warm) * 1000:.1f} ms, best {min(warm) * 1000:.1f} ms  [target < 50 ms]"
        )
    print(f"load average after: {load_average()}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.bars, args.runs))
