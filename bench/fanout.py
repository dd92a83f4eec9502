"""WebSocket fan-out: the hub's /ws feed and GraphQL subscriptions beside stock strawberry.

One hub process (``create_app`` under uvicorn, a subprocess) and, in the same run, the anchor
process (``bench/_fanout_anchor.py``, a uvicorn subprocess with the same options) serving two
references: at ``/graphql`` a plain Starlette + stock ``strawberry.asgi.GraphQL`` app whose
``ticks`` resolver is one async generator per subscriber fed by one Redis reader (strawberry
executes and serialises the operation per subscriber per event), and at ``/raw`` a raw
serialize-once WebSocket fan-out with /ws's frame shape (the floor PERF_NOTES.md calls "raw,
serialize once"). Per-message deflate is off on both servers (``ws_per_message_deflate=False``)
and never offered by the clients.

Subscribers are WebSocket connections held by ``--clients`` load-generator processes
(``bench/_fanout_clients.py``; a minimal RFC 6455 client by default, ``--client websockets`` for
the library's). The publisher (this process) calls ``hub.marketdata.publish_tick`` (the hub's
``Bus.publish_recent``: sequence, epoch, bounded history, PUBLISH) at a set rate with
``time.time_ns()`` in the tick, so every frame carries its publish time; both servers read the
same Redis channels.

Scenarios: 1 topic x 100 subscribers, 1 topic x 1,000 subscribers, 100 topics x 10 subscribers.
For each, each transport (hub /ws, raw, hub GraphQL, anchor GraphQL) opens its subscribers once,
warms them up (GraphQL has no subscribe ack: events are published until every subscriber has
one), then climbs a ladder of offered rates (events/s per topic x subscribers = frames/s). A step
is sustained when every subscriber got every event after the step's start sequence (no loss, no
duplicate, no connection closed), p99 publish-to-receive latency is under 100 ms and the delivered
rate (frames / time from first publish to last receive) is at least 90% of the offered one. The
climb stops once the server falls behind, loses or closes, or after two failed steps in a row.
Each step reports delivered frames/s, latency p50/p99/max, loss, the server's CPU (psutil on
its pid) per delivered frame and as a share of a core, the load generator's and publisher's CPU
shares, and what else the machine spent (Redis, the kernel, other processes: on a shared 2-core
machine, noisy neighbours move the tail latencies a lot; the header prints the load before the
run, and CPU per frame is the steadier number).

Run:  .venv/bin/python bench/fanout.py            # the full ladders, 3-5 minutes
      .venv/bin/python bench/fanout.py --quick    # about a minute
Options: --database-url (an admin URL: the run creates and drops its own database),
--redis-url, --clients N, --client raw|websockets, --duration S, --scenarios 100,1000,100x10,
--transports hub-ws,raw,hub-gql,anchor, --ladder 2000,10000 (frames/s), --nice -10 (both
servers, clients and publisher, on a busy machine), --profile DIR (py-spy the servers during
each step and print their hottest functions), --server-gc freeze|threshold|off|trace (an
experiment on both servers' collector; trace prints every generation's pauses at the end).
Environment defaults: TRADEHUB_BENCH_DATABASE_URL, TRADEHUB_BENCH_REDIS_URL.
"""

from __future__ import annotations

import sys as _sys
from pathlib import Path as _Path

# bench/engine.py would shadow the engine package for scripts run from bench/: the repository
# root comes first on the path.
_sys.path.insert(0, str(_Path(__file__).resolve().parent.parent))

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
for _path in (str(ROOT), str(BENCH)):
    if _path not in sys.path:
        sys.path.append(_path)

import numpy as np
import psutil
from _fanout_clients import client_main

P99_LIMIT_MS = 100.0
GQL_P99_GOAL_MS = 50.0  # GraphQL at 1,000 subscribers and 10,000 frames/s
DELIVERY_FLOOR = 0.90
WARM_TIMEOUT = 30.0
SERVER_START_TIMEOUT = 40.0
COMMAND_TIMEOUT = 60.0
MIN_EVENTS_PER_STEP = 3


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    topics: int
    per_topic: int

    @property
    def subscribers(self) -> int:
        return self.topics * self.per_topic

    def symbols(self) -> list[str]:
        if self.topics == 1:
            return ["BTCUSD"]
        return [f"SYM{i:03d}" for i in range(self.topics)]


SCENARIOS = {
    "100": Scenario("100", "1 topic x 100 subscribers", 1, 100),
    "1000": Scenario("1000", "1 topic x 1,000 subscribers", 1, 1000),
    "100x10": Scenario("100x10", "100 topics x 10 subscribers", 100, 10),
}


@dataclass(frozen=True)
class Transport:
    key: str
    title: str
    server: str  # "hub" | "anchor"
    kind: str  # "ws" | "gql"
    path: str
    ladder: str  # "fast" | "slow"


TRANSPORTS = [
    Transport("hub-ws", "hub /ws", "hub", "ws", "/ws", "fast"),
    Transport("raw", "raw serialize-once", "anchor", "ws", "/raw", "fast"),
    Transport("hub-gql", "hub GraphQL", "hub", "gql", "/graphql", "fast"),
    Transport("anchor", "anchor: stock strawberry", "anchor", "gql", "/graphql", "slow"),
]

# Offered frames/s (events/s per topic x subscribers), climbed until a step is not sustained.
LADDERS = {
    "full": {
        "fast": [2_000, 5_000, 10_000, 15_000, 20_000, 30_000, 40_000],
        "slow": [500, 1_000, 2_000, 5_000, 10_000],
    },
    "quick": {
        "fast": [5_000, 10_000, 20_000],
        "slow": [500, 1_000, 2_000],
    },
}


@dataclass
class Step:
    scenario: Scenario
    transport: Transport
    offered_nominal: int
    rate: float  # events/s per topic
    published: int = 0
    publish_seconds: float = 0.0
    publisher_lag_ms: float = 0.0
    expected: int = 0
    received: int = 0
    lost: int = 0
    dupes: int = 0
    gaps: int = 0
    closed: int = 0
    lagging: int = 0
    errors: list[Any] = field(default_factory=list)
    delivered_per_s: float = 0.0
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")
    max_ms: float = float("nan")
    wall: float = 0.0
    server_cpu: float = 0.0
    clients_cpu: list[float] = field(default_factory=list)
    publisher_cpu: float = 0.0
    system_busy: float = 0.0
    profile: list[tuple[str, float]] = field(default_factory=list)

    @property
    def offered_per_s(self) -> float:
        if self.publish_seconds <= 0:
            return 0.0
        return self.published * self.scenario.per_topic / self.publish_seconds

    @property
    def other_cpu(self) -> float:
        """Machine CPU outside the server, clients and publisher (Redis, the kernel, neighbours)."""
        return self.system_busy - self.server_cpu - sum(self.clients_cpu) - self.publisher_cpu

    @property
    def us_per_frame(self) -> float:
        return self.server_cpu / self.received * 1e6 if self.received else float("nan")

    @property
    def overwhelmed(self) -> bool:
        return bool(
            self.lost
            or self.closed
            or not self.received
            or self.delivered_per_s < DELIVERY_FLOOR * self.offered_per_s
        )

    @property
    def sustained(self) -> bool:
        return (
            self.lost == 0
            and self.dupes == 0
            and self.closed == 0
            and self.received > 0
            and self.p99_ms < P99_LIMIT_MS
            and self.delivered_per_s >= DELIVERY_FLOOR * self.offered_per_s
        )

    def why_not(self) -> str:
        reasons = []
        if self.lost:
            reasons.append(f"lost {self.lost}")
        if self.dupes:
            reasons.append(f"dupes {self.dupes}")
        if self.closed:
            reasons.append(f"{self.closed} closed")
        if not self.p99_ms < P99_LIMIT_MS:
            reasons.append("p99 >= 100 ms")
        if self.delivered_per_s < DELIVERY_FLOOR * self.offered_per_s:
            reasons.append("behind")
        return ", ".join(reasons)


# -- processes ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    def __init__(self, mode: str, env: dict[str, str], workdir: Path) -> None:
        self.mode = mode
        self.port = free_port()
        self.log_path = workdir / f"{mode}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, str(BENCH / "_fanout_server.py"), mode, str(self.port)],
            env=env,
            cwd=workdir,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches us, and we stop it ourselves
        )
        self.ps = psutil.Process(self.proc.pid)

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    async def wait_ready(self) -> None:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.mode} server exited:\n{self.log_tail()}")
            try:
                _, writer = await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", self.port), 1.0
                )
                writer.close()
                return
            except (OSError, TimeoutError):
                await asyncio.sleep(0.1)
        raise RuntimeError(f"{self.mode} server not listening after {SERVER_START_TIMEOUT}s")

    def cpu(self) -> float:
        try:
            times = self.ps.cpu_times()
            return float(times.user + times.system)
        except psutil.Error:
            return float("nan")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(8)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()


class Clients:
    """The load-generator processes, forked before any event loop exists."""

    def __init__(self, count: int) -> None:
        ctx = multiprocessing.get_context("fork")
        self.pipes: list[Connection] = []
        self.procs: list[Any] = []
        for i in range(count):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=client_main, args=(child,), name=f"fanout-client-{i}")
            proc.daemon = True
            proc.start()
            child.close()
            self.pipes.append(parent)
            self.procs.append(proc)
        self.ps = [psutil.Process(p.pid) for p in self.procs]

    async def call(
        self, command: str, specs: list[Any] | Any, timeout: float = COMMAND_TIMEOUT
    ) -> list[Any]:
        per = specs if isinstance(specs, list) else [specs] * len(self.pipes)
        for pipe, spec in zip(self.pipes, per, strict=True):
            pipe.send((command, spec))

        async def reply(pipe: Connection, proc: Any) -> Any:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if await asyncio.to_thread(pipe.poll, 0.2):
                    got, value = pipe.recv()
                    assert got == command, (got, command)
                    if isinstance(value, dict) and "error" in value and len(value) == 1:
                        raise RuntimeError(f"client {proc.name}: {value['error']}")
                    return value
                if not proc.is_alive():
                    raise RuntimeError(f"client {proc.name} died (exit {proc.exitcode})")
            raise TimeoutError(f"client {proc.name} did not answer {command!r} in {timeout}s")

        return list(
            await asyncio.gather(*(reply(p, proc) for p, proc in zip(self.pipes, self.procs)))
        )

    def stop(self) -> None:
        for pipe in self.pipes:
            with contextlib.suppress(Exception):
                pipe.send(("exit", None))
        for proc in self.procs:
            proc.join(8)
            if proc.is_alive():
                proc.terminate()
                proc.join(3)
            if proc.is_alive():
                proc.kill()
                proc.join(3)
        for pipe in self.pipes:
            pipe.close()


class Profiler:
    """py-spy on a server pid for one step; the hottest functions by own time."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self.exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
            if not Path(self.exe).exists():
                print(f"  (--profile: py-spy not found at {self.exe}; profiling off)")
                self.directory = None

    def start(
        self, pid: int, label: str, seconds: float
    ) -> tuple[subprocess.Popen[bytes], Path] | None:
        if self.directory is None:
            return None
        out = self.directory / f"{label}.txt"
        proc = subprocess.Popen(
            [self.exe, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))),
             "--rate", "250", "--format", "raw", "--output", str(out), "--nonblocking"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        return proc, out

    @staticmethod
    def finish(handle: tuple[subprocess.Popen[bytes], Path] | None) -> list[tuple[str, float]]:
        if handle is None:
            return []
        proc, out = handle
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        if not out.exists():
            return []
        own: Counter[str] = Counter()
        total = 0
        for line in out.read_text(errors="replace").splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            frames = stack.split(";")
            own[_short(frames[-1])] += int(count)
            total += int(count)
        return [(name, n / total) for name, n in own.most_common(12)] if total else []


def _short(frame: str) -> str:
    # py-spy frames look like "function (path/to/module.py:123)"
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    for marker in ("site-packages/", "/work/main/"):
        if marker in where:
            where = where.split(marker, 1)[1]
    where = where.rsplit(":", 1)[0]
    return f"{name} ({where})"


# -- database and accounts ---------------------------------------------------------------


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


async def create_database(admin_url: str, name: str) -> str:
    import asyncpg

    conn = await asyncpg.connect(admin_url, timeout=10)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return with_database(admin_url, name)


async def drop_database(admin_url: str, name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(admin_url, timeout=10)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def make_token(url: str) -> str:
    from hub.auth import Role
    from hub.db import connect, migrate_url
    from hub.users import service as users

    await migrate_url(url)
    conn = await connect(url)
    try:
        identity = await users.ensure_user(conn, f"bench-{secrets.token_hex(4)}", role=Role.USER)
        return await users.create_api_key(conn, identity, "fanout bench")
    finally:
        await conn.close()


# -- the run -----------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace, clients: Clients) -> None:
        self.args = args
        self.clients = clients
        self.mode = "quick" if args.quick else "full"
        self.duration = args.duration or (2.0 if args.quick else 4.0)
        self.drain = 2.0 if args.quick else 3.0
        self.prefix = f"bench:{secrets.token_hex(6)}:"
        self.db_name = f"tradehub_bench_{secrets.token_hex(6)}"
        self.workdir = Path(tempfile.mkdtemp(prefix="tradehub-fanout-"))
        self.servers: dict[str, Server] = {}
        self.results: list[Step] = []
        self.opened: dict[tuple[str, str], float] = {}
        self.profiler = Profiler(Path(args.profile) if args.profile else None)
        self.db_created = False
        self.bus: Any = None
        self.redis: Any = None
        self.torn_down = False
        self.background = ""
        self.heap: dict[str, int] = {}

    # -- set-up and tear-down -------------------------------------------------------
    async def setup(self) -> None:
        from redis.asyncio import Redis

        from hub import marketdata
        from hub.bus import Bus
        from hub.domains import topic_registry
        from hub.keys import Keys

        database_url = await create_database(self.args.database_url, self.db_name)
        self.db_created = True
        self.token = await make_token(database_url)
        env = {
            **os.environ,
            "TRADEHUB_DATABASE_URL": database_url,
            "TRADEHUB_REDIS_URL": self.args.redis_url,
            "TRADEHUB_REDIS_PREFIX": self.prefix,
            "TRADEHUB_DATA_DIR": str(self.workdir / "data"),
            "TRADEHUB_SECRET": secrets.token_urlsafe(48),
            "TRADEHUB_LOG_LEVEL": "warning",
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(BENCH)]),
            "FANOUT_SERVER_GC": self.args.server_gc,
        }
        for mode in ("hub", "anchor"):
            self.servers[mode] = Server(mode, env, self.workdir)
        if self.args.nice:
            for ps in [s.ps for s in self.servers.values()] + self.clients.ps + [psutil.Process()]:
                ps.nice(self.args.nice)
        await asyncio.gather(*(s.wait_ready() for s in self.servers.values()))
        self.redis = Redis.from_url(self.args.redis_url)
        registry = topic_registry([marketdata.domain])
        # A Bus as hub/app.py builds one, never started: this process only publishes.
        self.bus = Bus(self.redis, self.args.redis_url, Keys(self.prefix), registry)

    async def teardown(self) -> None:
        if self.torn_down:
            return
        self.torn_down = True
        for server in self.servers.values():
            with contextlib.suppress(Exception):
                await asyncio.to_thread(server.stop)
            if "trace" in self.args.server_gc:
                for line in server.log_tail(200).splitlines():
                    if line.startswith("gc: "):
                        print(f"  {server.mode} {line}")
        if self.redis is not None:
            with contextlib.suppress(Exception):
                keys = [k async for k in self.redis.scan_iter(match=f"{self.prefix}*", count=1000)]
                for i in range(0, len(keys), 500):
                    await self.redis.unlink(*keys[i : i + 500])
            with contextlib.suppress(Exception):
                await self.redis.aclose()
        if self.db_created:
            try:
                await drop_database(self.args.database_url, self.db_name)
            except Exception as exc:  # noqa: BLE001 - tear-down goes on; say what is left
                print(f"could not drop database {self.db_name}: {exc}", file=sys.stderr)
        shutil.rmtree(self.workdir, ignore_errors=True)

    # -- publishing -----------------------------------------------------------------
    async def publish(self, symbols: list[str]) -> dict[str, int]:
        from hub.marketdata import publish_tick

        ts = time.time_ns()
        results = await asyncio.gather(
            *(
                publish_tick(
                    self.bus, symbol, {"ts": ts, "price": 50_000.0 + (ts % 1000) / 10, "size": 0.01}
                )
                for symbol in symbols
            )
        )
        return {f"ticks:{symbol}": seq for symbol, (seq, _) in zip(symbols, results, strict=True)}

    async def positions(self, symbols: list[str]) -> dict[str, int]:
        got = await asyncio.gather(*(self.bus.recent_position(f"ticks:{s}") for s in symbols))
        return {f"ticks:{s}": seq for s, (seq, _) in zip(symbols, got, strict=True)}

    async def publish_window(
        self, symbols: list[str], rate: float, seconds: float
    ) -> tuple[int, float, float, dict[str, int]]:
        """Publish ``rate`` events/s on each topic for ``seconds``, spread evenly across topics."""
        n = len(symbols)
        per_topic = max(MIN_EVENTS_PER_STEP, round(rate * seconds))
        total = per_topic * n
        spacing = 1.0 / (rate * n)
        last: dict[str, int] = {}
        lag = 0.0
        t0 = time.perf_counter()
        j = 0
        while j < total:
            now = time.perf_counter()
            due = min(total, int((now - t0) / spacing) + 1)
            if due > j:
                lag = max(lag, now - (t0 + j * spacing))
                batch = [symbols[k % n] for k in range(j, due)]
                if len(batch) > n:  # behind: more than one event per topic due at once
                    for start in range(0, len(batch), n):
                        last.update(await self.publish(batch[start : start + n]))
                else:
                    last.update(await self.publish(batch))
                j = due
            if j < total:
                await asyncio.sleep(max(0.0, t0 + j * spacing - time.perf_counter()))
        # The window covers `total` events at the intended spacing: k events take (k-1) gaps,
        # plus one spacing for the last one (so `published / seconds` is the offered rate).
        elapsed = max(time.perf_counter() - t0, (total - 1) * spacing) + spacing
        return total, elapsed, lag, last

    # -- one transport on one scenario --------------------------------------------------
    async def run_ladder(self, scenario: Scenario, transport: Transport) -> None:
        server = self.servers[transport.server]
        symbols = scenario.symbols()
        topics = [f"ticks:{s}" for s in symbols]
        # Spread every topic's subscribers over the client processes.
        per_client: list[list[str]] = [[] for _ in self.clients.pipes]
        i = 0
        for topic in topics:
            for _ in range(scenario.per_topic):
                per_client[i % len(per_client)].append(topic)
                i += 1
        specs = [
            {
                "kind": transport.kind,
                "client": self.args.client,
                "host": "127.0.0.1",
                "port": server.port,
                "path": transport.path,
                "token": self.token,
                "topics": share,
            }
            for share in per_client
        ]
        t0 = time.perf_counter()
        opened = await self.clients.call("open", specs, timeout=120)
        failed = sum(o["failed"] for o in opened)
        self.opened[(scenario.key, transport.key)] = time.perf_counter() - t0
        try:
            if failed:
                errors = [e for o in opened for e in o["errors"]][:3]
                print(
                    f"  {transport.title}: {failed} of {scenario.subscribers} connections failed: {errors}"
                )
                return
            warm = await self.warm_up(symbols, scenario.subscribers)
            if warm is not None:
                print(f"  {transport.title}: skipped, {warm}")
                return
            failures = 0
            for offered in self.args.ladder or LADDERS[self.mode][transport.ladder]:
                step = await self.run_step(scenario, transport, symbols, topics, offered)
                self.results.append(step)
                print_step(step)
                failures = 0 if step.sustained else failures + 1
                # Climb on while the server keeps up (a p99 miss alone may be a noisy burst);
                # stop once it falls behind, loses or closes, or misses twice in a row.
                if step.overwhelmed or failures >= 2 or not server.alive():
                    break
                await asyncio.sleep(0.3)
        finally:
            await self.clients.call("close", None, timeout=60)
            if "trace" in self.args.server_gc:
                await self.heap_report(server)

    async def heap_report(self, server: Server) -> None:
        """With --server-gc trace: the server's tracked objects once the ladder's clients left."""
        import httpx

        await asyncio.sleep(1.0)  # let the server finish tearing the connections down
        try:
            async with httpx.AsyncClient(timeout=30) as client:
                got = (await client.get(f"http://127.0.0.1:{server.port}/_fanout/heap")).json()
        except (httpx.HTTPError, ValueError) as exc:
            print(f"      heap of {server.mode}: unavailable ({exc})")
            return
        before = self.heap.get(server.mode)
        self.heap[server.mode] = got["objects"]
        delta = f" ({got['objects'] - before:+,} since the last ladder)" if before else ""
        top = ", ".join(f"{name} {count:,}" for name, count in got["top"][:8])
        print(
            f"      heap of {server.mode} after the clients left: {got['objects']:,} objects{delta}"
        )
        print(f"        most common: {top}")

    async def warm_up(self, symbols: list[str], subscribers: int) -> str | None:
        """Publish until every subscriber has received an event (GraphQL has no subscribe ack);
        None when they all have, else what went wrong."""
        deadline = time.monotonic() + WARM_TIMEOUT
        ready = closed = 0
        errors: list[Any] = []
        while time.monotonic() < deadline:
            await self.publish(symbols)
            await asyncio.sleep(0.1)
            warm = await self.clients.call("warm", None)
            ready = sum(w["warm"] for w in warm)
            closed = sum(w["closed"] for w in warm)
            errors = [e for w in warm for e in w["errors"]]
            if ready >= subscribers:
                await asyncio.sleep(0.2)
                return None
            if closed:
                break
        return (
            f"{ready} of {subscribers} subscribers received events within {WARM_TIMEOUT:.0f} s, "
            f"{closed} closed; first errors: {errors[:3]}"
        )

    async def run_step(
        self,
        scenario: Scenario,
        transport: Transport,
        symbols: list[str],
        topics: list[str],
        offered: int,
    ) -> Step:
        server = self.servers[transport.server]
        rate = offered / scenario.subscribers  # events/s per topic
        step = Step(scenario, transport, offered, rate)
        start = await self.positions(symbols)
        await self.clients.call("start", {"start": start})
        seconds = max(self.duration, MIN_EVENTS_PER_STEP / rate)
        label = f"{scenario.key}-{transport.key}-{offered}"
        profile = self.profiler.start(server.proc.pid, label, seconds)
        cpu_server0 = server.cpu()
        cpu_self0 = time.process_time()
        sys0 = psutil.cpu_times()
        wall0 = time.perf_counter()
        pub_t0 = time.time()
        step.published, step.publish_seconds, lag, last = await self.publish_window(
            symbols, rate, seconds
        )
        step.publisher_lag_ms = lag * 1e3
        end = {topic: last.get(topic, start[topic]) for topic in topics}
        stops = await self.clients.call("stop", {"end": end, "drain": self.drain})
        step.wall = time.perf_counter() - wall0
        step.server_cpu = server.cpu() - cpu_server0
        step.publisher_cpu = time.process_time() - cpu_self0
        sys1 = psutil.cpu_times()
        busy0 = sum(sys0) - sys0.idle - getattr(sys0, "iowait", 0.0)
        busy1 = sum(sys1) - sys1.idle - getattr(sys1, "iowait", 0.0)
        step.system_busy = busy1 - busy0
        step.profile = Profiler.finish(profile)
        for s in stops:
            step.expected += s["expected"]
            step.received += s["received"]
            step.lost += s["lost"]
            step.dupes += s["dupes"]
            step.gaps += s["gaps"]
            step.closed += s["closed"]
            step.lagging += s["lagging"]
            step.errors.extend(s["errors"])
            step.clients_cpu.append(s["cpu"])
        last_recv = max((s["last_recv"] for s in stops), default=0.0)
        if step.received and last_recv > pub_t0:
            step.delivered_per_s = step.received / (last_recv - pub_t0)
        latencies = np.concatenate([np.frombuffer(s["latencies"], dtype=np.float64) for s in stops])
        if latencies.size:
            p50, p99 = np.percentile(latencies, [50, 99])
            step.p50_ms, step.p99_ms, step.max_ms = p50 * 1e3, p99 * 1e3, latencies.max() * 1e3
        return step

    async def run(self) -> None:
        await self.setup()
        self.background = await asyncio.to_thread(background_load)
        print_header(self)
        for key in self.args.scenarios:
            scenario = SCENARIOS[key]
            print(f"\n== {scenario.title} ==")
            print(STEP_HEADER)
            for transport in TRANSPORTS:
                if transport.key not in self.args.transports:
                    continue
                if not self.servers[transport.server].alive():
                    print(
                        f"  {transport.server} server died:\n{self.servers[transport.server].log_tail()}"
                    )
                    continue
                await self.run_ladder(scenario, transport)
        print_summary(self)


# -- printing ----------------------------------------------------------------------------

STEP_HEADER = (
    f"  {'transport':<25} {'offered/s':>9} {'ev/s':>6} {'delivered/s':>11} {'p50 ms':>7} "
    f"{'p99 ms':>7} {'max ms':>7} {'loss':>6} {'srv µs/fr':>9} {'srv %':>6} {'load %':>7} "
    f"{'pub %':>6} {'other %':>7}  verdict"
)


def pct(cpu: float, wall: float) -> float:
    return cpu / wall * 100 if wall > 0 else float("nan")


def print_step(step: Step) -> None:
    load = sum(step.clients_cpu)
    verdict = "ok" if step.sustained else f"NOT SUSTAINED ({step.why_not()})"
    print(
        f"  {step.transport.title:<25} {step.offered_per_s:>9,.0f} {step.rate:>6.1f} "
        f"{step.delivered_per_s:>11,.0f} {step.p50_ms:>7.1f} {step.p99_ms:>7.1f} {step.max_ms:>7.1f} "
        f"{step.lost:>6} {step.us_per_frame:>9.1f} {pct(step.server_cpu, step.wall):>6.0f} "
        f"{pct(load, step.wall):>7.0f} {pct(step.publisher_cpu, step.wall):>6.0f} "
        f"{max(0.0, pct(step.other_cpu, step.wall)):>7.0f}  {verdict}",
        flush=True,
    )
    if step.errors and not step.sustained:
        print(f"      first errors: {step.errors[:2]}")
    if step.publisher_lag_ms > 50:
        print(f"      publisher fell {step.publisher_lag_ms:.0f} ms behind its schedule")
    if step.lagging:
        print(f"      {step.lagging} subscribers still behind when the drain ended")
    for name, share in step.profile[:8]:
        print(f"      {share * 100:5.1f}%  {name}")


def background_load(seconds: float = 1.0) -> str:
    """The machine's CPU use before the run, and the busiest processes (noisy neighbours)."""
    procs = list(psutil.process_iter(["name", "cmdline"]))
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.cpu_percent(None)
    total = psutil.cpu_percent(seconds) * (psutil.cpu_count() or 1)
    busy = []
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            share = proc.cpu_percent(None)
            if share >= 5:
                busy.append((share, proc.info["name"] or "?"))
    busy.sort(reverse=True)
    names = ", ".join(f"{name} {share:.0f}%" for share, name in busy[:4])
    return f"{total:.0f}% of one core" + (f" ({names})" if names else "")


def print_header(bench: Bench) -> None:
    from importlib.metadata import version

    import uvicorn

    cores = psutil.cpu_count()
    print("WebSocket fan-out: hub (/ws, GraphQL) vs stock strawberry and raw serialize-once")
    print(
        f"  machine: {cores} cores; python {sys.version.split()[0]}; uvicorn {uvicorn.__version__}; "
        f"strawberry {version('strawberry-graphql')}; graphql-core {version('graphql-core')}; "
        f"websockets {version('websockets')}"
    )
    print(
        f"  servers: one uvicorn process each (subprocesses, pids hub={bench.servers['hub'].proc.pid} "
        f"anchor={bench.servers['anchor'].proc.pid}), ws_per_message_deflate=False, loop=auto (uvloop), "
        "ws=auto (websockets sans-I/O)"
    )
    print(
        f"  load: {len(bench.clients.procs)} client processes ({bench.args.client} WebSocket client, "
        "no deflate offered), subscribers split evenly; publisher in this process "
        "(hub.marketdata.publish_tick -> Bus.publish_recent)"
    )
    print(
        f"  mode: {bench.mode}; {bench.duration:g} s of publishing per step (at least "
        f"{MIN_EVENTS_PER_STEP} events), drain <= {bench.drain:g} s; sustained = no loss, no close, "
        f"p99 < {P99_LIMIT_MS:.0f} ms, delivered >= {DELIVERY_FLOOR:.0%} of offered"
    )
    print(f"  machine load before the run (1 s): {bench.background}")
    if bench.args.server_gc:
        print(
            f"  garbage collector of both servers: {bench.args.server_gc!r} (trace only measures; "
            "freeze/threshold/off change it: an experiment, not the deployed default)"
        )
    if bench.args.nice:
        print(f"  niceness {bench.args.nice} for both servers, the clients and the publisher")
    print(
        "  columns: offered/delivered frames/s; ev/s = events/s per topic; loss = frames never "
        "delivered; srv µs/fr = server CPU per delivered frame; srv/load/pub/other % = CPU of the "
        "server / client processes / publisher / everything else on the machine (Redis, kernel, other "
        "processes), in % of one core "
        f"(the machine has {cores * 100}%)"
    )


def best(bench: Bench, scenario: str, transport: str) -> Step | None:
    steps = [
        s for s in bench.results
        if s.scenario.key == scenario and s.transport.key == transport and s.sustained
    ]  # fmt: skip
    return max(steps, key=lambda s: s.offered_nominal, default=None)


def first_failure(bench: Bench, scenario: str, transport: str) -> Step | None:
    """The first step above the best sustained one that was not sustained (None: none failed)."""
    top = best(bench, scenario, transport)
    floor = top.offered_nominal if top is not None else -1
    for s in bench.results:
        if (
            s.scenario.key == scenario
            and s.transport.key == transport
            and not s.sustained
            and s.offered_nominal > floor
        ):
            return s
    return None


def ratio_line(bench: Bench, scenario: str, ours_key: str, ref_key: str) -> str:
    title = {t.key: t.title for t in TRANSPORTS}
    ours, ref = best(bench, scenario, ours_key), best(bench, scenario, ref_key)
    head = f"{title[ours_key]} / {title[ref_key]}:"
    if ours is None:
        return f"{head:<48} {title[ours_key]} sustained no step"
    if ref is None:
        return (
            f"{head:<48} {ours.delivered_per_s:,.0f}/s vs none sustained "
            f"(the reference failed its lowest step: ratio unbounded)"
        )
    ours_topped = first_failure(bench, scenario, ours_key) is None
    ref_topped = first_failure(bench, scenario, ref_key) is None
    bound = {
        (True, False): " (at least: it topped its ladder)",
        (False, True): " (at most: the reference topped its ladder)",
        (True, True): " (both topped their ladders: undetermined)",
    }.get((ours_topped, ref_topped), "")
    cpu = ref.us_per_frame / ours.us_per_frame if ours.us_per_frame else float("nan")
    cpu_words = f"{cpu:.1f}x less" if cpu >= 1 else f"{1 / cpu:.1f}x more"
    return (
        f"{head:<48} {ours.delivered_per_s:>7,.0f} vs {ref.delivered_per_s:>7,.0f} frames/s = "
        f"{ours.delivered_per_s / ref.delivered_per_s:5.1f}x{bound}; "
        f"server CPU/frame {ours.us_per_frame:.1f} vs {ref.us_per_frame:.1f} µs ({cpu_words})"
    )


def print_summary(bench: Bench) -> None:
    print("\n== sustainable rate (highest step sustained) ==")
    print(
        f"  {'scenario':<28} {'transport':<25} {'frames/s':>9} {'p99 ms':>7} "
        f"{'srv µs/fr':>9} {'load/srv CPU':>12}  next step"
    )
    for key in bench.args.scenarios:
        scenario = SCENARIOS[key]
        for transport in TRANSPORTS:
            if transport.key not in bench.args.transports:
                continue
            step = best(bench, key, transport.key)
            failure = first_failure(bench, key, transport.key)
            nxt = (
                "top of ladder"
                if failure is None
                else f"{failure.offered_nominal:,}/s: {failure.why_not()}"
            )
            if step is None:
                print(
                    f"  {scenario.title:<28} {transport.title:<25} {'none':>9} {'':>7} {'':>9} {'':>12}  {nxt}"
                )
                continue
            ratio = sum(step.clients_cpu) / step.server_cpu if step.server_cpu else float("nan")
            print(
                f"  {scenario.title:<28} {transport.title:<25} {step.delivered_per_s:>9,.0f} "
                f"{step.p99_ms:>7.1f} {step.us_per_frame:>9.1f} {ratio:>12.2f}  {nxt}"
            )
    print("\n== ratios (sustainable delivered frames/s; server CPU per delivered frame) ==")
    pairs = [("hub-gql", "anchor"), ("hub-ws", "anchor"), ("hub-ws", "raw"), ("hub-gql", "raw")]
    for key in bench.args.scenarios:
        scenario = SCENARIOS[key]
        for ours_key, ref_key in pairs:
            if ours_key not in bench.args.transports or ref_key not in bench.args.transports:
                continue
            print(f"  {scenario.title:<28} {ratio_line(bench, key, ours_key, ref_key)}")
    print("\n== targets (goals, not assertions) ==")
    selected = set(bench.args.transports)
    if "100" in bench.args.scenarios and {"hub-gql", "anchor"} <= selected:
        hub100, anchor100 = best(bench, "100", "hub-gql"), best(bench, "100", "anchor")
        if hub100 and anchor100:
            ratio = hub100.delivered_per_s / anchor100.delivered_per_s
            verdict = "met" if ratio >= 10 else "NOT met"
            if ratio < 10 and first_failure(bench, "100", "hub-gql") is None:
                verdict = "undetermined (the hub topped its ladder)"
            print(f"  GraphQL >= 10x the anchor at 100 subscribers: {ratio:.1f}x -> {verdict}")
        else:
            print(
                "  GraphQL >= 10x the anchor at 100 subscribers: undetermined (a side sustained nothing)"
            )
    if "1000" in bench.args.scenarios and "hub-gql" in selected:
        step = best(bench, "1000", "hub-gql")
        ok = step is not None and step.delivered_per_s >= 10_000
        got = (
            f"{step.delivered_per_s:,.0f}/s, p99 {step.p99_ms:.1f} ms"
            if step
            else "nothing sustained"
        )
        print(
            "  GraphQL at 1,000 subscribers >= 10k frames/s, p99 < 100 ms, no loss: "
            f"{got} -> {'met' if ok else 'NOT met'}"
        )
        at_10k = [
            s for s in bench.results
            if s.scenario.key == "1000" and s.transport.key == "hub-gql"
            and s.offered_nominal == 10_000
        ]  # fmt: skip
        if at_10k:
            s10 = at_10k[-1]
            ok10 = s10.sustained and s10.p99_ms < GQL_P99_GOAL_MS
            print(
                f"  GraphQL at 1,000 subscribers, p99 < {GQL_P99_GOAL_MS:.0f} ms at 10,000 "
                f"frames/s: p99 {s10.p99_ms:.1f} ms ({s10.us_per_frame:.1f} µs/frame) -> "
                f"{'met' if ok10 else 'NOT met'}"
            )
    if {"hub-ws", "raw"} <= selected:
        for key in bench.args.scenarios:
            ours, raw = best(bench, key, "hub-ws"), best(bench, key, "raw")
            if ours is None or raw is None:
                verdict = "undetermined (a side sustained nothing)"
            else:
                verdict = (
                    "met" if ours.delivered_per_s >= 0.95 * raw.delivered_per_s else "NOT met"
                ) + f" ({ours.delivered_per_s:,.0f} vs {raw.delivered_per_s:,.0f} frames/s)"
            print(
                f"  /ws at least as fast as the raw serialize-once server, {SCENARIOS[key].title}: {verdict}"
            )
    steps = [s for s in bench.results if s.wall > 0]
    if steps:
        load = sum(sum(s.clients_cpu) for s in steps)
        server = sum(s.server_cpu for s in steps)
        publisher = sum(s.publisher_cpu for s in steps)
        wall = sum(s.wall for s in steps)
        print(
            f"\n  CPU over all measured steps ({wall:.0f} s): servers {pct(server, wall):.0f}%, load "
            f"generator ({len(bench.clients.procs)} processes) {pct(load, wall):.0f}%, publisher "
            f"{pct(publisher, wall):.0f}% of one core; the load generator used "
            f"{load / server if server else float('nan'):.2f} s of CPU per server CPU second"
        )
    print("\n  connect + subscribe time per ladder: " + ", ".join(
        f"{s}/{t} {v:.1f}s" for (s, t), v in bench.opened.items()
    ))  # fmt: skip


# -- main --------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a one-minute run")
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "TRADEHUB_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("TRADEHUB_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"),
    )
    parser.add_argument("--clients", type=int, default=2, help="load-generator processes")
    parser.add_argument("--client", choices=["raw", "websockets"], default="raw")
    parser.add_argument(
        "--duration", type=float, default=None, help="seconds of publishing per step"
    )
    parser.add_argument("--scenarios", default=None, help="comma-separated: 100,1000,100x10")
    parser.add_argument("--profile", default=None, help="py-spy the servers into this folder")
    parser.add_argument(
        "--server-gc",
        default="",
        help="an experiment on both servers' garbage collector: freeze, threshold, off, and/or "
        "trace (time every collection, printed at the end), e.g. freeze+threshold+trace "
        "(default: Python's defaults, as deployed)",
    )
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="scheduling niceness of the servers, clients and publisher (e.g. -10 on a busy "
        "shared machine; negative values need root)",
    )
    parser.add_argument(
        "--transports",
        default="hub-ws,raw,hub-gql,anchor",
        help="comma-separated: hub-ws,raw,hub-gql,anchor",
    )
    parser.add_argument(
        "--ladder",
        default=None,
        help="offered frames/s steps for every transport, e.g. 10000,20000",
    )
    args = parser.parse_args(argv)
    default = "100,1000" if args.quick else "100,1000,100x10"
    args.scenarios = [s.strip() for s in (args.scenarios or default).split(",") if s.strip()]
    args.transports = [t.strip() for t in args.transports.split(",") if t.strip()]
    if bad := [t for t in args.transports if t not in {t.key for t in TRANSPORTS}]:
        parser.error(f"unknown transports {bad}")
    args.ladder = [int(float(x)) for x in args.ladder.split(",")] if args.ladder else None
    unknown = [s for s in args.scenarios if s not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenarios {unknown}; choose from {list(SCENARIOS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    clients = Clients(args.clients)  # fork before any event loop or thread exists
    bench = Bench(args, clients)
    started = time.perf_counter()

    async def go() -> None:
        try:
            await bench.run()
        finally:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(clients.stop)
            await bench.teardown()

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    try:
        import uvloop

        uvloop.run(go())
    except KeyboardInterrupt:
        clients.stop()
        if not bench.torn_down:
            bench.redis = None  # bound to the interrupted loop
            asyncio.run(bench.teardown())
        print("\ninterrupted; cleaned up", file=sys.stderr)
        return 130
    finally:
        clients.stop()
    print(f"\n  total run time {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
