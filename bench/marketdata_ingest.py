"""Ticks per second through ``POST /api/v1/marketdata/ticks``, batches of 100 to 1,000, against
the same rows COPYed straight into Postgres by asyncpg from this process (the storage alone).

    python bench/marketdata_ingest.py [--ticks 200000] [--clients 4] [--symbols 20]

Needs Postgres and Redis: ``TRADEHUB_TEST_DATABASE_URL`` / ``TRADEHUB_TEST_REDIS_URL``, defaulting
to the local services. The hub runs as its own process, as in production; this process is the
client, and a ``/ws`` subscriber of one symbol checks that every tick was published, in order.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import asyncpg
import httpx
import orjson
import websockets

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _hub import running_hub

T0 = 1_768_212_000_000_000_000  # 2026-01-12T10:00:00Z in ns
GOAL = 10_000  # ticks a second


def batches(total: int, size: int, symbols: int, run: int) -> list[bytes]:
    out = []
    for start in range(0, total, size):
        ticks = [
            {
                "symbol": f"B{run}S{i % symbols}",
                "ts": T0 + i * 1_000_000,
                "price": 100.0 + (i % 97) * 0.01,
                "size": 1.0,
                "bid": 99.99,
                "ask": 100.01,
            }
            for i in range(start, min(total, start + size))
        ]
        out.append(orjson.dumps({"ticks": ticks}))
    return out


async def through_hub(base: str, token: str, bodies: list[bytes], clients: int) -> float:
    queue = list(reversed(bodies))
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    async def client(http: httpx.AsyncClient) -> None:
        while queue:
            body = queue.pop()
            response = await http.post("/api/v1/marketdata/ticks", content=body, headers=headers)
            assert response.status_code == 200, response.text

    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as http:
        started = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        return time.perf_counter() - started


async def straight_copy(database_url: str, bodies: list[bytes], clients: int) -> float:
    """The anchor: the same rows, decoded here, COPYed by asyncpg (no HTTP, no validation, no
    partition routing, no Redis)."""
    rows = [
        [(t["symbol"], t["ts"], t["price"], t["size"], t["bid"], t["ask"]) for t in batch]
        for batch in (orjson.loads(b)["ticks"] for b in bodies)
    ]
    pool = await asyncpg.create_pool(database_url, min_size=clients, max_size=clients)
    assert pool is not None
    await pool.execute(
        "create table anchor_ticks (symbol text, ts_ns int8, price float8, size float8, "
        "bid float8, ask float8)"
    )
    queue = list(reversed(rows))

    async def client() -> None:
        while queue:
            batch = queue.pop()
            async with pool.acquire() as conn, conn.transaction():
                await conn.copy_records_to_table("anchor_ticks", records=batch)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    took = time.perf_counter() - started
    await pool.execute("drop table anchor_ticks")
    await pool.close()
    return took


async def watched(ws_url: str, token: str, symbol: str, expected: int) -> int:
    """Frames of ``ticks:{symbol}`` received, in sequence, until ``expected`` arrived."""
    async with websockets.connect(f"{ws_url}/ws", max_queue=None) as ws:
        await ws.send(orjson.dumps({"op": "auth", "token": token}).decode())
        await ws.recv()
        await ws.send(orjson.dumps({"op": "subscribe", "channel": f"ticks:{symbol}"}).decode())
        await ws.recv()
        got = 0
        async with asyncio.timeout(300):
            while got < expected:
                frame = orjson.loads(await ws.recv())
                assert frame.get("seq") == got + 1, frame
                got += 1
        return got


async def main(total: int, clients: int, symbols: int) -> None:
    async with running_hub() as hub:
        for run, size in enumerate((100, 500, 1000)):
            bodies = batches(total, size, symbols, run)
            symbol = f"B{run}S0"
            expected = len(range(0, total, symbols))
            watcher = asyncio.create_task(watched(hub.ws_url, hub.admin_token, symbol, expected))
            await asyncio.sleep(0.5)  # the subscription is made before the first post
            took = await through_hub(hub.base, hub.admin_token, bodies, clients)
            seen = await watcher
            anchor = await straight_copy(hub.database_url, bodies, clients)
            print(
                f"batches of {size:>5,}: {total / took:>9,.0f} ticks/s through the hub "
                f"(goal {GOAL:,}; {clients} clients, {symbols} symbols; {seen:,} ticks of "
                f"{symbol} received in order); anchor, asyncpg COPY alone: "
                f"{total / anchor:>9,.0f} ticks/s, the hub {anchor / took:.2f}x of it"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ticks", type=int, default=200_000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--symbols", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(main(args.ticks, args.clients, args.symbols))
