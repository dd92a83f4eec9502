"""``/healthz`` latency while the hub is under load: the heaviest GraphQL query it allows, 200
concurrent GraphQL clients, and 1,000 idle half-open connections, each beside its target.

    python bench/overload.py [--seconds 5] [--bars 100000]

Needs Postgres and Redis: ``TRADEHUB_TEST_DATABASE_URL`` / ``TRADEHUB_TEST_REDIS_URL`` (an admin
database the bench creates its own database from, dropped at the end), defaulting to the local
services. The hub and one worker run as separate processes, as in production, with the default
settings. This process makes the load; ``/healthz`` is probed from a process of its own, with a
fresh connection per probe as a load balancer's health check does, so the probe's clock is not
held up by the load generator's event loop.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _hub import running_hub, synthetic_dataset

from hub.settings import Settings

SYMBOL = "OVERLOAD/USD"
CANDLES_LIMIT = 100_000  # the most rows one candles field may ask for (hub.datasets.service)
PROBE_INTERVAL = 0.01
HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
HALF_OPEN = b"GET /healthz HTTP/1.1\r\nHost: bench\r\nX-Held: "
ME = "query Me { me { username } }"


# -- the probe (its own process) ------------------------------------------------------------


def probe_forever(port: int, seconds: float) -> None:
    """Probe ``/healthz`` every PROBE_INTERVAL for ``seconds``; print latencies (ms) as JSON."""
    latencies: list[float] = []
    failures: list[str] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(HEALTHZ)
                answer = b""
                while chunk := sock.recv(4096):
                    answer += chunk
            if answer.startswith(b"HTTP/1.1 200"):
                latencies.append((time.perf_counter() - started) * 1000)
            else:
                failures.append(answer[:40].decode("latin-1"))
        except OSError as exc:
            failures.append(repr(exc))
        time.sleep(max(0.0, PROBE_INTERVAL - (time.perf_counter() - started)))
    print(orjson.dumps({"latencies": latencies, "failures": failures}).decode())


@dataclass
class Probe:
    latencies: list[float]
    failures: list[str]

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def probe(port: int, seconds: float) -> Probe:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--probe",
        str(port),
        "--seconds",
        str(seconds),
        stdout=subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    result = orjson.loads(out)
    return Probe(result["latencies"], result["failures"])


# -- the loads ------------------------------------------------------------------------------


@dataclass
class Load:
    """A load runs until ``stop`` is set, sets ``ready`` once it is at full strength, and
    leaves what happened in ``notes``."""

    stop: asyncio.Event = field(default_factory=asyncio.Event)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    notes: list[str] = field(default_factory=list)


def heaviest_query(budget: int) -> tuple[str, int]:
    """Aliases of ``candles(limit: 100000)`` whose limits add up to the row budget."""
    limits = [CANDLES_LIMIT] * (budget // CANDLES_LIMIT)
    if budget % CANDLES_LIMIT:
        limits.append(budget % CANDLES_LIMIT)
    fields = " ".join(
        f'c{i}: candles(symbol: $symbol, timeframe: "1h", limit: {limit}) '
        "{ ts open high low close volume }"
        for i, limit in enumerate(limits)
    )
    return f"query Heaviest($symbol: String!) {{ {fields} }}", sum(limits)


async def heavy_query(base: str, token: str, budget: int, load: Load) -> None:
    """The heaviest allowed query, one at a time, again and again."""
    document, rows = heaviest_query(budget)
    outcomes: list[tuple[float, str]] = []
    async with httpx.AsyncClient(
        base_url=base, timeout=600, headers={"Authorization": f"Bearer {token}"}
    ) as http:
        load.ready.set()
        while not load.stop.is_set():
            started = time.perf_counter()
            response = await http.post(
                "/graphql", json={"query": document, "variables": {"symbol": SYMBOL}}
            )
            took = time.perf_counter() - started
            outcomes.append((took, describe_answer(response)))
    kinds = sorted({what for _, what in outcomes})
    load.notes.append(
        f"{len(document.split('candles(')) - 1} aliases of candles(limit <= {CANDLES_LIMIT:,}), "
        f"{rows:,} rows asked; {len(outcomes)} run(s) while probed, "
        f"taking {', '.join(f'{t:.2f}' for t, _ in outcomes)} s"
    )
    load.notes.extend(f"answer: {kind}" for kind in kinds)


def describe_answer(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}, not JSON: {response.text[:120]!r}"
    errors = body.get("errors") or []
    if errors:
        first = errors[0]
        code = first.get("extensions", {}).get("code")
        return f"HTTP {response.status_code}, error {code}: {first.get('message', '')[:160]}"
    data = body.get("data") or {}
    returned = sum(len(v) for v in data.values() if isinstance(v, list))
    return f"HTTP {response.status_code}, {returned:,} rows returned"


async def graphql_clients(
    base: str, tokens: list[str], clients: int, load: Load, every: float = 0.0
) -> None:
    """``clients`` authenticated GraphQL clients, each on its own connection: back to back, or
    one request ``every`` seconds each."""
    done = 0
    errors: list[str] = []
    started = asyncio.Barrier(clients + 1)

    async def client(token: str) -> None:
        nonlocal done
        async with httpx.AsyncClient(
            base_url=base, timeout=60, headers={"Authorization": f"Bearer {token}"}
        ) as http:
            first = True
            if every:  # spread over the period, not all at once each second
                await asyncio.sleep(random.uniform(0, every))
            while first or not load.stop.is_set():
                sent = time.perf_counter()
                response = await http.post("/graphql", json={"query": ME})
                if response.status_code != 200 or "errors" in response.json():
                    errors.append(describe_answer(response))
                done += 1
                if first:
                    first = False
                    await started.wait()
                elif every:
                    await asyncio.sleep(max(0.0, every - (time.perf_counter() - sent)))

    tasks = [asyncio.create_task(client(tokens[i % len(tokens)])) for i in range(clients)]
    await started.wait()
    load.ready.set()
    began = time.perf_counter()
    await asyncio.gather(*tasks)
    load.notes.append(
        f"{clients} clients: {done:,} requests, {done / (time.perf_counter() - began):,.0f}/s, "
        f"{len(errors)} errors{(': ' + errors[0]) if errors else ''}"
    )


async def half_open(port: int, connections: int, header_timeout: float, load: Load) -> None:
    """Hold ``connections`` connections that each sent half a request header, opening a new
    one whenever the server closes one, as a slowloris attacker does."""
    opened = asyncio.Barrier(connections + 1)
    closed_after: list[float] = []
    refused = 0

    async def holder() -> None:
        nonlocal refused
        first = True
        while not load.stop.is_set():
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(HALF_OPEN)
            since = time.perf_counter()
            if first:
                first = False
                await opened.wait()
            eof = asyncio.create_task(reader.read())
            stopped = asyncio.create_task(load.stop.wait())
            await asyncio.wait({eof, stopped}, return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            if eof.done():
                took = time.perf_counter() - since
                if took < header_timeout / 2:
                    refused += 1
                else:
                    closed_after.append(took)
            else:
                eof.cancel()
            writer.close()

    tasks = [asyncio.create_task(holder()) for _ in range(connections)]
    await opened.wait()
    load.ready.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    closes = (
        f"the server closed {len(closed_after):,} at the header deadline, after "
        f"{statistics.median(closed_after):.1f} s (median; header_timeout {header_timeout:g} s)"
        if closed_after
        else f"the server closed none (header_timeout {header_timeout:g} s)"
    )
    load.notes.append(
        f"{connections:,} held, reopened as closed; {closes}; {refused} closed early (refused)"
    )


def default_setting(name: str, fallback: float) -> Any:
    """A setting's default (the hub runs with the defaults), or ``fallback`` before it exists."""
    field = Settings.model_fields.get(name)
    return fallback if field is None else field.default


async def under(
    load_fn: Callable[[Load], Coroutine[Any, Any, None]], port: int, seconds: float
) -> tuple[Probe, list[str]]:
    """``/healthz`` probed for ``seconds`` once the load is at full strength."""
    load = Load()
    task = asyncio.create_task(load_fn(load))
    async with asyncio.timeout(120):
        ready = asyncio.create_task(load.ready.wait())
        await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()  # the load failed before it was ready: say why
    result = await probe(port, seconds)
    load.stop.set()
    await task
    return result, load.notes


# -- the run --------------------------------------------------------------------------------


async def main(seconds: float, bars: int) -> None:
    budget = int(default_setting("graphql_max_rows", 250_000))
    header_timeout = float(default_setting("header_timeout", 10.0))
    rows: list[tuple[str, Probe, str, list[str]]] = []
    async with running_hub(users_count=20) as hub:
        port, base, admin_token, tokens = hub.port, hub.base, hub.admin_token, hub.tokens
        async with httpx.AsyncClient(
            base_url=base, timeout=120, headers={"Authorization": f"Bearer {admin_token}"}
        ) as http:
            took = await synthetic_dataset(http, SYMBOL, bars)
            print(f"dataset: {bars:,} bars of {SYMBOL} in {took:.1f} s")
            over, _ = heaviest_query(budget + 1)
            t0 = time.perf_counter()
            refused = await http.post(
                "/graphql", json={"query": over, "variables": {"symbol": SYMBOL}}
            )
            print(
                f"one row over the budget ({budget + 1:,} rows): {describe_answer(refused)}, "
                f"in {(time.perf_counter() - t0) * 1000:.0f} ms"
            )

        baseline = await probe(port, seconds)
        rows.append(("baseline, no load", baseline, "-", []))
        heavy, notes = await under(
            lambda load: heavy_query(base, admin_token, budget, load), port, seconds
        )
        rows.append(("(a) the heaviest allowed GraphQL query", heavy, "50", notes))
        many, notes = await under(
            lambda load: graphql_clients(base, tokens, 200, load), port, seconds
        )
        rows.append(("(b) 200 concurrent GraphQL clients", many, "250", notes))
        paced, notes = await under(
            lambda load: graphql_clients(base, tokens, 200, load, every=1.0), port, seconds
        )
        rows.append(("(b') the same, 1 request/s each", paced, "250", notes))
        # Long enough to see the server close the first round at the header deadline.
        held, notes = await under(
            lambda load: half_open(port, 1000, header_timeout, load),
            port,
            max(seconds, header_timeout + 3),
        )
        rows.append(("(c) 1,000 idle half-open connections", held, "50", notes))

    print(
        f"\n/healthz, a fresh connection per probe every {PROBE_INTERVAL * 1000:.0f} ms "
        f"({os.cpu_count()} cores shared by the hub, the worker, the load and the probe):"
    )
    print(f"{'scenario':<42} {'probes':>7} {'p50 ms':>8} {'p99 ms':>8}  target p99")
    for label, result, target, notes in rows:
        verdict = ""
        if target != "-":
            verdict = "met" if result.percentile(0.99) < float(target) else "MISSED"
        print(
            f"{label:<42} {len(result.latencies):>7} {result.percentile(0.5):>8.1f} "
            f"{result.percentile(0.99):>8.1f}  {'< ' + target + ' ms ' if target != '-' else ''}"
            f"{verdict}"
        )
        if result.failures:
            print(f"    {len(result.failures)} probes failed: {result.failures[0]}")
        for note in notes:
            print(f"    {note}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="probing time per scenario")
    parser.add_argument("--bars", type=int, default=100_000)
    parser.add_argument("--probe", type=int, help=argparse.SUPPRESS)  # the probe process's port
    args = parser.parse_args()
    if args.probe:
        probe_forever(args.probe, args.seconds)
    else:
        asyncio.run(main(args.seconds, args.bars))
