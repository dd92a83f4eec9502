"""The ``tradehub`` command as a user runs it: a real subprocess, real services."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import httpx
import psutil
import pytest

from hub.embedded import RunningServices
from tests.conftest import Services, free_port

TOKEN = re.compile(r"^th_[a-z0-9]{12}_[A-Za-z0-9_-]{32,64}$")


def tradehub(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hub", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEHUB_")}
    env.update(extra)
    return env


def test_unknown_command_or_option_exits_2() -> None:
    for args in (["frobnicate"], ["--bogus", "up"], ["up", "--nope"], []):
        result = tradehub(*args, env=clean_env())
        assert result.returncode == 2, args
        assert "usage:" in result.stderr


def test_unwritable_data_folder_is_one_clear_line(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = tradehub(
        "--data-dir", str(blocker / "data"), "up", "--port", str(free_port()), env=clean_env()
    )
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert "is not writable" in result.stderr and str(blocker) in result.stderr


def test_port_in_use_is_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = tradehub("--data-dir", str(tmp_path), "up", "--port", str(port), env=clean_env())
    assert result.returncode == 1
    assert f"port {port} on 127.0.0.1 is already in use" in result.stderr
    assert result.stderr.strip().count("\n") == 0


def test_unreachable_external_url_is_one_clear_line(tmp_path: Path, services: Services) -> None:
    dead = f"postgresql://postgres:hunter2@127.0.0.1:{free_port()}/x"
    env = clean_env(TRADEHUB_DATABASE_URL=dead, TRADEHUB_REDIS_URL=services.redis_url)
    result = tradehub("--data-dir", str(tmp_path), "up", "--port", str(free_port()), env=env)
    assert result.returncode == 1
    assert "cannot reach Postgres at postgresql://postgres:***@127.0.0.1" in result.stderr
    assert "hunter2" not in result.stderr
    assert not (tmp_path / "postgres").exists()


def test_token_create_prints_only_the_token(services: Services, tmp_path: Path) -> None:
    env = clean_env(
        TRADEHUB_DATABASE_URL=services.database_url,
        TRADEHUB_REDIS_URL=services.redis_url,
        TRADEHUB_DATA_DIR=str(tmp_path),
    )
    result = tradehub("token", "create", "--user", "cli-user", "--admin", env=env)
    assert result.returncode == 0, result.stderr
    assert TOKEN.match(result.stdout.strip())
    assert result.stdout.count("\n") == 1
    migrate = tradehub("migrate", env=env)
    assert migrate.returncode == 0
    assert "nothing to apply" in migrate.stderr


async def active_up_keys(database_url: str) -> list[str]:
    """The ids of the admin's unrevoked keys that ``tradehub up`` minted."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            """
            select k.key_id from api_keys k join users u using (user_id)
            where u.username = 'admin' and k.revoked_at is null and k.name like 'tradehub up%'
            """
        )
    finally:
        await conn.close()
    return [row["key_id"] for row in rows]


async def test_up_key_is_minted_once_and_an_earlier_versions_key_counts(
    services: Services,
) -> None:
    from hub.db import connect
    from hub.supervisor import UP_KEY_NAME
    from hub.users import repository, service

    conn, other = await connect(services.database_url), await connect(services.database_url)
    try:
        user = await service.ensure_user(conn, f"up-{secrets.token_hex(4)}")
        # Two starts at once leave one key, and only the one that minted it has the token.
        first, second = await asyncio.gather(
            service.ensure_named_api_key(conn, user, UP_KEY_NAME),
            service.ensure_named_api_key(other, user, UP_KEY_NAME),
        )
        assert first.key_id == second.key_id
        assert sorted([first.token is None, second.token is None]) == [False, True]
        # Once it is revoked, a key named by an earlier version ("tradehub up <time>") is the
        # one; a name that merely starts the same is not.
        await repository.revoke_api_key(conn, first.key_id, user.user_id)
        await service.create_api_key(conn, user, "tradehub upgrade")
        earlier = await service.create_api_key(conn, user, "tradehub up 2026-01-02 03:04:05Z")
        found = await service.ensure_named_api_key(conn, user, UP_KEY_NAME)
        assert found.token is None and earlier.startswith(f"th_{found.key_id}_")
    finally:
        await conn.close()
        await other.close()


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        children: list[psutil.Process] = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    return children


class Up:
    """``tradehub up`` in a subprocess, with its banner parsed."""

    def __init__(self, data_dir: Path, port: int, *extra: str) -> None:
        self.port = port
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hub",
                "--data-dir",
                str(data_dir),
                "up",
                "--port",
                str(port),
                *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=clean_env(),
        )
        self.token = ""
        self.banner: list[str] = []

    def wait_banner(self, timeout: float = 120) -> None:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise AssertionError(
                    f"tradehub up exited early: {self.proc.stderr.read() if self.proc.stderr else ''}"
                )
            self.banner.append(line)
            if TOKEN.match(line.strip()):
                self.token = line.strip()
            if line.startswith("Press Ctrl-C"):
                return
        raise AssertionError("no banner from tradehub up")

    def stop(self) -> tuple[float, str]:
        children = _descendants(self.proc.pid)
        started = time.monotonic()
        self.proc.send_signal(signal.SIGINT)
        _, err = self.proc.communicate(timeout=30)
        elapsed = time.monotonic() - started
        gone, alive = psutil.wait_procs(children, timeout=5)
        assert not alive, f"left behind: {[p.pid for p in alive]}"
        assert len(gone) >= 4  # hub, worker, valkey, postgres (and postgres's own children)
        return elapsed, err


def test_up_runs_everything_and_stops_everything(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    up = Up(data_dir, free_port())
    try:
        up.wait_banner()
        base = f"http://127.0.0.1:{up.port}"
        assert any("/graphql" in line for line in up.banner)
        assert httpx.get(f"{base}/readyz", timeout=10).json() == {"status": "ready"}
        query = {"query": "{ me { username role } health { status } }"}
        answer = httpx.post(
            f"{base}/graphql",
            json=query,
            headers={"Authorization": f"Bearer {up.token}"},
            timeout=10,
        )
        assert answer.json()["data"] == {
            "me": {"username": "admin", "role": "ADMIN"},
            "health": {"status": "HEALTHY"},
        }
        # Another command on the same folder reaches the same embedded Postgres.
        made = tradehub(
            "--data-dir", str(data_dir), "token", "create", "--user", "dora", env=clean_env()
        )
        assert made.returncode == 0, made.stderr
        dora = made.stdout.strip()
        me = httpx.get(f"{base}/api/me", headers={"Authorization": f"Bearer {dora}"}, timeout=10)
        assert me.json()["username"] == "dora"
        # A second `up` on the same folder refuses instead of fighting over it.
        twice = tradehub(
            "--data-dir", str(data_dir), "up", "--port", str(free_port()), env=clean_env()
        )
        assert twice.returncode == 1 and "already running" in twice.stderr
    finally:
        elapsed, err = up.stop()
    assert elapsed < 15
    assert up.token not in err and dora not in err
    assert not (data_dir / "services.json").exists()

    # A second start on the same folder finds every user and token of the first, mints no
    # second admin key (it names the first one, whose secret it cannot know, and says how to
    # mint another); --demo seeds a BTC/USD 1h dataset through a job.
    again = Up(data_dir, free_port(), "--demo")
    try:
        again.wait_banner()
        assert not again.token
        key_id = up.token.split("_")[1]
        assert any(f"th_{key_id}_..." in line for line in again.banner), again.banner
        assert any(
            f"tradehub --data-dir {data_dir} token create --user admin --admin" in line
            for line in again.banner
        ), again.banner
        running = RunningServices.read(data_dir)
        assert running is not None
        assert asyncio.run(active_up_keys(running.database_url)) == [key_id]
        me = httpx.get(
            f"http://127.0.0.1:{again.port}/api/me",
            headers={"Authorization": f"Bearer {dora}"},
            timeout=10,
        )
        assert me.json()["username"] == "dora"
        old_admin = httpx.get(
            f"http://127.0.0.1:{again.port}/api/me",
            headers={"Authorization": f"Bearer {up.token}"},
            timeout=10,
        )
        assert old_admin.status_code == 200
        demo_job = next(
            line.split("(job ")[1].rstrip(")\n") for line in again.banner if "demo" in line
        )
        deadline = time.monotonic() + 120
        status = ""
        while time.monotonic() < deadline and status not in ("COMPLETED", "FAILED"):
            status = httpx.get(
                f"http://127.0.0.1:{again.port}/api/jobs/{demo_job}",
                headers={"X-Stage1-Token": up.token},
                timeout=10,
            ).json()["status"]
            time.sleep(0.2)
        assert status == "COMPLETED"
        candles = httpx.post(
            f"http://127.0.0.1:{again.port}/graphql",
            json={
                "query": '{ candles(symbol: "BTC/USD", timeframe: "1h", limit: 2) { ts close } }'
            },
            headers={"Authorization": f"Bearer {up.token}"},
            timeout=10,
        ).json()["data"]["candles"]
        assert [c["ts"] for c in candles] == [
            "2020-01-01T00:00:00+00:00",
            "2020-01-01T01:00:00+00:00",
        ]
        # ... and trades it live within a minute: a paper run fed by a fast replay.
        deadline = time.monotonic() + 90
        trades: list[object] = []
        while time.monotonic() < deadline and not trades:
            runs = httpx.post(
                f"http://127.0.0.1:{again.port}/graphql",
                json={
                    "query": '{ executions(taskType: "live") { status mode '
                    "trades(limit: 5) { sequence direction } } }"
                },
                headers={"Authorization": f"Bearer {up.token}"},
                timeout=10,
            ).json()["data"]["executions"]
            trades = [t for r in runs for t in r["trades"]]
            time.sleep(0.5)
        assert runs and runs[0]["mode"] == "paper" and runs[0]["status"] == "RUNNING", runs
        assert trades, runs
    finally:
        again.stop()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_up_with_external_services_starts_nothing_embedded(
    services: Services, tmp_path: Path, signum: int
) -> None:
    port = free_port()
    env = clean_env(
        TRADEHUB_DATABASE_URL=services.database_url,
        TRADEHUB_REDIS_URL=services.redis_url,
        TRADEHUB_REDIS_PREFIX=services.redis_prefix + "up:",
    )
    # Started as a script's background job (`tradehub up &`), which runs with SIGINT ignored.
    command = [sys.executable, "-m", "hub", "--data-dir", str(tmp_path), "up", "--port", str(port)]
    shell = subprocess.Popen(
        ["bash", "-c", '"$@" & wait $!', "bash", *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert shell.stdout is not None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = shell.stdout.readline()
            assert line, shell.stderr.read() if shell.stderr else ""
            if line.startswith("Press Ctrl-C"):
                break
        names = {p.name() for p in _descendants(shell.pid)}
        assert not any("postgres" in n or "valkey" in n for n in names), names
        assert not (tmp_path / "postgres").exists() and not (tmp_path / "valkey").exists()
        assert httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=10).status_code == 200
    finally:
        children = _descendants(shell.pid)
        started = time.monotonic()
        up = next(child for child in children if child.ppid() == shell.pid)
        up.send_signal(signum)
        try:
            _, err = shell.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            for child in children:
                with contextlib.suppress(psutil.NoSuchProcess):
                    child.kill()
            shell.communicate(timeout=10)
            raise AssertionError(f"tradehub up ignored {signal.Signals(signum).name}") from None
        elapsed = time.monotonic() - started
        _, alive = psutil.wait_procs(children, timeout=5)
        assert not alive
    assert shell.returncode == 0, err
    assert elapsed < 15
