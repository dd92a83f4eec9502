"""The ``tradehub`` command: up, serve, worker, migrate, token, user, schema, tail."""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType

from hub.embedded import RunningServices, port_in_use, temporary_postgres
from hub.settings import Settings

Command = Callable[[Settings, argparse.Namespace], int]


class CommandError(Exception):
    """A one-line reason a command cannot run; printed without a traceback, exit 1."""


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def stop_on_signals() -> None:
    """Make SIGINT and SIGTERM stop this process as Ctrl-C does, however it was started.

    A non-interactive shell starts background jobs (``tradehub up &`` in a script) with SIGINT
    ignored, and Python then installs no KeyboardInterrupt handler, so ``kill -INT`` did
    nothing. uvicorn and arq replace these handlers while they run, stop in their own orderly
    way, and uvicorn hands the signal back to these handlers once it has stopped.
    """
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)


def mask_url(url: str) -> str:
    """A URL safe to print: the password replaced by ``***``."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    creds, _, host = rest.rpartition("@")
    user, has_password, _ = creds.partition(":")
    return f"{scheme}://{user}{':***' if has_password else ''}@{host}"


def check_data_dir(data_dir: Path) -> None:
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        probe = data_dir / ".write-probe"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise CommandError(
            f"data folder {data_dir} is not writable: {exc.strerror or exc}"
        ) from None


def check_port(host: str, port: int) -> None:
    if port and port_in_use(host, port):
        raise CommandError(
            f"port {port} on {host} is already in use (set TRADEHUB_PORT or pass --port)"
        )


async def check_postgres(url: str) -> None:
    import asyncpg

    try:
        conn = await asyncpg.connect(url, timeout=5)
    except (OSError, asyncpg.PostgresError, TimeoutError, ValueError) as exc:
        raise CommandError(f"cannot reach Postgres at {mask_url(url)}: {exc}") from None
    await conn.close()


async def check_redis(url: str) -> None:
    from redis.asyncio import Redis

    client = Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5)
    try:
        await client.ping()
    except Exception as exc:  # noqa: BLE001 - any failure is "unreachable", reported in one line
        raise CommandError(f"cannot reach Redis at {mask_url(url)}: {exc}") from None
    finally:
        await client.aclose()


def running_services(settings: Settings) -> RunningServices | None:
    return RunningServices.read(settings.data_dir)


def resolve_urls(settings: Settings, command: str) -> tuple[str, str]:
    """External URLs when configured, else those of the ``tradehub up`` running on the folder."""
    if settings.database_url and settings.redis_url:
        return settings.database_url, settings.redis_url
    running = running_services(settings)
    if running is None:
        raise CommandError(
            f"`tradehub {command}` needs TRADEHUB_DATABASE_URL and TRADEHUB_REDIS_URL, or a "
            f"`tradehub up` running on the data folder {settings.data_dir}"
        )
    return settings.database_url or running.database_url, settings.redis_url or running.redis_url


def _with_database(settings: Settings, work: object) -> None:
    """Run ``work(url)`` (a coroutine function) on the configured, running or embedded Postgres."""
    if settings.database_url:
        asyncio.run(check_postgres(settings.database_url))
        asyncio.run(work(settings.database_url))  # type: ignore[operator]
        return
    running = running_services(settings)
    if running is not None:
        asyncio.run(work(running.database_url))  # type: ignore[operator]
        return
    check_data_dir(settings.data_dir)
    with temporary_postgres(settings.data_dir) as url:
        asyncio.run(work(url))  # type: ignore[operator]


# -- commands --------------------------------------------------------------------------------


def until_stopped(command: Command) -> Command:
    """For the commands that run until stopped (up, serve, worker): SIGINT or SIGTERM stops them
    at any point, start-up included, and that is their normal end (exit 0)."""

    @functools.wraps(command)
    def run(settings: Settings, args: argparse.Namespace) -> int:
        stop_on_signals()
        try:
            return command(settings, args)
        except KeyboardInterrupt:
            return 0

    return run


@until_stopped
def cmd_up(settings: Settings, args: argparse.Namespace) -> int:
    from hub.supervisor import run_up

    return run_up(settings, demo=args.demo)


@until_stopped
def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from hub.logs import configure_logging
    from hub.metrics import multiprocess_metrics
    from hub.server import uvicorn_options

    database_url, redis_url = resolve_urls(settings, "serve")
    if settings.database_url or settings.redis_url:
        asyncio.run(check_postgres(database_url))
        asyncio.run(check_redis(redis_url))
    check_port(settings.host, settings.port)
    # The app factory reads its settings from the environment, in this process and in every
    # uvicorn worker process.
    os.environ["TRADEHUB_DATABASE_URL"] = database_url
    os.environ["TRADEHUB_REDIS_URL"] = redis_url
    os.environ["TRADEHUB_DATA_DIR"] = str(settings.data_dir)
    asyncio.run(_migrate(database_url))
    configure_logging(json_lines=settings.log_json, level=settings.log_level)
    # Several workers share one /metrics: each writes its numbers to this folder.
    with multiprocess_metrics(settings.workers):
        # uvicorn stops on SIGINT or SIGTERM, then raises the signal again (a KeyboardInterrupt).
        uvicorn.run(
            "hub.app:create_app_from_env",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            **uvicorn_options(settings),
        )
    return 0


@until_stopped
def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    from hub.logs import configure_logging
    from workers.settings import run_worker

    database_url, redis_url = resolve_urls(settings, "worker")
    if settings.database_url or settings.redis_url:
        asyncio.run(check_postgres(database_url))
        asyncio.run(check_redis(redis_url))
    configure_logging(json_lines=settings.log_json, level=settings.log_level)
    run_worker(settings.model_copy(update={"database_url": database_url, "redis_url": redis_url}))
    return 0


async def _migrate(url: str) -> list[str]:
    from hub.db import migrate_url

    return [f"{m.version:04d}_{m.name}" for m in await migrate_url(url)]


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    applied: list[str] = []

    async def work(url: str) -> None:
        applied.extend(await _migrate(url))

    _with_database(settings, work)
    print("\n".join(f"applied {name}" for name in applied) or "nothing to apply", file=sys.stderr)
    return 0


async def mint_api_key(
    url: str, username: str, *, admin: bool, name: str, scopes: list[str] | None = None
) -> str:
    from hub.auth import Role, parse_scopes
    from hub.db import connect
    from hub.errors import BadRequest
    from hub.users import service

    try:
        granted = parse_scopes(scopes or [])
    except BadRequest as exc:
        raise ValueError(exc.message) from None
    await _migrate(url)
    conn = await connect(url)
    try:
        identity = await service.ensure_user(conn, username, role=Role.ADMIN if admin else None)
        return await service.create_api_key(conn, identity, name, granted)
    finally:
        await conn.close()


def cmd_token_create(settings: Settings, args: argparse.Namespace) -> int:
    tokens: list[str] = []

    async def work(url: str) -> None:
        try:
            tokens.append(
                await mint_api_key(
                    url, args.user, admin=args.admin, name=args.name, scopes=args.scope
                )
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from None

    _with_database(settings, work)
    print(tokens[0])
    return 0


def cmd_user_create(settings: Settings, args: argparse.Namespace) -> int:
    import getpass

    from hub.auth import Role
    from hub.db import connect
    from hub.users import service

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass(f"password for {args.user}: ")
    if len(password) < 8:
        raise CommandError("the password must be at least 8 characters")

    async def work(url: str) -> None:
        await _migrate(url)
        conn = await connect(url)
        try:
            await service.ensure_user(
                conn, args.user, role=Role.ADMIN if args.admin else None, password=password
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        finally:
            await conn.close()

    _with_database(settings, work)
    print(f"user {args.user} saved", file=sys.stderr)
    return 0


def cmd_schema(settings: Settings, args: argparse.Namespace) -> int:
    from hub.gql.schema import build_schema

    sdl = build_schema().as_str() + "\n"
    if args.output:
        Path(args.output).write_text(sdl)
    else:
        sys.stdout.write(sdl)
    return 0


@until_stopped
def cmd_tail(settings: Settings, args: argparse.Namespace) -> int:
    try:
        from tradehub_client import AsyncClient, TradehubError
        from tradehub_client.tail import tail
    except ImportError:
        raise CommandError(
            "`tradehub tail` needs the Python client: pip install ./client"
        ) from None
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    url = args.url or os.environ.get("TRADEHUB_URL") or f"http://{host}:{settings.port}"
    if args.user:
        password = (
            sys.stdin.readline().rstrip("\n")
            if args.password_stdin
            else os.environ.get("TRADEHUB_PASSWORD")
        )
        if not password:
            raise CommandError("--user needs a password: TRADEHUB_PASSWORD or --password-stdin")
        credentials = {"username": args.user, "password": password}
    elif os.environ.get("TRADEHUB_TOKEN"):
        credentials = {"api_key": os.environ["TRADEHUB_TOKEN"]}
    else:
        raise CommandError("set TRADEHUB_TOKEN to an API key (or a JWT), or pass --user")

    async def follow() -> None:
        async with AsyncClient(url, **credentials) as client:
            await tail(client, args.channel, args.since, epoch=args.epoch, limit=args.limit)

    try:
        asyncio.run(follow())
    except BrokenPipeError:  # the reader left (`| head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except TradehubError as exc:
        raise CommandError(str(exc)) from None
    return 0


# -- parsing ---------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tradehub", description="tradehub: a real-time trading hub."
    )
    parser.add_argument(
        "--data-dir", help="data folder (default ./.tradehub, or TRADEHUB_DATA_DIR)"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = sub.add_parser("up", help="start embedded Postgres and Valkey, the hub and a worker")
    up.add_argument("--host")
    up.add_argument("--port", type=int)
    up.add_argument("--demo", action="store_true", help="seed a synthetic BTC/USD 1h dataset and trade it live on a paper account")
    up.set_defaults(func=cmd_up)

    serve = sub.add_parser("serve", help="run the hub (uvicorn) against configured services")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int, help="uvicorn worker processes")
    serve.set_defaults(func=cmd_serve)

    worker = sub.add_parser("worker", help="run an arq worker")
    worker.set_defaults(func=cmd_worker)

    migrate = sub.add_parser("migrate", help="apply pending database migrations")
    migrate.set_defaults(func=cmd_migrate)

    token = sub.add_parser("token", help="API tokens")
    token_sub = token.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    create = token_sub.add_parser("create", help="mint an API token; prints only the token")
    create.add_argument("--user", required=True, help="user name (created if missing)")
    create.add_argument("--admin", action="store_true", help="make the user an admin")
    create.add_argument("--name", default="cli", help="a label for the key")
    create.add_argument(
        "--scope",
        action="append",
        default=[],
        metavar="SCOPE",
        help="grant the key a scope beyond the user's role (repeatable): marketdata:write",
    )
    create.set_defaults(func=cmd_token_create)

    user = sub.add_parser("user", help="users")
    user_sub = user.add_subparsers(dest="user_command", required=True, metavar="ACTION")
    ucreate = user_sub.add_parser("create", help="create a user or set their password")
    ucreate.add_argument("--user", required=True)
    ucreate.add_argument("--admin", action="store_true")
    ucreate.add_argument(
        "--password-stdin", action="store_true", help="read the password from stdin"
    )
    ucreate.set_defaults(func=cmd_user_create)

    tail = sub.add_parser(
        "tail",
        help="print a channel's events as JSON lines, resuming by itself (TRADEHUB_TOKEN or --user)",
    )
    tail.add_argument("channel", metavar="CHANNEL", help="a /ws channel: account:D10000001:orders")
    tail.add_argument("--since", type=int, help="start after this sequence (default: from now)")
    tail.add_argument("--epoch", help="the epoch of --since, for a recent topic (ticks)")
    tail.add_argument("--limit", type=int, help="stop after this many events")
    tail.add_argument("--url", help="the hub (default TRADEHUB_URL, else this host and port)")
    tail.add_argument("--user", help="log in as this user (password: TRADEHUB_PASSWORD)")
    tail.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    tail.set_defaults(func=cmd_tail)

    schema = sub.add_parser("schema", help="print the GraphQL schema (SDL)")
    schema.add_argument("--output", "-o", help="write to this file instead of stdout")
    schema.set_defaults(func=cmd_schema)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.data_dir:
        os.environ["TRADEHUB_DATA_DIR"] = args.data_dir
    for option, variable in (
        ("host", "TRADEHUB_HOST"),
        ("port", "TRADEHUB_PORT"),
        ("workers", "TRADEHUB_WORKERS"),
    ):
        value = getattr(args, option, None)
        if value is not None:
            os.environ[variable] = str(value)
    try:
        settings = Settings()
        return int(args.func(settings, args))
    except CommandError as exc:
        print(f"tradehub: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from pydantic import ValidationError

        if isinstance(exc, ValidationError):
            problems = "; ".join(
                f"TRADEHUB_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
                for e in exc.errors()
            )
            print(f"tradehub: invalid configuration: {problems}", file=sys.stderr)
            return 1
        from hub.embedded import EmbeddedError

        if isinstance(exc, EmbeddedError):
            print(f"tradehub: {exc}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
