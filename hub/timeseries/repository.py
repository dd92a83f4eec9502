"""SQL for generic measurements: the ``ts`` catalog, the registry, and committed imports.

Names reach SQL only quoted (:func:`quote`); measurement names are checked by the store first.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg
import orjson

from hub.db import Conn

READER_ROLE = "tradehub_ts_reader"
# format_type() of the column types the store creates, by the store's name for them.
_KIND_OF_TYPE = {"timestamp with time zone": "timestamptz"}


def quote(name: str) -> str:
    """A quoted identifier: any name, read as exactly itself."""
    return '"' + name.replace('"', '""') + '"'


def table(measurement: str) -> str:
    return f"ts.{quote(measurement)}"


async def lock_measurement(conn: Conn, measurement: str) -> None:
    """Serialise creating and extending ``ts.<measurement>`` until this transaction ends."""
    await conn.execute(
        "select pg_advisory_xact_lock(hashtextextended('tradehub.ts:' || $1, 0))", measurement
    )


async def table_columns(conn: Conn, measurement: str) -> dict[str, str] | None:
    """The table's columns and their types (the store's names for its own), in order; None
    when ``ts.<measurement>`` does not exist."""
    rows = await conn.fetch(
        """
        select a.attname, format_type(a.atttypid, a.atttypmod) as type
        from pg_class c
        join pg_namespace n on n.oid = c.relnamespace
        left join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
        where n.nspname = 'ts' and c.relname = $1
        order by a.attnum
        """,
        measurement,
    )
    if not rows:
        return None
    return {
        r["attname"]: _KIND_OF_TYPE.get(r["type"], r["type"])
        for r in rows
        if r["attname"] is not None
    }


async def registered(conn: Conn, measurement: str) -> str | None:
    """The timestamp column of a generic measurement; None for any other name."""
    value = await conn.fetchval(
        "select timestamp_column from timeseries_measurements where measurement = $1", measurement
    )
    return None if value is None else str(value)


async def owner(conn: Conn, measurement: str) -> tuple[bool, bool, str | None]:
    """Whether ``ts.<measurement>`` exists, whether it is a generic measurement, and the user
    that created it (None when unknown)."""
    row = await conn.fetchrow(
        """
        select to_regclass('ts.' || quote_ident($1)) is not null as exists,
               m.measurement is not null as registered, m.created_by
        from (select 1) one
        left join timeseries_measurements m on m.measurement = $1
        """,
        measurement,
    )
    assert row is not None
    created_by = None if row["created_by"] is None else str(row["created_by"])
    return bool(row["exists"]), bool(row["registered"]), created_by


async def create_table(
    conn: Conn,
    measurement: str,
    timestamp: str,
    fields: Sequence[tuple[str, str]],
    owner: str | None,
) -> None:
    columns = [f"{quote(timestamp)} timestamptz not null"]
    columns += [f"{quote(name)} {kind}" for name, kind in fields]
    await conn.execute(f"create table {table(measurement)} ({', '.join(columns)})")
    await conn.execute(f"create index on {table(measurement)} ({quote(timestamp)})")
    # Default privileges grant it already when the hub's role made them; say it for any role.
    await conn.execute(f"grant select on {table(measurement)} to {READER_ROLE}")
    await conn.execute(
        """
        insert into timeseries_measurements (measurement, timestamp_column, created_by)
        values ($1, $2, $3)
        on conflict (measurement) do update set timestamp_column = excluded.timestamp_column,
            created_by = excluded.created_by, created_at = now(), updated_at = now()
        """,
        measurement,
        timestamp,
        owner,
    )


async def add_columns(conn: Conn, measurement: str, fields: Sequence[tuple[str, str]]) -> None:
    additions = ", ".join(f"add column {quote(name)} {kind}" for name, kind in fields)
    await conn.execute(f"alter table {table(measurement)} {additions}")
    await conn.execute(
        "update timeseries_measurements set updated_at = now() where measurement = $1",
        measurement,
    )


async def list_measurements(conn: Conn, prefix: str | None) -> list[str]:
    """Every table (and view) of the ``ts`` schema whose name starts with ``prefix``."""
    rows = await conn.fetch(
        """
        select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = 'ts' and c.relkind in ('r', 'p', 'v', 'm', 'f')
          and ($1::text is null or starts_with(c.relname, $1))
        order by c.relname
        """,
        prefix,
    )
    return [r["relname"] for r in rows]


async def timestamp_column(conn: Conn, measurement: str) -> tuple[bool, str | None]:
    """Whether ``ts.<measurement>`` exists, and its designated timestamp column: the registered
    one, else a time column named ``timestamp`` or ``ts``, else its first time column."""
    row = await conn.fetchrow(
        """
        select c.oid,
               coalesce(
                   m.timestamp_column,
                   (select a.attname from pg_attribute a
                    where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
                      and a.atttypid in ('timestamptz'::regtype, 'timestamp'::regtype)
                    order by (a.attname in ('timestamp', 'ts')) desc, a.attnum
                    limit 1)
               ) as column_name
        from pg_class c
        join pg_namespace n on n.oid = c.relnamespace
        left join timeseries_measurements m on m.measurement = c.relname
        where n.nspname = 'ts' and c.relname = $1 and c.relkind in ('r', 'p', 'v', 'm', 'f')
        """,
        measurement,
    )
    if row is None:
        return False, None
    return True, row["column_name"]


async def measurement_stats(conn: Conn, measurement: str, column: str | None) -> asyncpg.Record:
    """Rows, and the first and last times in microseconds since the epoch (None without rows or
    without a time column)."""
    if column is None:
        query = f"select count(*) as row_count, null::int8 as first_ts, null::int8 as last_ts from {table(measurement)}"
    else:
        c = quote(column)
        query = f"""
            select count(*) as row_count,
                   (extract(epoch from min({c})) * 1000000)::int8 as first_ts,
                   (extract(epoch from max({c})) * 1000000)::int8 as last_ts
            from {table(measurement)}
        """
    row = await conn.fetchrow(query)
    assert row is not None
    return row


async def import_done(conn: Conn, job_id: str) -> dict[str, Any] | None:
    """What a committed import of this job wrote, if one committed."""
    result = await conn.fetchval("select result from timeseries_imports where job_id = $1", job_id)
    return None if result is None else dict(result)


async def record_import(conn: Conn, job_id: str, measurement: str, result: dict[str, Any]) -> None:
    await conn.execute(
        "insert into timeseries_imports (job_id, measurement, result) values ($1, $2, $3)",
        job_id,
        measurement,
        result,
    )


async def active_uploads(conn: Conn, job_type: str) -> list[str]:
    """The files pending or running imports will read."""
    rows = await conn.fetch(
        """select payload ->> 'file_path' as file_path from jobs
           where job_type = $1 and status in ('PENDING', 'RUNNING')""",
        job_type,
    )
    return [r["file_path"] for r in rows if r["file_path"]]


# -- the SQL endpoints' sandbox (hub/timeseries/sql.py) ------------------------------------


async def reader_state(conn: Conn) -> asyncpg.Record:
    """Whether the reader role exists, the session may become it, and it may run set_config."""
    row = await conn.fetchrow(
        """
        select r.oid is not null as role_exists,
               (select rolsuper from pg_roles where rolname = current_user) as superuser,
               case when r.oid is null then false
                    else pg_has_role(current_user, r.oid, 'MEMBER') end as member,
               case when r.oid is null then true
                    else has_function_privilege(
                        r.oid, 'pg_catalog.set_config(text, text, boolean)', 'EXECUTE')
               end as can_set_config
        from (select 1) one left join pg_roles r on r.rolname = $1
        """,
        READER_ROLE,
    )
    assert row is not None
    return row


async def become_reader(conn: Conn, timeout: float, *, temp_limit: str | None) -> None:
    """In the open transaction only (``SET LOCAL``): the timeout, the temporary files a query
    may spill (only a superuser session may bound them), no JIT (asyncpg's catalog queries
    would otherwise turn it off by ``set_config``, which the role may not call), ``ts`` first,
    the role."""
    limit = f"set local temp_file_limit = '{temp_limit}'; " if temp_limit else ""
    await conn.execute(
        f"set local statement_timeout = {int(timeout * 1000)}; {limit}"
        "set local jit = off; set local search_path = ts; "
        f"set local role {READER_ROLE}"
    )


async def release_advisory_locks(conn: Conn) -> None:
    """Session advisory locks a user's query took (the hub holds none on pooled connections)."""
    await conn.execute("select pg_advisory_unlock_all()")


async def plan(conn: asyncpg.Connection, query: str) -> Any:
    """``EXPLAIN (VERBOSE, FORMAT JSON)`` of ``query``: nothing runs, privileges are checked."""
    explained = await conn.prepare(f"explain (verbose, format json) {query}")
    return orjson.loads(await explained.fetchval())


def rows_query(sql: str, limit: int | None) -> str:
    """A user's statement as the subquery of ours: anything but a query is a syntax error. The
    newlines keep a trailing ``--`` comment from swallowing our closing parenthesis."""
    limited = "" if limit is None else f" limit {int(limit)}"
    return f"select * from (\n{sql}\n) as q{limited}"


def epoch_us(value: str) -> str:
    """SQL for a time as epoch microseconds, exact. ``extract`` is exact but numeric, the
    costliest step of a large export; ``date_part`` is a float8 (seconds) whose product with
    10^6 rounds back to the exact integer while it is below 2^51 microseconds in magnitude
    (1898-2041: the error stays under half a microsecond), so it serves that range and
    ``extract`` the rest (infinities included, which fail the same way)."""
    return (
        f"case when {value} > '1900-01-01' and {value} < '2040-01-01' "
        f"then (date_part('epoch', {value}) * 1000000)::int8 "
        f"else (extract(epoch from {value}) * 1000000)::int8 end"
    )


def export_query(sql: str, times: list[bool]) -> str:
    """The same, columns renamed by position (names may repeat) and times made epoch
    microseconds, for ``COPY (...) TO STDOUT``."""
    names = [f"c{i}" for i in range(len(times))]
    values = [
        epoch_us(f"q.{n}") if time else f"q.{n}" for n, time in zip(names, times, strict=True)
    ]
    return f"select {', '.join(values)} from (\n{sql}\n) as q({', '.join(names)})"
