"""``tradehub serve --workers 2``: one ``/metrics`` for all its processes, whichever answers."""

from __future__ import annotations

import http.client
import json
import signal
import time
from collections import Counter
from pathlib import Path

import psutil
from websockets.sync.client import connect

from hub.metrics import MULTIPROC_ENV
from hub.settings import Settings
from tests.conftest import Account, free_port
from tests.helpers import hub_env
from tests.test_cli_signals import BackgroundJob, answers
from tests.test_prometheus import sample


def uvicorn_workers(serve_pid: int, port: int) -> list[int]:
    """The processes serving ``port`` under ``serve`` (its other children do not listen)."""
    return [
        child.pid
        for child in psutil.Process(serve_pid).children()
        if any(c.laddr.port == port for c in child.net_connections("tcp") if not c.raddr)
    ]


def get(port: int, path: str, workers: list[int]) -> tuple[int, str]:
    """GET ``path`` on a new connection; which worker answered, and the body."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read().decode()
        assert response.status == 200, body
        # The connection is kept alive: the worker holding its other end answered.
        client = conn.sock.getsockname()
        for pid in workers:
            for c in psutil.Process(pid).net_connections("tcp"):
                if c.raddr and (c.raddr.ip, c.raddr.port) == client:
                    return pid, body
    finally:
        conn.close()
    raise AssertionError(f"no worker of {workers} holds the connection from {client}")


def test_metrics_add_up_the_requests_of_every_worker(
    settings: Settings, alice: Account, tmp_path: Path
) -> None:
    port = free_port()
    job = BackgroundJob(
        tmp_path / "serve.log", hub_env(settings), "serve", "--port", str(port), "--workers", "2"
    )
    try:
        job.wait_until(
            lambda: (
                answers(f"http://127.0.0.1:{port}/readyz")
                and len(uvicorn_workers(job.pid, port)) == 2
            )
        )
        workers = uvicorn_workers(job.pid, port)
        metrics_dir = Path(psutil.Process(workers[0]).environ()[MULTIPROC_ENV])
        assert metrics_dir.is_dir()

        # New connections until each worker has answered a few requests.
        answered: Counter[int] = Counter()
        deadline = time.monotonic() + 30
        while min(answered[pid] for pid in workers) < 3:
            assert time.monotonic() < deadline, f"not every worker answered: {answered}"
            answered[get(port, "/healthz", workers)[0]] += 1

        # One WebSocket open on one of them.
        with connect(f"ws://127.0.0.1:{port}/ws") as ws:
            ws.send(json.dumps({"op": "auth", "token": alice.token}))
            assert json.loads(ws.recv(timeout=10))["op"] == "authenticated"
            # Whichever worker answers /metrics reports every worker's requests and sockets.
            scraped_by: set[int] = set()
            while scraped_by != set(workers):
                assert time.monotonic() < deadline, f"not every worker scraped: {scraped_by}"
                pid, exposition = get(port, "/metrics", workers)
                scraped_by.add(pid)
                healthz = {"method": "GET", "route": "/healthz", "status": "200"}
                total = sample(exposition, "tradehub_http_requests_total", **healthz)
                assert total == answered.total(), (pid, answered)
                assert sample(exposition, "tradehub_websockets_open", route="/ws") == 1

        code, _ = job.stop(signal.SIGINT)
    finally:
        job.kill()
    assert code == 0, job.output()
    assert not metrics_dir.exists()
