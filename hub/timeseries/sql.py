"""Users' SQL over the ``ts`` schema, read only: the sandbox of Stage1's QuestDB endpoints.

Every statement runs in its own ``READ ONLY`` transaction on a pooled connection, after
``SET LOCAL statement_timeout``, ``SET LOCAL search_path = ts`` and ``SET LOCAL ROLE
tradehub_ts_reader`` (hub/migrations/0012_timeseries.sql: ``SELECT`` on ``ts`` and nothing
else; ``set_config`` revoked, so the role cannot be set back from inside a query). Pooled
connections are not reset between uses (hub/db.py), so only ``SET LOCAL`` is used, the
transaction is always rolled back, and session advisory locks a query took are released.

Before it runs, the statement must

- parse alone as one statement without parameters (``;`` between statements is refused);
- be a query: it runs as the subquery of our own ``SELECT`` (for the JSON answer, with
  ``LIMIT max_rows + 1``) or ``COPY (SELECT ...) TO STDOUT`` (for CSV), so ``SET``, ``RESET``,
  ``COPY``, DDL and writes are syntax errors there;
- read no table outside ``ts``: its plan (``EXPLAIN (VERBOSE)``, which also checks privileges)
  may scan relations of the ``ts`` schema only, so catalog tables and views are refused too,
  while functions over no table (``now()``, ``generate_series``) work.

Then Postgres itself refuses what the role may not do (``pg_read_file``, ``lo_import``:
permission denied), and the timeout ends what runs too long. Every refusal is a 400.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import asyncpg

from hub.errors import BadRequest, HubError, RateLimited, from_status
from hub.timeseries import repository as repo
from hub.timeseries.repository import READER_ROLE

log = logging.getLogger("tradehub.timeseries")

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)
_TIME_TYPES = {"timestamptz", "timestamp"}
# Classes of SQLSTATE that are the server's trouble, not the query's: never a 400.
_SERVER_TROUBLE = ("08", "53", "57P", "58", "XX")
# Temporary files one statement may spill (sorts, hashes, a materialised generate_series).
TEMP_FILE_LIMIT = "1GB"
EXPORT_CHUNK_BYTES = 256 << 10
EXPORT_QUEUE_CHUNKS = 4


def normalized(sql: str) -> str:
    """The statement without surrounding space and trailing semicolons."""
    if not isinstance(sql, str):
        raise BadRequest("sql must be a string", field="sql")
    text = sql.strip()
    while text.endswith(";"):
        text = text[:-1].rstrip()
    if not text:
        raise BadRequest("Missing 'sql' parameter: the query is empty", field="sql")
    if "\x00" in text:
        raise BadRequest("sql contains a NUL character", field="sql")
    return text


def microseconds(value: datetime) -> int:
    """A time as microseconds since the epoch (a naive one is UTC), as Stage1 shows times."""
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return (aware - EPOCH) // MICROSECOND


def jsonable(value: Any) -> Any:
    """A value of a result row as JSON: times in epoch microseconds, numerics as numbers."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime):
        return microseconds(value)
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return "\\x" + bytes(value).hex()
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return value
    if isinstance(value, asyncpg.Range):
        return _range_text(value)
    return str(value)


def _range_text(value: asyncpg.Range) -> str:
    """A range as Postgres writes it, ``[1,5)``, its bounds as :func:`jsonable` makes them."""
    if value.isempty:
        return "empty"
    lower = "" if value.lower is None else str(jsonable(value.lower))
    upper = "" if value.upper is None else str(jsonable(value.upper))
    opening = "[" if value.lower_inc else "("
    return f"{opening}{lower},{upper}{']' if value.upper_inc else ')'}"


def relations(plan: Any) -> Iterator[tuple[str | None, str]]:
    """(schema, name) of every relation an ``EXPLAIN (VERBOSE, FORMAT JSON)`` plan scans."""
    stack = [node["Plan"] for node in plan]
    while stack:
        node = stack.pop()
        if "Relation Name" in node:
            yield node.get("Schema"), node["Relation Name"]
        stack.extend(node.get("Plans", ()))


def refusal(exc: asyncpg.PostgresError, timeout: float) -> HubError:
    """What a query's failure tells its caller (a 400); the server's own trouble re-raises."""
    state = str(getattr(exc, "sqlstate", "") or "")
    message = str(getattr(exc, "message", "") or exc)
    if isinstance(exc, asyncpg.QueryCanceledError):
        return BadRequest(f"the query ran longer than the {timeout:g} s statement timeout")
    if state == "53400":  # configuration_limit_exceeded: temp_file_limit
        return BadRequest(f"the query needs too much temporary space: {message}")
    if state.startswith(_SERVER_TROUBLE):
        raise exc
    if isinstance(exc, asyncpg.InsufficientPrivilegeError):
        return BadRequest(
            f"refused: {message} (SQL here reads the ts schema only, as a read-only role)"
        )
    if isinstance(exc, asyncpg.ReadOnlySQLTransactionError):
        return BadRequest(f"refused: {message} (SQL here is read only)")
    if "multiple commands" in message:
        return BadRequest("refused: send one statement, with no ';' between statements")
    return BadRequest(f"the query failed: {message}")


@dataclass(frozen=True)
class Rows:
    query: str
    columns: list[str]
    dataset: list[list[Any]]


class ReadOnlySql:
    """Runs users' statements (see the module); at most ``concurrency`` at once per process."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        timeout: float,
        export_timeout: float,
        max_rows: int,
        concurrency: int,
    ) -> None:
        self.pool = pool
        self.timeout = timeout
        self.export_timeout = export_timeout
        self.max_rows = max_rows
        self.slots = asyncio.Semaphore(concurrency)
        self.ready = False
        self.temp_limit: str | None = None

    @contextlib.asynccontextmanager
    async def session(self, timeout: float) -> AsyncIterator[asyncpg.Connection]:
        """A connection in a read-only transaction as the reader role, rolled back after."""
        try:
            async with asyncio.timeout(self.timeout):
                await self.slots.acquire()
        except TimeoutError:
            raise RateLimited(
                "too many SQL statements are running on this hub; retry in a moment",
                headers={"Retry-After": "1"},
            ) from None
        try:
            async with self.pool.acquire() as conn:
                await self._check_ready(conn)
                transaction = conn.transaction(readonly=True)
                await transaction.start()
                try:
                    await repo.become_reader(conn, timeout, temp_limit=self.temp_limit)
                    with _no_jit_toggle(conn):
                        yield conn
                finally:
                    # Shielded: a cancelled caller (a client gone mid-export) still ends it.
                    await asyncio.shield(_end(conn, transaction))
        finally:
            self.slots.release()

    async def _check_ready(self, conn: asyncpg.Connection) -> None:
        if self.ready:
            return
        row = await repo.reader_state(conn)
        assert row is not None
        if not (row["role_exists"] and row["member"] and not row["can_set_config"]):
            raise from_status(
                503,
                f"the SQL endpoints are off: the role {READER_ROLE} is missing, not granted to "
                "the hub's role, or may run set_config; a superuser must apply "
                "hub/migrations/0012_timeseries.sql's grants (see the README)",
            )
        self.temp_limit = TEMP_FILE_LIMIT if row["superuser"] else None
        self.ready = True

    @staticmethod
    async def _one_statement(conn: asyncpg.Connection, sql: str) -> None:
        """``sql`` parses alone, as one statement without parameters (nothing runs)."""
        if (await conn.prepare(sql)).get_parameters():
            raise BadRequest("refused: parameters ($1, $2...) are not supported", field="sql")

    @staticmethod
    async def _query(conn: asyncpg.Connection, sql: str, wrapped: str) -> Any:
        """``wrapped``, our query around ``sql``, prepared: a syntax error there means ``sql``
        is no query."""
        try:
            prepared = await conn.prepare(wrapped)
        except asyncpg.PostgresSyntaxError:
            first = sql.split(None, 1)[0][:40]
            raise BadRequest(
                f"refused: only a query is accepted (SELECT, WITH, VALUES or TABLE), not {first!r}",
                field="sql",
            ) from None
        if not prepared.get_attributes():
            raise BadRequest("the query returns no columns", field="sql")
        return prepared

    @staticmethod
    async def _reads_ts_only(conn: asyncpg.Connection, query: str) -> None:
        plan = await repo.plan(conn, query)
        outside = sorted({f"{s}.{n}" for s, n in relations(plan) if s != "ts"})
        if outside:
            raise BadRequest(
                f"refused: the query reads {', '.join(outside)}, outside the ts schema",
                field="sql",
            )

    async def rows(self, sql: str) -> Rows:
        """At most ``max_rows`` rows of ``sql`` (more is a 400: export them instead)."""
        text = normalized(sql)
        wrapped = repo.rows_query(text, self.max_rows + 1)
        async with self.session(self.timeout) as conn:
            try:
                await self._one_statement(conn, text)
                prepared = await self._query(conn, text, wrapped)
                await self._reads_ts_only(conn, wrapped)
                records = await prepared.fetch(timeout=self.timeout + 5)
                columns = [a.name for a in prepared.get_attributes()]
            except asyncpg.PostgresError as exc:
                raise refusal(exc, self.timeout) from None
        if len(records) > self.max_rows:
            raise BadRequest(
                f"the query returns more than {self.max_rows:,} rows: add a LIMIT, or use "
                "POST /api/questdb/export, which streams any number",
                field="sql",
            )
        return Rows(text, columns, [[jsonable(v) for v in record] for record in records])

    async def export(self, sql: str) -> Export:
        """A CSV export of ``sql``, checked and started: errors so far are raised here, so that
        the caller can still answer them; then :meth:`Export.stream` sends it. Times are
        converted to epoch microseconds by the query itself (COPY writes the CSV)."""
        text = normalized(sql)
        stack = contextlib.AsyncExitStack()
        conn = await stack.enter_async_context(self.session(self.export_timeout))
        try:
            try:
                await self._one_statement(conn, text)
                plain = await self._query(conn, text, repo.rows_query(text, None))
                attributes = plain.get_attributes()
                times = [a.type.name in _TIME_TYPES for a in attributes]
                query = repo.export_query(text, times)
                await self._reads_ts_only(conn, query)
            except asyncpg.PostgresError as exc:
                raise refusal(exc, self.export_timeout) from None
        except BaseException:
            await stack.aclose()
            raise
        header = io.StringIO()
        csv.writer(header, lineterminator="\n").writerow([a.name for a in attributes])
        return Export(conn, query, header.getvalue().encode(), stack, self.export_timeout)


@contextlib.contextmanager
def _no_jit_toggle(conn: Any) -> Iterator[None]:
    """While ``conn`` runs as the reader: asyncpg learns a result type it has not met yet (an
    array, a range...) by a catalog query it wraps in ``set_config('jit', ...)``, which the
    reader may not call, so such a query failed as "permission denied for function
    set_config". Told the server has no JIT (the session's ``SET LOCAL jit = off`` makes that
    so), asyncpg skips the wrapping; the connection's own flag is restored after."""
    target = getattr(conn, "_con", conn)  # a pool hands out a proxy of the connection
    caps = getattr(target, "_server_caps", None)
    if caps is None or not getattr(caps, "jit", False):
        yield
        return
    target._server_caps = caps._replace(jit=False)
    try:
        yield
    finally:
        target._server_caps = caps


async def _end(conn: asyncpg.Connection, transaction: Any) -> None:
    """Roll back and drop the session advisory locks a query took; a connection left in an
    unknown state (interrupted mid-statement) is closed rather than given back as it is.

    A COPY cancelled under a client gone mid-export can leave the protocol busy for a moment
    (asyncpg's ``InternalClientError``, "another operation is in progress"): closed too."""
    try:
        await transaction.rollback()
        await repo.release_advisory_locks(conn)
    except (asyncpg.InterfaceError, asyncpg.InternalClientError, asyncpg.PostgresError, OSError):
        conn.terminate()


class Export:
    """A checked export holding its connection until :meth:`stream` ends (or is closed)."""

    def __init__(
        self,
        conn: asyncpg.Connection,
        query: str,
        header: bytes,
        stack: contextlib.AsyncExitStack,
        timeout: float,
    ) -> None:
        self.conn = conn
        self.query = query
        self.header = header
        self.stack = stack
        self.timeout = timeout
        self.closing: asyncio.Future[None] | None = None

    async def stream(self) -> AsyncIterator[bytes]:
        """The header, then COPY's CSV in chunks of about 256 KiB: at most a few chunks are
        held while the client reads, whatever the number of rows (COPY waits meanwhile)."""
        queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=EXPORT_QUEUE_CHUNKS)
        pending = bytearray()

        async def sink(data: bytes) -> None:
            pending.extend(data)
            if len(pending) >= EXPORT_CHUNK_BYTES:
                await queue.put(bytes(pending))
                pending.clear()

        async def copy() -> None:
            try:
                await self.conn.copy_from_query(
                    self.query, output=sink, format="csv", timeout=self.timeout + 5
                )
                if pending:
                    await queue.put(bytes(pending))
            finally:
                await queue.put(None)

        task = asyncio.create_task(copy(), name="questdb-export")
        try:
            yield self.header
            while (chunk := await queue.get()) is not None:
                yield chunk
            try:
                await task
            except asyncpg.PostgresError as exc:
                # The answer has begun: it can only end short, which the client sees as a
                # broken response (never as a complete, shorter CSV).
                log.warning("an export failed after it began", extra={"error": str(exc)})
                raise
        finally:
            task.cancel()
            # Shielded: when the client went away this task is being cancelled, and would be
            # again at each await here; the connection is given back all the same.
            self.closing = asyncio.ensure_future(self._finish(task))
            await asyncio.shield(self.closing)

    async def _finish(self, task: asyncio.Task[None]) -> None:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        await self.stack.aclose()

    async def close(self) -> None:
        """Give the connection back without streaming (the caller could not answer)."""
        await self.stack.aclose()
