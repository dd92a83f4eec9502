"""What counting a request costs: ``RateLimiter.admit`` (Sigma Lab's two windows, a minute's and
an hour's, checked and counted in one Lua script) beside the anchor a naive limiter runs, an
``INCR`` and a ``PEXPIRE`` of each window in one pipeline (one round trip too, but not atomic
across windows: a refused request still spends them). Same Redis, same run, interleaved.

Run: ``.venv/bin/python bench/ratelimit.py`` (``TRADEHUB_TEST_REDIS_URL``, default
``redis://127.0.0.1:6379/0``; keys under a fresh prefix, deleted at the end).
"""

from __future__ import annotations

import sys as _sys
from pathlib import Path as _Path

_sys.path.insert(0, str(_Path(__file__).resolve().parent.parent))

import asyncio
import os
import secrets
import statistics
import time

from redis.asyncio import Redis

from hub.keys import Keys
from hub.ratelimit import Limit, RateLimiter

CALLS = 5_000
CONCURRENCY = 50
REPEATS = 5
LIMITS = (Limit("bench:minute", 10**9, 60.0), Limit("bench:hour", 10**9, 3600.0))


async def ours(limiter: RateLimiter, subject: str) -> None:
    verdict = await limiter.admit([(limit, subject) for limit in LIMITS])
    assert verdict.admitted


async def anchor(redis: Redis, keys: list[str]) -> None:
    async with redis.pipeline(transaction=False) as pipe:
        for key, limit in zip(keys, LIMITS, strict=True):
            pipe.incr(key)
            pipe.pexpire(key, int(limit.window_seconds * 1000), nx=True)
        await pipe.execute()


async def timed(call: object, concurrency: int) -> float:
    """Seconds per call with ``concurrency`` callers sharing ``CALLS`` calls."""
    per_worker = CALLS // concurrency

    async def worker() -> None:
        for _ in range(per_worker):
            await call()  # type: ignore[operator]

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return (time.perf_counter() - started) / (per_worker * concurrency)


async def main() -> None:
    url = os.environ.get("TRADEHUB_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    prefix = f"bench:{secrets.token_hex(4)}:"
    redis = Redis.from_url(url)
    limiter = RateLimiter(redis, Keys(prefix))
    raw_keys = [f"{prefix}naive:{limit.scope}" for limit in LIMITS]
    try:
        await ours(limiter, "warm")
        await anchor(redis, raw_keys)
        for concurrency in (1, CONCURRENCY):
            results: dict[str, list[float]] = {"ours": [], "anchor": []}
            for _ in range(REPEATS):
                results["ours"].append(await timed(lambda: ours(limiter, "u"), concurrency))
                results["anchor"].append(await timed(lambda: anchor(redis, raw_keys), concurrency))
            o, a = min(results["ours"]), min(results["anchor"])
            print(
                f"{concurrency:>3} caller(s), {CALLS:,} requests: admit (2 windows, Lua) "
                f"best {o * 1e6:.1f} us, median {statistics.median(results['ours']) * 1e6:.1f} us; "
                f"anchor INCR+PEXPIRE x2 pipelined best {a * 1e6:.1f} us, median "
                f"{statistics.median(results['anchor']) * 1e6:.1f} us; ratio ours/anchor "
                f"{o / a:.2f}"
            )
    finally:
        async for key in redis.scan_iter(match=f"{prefix}*", count=1000):
            await redis.delete(key)
        await redis.aclose()


if __name__ == "__main__":
    asyncio.run(main())
