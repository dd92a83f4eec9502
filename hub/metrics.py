"""Prometheus metrics, held in a registry owned by the app (no module-level collectors).

``tradehub serve --workers N`` runs N interpreters, each with its own numbers, and a scrape of
``/metrics`` reaches one of them. So with ``PROMETHEUS_MULTIPROC_DIR`` set (``serve`` sets it
when N > 1) every value lives in a per-process file in that folder, and ``render`` sums the
files of every process: prometheus_client's multiprocess mode. prometheus_client chooses its
value storage once, when it is imported, so the variable must be set before the process starts.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from hub.embedded import pid_alive

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir() -> Path | None:
    """The folder of per-process metric files, when this process runs in multiprocess mode."""
    raw = os.environ.get(MULTIPROC_ENV)
    return Path(raw) if raw else None


def clear_multiprocess_dir(path: Path) -> None:
    """Create ``path`` and remove the metric files an earlier run left there.

    Left in place, they would make counters continue from the last run's totals and count the
    WebSockets of processes that no longer exist.
    """
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink(missing_ok=True)


@contextlib.contextmanager
def multiprocess_metrics(workers: int) -> Iterator[Path | None]:
    """The metric folder for a ``serve`` of ``workers`` processes, set in the environment.

    A folder the operator chose (``PROMETHEUS_MULTIPROC_DIR``) is emptied of metric files and
    kept; otherwise several workers get a fresh temporary folder, removed when ``serve`` ends,
    and a single worker needs none.
    """
    chosen = multiprocess_dir()
    if chosen is not None:
        clear_multiprocess_dir(chosen)
        yield chosen
        return
    if workers <= 1:
        yield None
        return
    path = Path(tempfile.mkdtemp(prefix="tradehub-metrics-"))
    os.environ[MULTIPROC_ENV] = str(path)
    try:
        yield path
    finally:
        os.environ.pop(MULTIPROC_ENV, None)
        shutil.rmtree(path, ignore_errors=True)


def forget_dead_processes(path: Path) -> None:
    """Drop the live gauges of processes that are gone, even those killed without an exit hook.

    Counters and histograms of dead processes stay: their requests happened.
    """
    for file in path.glob("gauge_live*_*.db"):
        pid = file.stem.rpartition("_")[2]
        if pid.isdigit() and not pid_alive(int(pid)):
            mark_process_dead(int(pid), str(path))  # type: ignore[no-untyped-call]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.multiprocess_dir = multiprocess_dir()
        self.requests = Counter(
            "tradehub_http_requests_total",
            "HTTP requests answered",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "tradehub_http_request_duration_seconds",
            "Time from request start to the end of the response",
            ["method", "route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.websockets = Gauge(
            "tradehub_websockets_open",
            "Open WebSocket connections",
            ["route"],
            registry=self.registry,
            # Across processes: the sum over the processes still running.
            multiprocess_mode="livesum",
        )
        self.ws_frames = Counter(
            "tradehub_ws_frames_sent_total",
            "WebSocket frames sent",
            ["route"],
            registry=self.registry,
        )
        self.slow_consumers = Counter(
            "tradehub_slow_consumers_total",
            "Subscribers cut off because they fell behind",
            registry=self.registry,
        )
        if self.multiprocess_dir is not None:
            atexit.register(mark_process_dead, os.getpid(), str(self.multiprocess_dir))

    def render(self) -> bytes:
        if self.multiprocess_dir is None:
            return generate_latest(self.registry)
        forget_dead_processes(self.multiprocess_dir)
        merged = CollectorRegistry()
        path = str(self.multiprocess_dir)
        MultiProcessCollector(merged, path=path)  # type: ignore[no-untyped-call]
        return generate_latest(merged)
