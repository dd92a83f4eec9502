"""``tradehub up``: embedded services, migrations, a hub and a worker, and an orderly stop.

Every child runs in its own session, so a Ctrl-C in the terminal reaches only this process, which
then stops the children in dependency order (hub and worker, then Valkey, then Postgres). Each
child also asks the kernel to terminate it if this process dies, so nothing outlives ``up``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING

from hub.cli import (
    CommandError,
    check_data_dir,
    check_port,
    check_postgres,
    check_redis,
)
from hub.embedded import (
    EmbeddedPostgres,
    EmbeddedValkey,
    RunningServices,
    _die_with_parent,
    stop_process,
)
from hub.settings import Settings

if TYPE_CHECKING:
    from hub.users.service import NamedKey

READY_TIMEOUT = 90.0
CHILD_STOP_TIMEOUT = 6.0
# The name of the admin key `tradehub up` mints (earlier versions added the start's time).
UP_KEY_NAME = "tradehub up"


def _spawn(command: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "hub", command],
        env=env,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=_die_with_parent,  # noqa: PLW1509
    )


def _wait_ready(url: str, hub: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if hub.poll() is not None:
            raise CommandError(f"the hub exited during start-up with code {hub.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise CommandError(f"the hub did not answer {url} within {timeout:.0f} s")


async def up_admin_key(url: str) -> NamedKey:
    """The admin's ``tradehub up`` key: minted on the first start, the same one afterwards.

    Minting one per start left a new valid admin credential behind at every start.
    """
    from hub.auth import Role
    from hub.db import connect, migrate_url
    from hub.users import service

    await migrate_url(url)
    conn = await connect(url)
    try:
        admin = await service.ensure_user(conn, "admin", role=Role.ADMIN)
        return await service.ensure_named_api_key(conn, admin, UP_KEY_NAME)
    finally:
        await conn.close()


def admin_key_lines(key: NamedKey, data_dir: Path) -> str:
    """The banner's lines about the admin key: the token when minted, afterwards its id (the
    secret is not stored) and the command that mints another."""
    if key.token is not None:
        return f"  admin API token (minted now, shown only this once):\n    {key.token}\n"
    minted = key.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"  admin key  th_{key.key_id}_... (minted {minted}, shown at that start only)\n"
        f"  new token  tradehub --data-dir {data_dir} token create --user admin --admin\n"
    )


def _browser_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "") else ("[::1]" if host == "::" else host)


def _start_demo_trading(settings: Settings, database_url: str, redis_url: str, job_id: str) -> None:
    """In the background, once the demo dataset exists: a live run and the replay feeding it."""
    from hub.demo import trade_demo

    def run() -> None:
        try:
            line = asyncio.run(trade_demo(settings, database_url, redis_url, job_id))
        except Exception as exc:  # noqa: BLE001 - the demo is a convenience; say why and go on
            line = f"the live demo could not start: {exc}"
        print(f"  demo       {line}", flush=True)

    threading.Thread(target=run, name="demo-trading", daemon=True).start()


def run_up(settings: Settings, *, demo: bool) -> int:
    data_dir = settings.data_dir
    check_data_dir(data_dir)
    existing = RunningServices.read(data_dir)
    if existing is not None:
        raise CommandError(
            f"tradehub up is already running on {data_dir} (pid {existing.up_pid}, {existing.hub_url})"
        )
    check_port(settings.host, settings.port)

    postgres: EmbeddedPostgres | None = None
    valkey: EmbeddedValkey | None = None
    children: list[subprocess.Popen[bytes]] = []
    exit_code = 0
    try:
        if settings.database_url:
            asyncio.run(check_postgres(settings.database_url))
            database_url = settings.database_url
        else:
            postgres = EmbeddedPostgres(data_dir / "postgres")
            postgres.start()
            database_url = postgres.url
        if settings.redis_url:
            asyncio.run(check_redis(settings.redis_url))
            redis_url = settings.redis_url
        else:
            valkey = EmbeddedValkey(data_dir / "valkey")
            valkey.start()
            redis_url = valkey.url

        admin_key = asyncio.run(up_admin_key(database_url))
        base = f"http://{_browser_host(settings.host)}:{settings.port}"
        RunningServices(os.getpid(), database_url, redis_url, base).write(data_dir)

        env = {
            **os.environ,
            "TRADEHUB_DATABASE_URL": database_url,
            "TRADEHUB_REDIS_URL": redis_url,
            "TRADEHUB_DATA_DIR": str(data_dir),
            "TRADEHUB_HOST": settings.host,
            "TRADEHUB_PORT": str(settings.port),
        }
        hub = _spawn("serve", env)
        children.append(hub)
        children.append(_spawn("worker", env))
        _wait_ready(f"{base}/readyz", hub, READY_TIMEOUT)

        if demo:
            from hub.demo import seed_demo

            job_id = asyncio.run(seed_demo(settings, database_url, redis_url))
            print(f"  demo       BTC/USD 1h synthetic dataset being generated (job {job_id})")
            _start_demo_trading(settings, database_url, redis_url, job_id)

        print(
            "\ntradehub is up\n"
            f"  dashboard  {base}/\n"
            f"  GraphiQL   {base}/graphql\n"
            f"  REST docs  {base}/docs\n"
            f"  health     {base}/api/health\n"
            f"  data       {data_dir}\n"
            f"{admin_key_lines(admin_key, data_dir)}"
            "Press Ctrl-C to stop.\n",
            flush=True,
        )
        while True:
            for child in children:
                if child.poll() is not None:
                    name = "hub" if child is hub else "worker"
                    print(
                        f"tradehub: the {name} exited with code {child.returncode}; stopping",
                        file=sys.stderr,
                    )
                    return 1
            time.sleep(0.2)
    except KeyboardInterrupt:
        exit_code = 0
    finally:
        # A second Ctrl-C must not interrupt the orderly stop.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signal.SIGTERM)
        for child in children:
            stop_process(child, signal.SIGTERM, CHILD_STOP_TIMEOUT)
        if valkey is not None:
            valkey.stop()
        if postgres is not None:
            postgres.stop()
        RunningServices.remove(data_dir)
        print("tradehub stopped", file=sys.stderr, flush=True)
    return exit_code
