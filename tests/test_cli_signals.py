"""``tradehub serve`` and ``tradehub worker`` stop on SIGINT and SIGTERM however they were started.

A script's ``tradehub worker &`` runs with SIGINT ignored: a non-interactive shell starts its
background jobs that way, and Python then installs no KeyboardInterrupt handler. These tests start
each command exactly so, through bash. (``tradehub up`` is covered in ``test_cli.py``.)
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil
import pytest
from redis import Redis

from hub.keys import Keys
from hub.settings import Settings
from tests.conftest import free_port
from tests.helpers import hub_env

# The child's output goes to a log; bash prints only the child's pid, then waits for it and
# exits with its status.
BACKGROUND_JOB = 'log=$1; shift; "$@" >"$log" 2>&1 & echo $!; wait $!'
SIGNALS = pytest.mark.parametrize(
    "signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"]
)
STOP_WITHIN = 10.0


class BackgroundJob:
    """``python -m hub ARGS &`` in a bash script, as a deployment script would start it."""

    def __init__(self, log: Path, env: dict[str, str], *args: str) -> None:
        self.log = log
        command = [sys.executable, "-m", "hub", *args]
        self.shell = subprocess.Popen(
            ["bash", "-c", BACKGROUND_JOB, "bash", str(log), *command],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert self.shell.stdout is not None
        self.pid = int(self.shell.stdout.readline())

    def output(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-4000:]
        except FileNotFoundError:
            return ""

    def wait_until(self, ready: Callable[[], bool], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if self.shell.poll() is not None:
                raise AssertionError(f"exited with {self.shell.returncode}:\n{self.output()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"not ready within {timeout:.0f} s:\n{self.output()}")
            time.sleep(0.05)

    def stop(self, signum: int, timeout: float = 30) -> tuple[int, float]:
        """Send ``signum`` to the command; its exit status and how long it took to exit."""
        started = time.monotonic()
        os.kill(self.pid, signum)
        try:
            code = self.shell.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"still running {timeout:.0f} s after {signal.Signals(signum).name}:\n"
                f"{self.output()}"
            ) from None
        return code, time.monotonic() - started

    def kill(self) -> None:
        """Leave nothing behind, whatever the test did (a no-op after a clean stop)."""
        with contextlib.suppress(psutil.NoSuchProcess):
            job = psutil.Process(self.pid)
            for process in [*job.children(recursive=True), job]:
                with contextlib.suppress(psutil.NoSuchProcess):
                    process.kill()
        self.shell.wait(timeout=10)


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_a_scripts_background_jobs_start_with_sigint_ignored() -> None:
    """The premise of these tests: bash's ``cmd &`` hands ``cmd`` an ignored SIGINT."""
    probe = f'"{sys.executable}" -c "import signal; print(int(signal.getsignal(signal.SIGINT)))"'
    result = subprocess.run(
        ["bash", "-c", f"{probe} & wait"], check=True, capture_output=True, text=True, timeout=30
    )
    assert int(result.stdout) == signal.SIG_IGN


@SIGNALS
def test_serve_started_in_the_background_stops(
    settings: Settings, tmp_path: Path, signum: int
) -> None:
    port = free_port()
    job = BackgroundJob(tmp_path / "serve.log", hub_env(settings), "serve", "--port", str(port))
    try:
        job.wait_until(lambda: answers(f"http://127.0.0.1:{port}/readyz"))
        code, elapsed = job.stop(signum)
    finally:
        job.kill()
    assert code == 0, job.output()
    assert elapsed < STOP_WITHIN
    # uvicorn stopped in its own orderly way: the app's lifespan closed its pools.
    assert "Application shutdown complete" in job.output()


@SIGNALS
def test_worker_started_in_the_background_stops(
    settings: Settings, tmp_path: Path, signum: int
) -> None:
    assert settings.redis_url is not None
    # Its own queue, so that it takes no job of another test.
    prefix = f"{settings.redis_prefix}signals-{signum}:"
    health = Keys(prefix).worker_health
    redis = Redis.from_url(settings.redis_url)
    job = BackgroundJob(
        tmp_path / "worker.log", hub_env(settings, TRADEHUB_REDIS_PREFIX=prefix), "worker"
    )
    try:
        # arq records its health key once it is polling the queue.
        job.wait_until(lambda: bool(redis.exists(health)))
        code, elapsed = job.stop(signum)
        # arq stopped in its own orderly way: closing the worker deletes its health key.
        assert not redis.exists(health)
    finally:
        job.kill()
        redis.close()
    assert code == 0, job.output()
    assert elapsed < STOP_WITHIN


@pytest.mark.parametrize("command", ["serve", "worker"])
@SIGNALS
def test_a_command_still_starting_stops(
    settings: Settings, tmp_path: Path, command: str, signum: int
) -> None:
    """Stopped while it waits for a Postgres that accepts connections but never answers."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        silent.settimeout(30)
        host, port = silent.getsockname()
        env = hub_env(settings, TRADEHUB_DATABASE_URL=f"postgresql://postgres@{host}:{port}/x")
        args = ["serve", "--port", str(free_port())] if command == "serve" else [command]
        job = BackgroundJob(tmp_path / f"{command}.log", env, *args)
        try:
            connection, _ = silent.accept()  # the command is now waiting for Postgres's reply
            code, elapsed = job.stop(signum)
            connection.close()
        finally:
            job.kill()
    assert code == 0, job.output()
    # Without a handler it would wait out the 5 s connect timeout and fail.
    assert elapsed < 3, job.output()
