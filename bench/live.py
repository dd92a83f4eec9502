"""Live paper runs in one worker process: tick-to-order latency, and how many concurrent runs at
10 ticks a second each the worker keeps under a p99 tick-to-signal of 50 ms.

    python bench/live.py [--quick] [--ks 20,50,100,200,400] [--seconds 12] [--hold 1]
                         [--env TRADEHUB_DB_POOL_MAX=40] [--profile DIR [--py-spy PATH]]

Needs Postgres and Redis: ``TRADEHUB_TEST_DATABASE_URL`` / ``TRADEHUB_TEST_REDIS_URL`` (an admin
database the bench creates its own database from, dropped at the end; a Redis prefix of its own,
its keys deleted at the end), defaulting to the local services. The hub (``tradehub serve``,
uvicorn: the tick ingest, GraphQL, ``/ws``) and one worker (``tradehub worker``: the live host)
run as separate processes with the default settings (``--env`` sets one for both); this process
is every client. ``--quick`` is a small version (10 + 30 runs, under a minute); the full run
takes up to about 4 minutes.

Every run is ``sma_crossover`` fast=1 slow=2, long only, on 1 s bars, each on its own symbol and
its own paper account. Each symbol gets 10 ticks a second through ``POST
/api/v1/marketdata/ticks`` (one POST every 10 ms carrying the symbols due then), its price
alternating between two levels every ``--hold`` seconds: sma(1) crosses sma(2) exactly when a
bar's close differs from the one before, so by default every closed bar is a signal and one
market order (an entry, then an exit, ...). A tick's ``ts`` is the wall clock (whole µs) plus its
symbol's offset, and its ``recv_ns`` is what the hub's ingest stamped on it (read back from
``ts.ticks``): every latency below starts there.

1. Tick to order: ``--latency-runs`` runs, their bar closes spread over the second (below), for
   ``--latency-seconds``. For each order: the closing tick's ``recv_ns`` to the order's
   ``created`` event on ``account:{id}:orders`` arriving at a ``/ws`` subscriber here (the order
   committed, published by the worker, relayed by the hub: what a client sees; target p99 <
   15 ms), and to its ``filled`` event. Stages from each order's own marks: the tick published
   on Redis by the ingest (a plain Redis subscriber of those symbols' ``ticks:{symbol}``), the
   order row's ``accepted_ns`` (stamped by the worker inside the order's transaction, before
   its commit), the ``created`` and ``filled`` frames, the run's ``strategy_signal``. Floor:
   the same I/O with nothing in between (COPY a tick + commit, PUBLISH, receive, INSERT an
   order + commit, PUBLISH, receive).
2. Runs per worker: K runs (K from ``--ks``, the runs already going included), each window
   measured twice: with every symbol's bars closing at the same wall-clock second ("aligned", as
   1 s bars of real symbols do: the closing ticks of all K runs arrive within 100 ms) and with
   each symbol's clock offset so that the closes spread evenly over the second ("spread": the
   worker's steady throughput). Tick to signal: the closing tick's ``recv_ns`` to the run's
   ``strategy_signal`` event arriving here on a plain Redis subscription of
   ``execution:{id}:events`` (published by the worker once the bar is written, i.e. after the
   bar's order was placed and filled and the bar persisted). A signal not seen by the end of the
   drain counts as infinitely late. The largest K whose p99 stays under 50 ms, per mode (target:
   200), and the worker's CPU per closed bar beside what one core allows at K bars a second.
   The ramp stops once the worker fell behind in both modes of a step (p99 over
   ``OVERWHELMED`` ms, or signals not seen by the end of the drain): a larger K only piles up
   more (``--all-steps`` goes on).

Each window prints where the CPU went (hub, worker, Postgres, Redis, this process, the rest of
the machine: on a shared machine "other" says how loaded it was), this process's own event-loop
lag, and the ingest's POST latency; the end prints the runs' orders by status and their
``error_occurred`` events. ``--profile DIR`` samples the worker with py-spy (``--py-spy`` or on
PATH; ``pip install py-spy``) during every window and prints its hottest frames.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
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

from _hub import free_port

from hub.auth import Role
from hub.db import connect, migrate
from hub.users import service as users

OPERATIONS = ROOT / "graphql" / "operations"
STRATEGY, PARAMS = "sma_crossover", {"fast": 1, "slow": 2}
TIMEFRAME, TIMEFRAME_NS = "1s", 1_000_000_000
TICKS_PER_S = 10  # per symbol
SLOTS = 10  # POSTs per tick period (one every 10 ms)
HIGH, LOW = 101.0, 99.0  # the two price levels, each held for --hold bars
CAPITAL = 10_000.0
GOLDEN = 0.6180339887498949
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)

ORDER_P99_TARGET = 15.0  # ms
SIGNAL_P99_TARGET = 50.0  # ms
RUNS_TARGET = 200
PROBLEM = re.compile(r"^\S+ (warning|error|critical) |^(WARNING|ERROR|CRITICAL):|Traceback")
OVERWHELMED = 1000.0  # ms: a step whose p99 is past this in both modes ends the ramp
PROFILE_RATE = 250  # py-spy samples a second


def pct(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ms(value: float) -> str:
    if math.isinf(value):
        return "never"
    if math.isnan(value):
        return "-"
    return f"{value:.2f} ms" if value < 10 else f"{value:,.0f} ms"


def operation(name: str) -> str:
    return (OPERATIONS / f"{name}.graphql").read_text()


async def graphql(http: httpx.AsyncClient, query: str, variables: dict[str, Any]) -> Any:
    response = await http.post("/graphql", json={"query": query, "variables": variables})
    body = response.json()
    if response.status_code != 200 or body.get("errors"):
        raise RuntimeError(f"GraphQL answered {response.status_code}: {str(body)[:300]}")
    return body["data"]


def iso_ns(text: str) -> int:
    """An event's ``timestamp`` (``isoformat`` of a µs datetime, ``Z``) in ns."""
    return (datetime.fromisoformat(text) - EPOCH) // MICROSECOND * 1000


# -- the table --------------------------------------------------------------------------------


@dataclass
class Row:
    measure: str
    ours: str
    anchor: str = ""
    verdict: str = ""


@dataclass
class Table:
    rows: list[Row] = field(default_factory=list)

    def add(self, measure: str, ours: str, anchor: str = "", verdict: str = "") -> None:
        self.rows.append(Row(measure, ours, anchor, verdict))

    def print(self) -> None:
        heads = Row("measure", "ours", "target / anchor", "")
        widths = [
            max(len(getattr(r, name)) for r in [heads, *self.rows])
            for name in ("measure", "ours", "anchor")
        ]
        for r in [heads, *self.rows]:
            print(
                f"{r.measure:<{widths[0]}}  {r.ours:>{widths[1]}}  {r.anchor:<{widths[2]}}  "
                f"{r.verdict}".rstrip()
            )


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


# -- CPU --------------------------------------------------------------------------------------


class CpuMeter:
    """CPU seconds of the hub, the worker, Postgres (this database's backends and the server's
    own processes), Redis, this process, and the whole machine, between start and stop; and
    how long the hub's and the worker's threads waited on a run queue for a CPU (Linux
    ``schedstat``): a process that waits there is held back by the machine, not by itself."""

    NAMES = ("hub", "worker", "postgres", "redis", "bench", "other")

    def __init__(self, pids: dict[str, int], database: str) -> None:
        self.pids = dict(pids)
        self.procs = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.procs["bench"] = psutil.Process()
        self.database = database
        self.cores: dict[str, float] = {}
        self.waited: dict[str, float] = {}  # s per s on a run queue
        self._before: dict[str, float] = {}
        self._started = 0.0

    @staticmethod
    def _cpu(proc: psutil.Process) -> float:
        try:
            times = proc.cpu_times()
            return float(times.user + times.system)
        except psutil.Error:
            return 0.0

    @staticmethod
    def _run_queue(pid: int) -> float:
        """Seconds all of ``pid``'s threads spent runnable but not running, so far."""
        total = 0
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{pid}/task"):
                with (
                    contextlib.suppress(OSError, ValueError, IndexError),
                    open(f"/proc/{pid}/task/{task}/schedstat") as stat,
                ):
                    total += int(stat.read().split()[1])
        return total / 1e9

    def _sample(self) -> dict[str, float]:
        out = {name: self._cpu(proc) for name, proc in self.procs.items()}
        out["postgres"] = out["redis"] = 0.0
        for proc in psutil.process_iter(["name", "cmdline"]):
            name = proc.info["name"] or ""
            if name.startswith("postgres"):
                title = " ".join(proc.info["cmdline"] or [])
                if "(" not in title or f" {self.database} " in title:
                    out["postgres"] += self._cpu(proc)
            elif "redis" in name:
                out["redis"] += self._cpu(proc)
        machine = psutil.cpu_times()
        out["machine"] = float(sum(machine) - machine.idle - getattr(machine, "iowait", 0.0))
        for name, pid in self.pids.items():
            out[f"wait:{name}"] = self._run_queue(pid)
        return out

    def start(self) -> None:
        self._before = self._sample()
        self._started = time.perf_counter()

    def stop(self) -> str:
        after = self._sample()
        wall = time.perf_counter() - self._started
        used = {k: max(0.0, after[k] - self._before.get(k, 0.0)) for k in after}
        self.waited = {k[5:]: v / wall for k, v in used.items() if k.startswith("wait:")}
        used = {k: v for k, v in used.items() if not k.startswith("wait:")}
        named = sum(v for k, v in used.items() if k != "machine")
        used["other"] = max(0.0, used["machine"] - named)
        self.cores = {k: v / wall for k, v in used.items()}
        parts = ", ".join(f"{n} {self.cores[n]:.2f}" for n in self.NAMES if n in self.cores)
        waits = ", ".join(f"{n} {v:.2f}" for n, v in self.waited.items())
        return (
            f"CPU in cores over {wall:.1f} s: {parts}; machine busy {self.cores['machine']:.2f} "
            f"of {psutil.cpu_count()}; waiting for a CPU (s per s): {waits}"
        )


async def quiet(pid: int, limit: float = 240.0) -> float:
    """Wait until ``pid`` uses under 5% of a core over half a second (a worker warms its
    kernels when it starts); returns the seconds waited."""
    proc = psutil.Process(pid)
    started = time.perf_counter()
    proc.cpu_percent(None)
    while time.perf_counter() - started < limit:
        await asyncio.sleep(0.5)
        if proc.cpu_percent(None) < 5.0:
            break
    return time.perf_counter() - started


async def loop_lag(until: float, lags: list[float]) -> None:
    """How late this process wakes from a 1 ms sleep: its own share of every latency."""
    while time.perf_counter() < until:
        started = time.perf_counter()
        await asyncio.sleep(0.001)
        lags.append((time.perf_counter() - started - 0.001) * 1000)


# -- the hub and its worker -------------------------------------------------------------------


@dataclass
class Services:
    base: str
    ws_url: str
    database_url: str
    redis_url: str
    prefix: str
    admin_token: str
    trader_token: str
    pids: dict[str, int]
    logs: dict[str, Path]


@contextlib.asynccontextmanager
async def services(extra_env: dict[str, str]) -> AsyncIterator[Services]:
    """``tradehub serve`` and ``tradehub worker`` as two processes on a fresh database and a
    fresh Redis prefix; both removed afterwards."""
    admin_url = os.environ.get(
        "TRADEHUB_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    redis_url = os.environ.get("TRADEHUB_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    tag = secrets.token_hex(4)
    name = f"tradehub_bench_live_{tag}"
    prefix = f"bench-live:{tag}:"
    conn = await asyncpg.connect(admin_url)
    await conn.execute(f'create database "{name}"')
    await conn.close()
    database_url = admin_url.rpartition("/")[0] + "/" + name
    data_dir = Path(tempfile.mkdtemp(prefix="tradehub-bench-live-"))
    procs: list[subprocess.Popen[bytes]] = []
    handles = []
    try:
        conn = await connect(database_url)
        await migrate(conn)
        admin = await users.ensure_user(conn, "bench-admin", role=Role.ADMIN)
        trader = await users.ensure_user(conn, "bench-trader", role=Role.USER)
        admin_token = await users.create_api_key(conn, admin, "bench")
        trader_token = await users.create_api_key(conn, trader, "bench")
        await conn.close()
        port = free_port()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("TRADEHUB_")},
            "TRADEHUB_DATABASE_URL": database_url,
            "TRADEHUB_REDIS_URL": redis_url,
            "TRADEHUB_REDIS_PREFIX": prefix,
            "TRADEHUB_DATA_DIR": str(data_dir),
            "TRADEHUB_SECRET": secrets.token_hex(32),
            "TRADEHUB_PORT": str(port),
            "TRADEHUB_LOG_LEVEL": "warning",
            **extra_env,
        }
        logs = {}
        for role in ("serve", "worker"):
            logs[role] = data_dir / f"{role}.log"
            handle = logs[role].open("wb")
            handles.append(handle)
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "hub", role],
                    env=env,
                    cwd=ROOT,
                    stdout=handle,
                    stderr=subprocess.STDOUT,
                )
            )
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:
            async with asyncio.timeout(120):
                while True:
                    for proc in procs:
                        if proc.poll() is not None:
                            raise RuntimeError(f"{proc.args} exited with {proc.returncode}")
                    with contextlib.suppress(httpx.HTTPError):
                        if (await http.get("/readyz")).status_code == 200:
                            break
                    await asyncio.sleep(0.2)
        yield Services(
            base,
            f"ws://127.0.0.1:{port}",
            database_url,
            redis_url,
            prefix,
            admin_token,
            trader_token,
            {"hub": procs[0].pid, "worker": procs[1].pid},
            {"hub": logs["serve"], "worker": logs["worker"]},
        )
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        for handle in handles:
            handle.close()
        conn = await asyncpg.connect(admin_url)
        await conn.execute(f'drop database if exists "{name}" with (force)')
        await conn.close()
        redis = Redis.from_url(redis_url)
        try:
            batch = [key async for key in redis.scan_iter(match=f"{prefix}*", count=1000)]
            for start in range(0, len(batch), 500):
                await redis.unlink(*batch[start : start + 500])
        finally:
            await redis.aclose()
        shutil.rmtree(data_dir, ignore_errors=True)


def log_problems(path: Path) -> tuple[int, Counter[str], list[str]]:
    """The lines of a process's log (warning level and up) saying something went wrong: how
    many, how many of each kind (the message without its numbers), and the last few."""
    with contextlib.suppress(OSError):
        lines = path.read_text(errors="replace").splitlines()
        bad = [line for line in lines if PROBLEM.search(line)]
        kinds = Counter(re.sub(r"\d+", "N", line.split(" ", 1)[-1])[:100] for line in bad)
        return len(bad), kinds, bad[-3:]
    return 0, Counter(), []


# -- the runs ---------------------------------------------------------------------------------


@dataclass
class LiveRun:
    index: int
    symbol: str
    account: str
    execution_id: int = 0


class Runs:
    """Accounts and live runs, made through GraphQL as a client makes them."""

    def __init__(self, svc: Services) -> None:
        self.svc = svc
        self.runs: list[LiveRun] = []
        self.trader = httpx.AsyncClient(
            base_url=svc.base,
            timeout=60,
            headers={"Authorization": f"Bearer {svc.trader_token}"},
            limits=httpx.Limits(max_connections=16),
        )

    async def add(self, count: int, feed: Feed) -> float:
        """``count`` more runs, each on a symbol of its own with a first tick, running when this
        returns; the seconds it took."""
        started = time.perf_counter()
        first = len(self.runs)
        new = [LiveRun(i, f"LV{i:04d}", "") for i in range(first, first + count)]
        await feed.prime([r.symbol for r in new])
        feed.add([r.symbol for r in new])
        gate = asyncio.Semaphore(16)
        create, start = operation("CreatePaperAccount"), operation("StartLive")

        async def one(run: LiveRun) -> None:
            async with gate:
                data = await graphql(
                    self.trader,
                    create,
                    {"input": {"name": f"live-{run.index}", "initialBalance": 1_000_000.0}},
                )
                run.account = str(data["createPaperAccount"]["id"])
                data = await graphql(
                    self.trader,
                    start,
                    {
                        "input": {
                            "strategy": STRATEGY,
                            "params": PARAMS,
                            "symbol": run.symbol,
                            "timeframe": TIMEFRAME,
                            "account": run.account,
                            "initialCapital": CAPITAL,
                            "options": {"direction": "long"},
                        }
                    },
                )
                run.execution_id = int(data["startLive"]["executionId"])

        self.runs.extend(new)  # before they start: whatever started is stopped at the end
        async with asyncio.timeout(120 + count):
            await asyncio.gather(*(one(r) for r in new))
        ids = [r.execution_id for r in new]
        conn = await asyncpg.connect(self.svc.database_url)
        try:
            async with asyncio.timeout(60 + count / 5):
                while True:
                    running = await conn.fetchval(
                        "select count(*) from executions "
                        "where execution_id = any($1) and status = 'running'",
                        ids,
                    )
                    if running == len(ids):
                        break
                    await asyncio.sleep(0.25)
        finally:
            await conn.close()
        return time.perf_counter() - started

    async def stop_all(self) -> tuple[int, int, float]:
        """``stopExecution`` for every run; (ended, runs, seconds) once they all ended (stopped,
        or failed) or after 60 s."""
        started = time.perf_counter()
        gate = asyncio.Semaphore(16)
        query = operation("StopExecution")
        errors = Counter[str]()

        async def one(run: LiveRun) -> None:
            async with gate:
                try:
                    await graphql(self.trader, query, {"id": str(run.execution_id)})
                except (RuntimeError, httpx.HTTPError) as exc:
                    errors[str(exc)[:80]] += 1

        ids = [r.execution_id for r in self.runs if r.execution_id]
        stopped = 0
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(60):
                await asyncio.gather(*(one(r) for r in self.runs if r.execution_id))
                conn = await asyncpg.connect(self.svc.database_url)
                try:
                    while True:
                        stopped = await conn.fetchval(
                            "select count(*) from executions "
                            "where execution_id = any($1) "
                            "and status in ('stopped', 'completed', 'failed')",
                            ids,
                        )
                        if stopped == len(ids):
                            break
                        await asyncio.sleep(0.25)
                finally:
                    await conn.close()
        if errors:
            print(f"  stopExecution errors: {dict(errors)}")
        await self.trader.aclose()
        return stopped, len(ids), time.perf_counter() - started


# -- the ticks --------------------------------------------------------------------------------


@dataclass
class Close:
    """A tick that closed its symbol's bar, as sent."""

    symbol: str
    ts: int
    sent: float  # perf_counter
    signals: bool  # the bar it closed crosses (its close differs from the bar before's)


class Feed:
    """10 ticks a second per symbol: one POST every 10 ms carrying the symbols whose slot it
    is (symbol i ticks in slot i % 10). A tick's ts is the wall clock in whole µs plus its
    symbol's offset; the price is HIGH for ``hold`` seconds of that time, then LOW for as many,
    and so on. Offsets only grow, so each symbol's ts keeps increasing when the mode changes."""

    def __init__(self, svc: Services, hold: int) -> None:
        self.svc = svc
        self.hold = hold
        self.symbols: list[str] = []
        self.offsets: list[int] = []
        self.base = 0  # ns added to every symbol's clock
        self.spread = True
        # symbol -> (period of its last tick, that tick's price, the close of the bar before)
        self.last: dict[str, tuple[int, float, float]] = {}
        self.closes: list[Close] = []
        self.sent = 0
        self.posts: list[tuple[float, float]] = []  # (sent at, ms)
        self.late: list[float] = []  # ms a slot's POST left after its planned time
        self.errors = Counter[str]()
        self._task: asyncio.Task[None] | None = None
        self._stop = False
        headers = {
            "Authorization": f"Bearer {svc.admin_token}",
            "Content-Type": "application/json",
        }
        self.http = httpx.AsyncClient(
            base_url=svc.base,
            timeout=30,
            headers=headers,
            limits=httpx.Limits(max_connections=8, max_keepalive_connections=8),
        )

    def _offset(self, i: int) -> int:
        if not self.spread:
            return self.base
        return self.base + int((i * GOLDEN) % 1.0 * 1e9) // 1000 * 1000

    def add(self, symbols: list[str]) -> None:
        for symbol in symbols:
            self.offsets.append(self._offset(len(self.symbols)))
            self.symbols.append(symbol)

    def mode(self, spread: bool) -> None:
        """Bars closing at the same second for every symbol (``spread=False``) or spread over
        it; every symbol's clock moves forward."""
        if spread == self.spread:
            return
        if not spread:
            self.base += TIMEFRAME_NS  # past every spread offset
        self.spread = spread
        self.offsets = [self._offset(i) for i in range(len(self.symbols))]

    def _tick(self, i: int, now_us: int, sent: float) -> dict[str, Any]:
        symbol = self.symbols[i]
        ts = now_us * 1000 + self.offsets[i]
        period = ts // TIMEFRAME_NS
        price = HIGH if (period // self.hold) % 2 == 0 else LOW
        last = self.last.get(symbol)
        if last is None:
            self.last[symbol] = (period, price, math.nan)
        elif period != last[0]:
            # sma(1) vs sma(2) cross exactly when a bar's close differs from the one before
            _, close, before = last
            self.closes.append(Close(symbol, ts, sent, not math.isnan(before) and close != before))
            self.last[symbol] = (period, price, close)
        else:
            self.last[symbol] = (period, price, last[2])
        return {
            "symbol": symbol,
            "ts": ts,
            "price": price,
            "bid": price - 0.01,
            "ask": price + 0.01,
        }

    async def prime(self, symbols: list[str]) -> None:
        """A first tick of each new symbol (a live run needs its symbol to have market data)."""
        now_us = time.time_ns() // 1000 - 2_000_000  # before any tick the feed will send
        ticks = [
            {
                "symbol": s,
                "ts": now_us * 1000,
                "price": HIGH,
                "bid": HIGH - 0.01,
                "ask": HIGH + 0.01,
            }
            for s in symbols
        ]
        for start in range(0, len(ticks), 1000):
            response = await self.http.post(
                "/api/v1/marketdata/ticks",
                content=orjson.dumps({"ticks": ticks[start : start + 1000]}),
            )
            if response.status_code != 200:
                raise RuntimeError(f"ticks refused: {response.status_code} {response.text[:200]}")

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        self._stop = True
        if self._task is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(30):
                    await self._task
        await self.http.aclose()

    async def _run(self) -> None:
        in_flight = asyncio.Semaphore(8)
        posts: set[asyncio.Task[None]] = set()
        interval = 1.0 / (TICKS_PER_S * SLOTS)

        async def post(body: bytes, sent: float) -> None:
            try:
                response = await self.http.post("/api/v1/marketdata/ticks", content=body)
                if response.status_code != 200:
                    self.errors[f"{response.status_code} {response.text[:80]}"] += 1
                self.posts.append((sent, (time.perf_counter() - sent) * 1000))
            except httpx.HTTPError as exc:
                self.errors[type(exc).__name__] += 1
            finally:
                in_flight.release()

        slot = 0
        next_at = time.perf_counter()
        while not self._stop:
            delay = next_at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await in_flight.acquire()
            sent = time.perf_counter()
            self.late.append((sent - next_at) * 1000)
            now_us = time.time_ns() // 1000
            ticks = [self._tick(i, now_us, sent) for i in range(slot, len(self.symbols), SLOTS)]
            if ticks:
                self.sent += len(ticks)
                task = asyncio.create_task(post(orjson.dumps({"ticks": ticks}), sent))
                posts.add(task)
                task.add_done_callback(posts.discard)
            else:
                in_flight.release()
            slot = (slot + 1) % SLOTS
            next_at += interval
            if time.perf_counter() - next_at > 1.0:  # far behind: skip, do not burst
                next_at = time.perf_counter()
        if posts:
            await asyncio.gather(*posts, return_exceptions=True)


async def received_at(
    database_url: str, keys: Iterable[tuple[str, int]]
) -> dict[tuple[str, int], int]:
    """The hub's ``recv_ns`` of the given (symbol, ts) ticks, from ``ts.ticks``."""
    pairs = list(set(keys))
    if not pairs:
        return {}
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "select t.symbol, t.ts_ns, t.recv_ns from ts.ticks t "
            "join unnest($1::text[], $2::int8[]) as k(symbol, ts_ns) "
            "on t.symbol = k.symbol and t.ts_ns = k.ts_ns",
            [p[0] for p in pairs],
            [p[1] for p in pairs],
        )
    finally:
        await conn.close()
    return {(r["symbol"], r["ts_ns"]): r["recv_ns"] for r in rows}


# -- what the bench listens to ----------------------------------------------------------------


class Signals:
    """A plain Redis subscription (SUBSCRIBE, so the worker's ``listened`` check counts it) of
    every run's ``execution:{id}:events``: (symbol, the closing tick's ts) -> when its
    ``strategy_signal`` arrived (time_ns); and of the ``ticks:{symbol}`` of a few symbols:
    (symbol, ts) -> when the hub's ingest published the tick (its stage of the path)."""

    def __init__(self, svc: Services) -> None:
        self.svc = svc
        self.redis = Redis.from_url(svc.redis_url)
        self.pubsub = self.redis.pubsub()
        self.channels: dict[bytes, tuple[str, bool]] = {}  # channel -> (symbol, is ticks)
        self.seen: dict[tuple[str, int], int] = {}
        self.ticks: dict[tuple[str, int], int] = {}
        self.tick_symbols: set[str] = set()
        self.errors = Counter[str]()
        self._task: asyncio.Task[None] | None = None

    async def watch(self, runs: list[LiveRun], ticks_too: bool = False) -> None:
        names: dict[bytes, tuple[str, bool]] = {}
        for run in runs:
            names[f"{self.svc.prefix}bus:execution:{run.execution_id}:events".encode()] = (
                run.symbol,
                False,
            )
            if ticks_too:
                names[f"{self.svc.prefix}bus:ticks:{run.symbol}".encode()] = (run.symbol, True)
                self.tick_symbols.add(run.symbol)
        names = {k: v for k, v in names.items() if k not in self.channels}
        if not names:
            return
        for start in range(0, len(names), 200):
            await self.pubsub.subscribe(*list(names)[start : start + 200])
        self.channels.update(names)
        if self._task is None:
            self._task = asyncio.create_task(self._read())
        # Every SUBSCRIBE is confirmed before the runs' bars count (NUMSUB sees them).
        async with asyncio.timeout(10):
            while True:
                counts = await self.redis.pubsub_numsub(*list(names))
                if all(int(n) > 0 for _, n in counts):
                    break
                await asyncio.sleep(0.05)

    async def _read(self) -> None:
        while True:
            message = await self.pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if message is None or message["type"] != "message":
                continue
            now = time.time_ns()
            symbol, is_ticks = self.channels.get(message["channel"], ("", False))
            if not symbol:
                continue
            payload: bytes = message["data"]
            try:
                if payload[:1] == b"*":
                    bodies = payload.split(b"\n", 2)[2].split(b"\n")
                else:
                    bodies = [payload.split(b"\n", 2)[2]]
                for body in bodies:
                    if is_ticks:
                        self.ticks.setdefault((symbol, int(orjson.loads(body)["ts"])), now)
                    elif b'"strategy_signal"' in body:
                        event = orjson.loads(body)
                        self.seen.setdefault((symbol, iso_ns(event["timestamp"])), now)
            except (ValueError, KeyError, IndexError) as exc:
                self.errors[type(exc).__name__] += 1

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.pubsub.aclose()
        await self.redis.aclose()


class OrderFrames:
    """``/ws`` subscribers of ``account:{id}:orders`` of some runs (the hub allows 10
    subscriptions a connection: one connection per 10 runs): order id -> when its ``created``
    and ``filled`` frames arrived (time_ns)."""

    PER_CONNECTION = 10

    def __init__(self) -> None:
        self.created: dict[int, int] = {}
        self.filled: dict[int, int] = {}
        self.sockets: list[Any] = []
        self._tasks: list[asyncio.Task[None]] = []

    async def open(self, svc: Services, runs: list[LiveRun]) -> None:
        for start in range(0, len(runs), self.PER_CONNECTION):
            ws = await websockets.connect(
                f"{svc.ws_url}/ws", compression=None, max_queue=None, open_timeout=30
            )
            self.sockets.append(ws)
            await ws.send(orjson.dumps({"op": "auth", "token": svc.trader_token}).decode())
            hello = orjson.loads(await ws.recv())
            if hello.get("op") != "authenticated":
                raise RuntimeError(f"/ws auth answered {hello}")
            group = runs[start : start + self.PER_CONNECTION]
            for run in group:
                channel = f"account:{run.account}:orders"
                await ws.send(orjson.dumps({"op": "subscribe", "channel": channel}).decode())
            async with asyncio.timeout(30):
                confirmed = 0
                while confirmed < len(group):
                    frame = orjson.loads(await ws.recv())
                    if frame.get("op") == "subscribed":
                        confirmed += 1
                    elif frame.get("op") == "error":
                        raise RuntimeError(f"/ws subscribe answered {frame}")
            self._tasks.append(asyncio.create_task(self._read(ws)))

    async def _read(self, ws: Any) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for raw in ws:
                now = time.time_ns()
                frame = orjson.loads(raw)
                data = frame.get("data")
                if not isinstance(data, dict):
                    continue
                order_id = int(data["order"]["order_id"])
                if data.get("event") == "created":
                    self.created.setdefault(order_id, now)
                elif data.get("event") == "filled":
                    self.filled.setdefault(order_id, now)

    async def close(self) -> None:
        for ws in self.sockets:
            await ws.close()
        self.sockets = []
        if self._tasks:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []


# -- profiling the worker with py-spy ---------------------------------------------------------


class Profiler:
    """py-spy sampling the worker during a window (raw collapsed stacks; ``--gil``: only the
    samples holding the GIL, so a thread blocked in a syscall, or descheduled inside one, is
    not counted as busy), summarised as the frames with the most own samples and the hub's
    frames with the most samples inside."""

    def __init__(self, directory: Path | None, py_spy: str | None, pid: int) -> None:
        self.directory = directory
        self.binary = py_spy or shutil.which("py-spy")
        self.pid = pid
        self.proc: subprocess.Popen[bytes] | None = None
        self.path: Path | None = None
        self.seconds = 0.0
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
            if self.binary is None:
                print("--profile: py-spy not found (pip install py-spy, or --py-spy PATH): skipped")

    @property
    def on(self) -> bool:
        return self.directory is not None and self.binary is not None

    def start(self, label: str, seconds: float) -> None:
        if not self.on:
            return
        assert self.directory is not None and self.binary is not None
        self.path = self.directory / f"worker-{label}.txt"
        self.seconds = seconds
        self.proc = subprocess.Popen(
            [
                self.binary, "record", "--pid", str(self.pid), "--duration", str(int(seconds)),
                "--rate", str(PROFILE_RATE), "--format", "raw", "--nolineno", "--nonblocking",
                "--gil", "--output", str(self.path),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip

    async def stop(self, label: str, top: int = 16) -> None:
        if self.proc is None or self.path is None:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(30):
                while self.proc.poll() is None:
                    await asyncio.sleep(0.2)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=10)
        self.proc = None
        with contextlib.suppress(OSError, ValueError):
            summarise(self.path, label, int(self.seconds) * PROFILE_RATE, top)


def summarise(path: Path, label: str, possible: int, top: int) -> None:
    """py-spy's raw output (``frame;frame;... count``, only samples holding the GIL): the busy
    share of the samples it could take, the leaf frames, and our own frames counted
    inclusively."""
    own: Counter[str] = Counter()
    inside: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            if any(part in frame for part in ("/hub/", "(hub/", "/engine/", "(engine/")):
                inside[frame] += count
    if not total:
        return
    print(
        f"\n  worker profile, {label} ({path}): {total:,} samples holding the GIL of "
        f"{possible:,} ({total / possible:.0%} of the window); shares of those:"
    )
    print("    by own samples:")
    for frame, count in own.most_common(top):
        print(f"      {count / total:6.1%}  {frame[:150]}")
    print("    the hub's and engine's functions, samples inside:")
    for frame, count in inside.most_common(top):
        print(f"      {count / total:6.1%}  {frame[:150]}")


# -- 1. tick to order ---------------------------------------------------------------------------


@dataclass
class Window:
    start: float  # perf_counter
    end: float

    def holds(self, at: float) -> bool:
        return self.start <= at < self.end


@dataclass
class OrderNumbers:
    created: list[float] = field(default_factory=list)  # ms, recv -> created frame
    filled: list[float] = field(default_factory=list)  # ms, recv -> filled frame
    stamped: list[float] = field(default_factory=list)  # ms, recv -> accepted_ns
    # ms, each stage of the path: from the tick's recv_ns to the signal seen
    stages: dict[str, list[float]] = field(default_factory=dict)
    orders: int = 0
    no_frame: int = 0
    later: int = 0  # filled by a tick that arrived after the order (the matcher's), left out
    statuses: Counter[str] = field(default_factory=Counter)


STAGES = (
    "hub ingest: recv_ns -> tick published on Redis",
    "worker: tick published -> order stamped (accepted_ns)",
    "order stamped -> created frame on /ws",
    "created frame -> filled frame",
    "filled frame -> strategy_signal seen (bar persisted)",
)


async def order_latencies(
    svc: Services,
    runs: list[LiveRun],
    frames: OrderFrames,
    signals: Signals,
    closes: list[Close],
    window: Window,
) -> OrderNumbers:
    """Every order of ``runs`` decided at a closing tick sent inside ``window``."""
    in_window = {(c.symbol, c.ts) for c in closes if window.holds(c.sent)}
    conn = await asyncpg.connect(svc.database_url)
    try:
        rows = await conn.fetch(
            "select o.order_id, o.symbol, o.status, o.accepted_ns, f.tick_ts "
            "from broker_orders o left join broker_fills f using (order_id) "
            "where o.account_id = any($1)",
            [r.account for r in runs],
        )
    finally:
        await conn.close()
    mine = [r for r in rows if (r["symbol"], r["tick_ts"]) in in_window]
    recv = await received_at(svc.database_url, [(r["symbol"], r["tick_ts"]) for r in mine])
    out = OrderNumbers(stages={name: [] for name in STAGES})
    out.statuses.update(r["status"] for r in rows)  # all their orders, warm-up included
    for row in mine:
        key = (row["symbol"], row["tick_ts"])
        received = recv.get(key)
        if received is None:
            continue
        if row["accepted_ns"] < received:  # filled by a tick after it: not the run's own
            out.later += 1
            continue
        out.orders += 1
        out.stamped.append((row["accepted_ns"] - received) / 1e6)
        created = frames.created.get(row["order_id"])
        filled = frames.filled.get(row["order_id"])
        out.created.append(math.inf if created is None else (created - received) / 1e6)
        out.filled.append(math.inf if filled is None else (filled - received) / 1e6)
        out.no_frame += created is None
        published, signal = signals.ticks.get(key), signals.seen.get(key)
        marks = [received, published, row["accepted_ns"], created, filled, signal]
        for name, a, b in zip(STAGES, marks, marks[1:], strict=False):
            if a is not None and b is not None:
                out.stages[name].append((b - a) / 1e6)
    return out


async def path_floor(database_url: str, redis_url: str, rounds: int) -> tuple[float, float]:
    """The tick-to-order path's I/O with nothing in between, one after another: COPY a tick +
    commit, PUBLISH, receive it, INSERT an order + commit, PUBLISH, receive it. (p50, p99)."""
    conn = await asyncpg.connect(database_url)
    redis = Redis.from_url(redis_url)
    pubsub = redis.pubsub()
    tag = secrets.token_hex(3)
    ticks_ch, orders_ch = f"bench-live-floor:{tag}:ticks", f"bench-live-floor:{tag}:orders"
    await pubsub.subscribe(ticks_ch, orders_ch)
    async with asyncio.timeout(10):
        confirmed = 0
        while confirmed < 2:
            message = await pubsub.get_message(timeout=1.0)
            confirmed += message is not None and message["type"] == "subscribe"
    await conn.execute(
        f"create table floor_ticks_{tag} (symbol text, ts_ns int8, price float8, recv_ns int8); "
        f"create table floor_orders_{tag} (order_id bigint generated always as identity primary "
        "key, symbol text, side text, quantity float8, status text, accepted_ns int8)"
    )

    async def received(channel: str) -> None:
        async with asyncio.timeout(5):
            while True:
                message = await pubsub.get_message(timeout=1.0)
                if (
                    message is not None
                    and message["type"] == "message"
                    and message["channel"].decode() == channel
                ):
                    return

    latencies = []
    try:
        for n in range(rounds):
            started = time.perf_counter()
            async with conn.transaction():
                await conn.copy_records_to_table(
                    f"floor_ticks_{tag}", records=[("FLOOR", n, HIGH, time.time_ns())]
                )
            await redis.publish(ticks_ch, orjson.dumps({"seq": n, "price": HIGH}))
            await received(ticks_ch)
            async with conn.transaction():
                await conn.execute(
                    f"insert into floor_orders_{tag} (symbol, side, quantity, status, accepted_ns) "
                    "values ('FLOOR', 'buy', 1, 'working', $1)",
                    time.time_ns(),
                )
            await redis.publish(orders_ch, orjson.dumps({"event": "created", "seq": n}))
            await received(orders_ch)
            latencies.append((time.perf_counter() - started) * 1000)
    finally:
        await conn.execute(f"drop table floor_ticks_{tag}; drop table floor_orders_{tag}")
        await conn.close()
        await pubsub.aclose()
        await redis.aclose()
    return pct(latencies, 0.5), pct(latencies, 0.99)


# -- 2. runs per worker -------------------------------------------------------------------------


@dataclass
class Step:
    k: int
    spread: bool
    latencies: list[float] = field(default_factory=list)  # ms; inf: never seen
    stamped: list[float] = field(default_factory=list)  # ms, recv -> the order's accepted_ns
    ingest: list[float] = field(default_factory=list)  # ms, recv -> tick published (a sample)
    expected: int = 0
    unseen: int = 0
    stray: int = 0  # signals seen on bars that should not cross
    cpu: dict[str, float] = field(default_factory=dict)
    waited: dict[str, float] = field(default_factory=dict)  # s per s waiting for a CPU
    ticks_per_s: float = 0.0
    posts: list[float] = field(default_factory=list)
    late: float = 0.0
    lag: list[float] = field(default_factory=list)
    bars: int = 0  # bars closed inside the window, crossing or not
    seconds: float = 0.0

    @property
    def cpu_per_bar(self) -> float:
        """ms of the worker's CPU per closed bar, its ticks' share included."""
        if not self.bars:
            return math.nan
        return self.cpu.get("worker", 0.0) * self.seconds / self.bars * 1000

    @property
    def label(self) -> str:
        return f"K={self.k} {'spread' if self.spread else 'aligned'}"

    @property
    def p99(self) -> float:
        return pct(self.latencies, 0.99)

    @property
    def behind(self) -> bool:
        """The worker did not keep up: a larger K only piles up more."""
        return not self.latencies or self.p99 > OVERWHELMED or self.unseen > 0.01 * self.expected

    @property
    def met(self) -> bool:
        return bool(self.latencies) and self.p99 < SIGNAL_P99_TARGET


async def signal_step(
    svc: Services,
    runs: Runs,
    feed: Feed,
    signals: Signals,
    meter: CpuMeter,
    profiler: Profiler,
    k: int,
    spread: bool,
    cfg: Config,
) -> Step:
    step = Step(k, spread)
    feed.mode(spread)
    await asyncio.sleep(cfg.settle)
    window = Window(time.perf_counter(), time.perf_counter() + cfg.seconds)
    sent_before, late_before = feed.sent, len(feed.late)
    profiler.start(step.label.replace(" ", "-").replace("=", ""), cfg.seconds)
    meter.start()
    await loop_lag(window.end, step.lag)
    print(f"  {meter.stop()}", flush=True)
    step.cpu, step.waited = dict(meter.cores), dict(meter.waited)
    step.ticks_per_s = (feed.sent - sent_before) / cfg.seconds
    step.late = max(feed.late[late_before:], default=0.0)
    step.posts = [m for at, m in feed.posts if window.holds(at)]
    closes = [c for c in feed.closes if window.holds(c.sent)]
    step.bars, step.seconds = len(closes), cfg.seconds
    # Drain: the signals of bars closed inside the window, until they are all in (or 10 s).
    wanted = {(c.symbol, c.ts) for c in closes if c.signals}
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(cfg.drain):
            while not wanted <= signals.seen.keys():
                await asyncio.sleep(0.1)
    await profiler.stop(step.label)
    recv = await received_at(svc.database_url, [(c.symbol, c.ts) for c in closes])
    for close in closes:
        received = recv.get((close.symbol, close.ts))
        seen = signals.seen.get((close.symbol, close.ts))
        if not close.signals:
            step.stray += seen is not None
            continue
        if received is None:
            continue
        published = signals.ticks.get((close.symbol, close.ts))
        if published is not None:
            step.ingest.append((published - received) / 1e6)
        step.expected += 1
        if seen is None:
            step.unseen += 1
            step.latencies.append(math.inf)
        else:
            step.latencies.append((seen - received) / 1e6)
    conn = await asyncpg.connect(svc.database_url)
    try:
        rows = await conn.fetch(
            "select o.symbol, o.accepted_ns, f.tick_ts from broker_orders o "
            "join broker_fills f using (order_id) where f.tick_ts >= $1",
            min((c.ts for c in closes), default=0),
        )
    finally:
        await conn.close()
    keyed = {(c.symbol, c.ts) for c in closes}
    for row in rows:
        received = recv.get((row["symbol"], row["tick_ts"]))
        if (
            received is not None
            and (row["symbol"], row["tick_ts"]) in keyed
            and row["accepted_ns"] >= received  # filled by its own tick, not a later one
        ):
            step.stamped.append((row["accepted_ns"] - received) / 1e6)
    print(
        f"  ticks {step.ticks_per_s:,.0f}/s (wanted {k * TICKS_PER_S:,}/s), POST p50 "
        f"{ms(pct(step.posts, 0.5))} p99 {ms(pct(step.posts, 0.99))}, feed late by at most "
        f"{ms(step.late)}; this process's loop lag p99 {ms(pct(step.lag, 0.99))}"
    )
    print(
        f"  bars closed: {step.bars:,}, crossing: {step.expected:,}; signals not seen within "
        f"{cfg.drain:g} s of the window: {step.unseen:,}, seen on bars that should not cross: "
        f"{step.stray}; the worker's CPU per closed bar (ticks included): "
        f"{ms(step.cpu_per_bar)}"
    )
    print(
        f"  tick -> strategy_signal seen: p50 {ms(pct(step.latencies, 0.5))}, p90 "
        f"{ms(pct(step.latencies, 0.9))}, p99 {ms(step.p99)}, max "
        f"{ms(max(step.latencies, default=math.nan))}; tick -> order stamped (accepted_ns): "
        f"p50 {ms(pct(step.stamped, 0.5))}, p99 {ms(pct(step.stamped, 0.99))}; of which the hub's "
        f"ingest (recv_ns -> tick published, {len(step.ingest)} closes of "
        f"{len(signals.tick_symbols)} symbols) p50 {ms(pct(step.ingest, 0.5))}, p99 "
        f"{ms(pct(step.ingest, 0.99))}",
        flush=True,
    )
    return step


async def diagnostics(svc: Services) -> None:
    """What went wrong inside the runs, as they recorded it: their ``error_occurred`` events,
    their orders by status, and what became of the orders a run reported "not filled" at its
    tick (filled later by another tick, i.e. by the hub's matcher, which sees the order once
    its first transaction committed it as working)."""
    conn = await asyncpg.connect(svc.database_url)
    try:
        errors = await conn.fetch(
            "select event::jsonb ->> 'message' as message from execution_events "
            "where event_type = 'error_occurred'"
        )
        orders = await conn.fetch(
            "select status, count(*) as n from broker_orders group by 1 order by 2 desc"
        )
        unfilled = [
            int(m[1])
            for r in errors
            if (m := re.match(r"order (\d+) \(.*not filled", r["message"] or "")) is not None
        ]
        later = await conn.fetch(
            "select o.order_id, o.status, o.accepted_ns, t.recv_ns from broker_orders o "
            "left join broker_fills f using (order_id) "
            "left join ts.ticks t on t.symbol = f.symbol and t.ts_ns = f.tick_ts "
            "where o.order_id = any($1)",
            unfilled,
        )
    finally:
        await conn.close()
    counts = ", ".join(f"{r['status']} {r['n']:,}" for r in orders)
    print(f"  orders by status: {counts}")
    if not errors:
        return
    kinds = Counter(re.sub(r"\d[\d.]*", "N", r["message"] or "")[:90] for r in errors)
    print(f"  the runs' error_occurred events ({len(errors)}):")
    for message, n in kinds.most_common(5):
        print(f"    {n:>5} x {message}")
    if unfilled:
        by_later_tick = [r for r in later if r["recv_ns"] is not None]
        delays = [(r["recv_ns"] - r["accepted_ns"]) / 1e6 for r in by_later_tick]
        print(
            f"  of the {len(unfilled)} orders reported not filled: "
            f"{dict(Counter(r['status'] for r in later))}; {len(by_later_tick)} filled by a tick "
            f"that arrived after the order was accepted (p50 {ms(pct(delays, 0.5))} after): the "
            "matcher filled them, not the run's tick, and the run's position no longer matches "
            "its account's"
        )


# -- the run ------------------------------------------------------------------------------------


@dataclass
class Config:
    quick: bool
    ks: list[int]
    seconds: float
    latency_runs: int
    latency_seconds: float
    warmup: float  # after runs were added: their first bars (the slow SMA and the cross need 3)
    settle: float  # after a change of mode
    drain: float
    all_steps: bool
    hold: int  # bars per price level: a signal (and an order) every `hold` bars
    env: dict[str, str]  # settings for the hub and the worker (--env)


def config_from(args: argparse.Namespace) -> Config:
    quick = bool(args.quick)
    ks = (
        [int(k) for k in args.ks.split(",")]
        if args.ks
        else ([40] if quick else [20, 50, 100, 200, 400])
    )
    hold = max(1, int(args.hold))
    return Config(
        quick=quick,
        ks=sorted(ks),
        seconds=args.seconds or (5.0 if quick else 12.0),
        latency_runs=args.latency_runs or (10 if quick else 20),
        latency_seconds=args.latency_seconds or (8.0 if quick else 20.0),
        # a new run's first entry: its slow SMA and the cross need 3 bars, and a long-only run
        # enters at the first rise it sees (up to two levels away)
        warmup=max(4.0, 2 * hold + 3.0),
        settle=2.5,
        drain=10.0,
        all_steps=bool(args.all_steps),
        hold=hold,
        env=dict(item.split("=", 1) for item in args.env),
    )


async def main(cfg: Config, profile_dir: Path | None, py_spy: str | None) -> None:
    started = time.perf_counter()
    load = os.getloadavg()
    print(
        f"live bench: {STRATEGY} {PARAMS} long on {TIMEFRAME} bars, {TICKS_PER_S} ticks/s per "
        f"symbol, {'every bar' if cfg.hold == 1 else f'every {cfg.hold} bars'} a signal and an "
        f"order; latency: {cfg.latency_runs} runs for "
        f"{cfg.latency_seconds:g} s; ramp K={','.join(map(str, cfg.ks))}, {cfg.seconds:g} s "
        f"per window; {psutil.cpu_count()} cores, load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
        + (f"; settings: {' '.join(f'{k}={v}' for k, v in cfg.env.items())}" if cfg.env else ""),
        flush=True,
    )
    table = Table()
    waited = 0.0
    async with services(cfg.env) as svc:
        waited = await quiet(svc.pids["worker"])
        print(f"worker warm-up (its kernels load at start): waited {waited:.1f} s", flush=True)
        meter = CpuMeter(svc.pids, svc.database_url.rsplit("/", 1)[1])
        profiler = Profiler(profile_dir, py_spy, svc.pids["worker"])
        runs = Runs(svc)
        feed = Feed(svc, cfg.hold)
        signals = Signals(svc)
        frames = OrderFrames()
        steps: list[Step] = []
        try:
            feed.start()
            # -- 1. tick to order -----------------------------------------------------------
            floor50, floor99 = await path_floor(svc.database_url, svc.redis_url, 200)
            print(
                f"floor, the path's I/O alone (COPY a tick + commit, PUBLISH, receive, INSERT an "
                f"order + commit, PUBLISH, receive): p50 {ms(floor50)}, p99 {ms(floor99)}"
            )
            print(
                f"\n== 1. tick to order: {cfg.latency_runs} runs, bar closes spread ==", flush=True
            )
            took = await runs.add(cfg.latency_runs, feed)
            print(f"  {cfg.latency_runs} runs started and running in {took:.1f} s")
            await frames.open(svc, runs.runs)
            await signals.watch(runs.runs, ticks_too=True)
            await asyncio.sleep(cfg.warmup)
            window = Window(time.perf_counter(), time.perf_counter() + cfg.latency_seconds)
            profiler.start("latency", cfg.latency_seconds)
            meter.start()
            lags: list[float] = []
            await loop_lag(window.end, lags)
            print(f"  {meter.stop()}")
            await asyncio.sleep(2.0)  # the last orders' frames
            await profiler.stop("latency")
            got = await order_latencies(svc, runs.runs, frames, signals, feed.closes, window)
            await frames.close()
            print(
                f"  {got.orders:,} orders measured ({got.no_frame} without a created frame, "
                f"{got.later} left out: filled by a later tick than their run's; all "
                f"the runs' orders by status: {dict(got.statuses)}); this process's loop lag "
                f"p99 {ms(pct(lags, 0.99))}"
            )
            print(
                f"  tick -> created frame p50 {ms(pct(got.created, 0.5))}, p99 "
                f"{ms(pct(got.created, 0.99))}, max {ms(max(got.created, default=math.nan))}; "
                f"-> filled frame p50 {ms(pct(got.filled, 0.5))}, p99 {ms(pct(got.filled, 0.99))}"
            )
            print("  stages (each order's own marks; p50 / p99):")
            for stage, values in got.stages.items():
                print(f"    {stage}: {ms(pct(values, 0.5))} / {ms(pct(values, 0.99))}")
            sys.stdout.flush()
            p99 = pct(got.created, 0.99)
            name = "1. tick -> order ack (created on /ws)"
            table.add(f"{name}, orders", f"{got.orders:,}", "a few hundred")
            table.add(
                f"{name} p50",
                ms(pct(got.created, 0.5)),
                f"floor: the path's I/O alone p50 {ms(floor50)}",
            )
            table.add(
                f"{name} p99",
                ms(p99),
                f"target < {ORDER_P99_TARGET:g} ms",
                verdict(p99 < ORDER_P99_TARGET),
            )
            table.add(f"{name} p99", ms(p99), f"floor: the path's I/O alone p99 {ms(floor99)}")
            table.add(
                "   tick -> order stamped (accepted_ns) p50/p99",
                f"{ms(pct(got.stamped, 0.5))} / {ms(pct(got.stamped, 0.99))}",
            )
            table.add(
                "   tick -> filled on /ws p50/p99",
                f"{ms(pct(got.filled, 0.5))} / {ms(pct(got.filled, 0.99))}",
            )

            # -- 2. runs per worker ---------------------------------------------------------
            behind = False
            done: set[int] = set()
            for wanted in cfg.ks:
                k = max(wanted, len(runs.runs))  # the runs already going count
                if k in done:
                    continue
                done.add(k)
                if behind and not cfg.all_steps:
                    why = f"K={steps[-1].k} fell behind in both modes"
                    print(f"\n== K={k}: not run ({why}) ==")
                    table.add(f"2. K={k}", "not run", why)
                    continue
                if k > len(runs.runs):
                    print(
                        f"\n== 2. runs per worker: adding {k - len(runs.runs)} runs ==", flush=True
                    )
                    took = await runs.add(k - len(runs.runs), feed)
                    await signals.watch(runs.runs)
                    print(f"  {k} runs running ({took:.1f} s to start the new ones)")
                    await asyncio.sleep(cfg.warmup)
                pair = []
                for spread in (False, True):
                    print(f"\n== K={k} {'spread' if spread else 'aligned'} ==", flush=True)
                    step = await signal_step(
                        svc, runs, feed, signals, meter, profiler, k, spread, cfg
                    )
                    steps.append(step)
                    pair.append(step)
                    table.add(
                        f"2. {step.label}: tick -> signal p50 / p99",
                        f"{ms(pct(step.latencies, 0.5))} / {ms(step.p99)}",
                        f"target p99 < {SIGNAL_P99_TARGET:g} ms",
                        verdict(step.met),
                    )
                    table.add(
                        f"   {step.label}: signals seen / bars crossing",
                        f"{step.expected - step.unseen:,} / {step.expected:,}",
                        f"cores: worker {step.cpu.get('worker', 0):.2f} (+"
                        f"{step.waited.get('worker', 0):.2f} waiting), hub "
                        f"{step.cpu.get('hub', 0):.2f}, pg {step.cpu.get('postgres', 0):.2f}, "
                        f"machine {step.cpu.get('machine', 0):.2f}/{psutil.cpu_count()}",
                    )
                    budget = 1000.0 / k
                    table.add(
                        f"   {step.label}: worker CPU per closed bar",
                        ms(step.cpu_per_bar),
                        f"one core at {k} bars/s: {ms(budget)}",
                        verdict(step.cpu_per_bar < budget),
                    )
                behind = all(s.behind for s in pair)
            for spread in (False, True):
                mode = "spread" if spread else "aligned"
                good = [s.k for s in steps if s.spread == spread and s.met]
                best = max(good, default=0)
                tried = [s.k for s in steps if s.spread == spread]
                shown = f"{best}" if best else f"< {min(tried)}" if tried else "-"
                table.add(
                    f"2. largest K with p99 < {SIGNAL_P99_TARGET:g} ms, bars {mode}",
                    shown,
                    f"target >= {RUNS_TARGET} per worker",
                    verdict(best >= RUNS_TARGET),
                )
        finally:
            await feed.stop()
            print(f"\nstopping {len(runs.runs)} runs...", flush=True)
            stopped, total, took = await runs.stop_all()
            print(f"  {stopped} of {total} runs ended in {took:.1f} s")
            await diagnostics(svc)
            await signals.close()
            await frames.close()
            for role, path in svc.logs.items():
                count, kinds, last = log_problems(path)
                if count:
                    kept = Path(tempfile.gettempdir()) / f"bench-live-{role}-{os.getpid()}.log"
                    with contextlib.suppress(OSError):
                        shutil.copyfile(path, kept)
                    print(f"  the {role}'s log ({kept}): {count} warning/error lines; most common:")
                    for kind, n in kinds.most_common(5):
                        print(f"    {n:>5} x {kind}")
                    print("    the last:")
                    for line in last:
                        print(f"      {line[:200]}")
            if feed.errors:
                print(f"  tick POST errors: {dict(feed.errors)}")
            if signals.errors:
                print(f"  undecodable event messages: {dict(signals.errors)}")
    print(
        f"\n== {ROOT.name}/bench/live.py, total {time.perf_counter() - started:.0f} s, of which "
        f"{waited:.0f} s the worker's warm-up (its kernels compile after an engine change) =="
    )
    table.print()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small version, under a minute")
    parser.add_argument("--ks", default="", help="concurrent runs to try, e.g. 50,100,200,400")
    parser.add_argument("--seconds", type=float, default=None, help="measured seconds per window")
    parser.add_argument("--latency-runs", type=int, default=None)
    parser.add_argument("--latency-seconds", type=float, default=None)
    parser.add_argument("--all-steps", action="store_true", help="ramp on after missing")
    parser.add_argument(
        "--hold", type=int, default=1, help="bars per price level: a signal every HOLD bars"
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a setting for the hub and the worker (TRADEHUB_DB_POOL_MAX=40), repeatable",
    )
    parser.add_argument("--profile", type=Path, default=None, help="py-spy the worker into DIR")
    parser.add_argument("--py-spy", default=None, help="the py-spy binary (default: on PATH)")
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        asyncio.run(main(config_from(args), args.profile, args.py_spy))
    else:
        uvloop.run(main(config_from(args), args.profile, args.py_spy))
