"""Metrics: per app in one process; summed over processes in multiprocess mode."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from hub.metrics import MULTIPROC_ENV, Metrics, multiprocess_metrics


def sample(exposition: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(exposition):
        for found in family.samples:
            if found.name == name and found.labels == labels:
                return float(found.value)
    return None


def test_each_app_in_a_process_counts_only_its_own_requests() -> None:
    first, second = Metrics(), Metrics()
    first.requests.labels("GET", "/x", "200").inc(3)
    second.requests.labels("GET", "/x", "200").inc()
    labels = {"method": "GET", "route": "/x", "status": "200"}
    assert sample(first.render().decode(), "tradehub_http_requests_total", **labels) == 3
    assert sample(second.render().decode(), "tradehub_http_requests_total", **labels) == 1


# Each runs in its own interpreter: prometheus_client picks multiprocess mode at import.
KILLED_WORKER = """
import os
from hub.metrics import Metrics
metrics = Metrics()
metrics.requests.labels("GET", "/x", "200").inc(3)
metrics.websockets.labels("/ws").inc(2)
os._exit(0)  # no exit hooks run, as for a worker killed with SIGKILL
"""
SCRAPED_WORKER = """
from hub.metrics import Metrics
metrics = Metrics()
metrics.requests.labels("GET", "/x", "200").inc(2)
metrics.websockets.labels("/ws").inc()
print(metrics.render().decode())
"""


def run_python(code: str, metrics_dir: Path) -> str:
    env = {**os.environ, MULTIPROC_ENV: str(metrics_dir)}
    result = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env
    )
    return result.stdout


def test_multiprocess_sums_counters_and_drops_dead_processes_websockets(tmp_path: Path) -> None:
    run_python(KILLED_WORKER, tmp_path)
    assert list(tmp_path.glob("gauge_livesum_*.db"))  # the dead worker's open sockets
    exposition = run_python(SCRAPED_WORKER, tmp_path)
    # Requests the dead process answered still count; its sockets are gone with it.
    requests = {"method": "GET", "route": "/x", "status": "200"}
    assert sample(exposition, "tradehub_http_requests_total", **requests) == 5
    assert sample(exposition, "tradehub_websockets_open", route="/ws") == 1
    assert list(tmp_path.glob("gauge_livesum_*.db")) == []  # the scraper exited cleanly too


def test_several_workers_get_a_fresh_folder_removed_afterwards(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(MULTIPROC_ENV, raising=False)
    with multiprocess_metrics(1) as single:
        assert single is None and MULTIPROC_ENV not in os.environ
    with multiprocess_metrics(2) as folder:
        assert folder is not None and folder.is_dir() and not list(folder.iterdir())
        assert os.environ[MULTIPROC_ENV] == str(folder)
        (folder / "counter_1.db").write_bytes(b"")
    assert not folder.exists() and MULTIPROC_ENV not in os.environ


def test_a_chosen_folder_is_emptied_of_the_last_runs_files_and_kept(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    chosen = tmp_path / "metrics"
    chosen.mkdir()
    (chosen / "counter_12345.db").write_bytes(b"stale")
    (chosen / "README").write_text("not ours")
    monkeypatch.setenv(MULTIPROC_ENV, str(chosen))
    with multiprocess_metrics(4) as folder:
        assert folder == chosen
        assert sorted(p.name for p in chosen.iterdir()) == ["README"]
    assert chosen.is_dir() and os.environ[MULTIPROC_ENV] == str(chosen)
