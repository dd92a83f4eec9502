"""Write columns into a generic measurement, ``ts.<measurement>``, by binary COPY.

One call writes a batch in the caller's transaction::

    async with pool.acquire() as conn, conn.transaction():
        written = await store.write(
            conn,
            "cpu",
            {"timestamp": ts_ns, "host": ["a", "b"], "usage": np.array([0.5, 0.7])},
            owner=identity.user_id,
        )

- ``columns`` maps a column name to its values: a numpy array (a masked array's masked values
  are NULL), a list (``None`` is NULL) or a pyarrow array; all of one length.
- ``timestamp`` names the designated timestamp column (``"timestamp"`` by default, QuestDB's
  name): int64 nanoseconds since the epoch, ``datetime64`` values, ``datetime`` objects or a
  pyarrow timestamp array; never NULL. Postgres keeps microseconds (nanoseconds are floored).
- Other columns are typed by their values: integers ``bigint``, floats ``double precision``,
  booleans ``boolean``, strings ``text``, times ``timestamptz``, dates ``date``. A column with no
  value at all (every one NULL) is not written, nor created.
- The table is created when missing (the timestamp column ``not null`` and indexed, every other
  column nullable) and registered as a generic measurement with its ``owner``. When it exists,
  it is extended by the columns it lacks (nullable: its older rows read NULL there); its columns
  the batch lacks read NULL in the new rows. Integers go into a ``double precision`` column;
  any other disagreement (a column of another type, another timestamp column) raises
  :class:`MeasurementError` naming every conflict, before anything is written.
- Only generic measurements are written: a ``ts`` table another domain owns (a dataset's bars,
  ticks) is refused. Who may write which measurement is the caller's decision (:func:`owner`).
- Everything happens in the caller's transaction: a rollback leaves the measurement as it was
  (a table created is gone, a column added is gone). Creating or extending a table takes a
  per-measurement lock until that transaction ends (extending also locks the table against
  readers), so writers that only append never wait for each other.

For a stream of batches of the same columns (a file), prepare once, then encode (pure: may run
in a thread while the previous batch is copied) and copy each batch::

    target = await store.prepare(conn, "cpu", first_batch, owner=owner)
    for batch in batches:
        payload = await asyncio.to_thread(target.encode, batch)
        await target.copy(conn, payload)
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import asyncpg
import numpy as np
import pyarrow as pa

from hub.errors import BadRequest
from hub.timeseries import copyenc
from hub.timeseries import repository as repo
from hub.timeseries.copyenc import Kind

MEASUREMENT = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
Values: TypeAlias = np.ndarray | Sequence[Any] | pa.Array | pa.ChunkedArray
Columns: TypeAlias = Mapping[str, Values]


class MeasurementError(BadRequest):
    """A write the measurement cannot take: a bad name or value, or columns that disagree."""


@dataclass(frozen=True)
class Written:
    rows: int
    created: bool  # the table did not exist before this write
    added: tuple[str, ...]  # columns added to an existing table


def check_measurement(name: str) -> str:
    if not isinstance(name, str) or not MEASUREMENT.match(name):
        raise MeasurementError(
            f"measurement must be 1-63 lower-case letters, digits and _, starting with a "
            f"letter; got {str(name)[:80]!r}",
            field="measurement",
        )
    return name


def check_column_name(name: str) -> str:
    """Any name Postgres keeps whole (1-63 bytes) without a NUL or a control character; names
    are always quoted, so case and punctuation are kept."""
    if (
        not isinstance(name, str)
        or not name
        or len(name.encode()) > 63
        or any(ord(c) < 32 for c in name)
    ):
        raise MeasurementError(
            f"a column name must be 1-63 bytes without control characters; got {str(name)[:80]!r}"
        )
    return name


def as_arrow(values: Values, name: str, *, timestamp: bool = False) -> pa.Array:
    """``values`` as one pyarrow array; for the timestamp column, integers are nanoseconds."""
    try:
        if isinstance(values, pa.ChunkedArray):
            array = values.combine_chunks()
        elif isinstance(values, pa.Array):
            array = values
        elif isinstance(values, np.ma.MaskedArray):
            array = pa.array(np.ma.getdata(values), mask=np.ma.getmaskarray(values))
        else:
            array = pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as exc:
        raise MeasurementError(f"column {name!r}: {exc}") from None
    if timestamp:
        if array.null_count:
            raise MeasurementError(f"the timestamp column {name!r} has a NULL value")
        if pa.types.is_integer(array.type):
            array = array.cast(pa.int64()).cast(pa.timestamp("ns", "UTC"))
        elif pa.types.is_date(array.type):
            array = array.cast(pa.timestamp("s"))
        if not pa.types.is_timestamp(array.type):
            raise MeasurementError(
                f"the timestamp column {name!r} must hold int64 nanoseconds or times, "
                f"not {array.type}"
            )
    return array


def _arrays(columns: Columns, timestamp: str) -> dict[str, pa.Array]:
    if timestamp not in columns:
        raise MeasurementError(f"the batch has no timestamp column {timestamp!r}")
    arrays = {
        check_column_name(name): as_arrow(values, name, timestamp=name == timestamp)
        for name, values in columns.items()
    }
    lengths = {len(a) for a in arrays.values()}
    if len(lengths) > 1:
        raise MeasurementError(f"columns differ in length: {sorted(lengths)}")
    return arrays


def _kinds(arrays: dict[str, pa.Array]) -> dict[str, Kind]:
    """Each column's type; columns with no value are left out."""
    kinds: dict[str, Kind] = {}
    for name, array in arrays.items():
        try:
            kind = copyenc.kind_of(array.type)
        except ValueError as exc:
            raise MeasurementError(f"column {name!r}: {exc}") from None
        if kind is not None:
            kinds[name] = kind
    return kinds


def _all_null(kind: str, n: int) -> copyenc.Wire:
    valid = np.zeros(n, dtype=np.bool_)
    if kind == "text":
        return copyenc.Wire(None, np.zeros(0, np.uint8), np.zeros(n + 1, np.int64), valid)
    return copyenc.Wire(np.zeros((n, 8), np.uint8), None, None, valid)


def _fits(data: str, column: str) -> bool:
    return data == column or (data == "bigint" and column == "double precision")


@dataclass(frozen=True)
class Target:
    """A measurement ready to take batches of the columns it was prepared with."""

    measurement: str
    timestamp: str
    columns: tuple[str, ...]  # the written columns, in COPY order (the timestamp first)
    kinds: tuple[str, ...]  # each one's column type in the table
    created: bool
    added: tuple[str, ...]

    def encode(self, columns: Columns) -> tuple[int, np.ndarray]:
        """A batch's rows and binary COPY payload. Pure (no I/O): safe in a thread."""
        arrays = _arrays(columns, self.timestamp)
        extra = sorted(set(_kinds(arrays)) - set(self.columns))
        if extra:
            raise MeasurementError(
                f"columns {extra} were not in the batch {self.measurement} was prepared with"
            )
        n = len(arrays[self.timestamp])
        wires = []
        for name, kind in zip(self.columns, self.kinds, strict=True):
            array = arrays.get(name)
            if array is None or pa.types.is_null(array.type):
                wires.append(_all_null(kind, n))
                continue
            data_kind = copyenc.kind_of(array.type)
            if data_kind is None or not _fits(data_kind, kind):
                raise MeasurementError(
                    f"column {name!r} holds {data_kind} values; {self.measurement}.{name} is {kind}"
                )
            try:
                wires.append(copyenc.to_wire(array, kind, name))
            except copyenc.ValueProblem as exc:
                raise MeasurementError(str(exc)) from None
        return n, copyenc.encode(wires, n)

    async def copy(self, conn: asyncpg.Connection, payload: tuple[int, np.ndarray]) -> int:
        """Copy an encoded batch in; the rows written."""
        n, data = payload
        if n:
            await conn.copy_to_table(
                self.measurement,
                schema_name="ts",
                source=data.data,  # a buffer is sent as is
                columns=list(self.columns),
                format="binary",
            )
        return n


async def prepare(
    conn: asyncpg.Connection,
    measurement: str,
    columns: Columns,
    *,
    timestamp: str = "timestamp",
    owner: str | None = None,
) -> Target:
    """Create or extend ``ts.<measurement>`` for batches like ``columns`` (see the module)."""
    check_measurement(measurement)
    kinds = _kinds(_arrays(columns, timestamp))
    existing = await repo.table_columns(conn, measurement)
    if existing is None or _needs_ddl(existing, kinds):
        await repo.lock_measurement(conn, measurement)
        existing = await repo.table_columns(conn, measurement)  # as of the lock
    registered = await repo.registered(conn, measurement)
    if existing is not None and registered is None:
        raise MeasurementError(
            f"ts.{measurement} belongs to another part of the hub (a dataset's bars, ticks or "
            "bars from ticks), not to imports: choose another measurement name",
            field="measurement",
        )
    fields = [(name, kind) for name, kind in kinds.items() if name != timestamp]
    if existing is None:
        await repo.create_table(conn, measurement, timestamp, fields, owner)
        return Target(
            measurement,
            timestamp,
            (timestamp, *(n for n, _ in fields)),
            ("timestamptz", *(k for _, k in fields)),
            created=True,
            added=(),
        )
    assert registered is not None
    if registered != timestamp:
        raise MeasurementError(
            f"ts.{measurement}'s timestamp column is {registered!r}, not {timestamp!r}"
        )
    conflicts = [
        f"{name} holds {kind} values but ts.{measurement}.{name} is {existing[name]}"
        for name, kind in fields
        if name in existing and not _fits(kind, existing[name])
    ]
    if conflicts:
        raise MeasurementError(
            f"the columns disagree with ts.{measurement}: {'; '.join(conflicts)}",
            field="measurement",
        )
    added = [(name, kind) for name, kind in fields if name not in existing]
    if added:
        await repo.add_columns(conn, measurement, added)
    return Target(
        measurement,
        timestamp,
        (timestamp, *(n for n, _ in fields)),
        ("timestamptz", *(existing.get(n, k) for n, k in fields)),
        created=False,
        added=tuple(n for n, _ in added),
    )


def _needs_ddl(existing: dict[str, str], kinds: dict[str, Kind]) -> bool:
    return any(name not in existing for name in kinds)


async def write(
    conn: asyncpg.Connection,
    measurement: str,
    columns: Columns,
    *,
    timestamp: str = "timestamp",
    owner: str | None = None,
) -> Written:
    """Write one batch (see the module): prepare, encode, copy."""
    target = await prepare(conn, measurement, columns, timestamp=timestamp, owner=owner)
    rows = await target.copy(conn, target.encode(columns))
    return Written(rows, target.created, target.added)


async def owner(conn: asyncpg.Connection, measurement: str) -> tuple[bool, bool, str | None]:
    """Whether ``ts.<measurement>`` exists, whether it is a generic measurement (one this module
    may write), and the user that created it (None when unknown)."""
    return await repo.owner(conn, measurement)
