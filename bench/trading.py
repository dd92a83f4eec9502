"""Trading through the hub, each number beside its anchors measured in the same run: orders
acknowledged over ``/ws`` and GraphQL, tick-to-fill latency at 10,000 ticks/s, and ORCA's
positions and snapshot reads at 100 concurrent callers.

    python bench/trading.py [--quick] [--bots 8] [--seconds 10] [--profile DIR]

Needs Postgres and Redis: ``TRADEHUB_TEST_DATABASE_URL`` / ``TRADEHUB_TEST_REDIS_URL`` (an admin
database the bench creates its own database from, dropped at the end), defaulting to the local
services. The hub and one worker run as separate processes with the default settings; this
process is every client.

1. Orders: ``--bots`` bots, each on its own account (``maxOrdersPerSecond: 10000``) and symbol,
   place resting buy limits at half the market (matching never fills them), ``--window`` orders
   in flight each, over ``/ws`` and then over GraphQL HTTP (``placeOrder``). Orders/s and ack
   latency; every ack is durable: a sample of acks is looked up in Postgres the moment it
   arrives, and after the run the rows in ``broker_orders`` must equal the acks. Floor: a bare
   asyncpg ``BEGIN; INSERT; COMMIT`` at concurrency 1 and at the bots' count.
2. Tick to fill: ticks posted to ``POST /api/v1/marketdata/ticks`` in batches, paced to
   ``--tick-rate``, round-robin over one symbol per bot. Each bot keeps one buy limit below the
   market and listens on ``account:{id}:orders``; once it is acknowledged, the next batch carries
   a dip through it (at most ``--fills`` a second in all). Every tick's ``ts`` is the wall clock
   in ns just before its batch is built, so the ``filled`` frame's ``fill.ts`` says when its tick
   was sent. Floor: the same two durable writes and two Redis hops with no hub in between (COPY
   of a batch + commit, PUBLISH, receive, INSERT + commit, PUBLISH, receive).
3. ORCA: ``GET /api/v1/trading/positions`` and ``/batch/snapshot``, fresh (``use_cache=false``)
   and cached, 100 callers each with its own keep-alive httpx client, back to back (closed loop:
   by Little's law the mean latency there is 100 / throughput, whoever is the bottleneck) and
   paced at ``--paced-rate`` in all (latency counted from each request's planned time). Floors: a
   bare Redis GET of the cached copy's bytes from 100 callers, and the hub's ``/healthz`` through
   the same clients (the load generator's and the HTTP stack's own cost).

Each phase also prints where the machine's CPU went (hub, worker, Postgres, Redis, this process,
the rest), the hub's garbage collections (timed by a ``sitecustomize`` on the hub's PYTHONPATH:
its code and settings are untouched), and the orders' and fills' own timestamps split each
latency into its stages. ``--profile DIR`` also runs the hub under cProfile (one profile per
phase, hottest functions printed; slower, so its latencies are not the bench's). Measuring starts
once the worker has finished warming up; before each window this process freezes what it holds
out of its collections, and a tail's report says whether its own loop or collector stalled.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import itertools
import math
import os
import pstats
import random
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import psutil
import websockets
from redis.asyncio import Redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _hub import RunningHub, running_hub

OPERATIONS = ROOT / "graphql" / "operations"
MARKET = 100.0  # every symbol trades around here
RESTING = 50.0  # phase 1's buy limits: never reached
FILL_LIMIT = 95.0  # phase 2's buy limits
DIP = 94.5  # a tick through them

# The issue's targets and seed 002's promises (ms unless said).
ORDERS_PER_S_TARGET = 2_000
ACK_P99_TARGET = 20.0
FILL_P99_TARGET = 10.0
CACHED_P99_TARGET = 5.0
FRESH_P99_TARGET = 20.0
SEED_POSITIONS = {"cached": 100.0, "fresh": 800.0}  # its section; the headline says < 50 cached
SEED_SNAPSHOT = {"cached": 200.0, "fresh": 2000.0}
SEED_HEADLINE_CACHED = 50.0


# -- numbers ----------------------------------------------------------------------------------


class GcPauses:
    """This process's collector pauses, (ended at perf_counter, ms, generation): a load
    generator's own pause shows up in every latency it measures."""

    def __init__(self) -> None:
        self.pauses: list[tuple[float, float, int]] = []
        self._began = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        now = time.perf_counter()
        if phase == "start":
            self._began = now
        else:
            self.pauses.append((now, (now - self._began) * 1000, info["generation"]))

    def worst(self, start: float, end: float) -> str:
        inside = [(ms, gen) for at, ms, gen in self.pauses if start <= at <= end]
        if not inside:
            return "none"
        ms, gen = max(inside)
        return f"{len(inside)}, the longest {ms:.0f} ms (generation {gen})"


GC_PAUSES = GcPauses()


def quiet_collector() -> None:
    """Before a measured window: what this process holds so far is frozen out of its
    collections, so a full one stays short (tens of ms otherwise, in every clock running). A
    higher threshold would only make each young collection longer (~100 ms at 100,000)."""
    gc.collect()
    gc.freeze()


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Row:
    group: str  # the measure; shown on its first row only
    ours: str
    anchor: str
    ratio: str = ""
    verdict: str = ""


class Table:
    """One row per (measure, anchor): ours, the anchor or target, ours / anchor, and whether a
    target is met."""

    def __init__(self) -> None:
        self.rows: list[Row] = []

    def add(
        self, measure: str, ours: float, unit: str, anchor: str, value: float, goal: str = ""
    ) -> None:
        """``goal``: ``min`` (ours must reach the anchor), ``max`` (stay below it), or empty for
        a floor or a reference (the ratio alone)."""
        ratio = ours / value if value and math.isfinite(value) and math.isfinite(ours) else math.nan
        verdict = ""
        if goal == "min":
            verdict = "met" if ours >= value else "MISSED"
        elif goal == "max":
            verdict = "met" if ours < value else "MISSED"
        shown = f"{ratio:.2f}x" if math.isfinite(ratio) else "-"
        self.rows.append(Row(measure, fmt(ours, unit), anchor, shown, verdict))

    def note(self, measure: str, text: str) -> None:
        self.rows.append(Row(measure, text, ""))

    def print(self) -> None:
        lines: list[tuple[str, str, Row]] = []
        previous = None
        for row in self.rows:
            first = row.group != previous
            previous = row.group
            lines.append((row.group if first else "", row.ours if first else "", row))
        heads = ("measure", "ours", "anchor / target")
        widths = (
            max([len(heads[0])] + [len(line[0]) for line in lines]),
            max([len(heads[1])] + [len(line[1]) for line in lines]),
            max([len(heads[2])] + [len(line[2].anchor) for line in lines]),
        )
        print(f"{heads[0]:<{widths[0]}}  {heads[1]:>{widths[1]}}  {heads[2]:<{widths[2]}}  ratio")
        for measure, ours, row in lines:
            print(
                f"{measure:<{widths[0]}}  {ours:>{widths[1]}}  {row.anchor:<{widths[2]}}  "
                f"{row.ratio:>6}  {row.verdict}".rstrip()
            )


def fmt(value: float, unit: str) -> str:
    if unit == "µs":
        return f"{value:,.0f} µs"
    if unit == "ms":
        return f"{value:.2f} ms" if value < 10 else f"{value:.1f} ms"
    return f"{value:,.0f} {unit}"


# -- CPU: where the machine's time went during a phase --------------------------------------


def hub_pids() -> dict[str, int]:
    pids = {}
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            cmd = child.cmdline()
            if "hub" in cmd and "serve" in cmd:
                pids["hub"] = child.pid
            elif "hub" in cmd and "worker" in cmd:
                pids["worker"] = child.pid
    return pids


class CpuMeter:
    """CPU seconds of the hub, the worker, Postgres (this database's backends and the server's
    own processes; other databases' backends count as other), Redis and this process, and the
    machine's busy time, between ``start`` and ``stop``."""

    def __init__(self, pids: dict[str, int], database: str) -> None:
        self.procs = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.procs["bench"] = psutil.Process()
        self.database = database
        self.used: dict[str, float] = {}
        self.wall = 0.0
        self.requests = 0  # what the phases measured with it did (ORCA's count)
        self._before: dict[str, float] = {}
        self._started = 0.0

    @staticmethod
    def _cpu(proc: psutil.Process) -> float:
        try:
            times = proc.cpu_times()
            return float(times.user + times.system)
        except psutil.Error:
            return 0.0

    def _postgres_is_ours(self, proc: psutil.Process) -> bool:
        """A backend of this bench's database, or the server's own (WAL writer, checkpointer)."""
        with contextlib.suppress(psutil.Error):
            title = " ".join(proc.cmdline())
            backend = "(" in title  # "postgres: 15/main: user db 127.0.0.1(5432) idle"
            return not backend or f" {self.database} " in title
        return False

    def _sample(self) -> dict[str, float]:
        out = {name: self._cpu(proc) for name, proc in self.procs.items()}
        out["postgres"] = out["redis"] = 0.0
        for proc in psutil.process_iter(["name"]):
            name = proc.info["name"] or ""
            if name.startswith("postgres") and self._postgres_is_ours(proc):
                out["postgres"] += self._cpu(proc)
            elif "redis" in name:
                out["redis"] += self._cpu(proc)
        machine = psutil.cpu_times()
        out["machine"] = float(sum(machine) - machine.idle - getattr(machine, "iowait", 0.0))
        return out

    def start(self) -> None:
        self._before = self._sample()
        self._started = time.perf_counter()

    def stop(self) -> str:
        after = self._sample()
        self.wall = time.perf_counter() - self._started
        used = {k: max(0.0, after[k] - self._before.get(k, 0.0)) for k in after}
        named = sum(v for k, v in used.items() if k != "machine")
        used["other"] = max(0.0, used["machine"] - named)
        self.used = used
        parts = ", ".join(
            f"{name} {used[name] / self.wall:.2f}"
            for name in ("hub", "worker", "postgres", "redis", "bench", "other")
            if name in used
        )
        return (
            f"CPU over {self.wall:.1f} s, in cores: {parts} (other: the rest of the machine, "
            f"other databases' backends included); machine busy {used['machine'] / self.wall:.2f}"
            f" of {psutil.cpu_count()}"
        )

    def per(self, name: str, count: int) -> float:
        """µs of ``name``'s CPU per ``count`` operations over the last phase."""
        return self.used.get(name, 0.0) / count * 1e6 if count else math.nan


# -- inside the hub: its collections, and cProfile (--profile) ------------------------------

SITECUSTOMIZE = """
import os
_dir = os.environ.get("BENCH_TRADING_PROBE")
if _dir:
    import atexit, gc, json, signal, time
    _state = {"part": 0, "pauses": [], "began": 0.0, "profile": None}

    def _timed(phase, info):
        now = time.perf_counter()
        if phase == "start":
            _state["began"] = now
        else:
            _state["pauses"].append(
                (time.time(), (now - _state["began"]) * 1000, info["generation"]))

    def _profile():
        if os.environ.get("BENCH_TRADING_CPROFILE"):
            import cProfile
            _state["profile"] = cProfile.Profile()
            _state["profile"].enable()

    def _dump(*_):
        base = os.path.join(_dir, f"{os.getpid()}-{_state['part']}")
        with open(base + ".gc.json", "w") as out:
            json.dump(_state["pauses"], out)
        _state["pauses"] = []
        if _state["profile"] is not None:
            _state["profile"].disable()
            _state["profile"].dump_stats(base + ".prof")
        _state["part"] += 1
        _profile()

    gc.callbacks.append(_timed)
    signal.signal(signal.SIGUSR1, _dump)
    atexit.register(_dump)
    _profile()
"""


class HubProbe:
    """A ``sitecustomize`` on the hub's PYTHONPATH times every collection in the hub (one
    callback per collection) and, with ``--profile``, runs cProfile; SIGUSR1 closes one part (a
    phase) and starts the next. The hub's code and settings are untouched."""

    def __init__(self, directory: Path, profile: bool) -> None:
        self.directory = directory
        self.profile = profile
        self.parts: list[str] = []
        self.ops: dict[str, tuple[int, str]] = {}
        self.pid = 0
        self._saved: dict[str, str | None] = {}
        directory.mkdir(parents=True, exist_ok=True)
        site = self.site = Path(tempfile.mkdtemp(prefix="trading-bench-site-"))
        (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
        path = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
        env = {"BENCH_TRADING_PROBE": str(directory), "PYTHONPATH": path}
        if profile:
            env["BENCH_TRADING_CPROFILE"] = "1"
        for name, value in env.items():
            self._saved[name] = os.environ.get(name)
            os.environ[name] = value

    def close(self) -> None:
        """Remove the sitecustomize, and the hub's reports unless they were asked for."""
        shutil.rmtree(self.site, ignore_errors=True)
        if not self.profile:
            shutil.rmtree(self.directory, ignore_errors=True)

    def restore_env(self) -> None:
        """Once the hub started: nothing else this process starts gets the probe."""
        for name, value in self._saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

    def cut(self, label: str) -> list[tuple[float, float, int]]:
        """The part since the last cut is ``label``; returns the hub's collections in it, (ended
        at, wall-clock s; ms; generation), once the hub wrote them."""
        if not self.pid:
            return []
        index = len(self.parts)
        self.parts.append(label)
        os.kill(self.pid, signal.SIGUSR1)
        path = self.directory / f"{self.pid}-{index}.gc.json"
        deadline = time.perf_counter() + 5
        while time.perf_counter() < deadline:
            with contextlib.suppress(OSError, ValueError):
                return [(float(a), float(b), int(c)) for a, b, c in orjson.loads(path.read_bytes())]
            time.sleep(0.05)
        return []

    def count(self, label: str, ops: int, unit: str) -> None:
        """``label`` did ``ops`` operations (acks, ticks, requests): calls are shown per one."""
        self.ops[label] = (ops, unit)

    def report(self, top: int = 12) -> None:
        """Per phase: the functions with the most own time, then the hub's own code (``hub/``,
        ``rest/``) by time spent inside (for a coroutine, only while it runs)."""
        if not self.profile:
            return
        for index, label in enumerate(self.parts):
            path = self.directory / f"{self.pid}-{index}.prof"
            if label not in self.ops or not path.exists():
                continue
            ops, unit = self.ops[label]
            table: dict[Any, Any] = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
            total = sum(v[2] for v in table.values())
            print(
                f"\nhub profile, {label}: {total:.2f} s of CPU under cProfile, "
                f"{total / ops * 1e6:,.0f} µs per {unit}; calls per {unit} (a coroutine's count "
                "is its resumes):"
            )
            by_own = sorted(table.items(), key=lambda kv: kv[1][2], reverse=True)[:top]
            ours = [kv for kv in table.items() if "/hub/" in kv[0][0] or "/rest/" in kv[0][0]]
            by_cum = sorted(ours, key=lambda kv: kv[1][3], reverse=True)[:top]
            for title, rows in (("own time", by_own), ("the hub's code, time inside", by_cum)):
                print(f"  by {title}:")
                for (filename, line, name), (_, calls, own, inside, _) in rows:
                    where = filename.replace(str(ROOT) + "/", "").split("site-packages/")[-1]
                    print(
                        f"    {own / total:6.1%} own {inside / total:6.1%} inside "
                        f"{calls / ops:8.2f}  {name} ({where}:{line})"
                    )


# -- the hub's users, accounts and market data ----------------------------------------------


def redis_url() -> str:
    return os.environ.get("TRADEHUB_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def operation(name: str) -> str:
    return (OPERATIONS / f"{name}.graphql").read_text()


async def graphql(http: httpx.AsyncClient, query: str, variables: dict[str, Any]) -> Any:
    response = await http.post("/graphql", json={"query": query, "variables": variables})
    body = response.json()
    if response.status_code != 200 or body.get("errors"):
        raise RuntimeError(f"GraphQL answered {response.status_code}: {body}")
    return body["data"]


async def create_account(base: str, token: str, name: str) -> str:
    async with httpx.AsyncClient(
        base_url=base, timeout=30, headers={"Authorization": f"Bearer {token}"}
    ) as http:
        data = await graphql(
            http,
            operation("CreatePaperAccount"),
            {"input": {"name": name, "initialBalance": 10_000_000.0, "maxOrdersPerSecond": 10_000}},
        )
    return str(data["createPaperAccount"]["id"])


async def post_ticks(http: httpx.AsyncClient, ticks: list[dict[str, Any]]) -> None:
    response = await http.post("/api/v1/marketdata/ticks", content=orjson.dumps({"ticks": ticks}))
    if response.status_code != 200:
        raise RuntimeError(f"ticks refused: {response.status_code} {response.text[:200]}")


def quote(symbol: str, ts: int, price: float) -> dict[str, Any]:
    return {"symbol": symbol, "ts": ts, "price": price, "bid": price - 0.01, "ask": price + 0.01}


# -- floors: Postgres and Redis alone --------------------------------------------------------


@dataclass
class Floor:
    rate: float
    p50: float
    p99: float
    count: int = 0


async def insert_commit_floor(
    database_url: str, concurrency: int, seconds: float, meter: CpuMeter
) -> Floor:
    """``BEGIN; INSERT; COMMIT`` of an order-sized row, back to back from ``concurrency``
    connections: the least an acknowledged-after-commit order can cost. ``meter`` times the
    inserts alone (stopped before the connections close, while their backends still count)."""
    pool = await asyncpg.create_pool(database_url, min_size=concurrency, max_size=concurrency)
    assert pool is not None
    table = f"trading_floor_{secrets.token_hex(3)}"
    await pool.execute(
        f"create table {table} (id bigint generated always as identity primary key, "
        "account_id text not null, client_order_id text not null, symbol text, side text, "
        "quantity float8, price float8, status text, accepted_ns bigint, "
        "created_at timestamptz default now(), unique (account_id, client_order_id))"
    )
    latencies: list[float] = []
    end = time.perf_counter() + seconds

    async def one(worker: int) -> None:
        n = 0
        async with pool.acquire() as conn:
            while time.perf_counter() < end:
                started = time.perf_counter()
                async with conn.transaction():
                    await conn.execute(
                        f"insert into {table} (account_id, client_order_id, symbol, side, "
                        "quantity, price, status, accepted_ns) "
                        "values ($1, $2, 'X', 'buy', 1, 50, 'working', $3)",
                        f"A{worker}",
                        str(n),
                        time.time_ns(),
                    )
                latencies.append((time.perf_counter() - started) * 1000)
                n += 1

    meter.start()
    began = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(concurrency)))
    took = time.perf_counter() - began
    meter.stop()
    await pool.execute(f"drop table {table}")
    await pool.close()
    return Floor(len(latencies) / took, pct(latencies, 0.5), pct(latencies, 0.99), len(latencies))


async def redis_get_floor(redis_url: str, value: bytes, callers: int, seconds: float) -> Floor:
    """GET of ``value`` (the bytes of a cached ORCA answer), back to back from ``callers``."""
    redis = Redis.from_url(redis_url, max_connections=callers)
    key = f"trading-bench:{secrets.token_hex(4)}:floor"
    await redis.set(key, value, ex=600)
    latencies: list[float] = []
    end = time.perf_counter() + seconds

    async def one() -> None:
        while time.perf_counter() < end:
            started = time.perf_counter()
            got = await redis.get(key)
            latencies.append((time.perf_counter() - started) * 1000)
            assert got is not None
            orjson.loads(got)  # a reader would decode it

    began = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(callers)))
    took = time.perf_counter() - began
    await redis.delete(key)
    await redis.aclose()
    return Floor(len(latencies) / took, pct(latencies, 0.5), pct(latencies, 0.99))


async def tick_path_floor(database_url: str, redis_url: str, batch: int, rounds: int) -> Floor:
    """The tick-to-fill path's I/O with nothing in between: COPY a batch + commit, PUBLISH,
    receive it, INSERT a fill + commit, PUBLISH, receive it; one after another."""
    conn = await asyncpg.connect(database_url)
    redis = Redis.from_url(redis_url)
    pubsub = redis.pubsub()
    tag = secrets.token_hex(3)
    ticks_ch, fills_ch = f"trading-bench:{tag}:ticks", f"trading-bench:{tag}:fills"
    await pubsub.subscribe(ticks_ch, fills_ch)
    confirmed = 0
    async with asyncio.timeout(10):
        while confirmed < 2:  # one subscribe confirmation per channel
            message = await pubsub.get_message(timeout=1.0)
            confirmed += message is not None and message["type"] == "subscribe"
    await conn.execute(
        f"create table floor_ticks_{tag} (symbol text, ts_ns int8, price float8, bid float8, "
        f"ask float8, recv_ns int8); create table floor_fills_{tag} (fill_id bigint generated "
        "always as identity primary key, symbol text, quantity float8, price float8, "
        "tick_seq int8)"
    )

    async def received(channel: str) -> None:
        while True:
            message = await pubsub.get_message(timeout=5)
            if message is None:
                raise TimeoutError(f"nothing on {channel}")
            if message["type"] == "message" and message["channel"].decode() == channel:
                return

    latencies: list[float] = []
    for n in range(rounds):
        rows = [("FLOOR", time.time_ns() + i, MARKET, MARKET - 0.01, MARKET + 0.01, 0)
                for i in range(batch)]  # fmt: skip
        started = time.perf_counter()
        async with conn.transaction():
            await conn.copy_records_to_table(f"floor_ticks_{tag}", records=rows)
        await redis.publish(ticks_ch, orjson.dumps({"seq": n, "price": DIP}))
        await received(ticks_ch)
        async with conn.transaction():
            await conn.execute(
                f"insert into floor_fills_{tag} (symbol, quantity, price, tick_seq) "
                "values ('FLOOR', 1, $1, $2)",
                FILL_LIMIT,
                n,
            )
        await redis.publish(fills_ch, orjson.dumps({"event": "filled", "seq": n}))
        await received(fills_ch)
        latencies.append((time.perf_counter() - started) * 1000)
    await conn.execute(f"drop table floor_ticks_{tag}; drop table floor_fills_{tag}")
    await conn.close()
    await pubsub.aclose()
    await redis.aclose()
    return Floor(0.0, pct(latencies, 0.5), pct(latencies, 0.99))


# -- phase 1: orders acknowledged ------------------------------------------------------------


@dataclass
class Clock:
    """A phase's measured window: what happens before ``start`` is warm-up."""

    start: float
    end: float

    @classmethod
    def after(cls, warmup: float, seconds: float) -> Clock:
        start = time.perf_counter() + warmup
        return cls(start, start + seconds)


@dataclass
class OrderRun:
    label: str
    acks: int = 0  # every ack, warm-up and drain included (what the rows must equal)
    measured_acks: int = 0  # acks received inside the window
    latencies: list[float] = field(default_factory=list)  # ms, orders sent inside the window
    errors: Counter[str] = field(default_factory=Counter)
    stamps: dict[str, tuple[int, int]] = field(default_factory=dict)  # id -> (sent, acked) ns
    spot_checks: int = 0
    spot_missing: int = 0
    seconds: float = 0.0
    _checks: set[asyncio.Task[None]] = field(default_factory=set)

    def acked(self, cid: str, sent: float, sent_ns: int, clock: Clock, check: Any) -> None:
        now = time.perf_counter()
        self.acks += 1
        if clock.start <= now <= clock.end:
            self.measured_acks += 1
        if clock.start <= sent < clock.end:
            self.latencies.append((now - sent) * 1000)
            self.stamps[cid] = (sent_ns, time.time_ns())
        if self.acks % 50 == 0:  # is it in Postgres the moment it is acknowledged?
            task = asyncio.create_task(self._spot_check(check, cid))
            self._checks.add(task)
            task.add_done_callback(self._checks.discard)

    async def _spot_check(self, check: Callable[[str], Awaitable[bool]], cid: str) -> None:
        self.spot_checks += 1
        if not await check(cid):
            self.spot_missing += 1

    async def settle(self) -> None:
        if self._checks:
            await asyncio.gather(*self._checks)


def order_frame(cid: str, account: str, symbol: str) -> str:
    return orjson.dumps(
        {
            "op": "place_order",
            "id": cid,
            "account": account,
            "symbol": symbol,
            "side": "buy",
            "type": "limit",
            "quantity": 1,
            "price": RESTING,
        }
    ).decode()


async def ws_connect(hub: RunningHub, token: str) -> Any:
    ws = await websockets.connect(
        f"{hub.ws_url}/ws", compression=None, max_queue=None, open_timeout=30
    )
    await ws.send(orjson.dumps({"op": "auth", "token": token}).decode())
    hello = orjson.loads(await ws.recv())
    if hello.get("op") != "authenticated":
        raise RuntimeError(f"/ws auth answered {hello}")
    return ws


async def ws_bot(
    hub: RunningHub,
    token: str,
    account: str,
    symbol: str,
    prefix: str,
    window: int,
    clock: Clock,
    run: OrderRun,
    check: Callable[[str], Awaitable[bool]],
) -> None:
    ws = await ws_connect(hub, token)
    pending: dict[str, tuple[float, int]] = {}
    count = 0

    async def send_next() -> None:
        nonlocal count
        cid = f"{prefix}-{count}"
        count += 1
        frame = order_frame(cid, account, symbol)
        pending[cid] = (time.perf_counter(), time.time_ns())
        await ws.send(frame)

    try:
        for _ in range(window):
            await send_next()
        while pending:
            reply = orjson.loads(await ws.recv())
            cid = str(reply.get("id"))
            sent, sent_ns = pending.pop(cid)
            if reply.get("op") == "order_accepted":
                run.acked(cid, sent, sent_ns, clock, check)
            else:
                run.errors[f"{reply.get('op')}:{reply.get('code')}"] += 1
            if time.perf_counter() < clock.end:
                await send_next()
    finally:
        await ws.close()


async def gql_bot(
    hub: RunningHub,
    token: str,
    account: str,
    symbol: str,
    prefix: str,
    window: int,
    clock: Clock,
    run: OrderRun,
    check: Callable[[str], Awaitable[bool]],
) -> None:
    query = operation("PlaceOrder")
    count = 0
    limits = httpx.Limits(max_connections=window, max_keepalive_connections=window)
    async with httpx.AsyncClient(
        base_url=hub.base, timeout=30, limits=limits, headers={"Authorization": f"Bearer {token}"}
    ) as http:

        async def lane() -> None:
            nonlocal count
            while time.perf_counter() < clock.end:
                cid = f"{prefix}-{count}"
                count += 1
                variables = {
                    "input": {
                        "accountId": account,
                        "symbol": symbol,
                        "side": "BUY",
                        "type": "LIMIT",
                        "quantity": 1.0,
                        "price": RESTING,
                        "clientOrderId": cid,
                    }
                }
                sent, sent_ns = time.perf_counter(), time.time_ns()
                response = await http.post(
                    "/graphql", json={"query": query, "variables": variables}
                )
                body = response.json() if response.status_code == 200 else {}
                order = (body.get("data") or {}).get("placeOrder") or {}
                if order.get("status") == "WORKING" and not body.get("errors"):
                    run.acked(cid, sent, sent_ns, clock, check)
                else:
                    run.errors[f"HTTP {response.status_code}: {str(body)[:80]}"] += 1

        await asyncio.gather(*(lane() for _ in range(window)))


Bot = Callable[..., Awaitable[None]]


async def place_orders(
    hub: RunningHub,
    bot: Bot,
    label: str,
    prefix: str,
    tokens: list[str],
    accounts: list[str],
    symbols: list[str],
    window: int,
    warmup: float,
    seconds: float,
) -> OrderRun:
    run = OrderRun(label)
    checker = await asyncpg.create_pool(hub.database_url, min_size=1, max_size=2)
    assert checker is not None
    owner = {f"{prefix}{i}": accounts[i] for i in range(len(accounts))}

    async def check(cid: str) -> bool:
        account = owner[cid.rsplit("-", 1)[0]]
        found = await checker.fetchval(
            "select count(*) from broker_orders where account_id = $1 and client_order_id = $2",
            account,
            cid,
        )
        return bool(found)

    clock = Clock.after(warmup, seconds)
    await asyncio.gather(
        *(
            bot(hub, tokens[i], accounts[i], symbols[i], f"{prefix}{i}", window, clock, run, check)
            for i in range(len(accounts))
        )
    )
    run.seconds = clock.end - clock.start
    await run.settle()
    await checker.close()
    return run


@dataclass
class Durability:
    rows: int
    working: int
    stages: dict[str, list[float]]


async def order_rows(database_url: str, run: OrderRun, prefix: str) -> Durability:
    """The run's rows in ``broker_orders``, and each measured order's stages from its stamps:
    sent -> the place transaction began (``created_at``) -> the broker decided
    (``accepted_ns``, before the insert) -> acknowledged."""
    conn = await asyncpg.connect(database_url)
    rows = await conn.fetch(
        "select client_order_id, status, created_at, accepted_ns from broker_orders "
        "where client_order_id like $1",
        f"{prefix}%",
    )
    await conn.close()
    stages: dict[str, list[float]] = {
        "sent -> transaction began": [],
        "began -> decided (lock, reads)": [],
        "decided -> ack received": [],
    }
    for row in rows:
        stamp = run.stamps.get(row["client_order_id"])
        if stamp is None:
            continue
        sent_ns, acked_ns = stamp
        began_ns = int(row["created_at"].timestamp() * 1e6) * 1000
        stages["sent -> transaction began"].append((began_ns - sent_ns) / 1e6)
        stages["began -> decided (lock, reads)"].append((row["accepted_ns"] - began_ns) / 1e6)
        stages["decided -> ack received"].append((acked_ns - row["accepted_ns"]) / 1e6)
    working = sum(1 for row in rows if row["status"] == "working")
    return Durability(len(rows), working, stages)


def print_stages(title: str, stages: dict[str, list[float]]) -> None:
    parts = "; ".join(
        f"{name} p50 {pct(values, 0.5):.2f} / p99 {pct(values, 0.99):.2f} ms"
        for name, values in stages.items()
        if values
    )
    print(f"  {title}: {parts}")


# -- phase 2: tick to fill -------------------------------------------------------------------


@dataclass
class FillRun:
    latencies: list[float] = field(default_factory=list)  # ms, fills of dips sent in the window
    stages: dict[str, list[float]] = field(default_factory=dict)
    posts: list[float] = field(default_factory=list)  # ms per tick batch POST
    post_errors: Counter[str] = field(default_factory=Counter)
    ticks_sent: int = 0
    ticks_in_window: int = 0
    dips: int = 0
    fills: int = 0  # filled frames received (all)
    misses: int = 0  # dips that filled nothing within 2 s (re-armed)
    errors: Counter[str] = field(default_factory=Counter)
    loop_lag: list[float] = field(default_factory=list)  # this process's own event-loop delay
    measured: list[tuple[str, int, int, int]] = field(default_factory=list)  # sym, ts, began, got


@dataclass
class Book:
    """Which bot's order rests on which symbol, and the dips on their way."""

    armed: dict[str, float] = field(default_factory=dict)  # symbol -> acked at (perf)
    next_dip: dict[str, float] = field(default_factory=dict)
    fired: dict[str, tuple[int, float]] = field(default_factory=dict)  # symbol -> (ts, perf)


async def fill_bot(
    hub: RunningHub,
    token: str,
    account: str,
    symbol: str,
    index: int,
    book: Book,
    clock: Clock,
    run: FillRun,
) -> None:
    ws = await ws_connect(hub, token)
    await ws.send(
        orjson.dumps({"op": "subscribe", "channel": f"account:{account}:orders"}).decode()
    )
    count = 0

    async def place() -> None:
        nonlocal count
        frame = orjson.dumps(
            {"op": "place_order", "id": f"fl{index}-{count}", "account": account,
             "symbol": symbol, "side": "buy", "type": "limit", "quantity": 1,
             "price": FILL_LIMIT}
        ).decode()  # fmt: skip
        count += 1
        await ws.send(frame)

    try:
        await place()
        while True:
            timeout = clock.end + 3 - time.perf_counter()
            if timeout <= 0 or (time.perf_counter() > clock.end and symbol not in book.fired):
                return
            try:
                async with asyncio.timeout(timeout):
                    frame = orjson.loads(await ws.recv())
            except TimeoutError:
                return
            op = frame.get("op")
            if op == "order_accepted":
                book.armed[symbol] = time.perf_counter()
            elif op == "subscribed":
                continue
            elif op == "error":
                run.errors[f"{frame.get('code')}: {str(frame.get('message'))[:60]}"] += 1
                await asyncio.sleep(0.05)
                await place()
            elif "channel" in frame:
                data = frame["data"]
                if data.get("event") != "filled":
                    continue
                got_ns = time.time_ns()
                run.fills += 1
                fill = data["fill"]
                ts = int(fill["ts"])
                fired = book.fired.pop(symbol, None)
                if fired is not None and clock.start <= fired[1] < clock.end:
                    began = datetime.fromisoformat(data["order"]["updated_at"])
                    began_ns = int(began.timestamp() * 1e6) * 1000
                    run.latencies.append((got_ns - ts) / 1e6)
                    run.measured.append((symbol, ts, began_ns, got_ns))
                if time.perf_counter() < clock.end:
                    await place()
    finally:
        await ws.close()


async def ticker(
    hub: RunningHub,
    symbols: list[str],
    rate: float,
    batch: int,
    fills_per_s: float,
    book: Book,
    clock: Clock,
    run: FillRun,
) -> None:
    """Batches of ``batch`` ticks every ``batch / rate`` seconds (at most 4 POSTs in flight); a
    symbol whose order is acknowledged gets a dip through it, each symbol at most every
    ``len(symbols) / fills_per_s`` seconds."""
    interval = batch / rate
    dip_every = len(symbols) / fills_per_s
    in_flight = asyncio.Semaphore(4)
    posts: set[asyncio.Task[None]] = set()
    headers = {"Authorization": f"Bearer {hub.admin_token}", "Content-Type": "application/json"}
    rng = random.Random(7)
    turn = 0

    async def post(http: httpx.AsyncClient, body: bytes, count: int, sent: float) -> None:
        try:
            response = await http.post("/api/v1/marketdata/ticks", content=body, headers=headers)
            if response.status_code != 200:
                run.post_errors[f"{response.status_code} {response.text[:80]}"] += 1
            elif clock.start <= sent < clock.end:
                run.ticks_in_window += count
            run.posts.append((time.perf_counter() - sent) * 1000)
        finally:
            in_flight.release()

    limits = httpx.Limits(max_connections=4, max_keepalive_connections=4)
    async with httpx.AsyncClient(base_url=hub.base, timeout=30, limits=limits) as http:
        next_at = time.perf_counter()
        while next_at < clock.end:
            delay = next_at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await in_flight.acquire()
            now = time.perf_counter()
            for symbol, (_, fired_at) in list(book.fired.items()):
                if now - fired_at > 2.0:  # filled nothing: let it have another dip
                    del book.fired[symbol]
                    book.armed[symbol] = now
                    run.misses += 1
            due = [s for s in book.armed if book.next_dip.get(s, 0.0) <= now]
            sent_ns = time.time_ns()
            ticks = []
            for k in range(batch - len(due)):
                symbol = symbols[(turn + k) % len(symbols)]
                price = round(MARKET + rng.uniform(-0.5, 0.5), 2)
                ticks.append(quote(symbol, sent_ns + k, price))
            turn += batch
            for symbol in due:  # anywhere in the batch, as a tick that happens to cross would be
                ts = sent_ns + batch + len(book.fired)
                ticks.insert(rng.randrange(len(ticks) + 1), quote(symbol, ts, DIP))
                del book.armed[symbol]
                book.fired[symbol] = (ts, now)
                book.next_dip[symbol] = now + dip_every
                run.dips += 1
            run.ticks_sent += len(ticks)
            task = asyncio.create_task(post(http, orjson.dumps({"ticks": ticks}), len(ticks), now))
            posts.add(task)
            task.add_done_callback(posts.discard)
            next_at += interval
        if posts:
            await asyncio.gather(*posts)


async def loop_lag(until: float, lags: list[float]) -> None:
    """How late this process wakes from a 1 ms sleep: its own share of every latency."""
    while time.perf_counter() < until:
        started = time.perf_counter()
        await asyncio.sleep(0.001)
        lags.append((time.perf_counter() - started - 0.001) * 1000)


async def tick_to_fill(
    hub: RunningHub,
    tokens: list[str],
    accounts: list[str],
    symbols: list[str],
    rate: float,
    batch: int,
    fills_per_s: float,
    warmup: float,
    seconds: float,
) -> FillRun:
    run = FillRun()
    book = Book()
    clock = Clock.after(warmup, seconds)
    bots = [
        asyncio.create_task(fill_bot(hub, tokens[i], accounts[i], symbols[i], i, book, clock, run))
        for i in range(len(accounts))
    ]
    lag = asyncio.create_task(loop_lag(clock.end, run.loop_lag))
    await ticker(hub, symbols, rate, batch, fills_per_s, book, clock, run)
    await asyncio.gather(*bots, lag)

    return run


async def fill_stages(database_url: str, run: FillRun, symbols: list[str]) -> None:
    """Each measured fill's stages: its tick sent -> the hub read the batch (the tick's stored
    ``recv_ns``) -> the fill transaction began (the order's ``updated_at``) -> the frame here;
    and every fill stored was heard."""
    conn = await asyncpg.connect(database_url)
    received = {
        (row["symbol"], row["ts_ns"]): row["recv_ns"]
        for row in await conn.fetch(
            "select symbol, ts_ns, recv_ns from ts.ticks where price < $1 and symbol = any($2)",
            FILL_LIMIT,
            symbols,
        )
    }
    stored_fills = await conn.fetchval(
        "select count(*) from broker_fills where symbol = any($1)", symbols
    )
    await conn.close()
    stages: dict[str, list[float]] = {
        "sent -> hub read the batch": [],
        "read -> fill transaction began": [],
        "began -> frame received": [],
    }
    for symbol, ts, began_ns, got_ns in run.measured:
        recv_ns = received.get((symbol, ts))
        if recv_ns is None:
            continue
        stages["sent -> hub read the batch"].append((recv_ns - ts) / 1e6)
        stages["read -> fill transaction began"].append((began_ns - recv_ns) / 1e6)
        stages["began -> frame received"].append((got_ns - began_ns) / 1e6)
    run.stages = stages
    if stored_fills != run.fills:
        run.errors[f"{stored_fills} fills stored, {run.fills} filled frames received"] += 1


# -- phase 3: ORCA reads ---------------------------------------------------------------------


@dataclass
class ReadRun:
    latencies: list[float] = field(default_factory=list)
    starts: list[float] = field(default_factory=list)  # when each measured request was due
    answered: int = 0  # inside the window
    sent: int = 0  # all, warm-up included
    cached: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    body: bytes = b""
    loop_lag: list[float] = field(default_factory=list)  # ms, this process's own

    @property
    def rate(self) -> float:
        return self.answered / self.seconds if self.seconds else float("nan")


def all_cached(body: dict[str, Any]) -> bool:
    if "cached" in body:
        return bool(body["cached"])
    parts = [v for k, v in body.items() if k != "metadata" and isinstance(v, dict)]
    return bool(parts) and all(part.get("cached") for part in parts)


async def read_load(
    clients: list[httpx.AsyncClient],
    path: str,
    warmup: float,
    seconds: float,
    paced_rate: float | None = None,
) -> ReadRun:
    """``path`` from every client: back to back, or each at ``paced_rate / len(clients)`` a
    second (latency then counted from the planned time, so a late start counts)."""
    run = ReadRun()
    clock = Clock.after(warmup, seconds)

    async def caller(http: httpx.AsyncClient) -> None:
        interval = len(clients) / paced_rate if paced_rate else 0.0
        planned = time.perf_counter() + random.uniform(0, interval)
        while True:
            if interval:
                delay = planned - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            started = planned if interval else time.perf_counter()
            if started >= clock.end:
                return
            response = await http.get(path)
            done = time.perf_counter()
            run.sent += 1
            planned += interval
            if response.status_code != 200:
                run.errors[f"{response.status_code} {response.text[:80]}"] += 1
                continue
            if clock.start <= started:
                run.latencies.append((done - started) * 1000)
                run.starts.append(started)
                run.answered += 1
                if path.startswith("/api/v1/trading"):
                    run.cached += all_cached(orjson.loads(response.content))
                if not run.body:
                    run.body = response.content

    await asyncio.gather(*(caller(http) for http in clients), loop_lag(clock.end, run.loop_lag))
    run.seconds = clock.end - clock.start
    return run


# -- the run ---------------------------------------------------------------------------------


@dataclass
class BenchConfig:
    quick: bool
    bots: int
    window: int
    seconds: float
    warmup: float
    tick_rate: float
    batch: int
    fills: float
    callers: int
    read_seconds: float
    paced_rate: float
    floor_seconds: float


def config_from(args: argparse.Namespace) -> BenchConfig:
    quick = bool(args.quick)
    return BenchConfig(
        quick=quick,
        bots=args.bots,
        window=args.window,
        seconds=args.seconds or (3.0 if quick else 10.0),
        warmup=1.0 if quick else 2.0,
        tick_rate=args.tick_rate,
        batch=args.batch,
        fills=args.fills,
        callers=args.callers,
        read_seconds=1.5 if quick else 5.0,
        paced_rate=args.paced_rate,
        floor_seconds=1.0 if quick else 3.0,
    )


async def quiet(pid: int | None, limit: float = 240.0) -> float:
    """Wait until ``pid`` uses under 5% of a core over half a second (a worker compiles its
    kernels when it starts, cold for minutes on a fresh checkout); returns the seconds waited."""
    if pid is None:
        return 0.0
    proc = psutil.Process(pid)
    started = time.perf_counter()
    proc.cpu_percent(None)
    while time.perf_counter() - started < limit:
        await asyncio.sleep(0.5)
        if proc.cpu_percent(None) < 5.0:
            break
    return time.perf_counter() - started


def collections(pauses: list[tuple[float, float, int]], start: float = 0, end: float = 1e12) -> str:
    """The hub's collections that ended between ``start`` and ``end`` (wall clock)."""
    inside = [(ms, gen) for at, ms, gen in pauses if start <= at <= end]
    if not inside:
        return "none"
    worst, generation = max(inside)
    over = sum(1 for ms, _ in inside if ms >= 10)
    return (
        f"{len(inside):,}, {sum(ms for ms, _ in inside):,.0f} ms in all, the longest "
        f"{worst:.0f} ms (generation {generation}), {over} of 10 ms or more"
    )


@contextlib.contextmanager
def phase(
    title: str, meter: CpuMeter, probe: HubProbe, pauses: list[tuple[float, float, int]]
) -> Iterator[None]:
    """A measured phase: the CPU it took, and the hub's collections (also left in ``pauses``)."""
    print(f"\n== {title} ==", flush=True)
    quiet_collector()
    meter.start()
    yield
    print(f"  {meter.stop()}", flush=True)
    pauses[:] = probe.cut(title)
    print(f"  the hub's collections: {collections(pauses)}", flush=True)


async def main(cfg: BenchConfig, profile_dir: Path | None) -> None:
    table = Table()
    probe_dir = profile_dir or Path(tempfile.mkdtemp(prefix="trading-bench-probe-"))
    probe = HubProbe(probe_dir, profile=profile_dir is not None)
    pauses: list[tuple[float, float, int]] = []  # the hub's collections in the last phase
    bots = cfg.bots
    started = time.perf_counter()
    load = os.getloadavg()
    print(
        f"trading bench: {bots} bots, {cfg.window} order(s) in flight each, {cfg.seconds:g} s "
        f"per measure after {cfg.warmup:g} s warm-up; {psutil.cpu_count()} cores, load "
        f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    try:
        async with running_hub(users_count=2 * bots) as hub:
            probe.restore_env()
            pids = hub_pids()
            probe.pid = pids.get("hub", 0)
            meter = CpuMeter(pids, hub.database_url.rsplit("/", 1)[1])
            admin = httpx.AsyncClient(
                base_url=hub.base, timeout=30,
                headers={"Authorization": f"Bearer {hub.admin_token}",
                         "Content-Type": "application/json"},
            )  # fmt: skip
            conn = await asyncpg.connect(hub.database_url)
            durable = await conn.fetch(
                "select name, setting from pg_settings "
                "where name in ('synchronous_commit', 'fsync', 'wal_sync_method')"
            )
            await conn.close()
            print("Postgres: " + ", ".join(f"{r['name']}={r['setting']}" for r in durable))

            resting = [f"RST{i}" for i in range(bots)]
            filling = [f"FIL{i}" for i in range(bots)]
            now_ns = time.time_ns()
            await post_ticks(admin, [quote(s, now_ns, MARKET) for s in resting + filling])
            order_tokens, fill_tokens = hub.tokens[:bots], hub.tokens[bots:]
            order_accounts = await asyncio.gather(
                *(create_account(hub.base, t, "orders") for t in order_tokens)
            )
            fill_accounts = await asyncio.gather(
                *(create_account(hub.base, t, "fills") for t in fill_tokens)
            )
            probe.cut("set-up")
            gc.callbacks.append(GC_PAUSES)

            # -- 1. orders ----------------------------------------------------------------
            waited = await quiet(pids.get("worker"))
            print(f"worker warm-up (its kernels compile at start): waited {waited:.1f} s")
            floors: dict[int, Floor] = {}
            for c in sorted({1, bots}):
                floors[c] = f = await insert_commit_floor(
                    hub.database_url, c, cfg.floor_seconds, meter
                )
                floor_pg_us = meter.per("postgres", f.count)
                print(
                    f"floor, BEGIN; INSERT; COMMIT at concurrency {c}: {f.rate:,.0f} tx/s, "
                    f"p50 {f.p50:.2f} ms, p99 {f.p99:.2f} ms; Postgres CPU {floor_pg_us:,.0f} µs/tx"
                )
            for label, bot, prefix in (("/ws", ws_bot, "ws"), ("GraphQL HTTP", gql_bot, "gq")):
                with phase(f"orders over {label}", meter, probe, pauses):
                    run = await place_orders(
                        hub, bot, label, prefix, order_tokens, list(order_accounts), resting,
                        cfg.window, cfg.warmup, cfg.seconds,
                    )  # fmt: skip
                probe.count(f"orders over {label}", run.acks, "ack")
                rows = await order_rows(hub.database_url, run, prefix)
                report_orders(table, run, rows, floors, floor_pg_us, meter, cfg)

            # -- 2. tick to fill ------------------------------------------------------------
            path_floor = await tick_path_floor(
                hub.database_url, redis_url(), cfg.batch, 50 if cfg.quick else 200
            )
            print(
                f"\nfloor, the tick-to-fill path's I/O alone (COPY {cfg.batch} + commit, PUBLISH, "
                f"receive, INSERT + commit, PUBLISH, receive): p50 {path_floor.p50:.2f} ms, "
                f"p99 {path_floor.p99:.2f} ms"
            )
            with phase(f"tick to fill at {cfg.tick_rate:,.0f} ticks/s", meter, probe, pauses):
                fills = await tick_to_fill(
                    hub, fill_tokens, list(fill_accounts), filling, cfg.tick_rate, cfg.batch,
                    cfg.fills, cfg.warmup, cfg.seconds,
                )  # fmt: skip
            probe.count(f"tick to fill at {cfg.tick_rate:,.0f} ticks/s", fills.ticks_sent, "tick")
            await fill_stages(hub.database_url, fills, filling)
            report_fills(table, fills, path_floor, meter, cfg)

            # -- 3. ORCA --------------------------------------------------------------------
            reads: list[Measured] = []
            with phase(f"ORCA reads, {cfg.callers} callers", meter, probe, pauses):
                requests = await orca(
                    table, hub, fill_tokens, CpuMeter(pids, meter.database), cfg, reads
                )
            for got in reads:
                print(f"    in {got.title}: {collections(pauses, *got.wall)}")
            probe.count(f"ORCA reads, {cfg.callers} callers", requests, "request")
            await admin.aclose()
    finally:
        probe.restore_env()
    print(f"\n== {ROOT.name}/bench/trading.py, total {time.perf_counter() - started:.0f} s ==")
    table.print()
    probe.report()
    probe.close()


def report_orders(
    table: Table,
    run: OrderRun,
    rows: Durability,
    floors: dict[int, Floor],
    floor_pg_us: float,
    meter: CpuMeter,
    cfg: BenchConfig,
) -> None:
    rate = run.measured_acks / run.seconds
    p50, p99 = pct(run.latencies, 0.5), pct(run.latencies, 0.99)
    errors = ", ".join(f"{k} x{v}" for k, v in run.errors.most_common(3)) or "none"
    hub_us, pg_us = meter.per("hub", run.acks), meter.per("postgres", run.acks)
    print(
        f"  {run.acks:,} acks ({run.measured_acks:,} in {run.seconds:.0f} s: {rate:,.0f}/s), "
        f"ack p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {max(run.latencies, default=0):.1f} ms; "
        f"errors: {errors}; CPU per ack: hub {hub_us:,.0f} µs, Postgres {pg_us:,.0f} µs"
    )
    durable = rows.rows == run.acks and run.spot_missing == 0
    print(
        f"  durability: {rows.rows:,} rows in broker_orders for {run.acks:,} acks "
        f"({rows.working:,} working); {run.spot_checks} acks looked up the moment they arrived, "
        f"{run.spot_missing} missing -> {'every ack durable' if durable else 'NOT DURABLE'}"
    )
    print_stages("stages", rows.stages)
    bots, one, top = cfg.bots, floors[1], floors[cfg.bots]
    floor = f"floor: BEGIN;INSERT;COMMIT c={bots}"
    name = f"orders/s over {run.label} ({bots} bots x {cfg.window})"
    table.add(name, rate, "/s", f"target >= {ORDERS_PER_S_TARGET:,}/s", ORDERS_PER_S_TARGET, "min")
    table.add(name, rate, "/s", f"{floor} {top.rate:,.0f}/s", top.rate)
    name = f"ack p50 over {run.label}"
    table.add(name, p50, "ms", f"{floor} p50 {top.p50:.2f} ms", top.p50)
    table.add(name, p50, "ms", f"floor: BEGIN;INSERT;COMMIT c=1 p50 {one.p50:.2f} ms", one.p50)
    name = f"ack p99 over {run.label}"
    table.add(name, p99, "ms", f"target < {ACK_P99_TARGET:g} ms", ACK_P99_TARGET, "max")
    table.add(name, p99, "ms", f"{floor} p99 {top.p99:.2f} ms", top.p99)
    budget = 1e6 / ORDERS_PER_S_TARGET
    table.add(f"hub CPU per ack over {run.label}", hub_us, "µs",
              f"one core at {ORDERS_PER_S_TARGET:,}/s: {budget:,.0f} µs", budget, "max")  # fmt: skip
    table.add(f"Postgres CPU per ack over {run.label}", pg_us, "µs",
              f"floor: BEGIN;INSERT;COMMIT c={bots} {floor_pg_us:,.0f} µs", floor_pg_us)  # fmt: skip
    verdict = "=" if durable else "!="
    table.note(f"durable acks over {run.label}", f"{rows.rows:,} rows {verdict} {run.acks:,} acks")


def report_fills(
    table: Table, run: FillRun, floor: Floor, meter: CpuMeter, cfg: BenchConfig
) -> None:
    p50, p99 = pct(run.latencies, 0.5), pct(run.latencies, 0.99)
    achieved = run.ticks_in_window / cfg.seconds
    errors = dict(run.errors) | {f"POST {k}": v for k, v in run.post_errors.items()}
    hub_us = meter.per("hub", run.ticks_sent)
    print(
        f"  ticks: {run.ticks_sent:,} sent, {achieved:,.0f}/s in the window (offered "
        f"{cfg.tick_rate:,.0f}/s in batches of {cfg.batch}); POST p50 {pct(run.posts, 0.5):.2f} "
        f"ms, p99 {pct(run.posts, 0.99):.2f} ms; hub CPU per tick {hub_us:,.1f} µs (fills, "
        f"state documents and order entry included)"
    )
    print(
        f"  fills: {run.dips:,} dips, {run.fills:,} filled frames, {len(run.latencies):,} measured "
        f"({len(run.latencies) / cfg.seconds:,.0f}/s), {run.misses} dips that filled nothing; "
        f"tick->fill frame p50 {p50:.2f} ms, p99 {p99:.2f} ms, max "
        f"{max(run.latencies, default=0):.1f} ms; errors: {errors or 'none'}"
    )
    print(
        f"  this process's own event-loop lag (a 1 ms sleep's overshoot): p50 "
        f"{pct(run.loop_lag, 0.5):.2f} ms, p99 {pct(run.loop_lag, 0.99):.2f} ms"
    )
    print_stages("stages", run.stages)
    name = "ticks/s posted"
    table.add(name, achieved, "/s", f"offered {cfg.tick_rate:,.0f}/s", cfg.tick_rate, "min")
    name = "tick -> fill frame p50"
    table.add(name, p50, "ms", f"floor: the path's I/O alone p50 {floor.p50:.2f} ms", floor.p50)
    name = "tick -> fill frame p99"
    table.add(name, p99, "ms", f"target < {FILL_P99_TARGET:g} ms", FILL_P99_TARGET, "max")
    table.add(name, p99, "ms", f"floor: the path's I/O alone p99 {floor.p99:.2f} ms", floor.p99)
    budget = 1e6 / cfg.tick_rate
    table.add("hub CPU per tick", hub_us, "µs",
              f"one core at {cfg.tick_rate:,.0f}/s: {budget:,.0f} µs", budget, "max")  # fmt: skip


@dataclass
class Measured:
    title: str
    wall: tuple[float, float]  # when it ran, wall clock (to find the hub's collections in it)
    run: ReadRun
    hub_us: float  # the hub's CPU per answered request
    bench_cores: float  # this process's CPU while it ran (1.0: the load generator is the limit)


async def measured_load(
    title: str,
    meter: CpuMeter,
    clients: list[httpx.AsyncClient],
    path: str,
    seconds: float,
    paced_rate: float | None = None,
) -> Measured:
    quiet_collector()
    meter.start()
    began = time.time()
    run = await read_load(clients, path, 0.5, seconds, paced_rate)
    ended = time.time()
    meter.stop()
    meter.requests += run.sent
    # The meter also saw the warm-up: CPU over the whole call, per request over the window.
    hub_us = meter.per("hub", run.answered) * run.seconds / meter.wall
    got = Measured(title, (began, ended), run, hub_us, meter.used["bench"] / meter.wall)
    show(got)
    return got


async def orca(
    table: Table,
    hub: RunningHub,
    tokens: list[str],
    meter: CpuMeter,
    cfg: BenchConfig,
    runs: list[Measured],
) -> int:
    """Every variant, each printed, put in the table and left in ``runs``; returns how many
    requests were answered in all (their warm-ups included)."""
    clients = [
        httpx.AsyncClient(
            base_url=hub.base,
            timeout=60,
            headers={"Authorization": f"Bearer {tokens[i % len(tokens)]}"},
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
        )
        for i in range(cfg.callers)
    ]
    try:
        first = await clients[0].get("/api/v1/trading/positions?use_cache=false")
        if first.status_code == 404:
            print("  ORCA's /api/v1/trading routes are not there yet: skipped")
            table.note("ORCA reads", "not there yet (404)")
            return 0
        title = "floor, the hub's /healthz from the same clients, closed loop"
        floor = await measured_load(title, meter, clients, "/healthz", cfg.read_seconds)
        title = f"floor, /healthz paced {cfg.paced_rate:,.0f}/s"
        floor_paced = await measured_load(
            title, meter, clients, "/healthz", cfg.read_seconds, cfg.paced_rate
        )
        runs.extend((floor, floor_paced))
        redis_floor: Floor | None = None
        for endpoint, path, seed in (
            ("positions", "/api/v1/trading/positions", SEED_POSITIONS),
            ("snapshot", "/api/v1/trading/batch/snapshot", SEED_SNAPSHOT),
        ):
            for mode in ("fresh", "cached"):
                url = f"{path}?use_cache={'true' if mode == 'cached' else 'false'}"
                for rate, base in ((None, floor), (cfg.paced_rate, floor_paced)):
                    how = "closed loop" if rate is None else f"paced {rate:,.0f}/s"
                    title = f"{endpoint} {mode}, {how}"
                    got = await measured_load(title, meter, clients, url, cfg.read_seconds, rate)
                    runs.append(got)
                    if redis_floor is None and mode == "cached":
                        redis_floor = await redis_get_floor(
                            redis_url(), cached_copy(got.run.body), cfg.callers, cfg.floor_seconds
                        )
                        print(
                            f"  floor, a bare Redis GET of a cached copy's bytes from "
                            f"{cfg.callers} callers: {redis_floor.rate:,.0f}/s, p50 "
                            f"{redis_floor.p50:.2f} ms, p99 {redis_floor.p99:.2f} ms"
                        )
                    report_read(table, f"{endpoint} {mode} ({how})", got, base, seed[mode],
                                mode, redis_floor if mode == "cached" else None)  # fmt: skip
        return meter.requests
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))


def show(got: Measured) -> None:
    run, title = got.run, got.title
    errors = ", ".join(f"{k} x{v}" for k, v in run.errors.most_common(2)) or "none"
    cached = f", {run.cached / run.answered:.1%} from cache" if run.cached else ""
    print(
        f"  {title}: {run.rate:,.0f} req/s, p50 {pct(run.latencies, 0.5):.2f} ms, p99 "
        f"{pct(run.latencies, 0.99):.2f} ms{cached}, {len(run.body):,} bytes; hub CPU "
        f"{got.hub_us:,.0f} µs/request, this process {got.bench_cores:.2f} cores; errors: {errors}"
        f"{stalls(run)}"
    )


def stalls(run: ReadRun) -> str:
    """Whether the slowest 1% came from a few pauses (answers due close together, all late) or
    from load spread over the run."""
    threshold = pct(run.latencies, 0.99)
    slow = sorted(s for s, ms in zip(run.starts, run.latencies, strict=True) if ms >= threshold)
    if len(slow) < 2 or threshold < 10:
        return ""
    bursts = 1 + sum(1 for a, b in itertools.pairwise(slow) if b - a > 0.05)
    return (
        f"; its slowest 1% ({len(slow)}, >= {threshold:.1f} ms) were due in {bursts} "
        f"burst(s) of 50 ms gaps, max {max(run.latencies):.0f} ms; this process's own loop lag "
        f"max {max(run.loop_lag, default=0):.0f} ms, its collections "
        f"{GC_PAUSES.worst(run.starts[0], run.starts[-1] + 1)}"
    )


def cached_copy(body: bytes) -> bytes:
    """What ORCA keeps in Redis for an answer: its items and their timestamp."""
    answer = orjson.loads(body)
    return orjson.dumps({"items": answer.get("positions", []), "timestamp": answer["timestamp"]})


def report_read(
    table: Table,
    label: str,
    got: Measured,
    base: Measured,
    promise: float,
    mode: str,
    redis_floor: Floor | None,
) -> None:
    run, healthz = got.run, base.run
    p50, p99 = pct(run.latencies, 0.5), pct(run.latencies, 0.99)
    target = CACHED_P99_TARGET if mode == "cached" else FRESH_P99_TARGET
    name = f"{label} p99"
    table.add(name, p99, "ms", f"target < {target:g} ms", target, "max")
    table.add(name, p99, "ms", f"seed 002 promise < {promise:g} ms", promise, "max")
    if mode == "cached" and label.startswith("positions"):
        headline = SEED_HEADLINE_CACHED
        table.add(name, p99, "ms", f"seed 002 headline < {headline:g} ms", headline, "max")
    healthz_p99 = pct(healthz.latencies, 0.99)
    table.add(name, p99, "ms", f"floor: /healthz p99 {healthz_p99:.2f} ms", healthz_p99)
    if redis_floor is not None:
        table.add(name, p99, "ms", f"floor: bare Redis GET p99 {redis_floor.p99:.2f} ms",
                  redis_floor.p99)  # fmt: skip
    healthz_p50 = pct(healthz.latencies, 0.5)
    table.add(f"{label} p50", p50, "ms", f"floor: /healthz p50 {healthz_p50:.2f} ms", healthz_p50)
    if "closed" in label:
        table.add(f"{label} req/s", run.rate, "/s", f"floor: /healthz {healthz.rate:,.0f}/s",
                  healthz.rate)  # fmt: skip
        table.add(f"{label} hub CPU/request", got.hub_us, "µs",
                  f"floor: /healthz {base.hub_us:,.0f} µs", base.hub_us)  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="under a minute")
    parser.add_argument("--bots", type=int, default=8, help="bots, each with its own account")
    parser.add_argument("--window", type=int, default=1, help="orders in flight per bot")
    parser.add_argument("--seconds", type=float, default=None, help="measured seconds per phase")
    parser.add_argument("--tick-rate", type=float, default=10_000.0)
    parser.add_argument("--batch", type=int, default=100, help="ticks per POST")
    parser.add_argument("--fills", type=float, default=100.0, help="dips (fills) a second")
    parser.add_argument("--callers", type=int, default=100)
    parser.add_argument("--paced-rate", type=float, default=200.0, help="ORCA paced req/s")
    parser.add_argument("--profile", type=Path, default=None, help="cProfile the hub into DIR")
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        asyncio.run(main(config_from(args), args.profile))
    else:
        uvloop.run(main(config_from(args), args.profile))
