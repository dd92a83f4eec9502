"""SQL for runs, simulations and simulation trades, and for a run's predictions.

A run's predictions: the measurement ``ts."wf_<run>"``, written by binary COPY, streamed back
as CSV (``COPY ... TO STDOUT``) or JSON (a server-side cursor) a chunk at a time, and read as
arrays for a simulation.

The hub creates the table as ``"timestamp" timestamptz primary key, bar_index int8,
fold_number int4, prediction float8, target float8, threshold_0 .. threshold_{n-1} float8``
(the seed's column names: ``select *`` answers them). A table made by other means (a CSV
import into the same name: ``timestamp timestamptz``, integers ``bigint``, numbers ``double
precision``) is read, and written in place, too: its time may be called ``ts``, ``timestamp``
or ``time`` (a timestamp, or an integer holding epoch microseconds); a missing ``bar_index``,
``fold_number`` or ``target`` reads as null, and its ``threshold_<k>`` columns are answered
in ``k`` order.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import numpy as np

from hub import pgcopy
from hub.datasets.repository import TIME_COLUMNS, table
from hub.db import Conn

RUN_COLUMNS = "run_id, dataset_id, fold_count, features, thresholds, created_by, created_at"
SIMULATION_COLUMNS = """simulation_id, run_id, initial_capital, parameters, results, status,
    job_id, created_by, created_at, completed_at"""
TRADE_COLUMNS = (
    "simulation_id",
    "n",
    "trade_id",
    "bar_timestamp",
    "side",
    "size",
    "entry_price",
    "exit_price",
    "pnl",
    "return_pct",
    "metadata",
)


# -- runs ---------------------------------------------------------------------------------


async def insert_run(conn: Conn, values: dict[str, Any], created_by: str) -> asyncpg.Record | None:
    """The new run; None when ``run_id`` is taken."""
    return await conn.fetchrow(
        f"""
        insert into runs (run_id, dataset_id, fold_count, features, thresholds, created_by)
        values ($1, $2, $3, $4, $5, $6)
        on conflict (run_id) do nothing
        returning {RUN_COLUMNS}
        """,
        values["run_id"],
        values["dataset_id"],
        values["fold_count"],
        values["features"],
        values["thresholds"],
        created_by,
    )


async def get_run(conn: Conn, run_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(f"select {RUN_COLUMNS} from runs where run_id = $1", run_id)


async def list_runs(
    conn: Conn, dataset_id: str | None, limit: int, offset: int
) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"""select {RUN_COLUMNS} from runs where ($1::uuid is null or dataset_id = $1)
            order by created_at desc, run_id desc limit $2 offset $3""",
        dataset_id,
        limit,
        offset,
    )


# -- simulations --------------------------------------------------------------------------


async def insert_simulation(
    conn: Conn, values: dict[str, Any], created_by: str
) -> asyncpg.Record | None:
    """The new simulation; None when ``simulation_id`` is taken."""
    return await conn.fetchrow(
        f"""
        insert into simulations (simulation_id, run_id, initial_capital, parameters, created_by)
        values ($1, $2, $3, $4, $5)
        on conflict (simulation_id) do nothing
        returning {SIMULATION_COLUMNS}
        """,
        values["simulation_id"],
        values["run_id"],
        values["initial_capital"],
        values["parameters"],
        created_by,
    )


async def set_job(conn: Conn, simulation_id: str, job_id: str) -> None:
    await conn.execute(
        "update simulations set job_id = $2 where simulation_id = $1", simulation_id, job_id
    )


async def get_simulation(conn: Conn, simulation_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"select {SIMULATION_COLUMNS} from simulations where simulation_id = $1", simulation_id
    )


async def lock_simulation(conn: Conn, simulation_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"select {SIMULATION_COLUMNS} from simulations where simulation_id = $1 for update",
        simulation_id,
    )


async def list_simulations(
    conn: Conn, run_id: str | None, limit: int, offset: int
) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"""select {SIMULATION_COLUMNS} from simulations where ($1::uuid is null or run_id = $1)
            order by created_at desc, simulation_id desc limit $2 offset $3""",
        run_id,
        limit,
        offset,
    )


async def set_status(
    conn: Conn, simulation_id: str, status: str, *, unless: tuple[str, ...] = ()
) -> asyncpg.Record | None:
    """Move the simulation to ``status`` (not from a status in ``unless``)."""
    return await conn.fetchrow(
        f"""update simulations set status = $2,
                   completed_at = case when $2 in ('completed', 'failed', 'cancelled')
                                       then now() end
            where simulation_id = $1 and not (status = any($3::text[]))
            returning {SIMULATION_COLUMNS}""",
        simulation_id,
        status,
        list(unless),
    )


async def complete(
    conn: asyncpg.Connection,
    simulation_id: str,
    results: dict[str, Any],
    trades: list[tuple[Any, ...]],
) -> asyncpg.Record:
    """Trades (in place of any an earlier attempt wrote) and results, in the caller's
    transaction."""
    await conn.execute("delete from simulation_trades where simulation_id = $1", simulation_id)
    if trades:
        await conn.copy_records_to_table(
            "simulation_trades", records=trades, columns=list(TRADE_COLUMNS)
        )
    row = await conn.fetchrow(
        f"""update simulations set results = $2, status = 'completed', completed_at = now()
            where simulation_id = $1 returning {SIMULATION_COLUMNS}""",
        simulation_id,
        results,
    )
    assert row is not None
    return row


async def trades(conn: Conn, simulation_id: str, limit: int, offset: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"""select {", ".join(TRADE_COLUMNS)} from simulation_trades where simulation_id = $1
            order by n limit $2 offset $3""",
        simulation_id,
        limit,
        offset,
    )


# -- predictions: ts."wf_<run>" ---------------------------------------------------------

SEED_COLUMNS = ("timestamp", "bar_index", "fold_number", "prediction", "target")
_THRESHOLD = re.compile(r"^threshold_(0|[1-9][0-9]{0,3})$")
_TIMESTAMPS = ("timestamp with time zone", "timestamp without time zone")
_INTEGERS = ("bigint", "integer", "smallint")
_CASTS = {"bar_index": "int8", "fold_number": "int8", "prediction": "float8", "target": "float8"}


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class Layout:
    """How a stored predictions table answers with the seed's columns."""

    measurement: str
    time: str  # SQL: the row's time as epoch microseconds (int8)
    time_column: str
    select: str  # the seed's five columns, then threshold_k in k order
    order: str

    def query(self) -> str:
        return f"select {self.select} from {table(self.measurement)} order by {self.order}"


def header(thresholds: int) -> tuple[str, ...]:
    return (*SEED_COLUMNS, *(f"threshold_{k}" for k in range(thresholds)))


async def column_types(
    conn: asyncpg.Connection | asyncpg.Pool, measurement: str
) -> dict[str, str] | None:
    """The columns of ``ts.<measurement>`` and their types, in order; None when it is missing."""
    rows = await conn.fetch(
        """select attname::text as name, format_type(atttypid, atttypmod) as type
           from pg_attribute
           where attrelid = to_regclass($1) and attnum > 0 and not attisdropped
           order by attnum""",
        table(measurement),
    )
    return {row["name"]: row["type"] for row in rows} or None


def _time_column(measurement: str, types: dict[str, str]) -> str:
    found = next((c for c in TIME_COLUMNS if c in types), None)
    if found is None or "prediction" not in types:
        raise ValueError(
            f"measurement {measurement} holds no predictions: it needs a time column "
            f"({' or '.join(TIME_COLUMNS)}) and prediction; it has {', '.join(types)}"
        )
    if types[found] not in (*_TIMESTAMPS, *_INTEGERS):
        raise ValueError(f"the time column {found} of {measurement} is {types[found]}")
    return found


async def layout(conn: asyncpg.Connection | asyncpg.Pool, measurement: str) -> Layout | None:
    """The layout of ``ts.<measurement>``; None when it does not exist. A table with no time
    column or no ``prediction`` is a ValueError naming what it lacks."""
    types = await column_types(conn, measurement)
    if types is None:
        return None
    time_column = _time_column(measurement, types)
    if types[time_column] in _TIMESTAMPS:
        time = f"(extract(epoch from {_quoted(time_column)}) * 1000000)::int8"
    else:
        time = f"{_quoted(time_column)}::int8"
    thresholds = sorted(
        (int(m[1]), name) for name in types if (m := _THRESHOLD.match(name)) is not None
    )
    select = [f'{time} as "timestamp"']
    for name in SEED_COLUMNS[1:]:
        value = _quoted(name) if name in types else "null"
        select.append(f"{value}::{_CASTS[name]} as {_quoted(name)}")
    select += [f"{_quoted(name)}::float8 as {_quoted(name)}" for _, name in thresholds]
    order = _quoted(time_column) + (", bar_index" if "bar_index" in types else "")
    return Layout(
        measurement=measurement,
        time=time,
        time_column=time_column,
        select=", ".join(select),
        order=order,
    )


# Binary COPY kinds (hub.pgcopy) of the column types a predictions table may have.
_WIRE_KINDS = {
    "timestamp with time zone": "timestamptz",
    "timestamp without time zone": "timestamptz",
    "bigint": "int8",
    "integer": "int4",
    "double precision": "float8",
    "real": "float4",
}


def _whole(values: np.ndarray) -> bool:
    return bool(np.all(np.isfinite(values) & (values == np.round(values))))


def _wire(measurement: str, name: str, kind: str, values: np.ndarray) -> tuple[np.ndarray, str]:
    """``values`` as column ``name`` of type ``kind`` takes them in a binary COPY."""
    wire = _WIRE_KINDS.get(kind)
    if wire is None:
        raise ValueError(f"column {name} of ts.{measurement} is {kind}, not a number")
    if wire in ("int8", "int4") and values.dtype.kind == "f" and not _whole(values):
        raise ValueError(f"column {name} of ts.{measurement} is {kind}: {name} must be whole")
    dtype = {"int8": np.int64, "int4": np.int32, "float4": np.float32}.get(wire, np.float64)
    if wire == "timestamptz":
        return np.asarray(values, dtype=np.int64) * 1000, wire  # µs in, ns to the encoder
    return np.asarray(values, dtype=dtype), wire


async def replace(
    conn: asyncpg.Connection, measurement: str, columns: dict[str, np.ndarray]
) -> None:
    """The run's predictions (``columns``: the seed's names, ``timestamp`` in epoch
    microseconds) in place of any stored before, in the caller's transaction. A missing table
    is created (``timestamp timestamptz`` first, as the seed names it); one that exists (a CSV
    import made it) keeps its columns and types, and is a ValueError when it lacks one."""
    types = await column_types(conn, measurement)
    if types is None:
        levels = [name for name in columns if _THRESHOLD.match(name)]
        extra = "".join(f",\n    {name} float8 not null" for name in levels)
        await conn.execute(
            f"""create table {table(measurement)} (
    "timestamp" timestamptz primary key,
    bar_index   int8 not null,
    fold_number int4 not null,
    prediction  float8 not null,
    target      float8 not null{extra}
)"""
        )
        time_column = "timestamp"
        types = await column_types(conn, measurement) or {}
    else:
        time_column = _time_column(measurement, types)
        missing = [name for name in columns if name != "timestamp" and name not in types]
        if missing:
            raise ValueError(
                f"ts.{measurement} exists without the columns {', '.join(missing)}; "
                f"it has {', '.join(types)}"
            )
        await conn.execute(f"truncate {table(measurement)}")
    names = [time_column if name == "timestamp" else name for name in columns]
    encoded = [
        _wire(measurement, stored, types[stored], values)
        for stored, values in zip(names, columns.values(), strict=True)
    ]
    try:
        await conn.copy_to_table(
            measurement,
            schema_name="ts",
            source=memoryview(pgcopy.encode(encoded)),
            columns=names,
            format="binary",
        )
    except (asyncpg.NotNullViolationError, asyncpg.UniqueViolationError) as exc:
        raise ValueError(f"ts.{measurement} refused the predictions: {exc}") from None


async def series(conn: asyncpg.Connection, found: Layout) -> tuple[np.ndarray, np.ndarray]:
    """Times (int64 ns) and predictions (float64, null as NaN) in time order."""
    chunks: list[bytes] = []

    async def keep(data: bytes) -> None:
        chunks.append(data)

    column = _quoted(found.time_column)
    await conn.copy_from_query(
        f"select {found.time}, coalesce(prediction::float8, 'NaN') "
        f"from {table(found.measurement)} where {column} is not null order by {found.order}",
        output=keep,
        format="binary",
    )
    ts_us, prediction = pgcopy.decode(b"".join(chunks), ["int8", "float8"])
    return ts_us * 1000, prediction


async def csv_chunks(pool: asyncpg.Pool, found: Layout, *, queue: int = 8) -> AsyncIterator[bytes]:
    """The predictions as CSV with a header line, a chunk at a time as Postgres sends them.
    At most ``queue`` chunks wait for a slow reader; while they do, the COPY waits too."""
    pending: asyncio.Queue[bytes | Exception | None] = asyncio.Queue(queue)

    async def put(data: bytes | bytearray) -> None:
        await pending.put(bytes(data))  # asyncpg hands over bytearrays

    async def produce() -> None:
        try:
            async with pool.acquire() as conn:
                await conn.copy_from_query(found.query(), output=put, format="csv", header=True)
        except Exception as exc:  # noqa: BLE001 - handed to the reader, which raises it
            await pending.put(exc)
        else:
            await pending.put(None)

    task = asyncio.create_task(produce(), name=f"copy-{found.measurement}")
    try:
        while (item := await pending.get()) is not None:
            if isinstance(item, Exception):
                raise item
            yield item
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def row_batches(
    pool: asyncpg.Pool, found: Layout, *, batch: int = 1000
) -> AsyncIterator[list[asyncpg.Record]]:
    """The predictions ``batch`` rows at a time, through a server-side cursor."""
    async with pool.acquire() as conn, conn.transaction(readonly=True):
        cursor = await conn.cursor(found.query())
        while rows := await cursor.fetch(batch):
            yield rows
