"""Loading an uploaded CSV into ``ts.<measurement>``: pyarrow reads it block by block, the
store copies each block in, all in one transaction.

- Types are pyarrow's inference from the first block (integers, floats, booleans, text, ISO
  times, dates). When a later block disagrees (a ``1.5`` under integers), the import starts
  over with that column widened (null, then integer, then float, then text), so a file is
  typed as a whole without being held whole.
- ``timestamp_unix`` (or else ``timestamp``) becomes the measurement's ``timestamp`` column.
  Numbers are epoch seconds, milliseconds, microseconds or nanoseconds, told apart by the
  largest magnitude in the first block (below 1e11 seconds, below 1e14 milliseconds, below
  1e17 microseconds, else nanoseconds; fractions count), and every later block must read the
  same way. ISO 8601 strings work too (no zone is UTC).
- Memory stays a few blocks whatever the file's size: the next block is read and encoded in a
  thread while the current one is copied.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from hub.timeseries import store

BLOCK_BYTES = 4 << 20
TIMESTAMP = "timestamp"
SOURCES = ("timestamp_unix", "timestamp")
_COLUMN = re.compile(r"In CSV column #(\d+)")
_WIDER: dict[str, pa.DataType] = {
    "null": pa.int64(),
    "int64": pa.float64(),
    "double": pa.string(),
    "bool": pa.string(),
    "date32[day]": pa.string(),
}
_US_PER_UNIT = {"s": 1e6, "ms": 1e3, "us": 1.0, "ns": 1e-3}


class ImportFailed(Exception):
    """The file cannot be imported as it is (the job fails with this message)."""


class Widen(Exception):
    """A later block disagreed with a column's inferred type: start over with ``type``."""

    def __init__(self, column: str, data_type: pa.DataType) -> None:
        super().__init__(f"{column} as {data_type}")
        self.column = column
        self.type = data_type


def timestamp_source(names: list[str]) -> str:
    """The CSV column that holds the times."""
    lowered = {n.lower(): n for n in names}
    for source in SOURCES:
        if source in lowered:
            return lowered[source]
    raise ImportFailed(f"the CSV has no {' or '.join(SOURCES)} column; its columns: {names}")


def unit_of(values: np.ndarray) -> str:
    """Epoch seconds, milliseconds, microseconds or nanoseconds, by magnitude."""
    peak = float(np.max(np.abs(values))) if len(values) else 0.0
    if peak < 1e11:
        return "s"
    if peak < 1e14:
        return "ms"
    if peak < 1e17:
        return "us"
    return "ns"


class Blocks:
    """The file's blocks as the store's columns (pyarrow arrays by name), read lazily."""

    def __init__(self, path: Path, overrides: dict[str, pa.DataType]) -> None:
        try:
            self.reader = pcsv.open_csv(
                path,
                read_options=pcsv.ReadOptions(block_size=BLOCK_BYTES, use_threads=True),
                convert_options=pcsv.ConvertOptions(column_types=overrides),
            )
        except pa.ArrowInvalid as exc:
            raise ImportFailed(f"the CSV cannot be read: {exc}") from None
        self.names = list(self.reader.schema.names)
        self.source = timestamp_source(self.names)
        if TIMESTAMP in self.names and self.source != TIMESTAMP:
            raise ImportFailed(f"the CSV has both {self.source} and timestamp columns: keep one")
        self.unit: str | None = None
        self.rows = 0

    def next(self) -> dict[str, pa.Array] | None:
        """The next block's columns, or None at the end."""
        try:
            batch = self.reader.read_next_batch()
        except StopIteration:
            return None
        except pa.ArrowInvalid as exc:
            raise self._widen_or_fail(exc) from None
        columns: dict[str, pa.Array] = {}
        for name, array in zip(batch.schema.names, batch.columns, strict=True):
            if name == self.source:
                columns[TIMESTAMP] = self._times(array)
            else:
                columns[name] = array
        self.rows += batch.num_rows
        return columns

    def next_encoded(self, target: store.Target) -> tuple[int, np.ndarray] | None:
        columns = self.next()
        return None if columns is None else target.encode(columns)

    def _widen_or_fail(self, exc: pa.ArrowInvalid) -> Exception:
        found = _COLUMN.search(str(exc))
        if found is None or "conversion error" not in str(exc):
            return ImportFailed(f"the CSV cannot be read after row {self.rows:,}: {exc}")
        index = int(found[1])
        name = self.names[index]
        current = self.reader.schema.field(index).type
        wider = _WIDER.get(str(current))
        if wider is None and pa.types.is_timestamp(current):
            wider = pa.string()
        if wider is None:
            return ImportFailed(f"column {name!r} cannot be read after row {self.rows:,}: {exc}")
        return Widen(name, wider)

    def _times(self, array: pa.Array) -> pa.Array:
        if array.null_count:
            missing = int(np.argmin(array.is_valid().to_numpy(zero_copy_only=False)))
            raise ImportFailed(f"row {self.rows + missing + 1:,} has no {self.source}")
        data_type = array.type
        if pa.types.is_integer(data_type) or pa.types.is_floating(data_type):
            values = array.to_numpy(zero_copy_only=False)
            unit = unit_of(values)
            if self.unit is None:
                self.unit = unit
            elif unit != self.unit:
                raise ImportFailed(
                    f"{self.source} changes unit: the first rows read as {self.unit}, "
                    f"rows from {self.rows + 1:,} as {unit}"
                )
            if pa.types.is_integer(data_type):
                return array.cast(pa.int64()).cast(pa.timestamp(unit, "UTC"))
            micros = np.round(values.astype(np.float64) * _US_PER_UNIT[unit])
            if not np.all(np.isfinite(micros)) or np.max(np.abs(micros)) > 9.2e18:
                raise ImportFailed(f"{self.source} holds a value that is no time")
            return pa.array(micros.astype(np.int64), pa.timestamp("us", "UTC"))
        if pa.types.is_timestamp(data_type) or pa.types.is_date(data_type):
            return array
        if pa.types.is_string(data_type) or pa.types.is_large_string(data_type):
            for target in (pa.timestamp("us", "UTC"), pa.timestamp("us")):
                try:
                    return pc.cast(array, target)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                    continue
            raise ImportFailed(
                f"{self.source} must hold epoch numbers (s, ms, us or ns) or ISO 8601 times "
                f"(all with a zone offset, or none); rows from {self.rows + 1:,} do not"
            )
        raise ImportFailed(f"{self.source} holds {data_type} values, which are no times")


async def load(
    conn: Any,
    path: Path,
    measurement: str,
    *,
    owner: str | None,
    overrides: dict[str, pa.DataType],
    progress: Callable[[int], Any],
) -> dict[str, Any]:
    """Copy the whole file into ``ts.<measurement>`` in ``conn``'s transaction; what was
    done. Raises :class:`Widen` to be started over, :class:`ImportFailed` to give up."""
    blocks = await asyncio.to_thread(Blocks, path, overrides)
    first = await asyncio.to_thread(blocks.next)
    if first is None:
        raise ImportFailed("the CSV has a header but no rows")
    target = await store.prepare(conn, measurement, first, owner=owner)
    payload: tuple[int, np.ndarray] | None = await asyncio.to_thread(target.encode, first)
    rows = 0
    while payload is not None:
        following = asyncio.ensure_future(asyncio.to_thread(blocks.next_encoded, target))
        try:
            rows += await target.copy(conn, payload)
            await progress(rows)
        except BaseException:
            following.cancel()
            raise
        payload = await following
    return {
        "rows": rows,
        "columns": list(target.columns),
        "created": target.created,
        "added_columns": list(target.added),
        "timestamp_unit": blocks.unit,
    }
