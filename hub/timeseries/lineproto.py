"""Line-protocol ingest: a body of InfluxDB / QuestDB line protocol, parsed whole by
``engine.parse_ilp``, checked, and written in one transaction.

- Each measurement becomes ``ts.<measurement>`` through :mod:`hub.timeseries.store` (binary
  COPY; created or extended): the designated timestamp column is ``timestamp`` (the line's
  timestamp, or the time the hub received the body for a line without one), tags become
  ``text`` columns, fields ``double precision`` (floats), ``bigint`` (``1i``, ``1u``),
  ``boolean``, ``text`` (strings) or ``timestamptz`` (``1t``, ``1n``). Measurement names
  follow the store's rule (1-63 lower-case letters, digits and ``_``, from a letter); a tag or
  field may not be named ``timestamp``. Who may write one: as for CSV imports, a new
  measurement, one the caller created, or any generic one for an admin (403 otherwise).
- Lines of the measurement ``ticks`` are ticks (``hub.marketdata``): the tag ``symbol`` and
  the field ``price`` required, the fields ``size`` (or ``volume``), ``bid`` and ``ask``
  optional, nothing else, under the market-data rules (``hub.marketdata.ticks``). They go to
  their symbol's tick table, like ``POST /api/v1/marketdata/ticks``, and once committed each is
  published on ``ticks:{symbol}`` in line order, so the paper broker and live runs see them.
  Only an admin or a key granted ``marketdata:write`` may send them (403).
- Everything is checked before anything is written, and everything is written in one
  transaction: a batch with any bad line writes nothing. A refusal names the first bad line
  (``BadRequest.details["line"]``).
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import asyncpg
import numpy as np
import pyarrow as pa
from redis.exceptions import RedisError

from hub import pgcopy
from hub.auth import Identity
from hub.errors import BadRequest, Forbidden, HubError
from hub.marketdata import repository as ticks_repo
from hub.marketdata.service import partition_for, require_write
from hub.marketdata.ticks import MAX_TICKS, Ticks
from hub.times import LATEST, ns_of
from hub.timeseries import store
from hub.topics import SYMBOL

if TYPE_CHECKING:
    from engine.ilp_parse import Column, Table
    from hub.domains import Resources

log = logging.getLogger("tradehub.lineproto")

TICKS = "ticks"  # the measurement whose lines are ticks
TICK_FIELDS = ("price", "size", "volume", "bid", "ask")
TIMESTAMP = "timestamp"
MAX_COLUMNS = 1000  # per measurement, as CSV imports
# Rows x columns a batch may make (NULLs count: COPY writes each), at least this many and at
# least a quarter of the body's bytes: dense lines make far fewer (OHLCV about 0.07 a byte),
# so only a batch of lines with ever new keys reaches it.
MIN_CELLS = 1_000_000
_SYMBOL = re.compile(SYMBOL)
_LAST_NS = ns_of(LATEST)


def bad_line(line: int, message: str) -> BadRequest:
    return BadRequest(f"line {line}: {message}", details={"line": line})


@dataclass(frozen=True)
class Ingested:
    lines: int
    rows: dict[str, int]  # rows written per generic measurement
    ticks: int


@dataclass(frozen=True)
class _Batch:
    """A parsed body, checked: what each measurement gets."""

    generic: list[tuple[Table, dict[str, pa.Array]]]
    ticks: Ticks | None


class LineProtocolIngest:
    """Built per request from the process's resources (it holds no state of its own)."""

    def __init__(self, resources: Resources) -> None:
        self.pool: asyncpg.Pool = resources.pool
        self.bus = resources.bus

    async def write(self, identity: Identity, body: bytes, *, precision: str) -> Ingested:
        """Parse, check and write a whole body (see the module); BadRequest naming the first
        bad line, Forbidden for ticks or another user's measurement."""
        received = time.time_ns()
        batch = await asyncio.to_thread(_prepare, body, precision, received)
        if batch.ticks is not None:
            require_write(identity)
        rows: dict[str, int] = {}
        async with self.pool.acquire() as conn, conn.transaction():
            # In name order: two batches writing the same measurements lock them alike.
            for table, columns in sorted(batch.generic, key=lambda pair: pair[0].measurement):
                rows[table.measurement] = await _write_table(conn, identity, table, columns)
            if batch.ticks is not None:
                await _store_ticks(conn, batch.ticks, received)
        if batch.ticks is not None:
            await self._publish(batch.ticks, received)
        lines = sum(rows.values()) + (len(batch.ticks) if batch.ticks is not None else 0)
        return Ingested(lines, rows, 0 if batch.ticks is None else len(batch.ticks))

    async def _publish(self, ticks: Ticks, received: int) -> None:
        items = [
            (f"ticks:{symbol}", payload)
            for symbol, payload in zip(ticks.symbols, ticks.payloads(received), strict=True)
        ]
        try:
            await self.bus.publish_recent_batch(items)
        except (OSError, RedisError) as exc:
            # Stored all the same: a recent topic promises live delivery only while Redis is up.
            log.warning(
                "ticks stored but not published", extra={"ticks": len(items), "error": str(exc)}
            )


# -- checking (in a thread: pure) -------------------------------------------------------------


def _prepare(body: bytes, precision: str, received: int) -> _Batch:
    from engine.ilp_parse import LineProtocolError, parse_ilp

    try:
        tables = parse_ilp(body, precision=precision, default_ns=received)
    except LineProtocolError as exc:
        raise BadRequest(
            f"line {exc.line}: {exc.reason}; the line reads {exc.text!r}",
            details={"line": exc.line},
        ) from None
    cells = sum(len(t) * (len(t.columns) + 1) for t in tables)
    limit = max(MIN_CELLS, len(body) // 4)
    if cells > limit:
        raise BadRequest(
            f"the batch makes {cells:,} values (rows times columns of each measurement), more "
            f"than {limit:,}: send lines with different keys in separate batches"
        )
    generic: list[tuple[Table, dict[str, pa.Array]]] = []
    ticks = None
    for table in tables:
        if table.measurement == TICKS:
            ticks = _ticks(table)
        else:
            generic.append((table, _columns(table)))
    return _Batch(generic, ticks)


def _columns(table: Table) -> dict[str, pa.Array]:
    """A generic measurement's columns as the store takes them (checked by its rules)."""
    first = int(table.lines[0])
    try:
        store.check_measurement(table.measurement)
    except HubError as exc:
        raise bad_line(first, f"measurement {table.measurement[:80]!r}: {exc.message}") from None
    if len(table.columns) > MAX_COLUMNS:
        raise bad_line(
            first,
            f"measurement {table.measurement!r} has {len(table.columns)} tags and fields in "
            f"this batch; at most {MAX_COLUMNS}",
        )
    columns: dict[str, pa.Array] = {TIMESTAMP: pa.array(table.timestamp, pa.timestamp("ns", "UTC"))}
    for name, column in table.columns.items():
        if name == TIMESTAMP:
            raise bad_line(
                column.first_line,
                f"{TIMESTAMP!r} is {table.measurement}'s designated timestamp column (the line's "
                "timestamp): name the tag or field otherwise",
            )
        try:
            store.check_column_name(name)
        except HubError as exc:
            raise bad_line(column.first_line, exc.message) from None
        columns[name] = _arrow(column)
    return columns


def _arrow(column: Column) -> pa.Array:
    """A parsed column as a pyarrow array, its buffers shared (not copied) where they can be."""
    n = len(column)
    bitmap = None
    nulls = 0
    if column.valid is not None:
        bitmap = pa.py_buffer(np.packbits(column.valid, bitorder="little"))
        nulls = n - int(np.count_nonzero(column.valid))
    kind = column.type.value
    if column.offsets is not None:
        return pa.LargeStringArray.from_buffers(
            n, pa.py_buffer(column.offsets), pa.py_buffer(column.values), bitmap, nulls
        )
    mask = None if column.valid is None else ~column.valid
    if kind == "timestamp":
        return pa.array(column.values, pa.timestamp("ns", "UTC"), mask=mask)
    return pa.array(column.values, mask=mask)


def _ticks(table: Table) -> Ticks:
    """The ``ticks`` lines as a batch of ticks, each checked by the market-data rules."""
    columns = table.columns
    allowed = {"symbol", *TICK_FIELDS}
    for name, column in columns.items():
        if name not in allowed:
            raise bad_line(
                column.first_line,
                f"a {TICKS} line holds the tag symbol and the fields price, size (or volume), "
                f"bid and ask; {name[:80]!r} is none of them",
            )
        kind = column.type.value
        if name == "symbol" and kind != "tag":
            raise bad_line(column.first_line, f"symbol must be a tag of a {TICKS} line")
        if name != "symbol" and kind not in ("float", "integer"):
            raise bad_line(column.first_line, f"{name} must be a number (a float or 1i)")
    lines = table.lines.tolist()
    n = len(table)
    if "symbol" not in columns or "price" not in columns:
        raise bad_line(lines[0], f"a {TICKS} line needs the tag symbol and the field price")
    symbols = columns["symbol"].tolist()
    price, has_price = _numbers(columns["price"], n)
    size, has_size = _numbers(columns.get("size"), n)
    volume, has_volume = _numbers(columns.get("volume"), n)
    if (has_size & has_volume).any():
        at = int(np.argmax(has_size & has_volume))
        raise bad_line(lines[at], f"{TICKS}: send size or volume (its alias), not both")
    size = np.where(has_volume, volume, size)
    has_size |= has_volume
    bid, has_bid = _numbers(columns.get("bid"), n)
    ask, has_ask = _numbers(columns.get("ask"), n)
    with np.errstate(invalid="ignore"):
        checks = [
            (np.array([s is None for s in symbols]), "needs the tag symbol"),
            (~has_price, "needs the field price"),
            (has_price & ~(np.isfinite(price) & (price > 0)), "price must be finite, above 0"),
            (has_size & ~(np.isfinite(size) & (size >= 0)), "size must be finite, at least 0"),
            (has_bid & ~(np.isfinite(bid) & (bid > 0)), "bid must be finite, above 0"),
            (has_ask & ~(np.isfinite(ask) & (ask > 0)), "ask must be finite, above 0"),
            (has_bid & has_ask & (bid > ask), "bid is above ask"),
            ((table.timestamp < 0) | (table.timestamp >= _LAST_NS),
             "the tick's time is outside 1970-01-01..2262-04-11"),
        ]  # fmt: skip
    for bad, message in checks:
        if bad.any():
            raise bad_line(lines[int(np.argmax(bad))], f"{TICKS}: {message}")
    for symbol in dict.fromkeys(symbols):
        if not _SYMBOL.fullmatch(symbol):
            raise bad_line(
                lines[symbols.index(symbol)],
                f"{TICKS}: invalid symbol {symbol[:80]!r}: 1-32 letters, digits and / _ . : -",
            )
    return Ticks(symbols, table.timestamp.copy(), price, size, bid, ask)


def _numbers(column: Column | None, n: int) -> tuple[np.ndarray, np.ndarray]:
    """A numeric column as float64 (NaN where a row has no value: what ``Ticks`` reads as not
    sent), and where rows have one."""
    if column is None:
        return np.full(n, math.nan), np.zeros(n, dtype=np.bool_)
    values = column.values.astype(np.float64)
    if column.valid is None:
        return values, np.ones(n, dtype=np.bool_)
    values[~column.valid] = math.nan
    return values, column.valid


# -- writing (in the transaction) -------------------------------------------------------------


async def _write_table(
    conn: asyncpg.Connection, identity: Identity, table: Table, columns: dict[str, pa.Array]
) -> int:
    name = table.measurement
    first = int(table.lines[0])
    exists, _, _ = await store.owner(conn, name)
    if exists:
        await _check_owner(conn, identity, name)
    try:
        target = await store.prepare(conn, name, columns, owner=identity.user_id)
    except store.MeasurementError as exc:
        raise bad_line(first, f"measurement {name!r}: {exc.message}") from None
    if not exists and not target.created:  # made by another writer since the first look
        await _check_owner(conn, identity, name)
    try:
        payload = await asyncio.to_thread(target.encode, columns)
    except store.MeasurementError as exc:
        raise bad_line(first, f"measurement {name!r}: {exc.message}") from None
    return await target.copy(conn, payload)


async def _check_owner(conn: asyncpg.Connection, identity: Identity, name: str) -> None:
    _, registered, owner = await store.owner(conn, name)
    if registered and owner is not None and owner != identity.user_id and not identity.is_admin:
        raise Forbidden(f"the measurement {name} belongs to another user")


async def _store_ticks(conn: asyncpg.Connection, ticks: Ticks, received: int) -> None:
    """The ticks into their symbols' tables, as the market-data service stores a batch: each
    new symbol gets its table, and every ``MAX_TICKS`` ticks a number from the batch
    sequence (``hub.marketdata.repository.reserve_numbers``)."""
    symbols = sorted(set(ticks.symbols))
    added = await ticks_repo.add_symbols(conn, symbols, [partition_for(s) for s in symbols])
    for row in added:
        await ticks_repo.create_partition(conn, row["symbol"], row["measurement"])
    numbers = await ticks_repo.reserve_many(conn, -(-len(ticks) // MAX_TICKS))
    payload = await asyncio.to_thread(_tick_payload, ticks, numbers, received)
    await ticks_repo.copy_ticks(conn, payload)


def _tick_payload(ticks: Ticks, numbers: list[int], received: int) -> bytes:
    head, tail = len(pgcopy.SIGNATURE), len(pgcopy.TRAILER)
    parts = [
        ticks.part(i * MAX_TICKS, (i + 1) * MAX_TICKS).copy_payload(first, received)[head:-tail]
        for i, first in enumerate(numbers)
    ]
    return pgcopy.SIGNATURE + b"".join(parts) + pgcopy.TRAILER


__all__ = ["TICKS", "Ingested", "LineProtocolIngest", "bad_line"]
