"""InfluxDB Line Protocol (ILP) text into columns: the mirror of ``engine.encode_ilp``.

``parse_ilp`` reads what the QuestDB client (text, protocol version 1) and InfluxDB clients
write, and gives one :class:`Table` per measurement: its rows' timestamps and a column per tag
and field key, typed by the values' form:

- tags: text; fields: ``1.5`` / ``1`` / ``NaN`` / ``Infinity`` / ``-Infinity`` floats, ``1i``
  integers, ``1u`` unsigned integers (up to 2**63 - 1: what a bigint holds), booleans ``t``
  ``T`` ``true`` ``True`` ``TRUE`` (and ``f``... for false), ``"quoted"`` strings, and ``1t``
  (microseconds) / ``1n`` (nanoseconds) timestamps, as QuestDB's clients write time fields;
- escapes as the QuestDB client writes them: in names and tag values a backslash before a
  space, comma, ``=``, backslash, newline or carriage return is that byte (before anything
  else it is itself, as InfluxDB reads it); in strings ``\\"`` and ``\\\\`` (and a backslash
  before a newline or carriage return) are the byte, and newlines may also appear bare;
- the line's timestamp, an integer in the request's precision (or with a ``t`` / ``n``
  suffix), in nanoseconds; a line without one takes ``default_ns``;
- blank lines and ``#`` comment lines are skipped; ``\\r\\n`` ends a line like ``\\n``.

A key keeps one type throughout a measurement (a tag stays a tag, an integer field an
integer: ``1i`` and ``1.0`` under one key is a conflict), and appears at most once a line.
The first thing wrong raises :class:`LineProtocolError` naming the line (1-based, counting
every newline of the body) before anything is returned; the kernels are in
``engine._ilp_parse_nb``.
"""

from __future__ import annotations

import contextlib
import enum
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine._ilp_parse_nb import (
    MAX_NAMES,
    EntryKind,
    ErrorCode,
    Names,
    Scan,
    first_bad_byte_nb,
    gather_text_nb,
    group_columns_nb,
    line_numbers_nb,
    scan_lines_nb,
)

__all__ = [
    "PRECISIONS",
    "Column",
    "ColumnType",
    "LineProtocolError",
    "Table",
    "parse_ilp",
    "warm_up",
]

# Nanoseconds per unit of each precision InfluxDB (v1 and v2) and QuestDB name.
PRECISIONS: dict[str, int] = {
    "n": 1,
    "ns": 1,
    "u": 1_000,
    "us": 1_000,
    "µ": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_SHOWN = 80  # bytes of a line or a token quoted in an error


class ColumnType(enum.StrEnum):
    TAG = "tag"
    FLOAT = "float"
    INTEGER = "integer"
    BOOLEAN = "boolean"
    STRING = "string"
    TIMESTAMP = "timestamp"


_TYPE_OF_KIND = {
    EntryKind.Tag: ColumnType.TAG,
    EntryKind.Float: ColumnType.FLOAT,
    EntryKind.Int: ColumnType.INTEGER,
    EntryKind.Bool: ColumnType.BOOLEAN,
    EntryKind.String: ColumnType.STRING,
    EntryKind.Timestamp: ColumnType.TIMESTAMP,
}
_DESCRIBED = {
    ColumnType.TAG: "a tag",
    ColumnType.FLOAT: "a float field",
    ColumnType.INTEGER: "an integer field",
    ColumnType.BOOLEAN: "a boolean field",
    ColumnType.STRING: "a string field",
    ColumnType.TIMESTAMP: "a timestamp field",
}


class LineProtocolError(ValueError):
    """A line that cannot be read: ``line`` (1-based), ``reason``, and the line's ``text``."""

    def __init__(self, line: int, reason: str, text: str) -> None:
        super().__init__(f"line {line}: {reason}")
        self.line = line
        self.reason = reason
        self.text = text


@dataclass(frozen=True)
class Column:
    """One key's values across a measurement's rows.

    ``values``: float64 (FLOAT), int64 (INTEGER; TIMESTAMP in nanoseconds), bool (BOOLEAN), or
    for TAG and STRING the UTF-8 bytes of every value back to back, row ``i``'s at
    ``values[offsets[i]:offsets[i + 1]]``. ``valid`` is False where a row has no value (None
    when every row has one); such rows hold 0, False or an empty string.
    """

    type: ColumnType
    values: np.ndarray
    offsets: np.ndarray | None
    valid: np.ndarray | None
    first_line: int  # the line where the key first appears in the measurement

    def __len__(self) -> int:
        return len(self.valid) if self.valid is not None else self._size()

    def _size(self) -> int:
        return len(self.offsets) - 1 if self.offsets is not None else len(self.values)

    def tolist(self) -> list[Any]:
        """The values as Python objects (str for text, None where a row has none)."""
        if self.offsets is not None:
            raw = self.values.tobytes()
            bounds = self.offsets.tolist()
            items: list[Any] = [
                raw[bounds[i] : bounds[i + 1]].decode() for i in range(len(bounds) - 1)
            ]
        else:
            items = self.values.tolist()
        if self.valid is None:
            return items
        return [item if ok else None for item, ok in zip(items, self.valid.tolist(), strict=True)]


@dataclass(frozen=True)
class Table:
    """One measurement's rows, in the order of their lines."""

    measurement: str
    lines: np.ndarray  # int64: each row's line number (1-based)
    timestamp: np.ndarray  # int64 nanoseconds
    columns: dict[str, Column]  # tags first, then fields, each in order of first appearance

    def __len__(self) -> int:
        return len(self.timestamp)


def parse_ilp(
    body: bytes | bytearray | memoryview | np.ndarray,
    *,
    precision: str = "n",
    default_ns: int | None = None,
) -> list[Table]:
    """Parse a whole body of line protocol into tables, in order of first appearance.

    ``precision`` (a key of :data:`PRECISIONS`) is the unit of timestamps written without a
    suffix; ``default_ns`` the timestamp of lines without one (by default now). Raises
    :class:`LineProtocolError` for the first bad line, ValueError for a bad precision.
    """
    factor = PRECISIONS.get(precision) if isinstance(precision, str) else None
    if factor is None:
        raise ValueError(f"precision: expected one of {', '.join(PRECISIONS)}, got {precision!r}")
    data = body if isinstance(body, np.ndarray) else np.frombuffer(body, dtype=np.uint8)
    if data.dtype != np.uint8 or data.ndim != 1:
        raise TypeError(f"body: expected bytes or a 1-D uint8 array, got {data.dtype} {data.shape}")
    data = np.ascontiguousarray(data)
    if default_ns is None:
        default_ns = time.time_ns()
    max_lines = int(np.count_nonzero(data == 10)) + 1
    max_entries = int(np.count_nonzero(data == 61))
    scan: Scan = scan_lines_nb(data, factor, default_ns, max_lines, max_entries)
    bad_at, bad_code = first_bad_byte_nb(data)
    code, line_at, pos, token_start, token_end = scan.error
    if bad_at >= 0 and (code == ErrorCode.Ok or bad_at < pos):
        raise _error(data, bad_code, bad_at, bad_at, bad_at + 1, precision)
    if code != ErrorCode.Ok:
        raise _error(data, code, line_at, token_start, token_end, precision)
    if not len(scan.line_start):
        return []

    kinds = scan.entry_kind
    floats = scan.entry_float
    slow = np.flatnonzero(kinds == EntryKind.SlowFloat)
    if slow.size:  # more digits than a uint64 holds, or a case only exact arithmetic decides
        raw = data.tobytes()
        for e, start, end in zip(
            slow.tolist(), scan.entry_int[slow].tolist(), scan.entry_end[slow].tolist()
        ):
            floats[e] = float(raw[start:end])
        kinds[slow] = EntryKind.Float

    measurements = _decoded(scan.measurements)
    keys = _decoded(scan.keys)
    grouping = group_columns_nb(
        scan.line_measurement,
        len(measurements),
        scan.entry_line,
        scan.entry_key,
        kinds,
        max(1, len(keys)),
    )
    line_numbers = line_numbers_nb(data, scan.line_start)
    error, at_fault, first = grouping.error
    if error != ErrorCode.Ok:
        raise _grouping_error(data, scan, grouping, error, at_fault, first, keys, measurements)
    return _tables(scan, grouping, measurements, keys, line_numbers)


def warm_up() -> float:
    """Load (or, on a fresh machine, compile) every parsing kernel now rather than on the first
    request: a hub calls it at start, in a thread. Returns the seconds it took."""
    started = time.perf_counter()
    body = b'w,t=a f=1.5,i=1i,b=t,s="x",u=1t 1\nw f=1e400 2\nbad\n'
    with contextlib.suppress(LineProtocolError):
        parse_ilp(body)
    parse_ilp(body[: body.index(b"bad")])
    return time.perf_counter() - started


def _decoded(names: Names) -> list[str]:
    raw = names.data.tobytes()
    offsets = names.offsets.tolist()
    # Valid UTF-8: the whole body was checked.
    return [raw[offsets[i] : offsets[i + 1]].decode() for i in range(names.used)]


def _tables(
    scan: Scan, grouping: Any, measurements: list[str], keys: list[str], line_numbers: np.ndarray
) -> list[Table]:
    per_measurement: list[dict[str, Column]] = [{} for _ in measurements]
    fields: list[dict[str, Column]] = [{} for _ in measurements]
    for c, (m, k, kind) in enumerate(
        zip(
            grouping.column_measurement.tolist(),
            grouping.column_key.tolist(),
            grouping.column_kind.tolist(),
            strict=True,
        )
    ):
        entries = grouping.entry_order[grouping.column_offsets[c] : grouping.column_offsets[c + 1]]
        n_rows = int(grouping.measurement_rows[m])
        first_line = int(line_numbers[scan.entry_line[grouping.column_first[c]]])
        column = _column(scan, grouping, entries, n_rows, _TYPE_OF_KIND[kind], first_line)
        (per_measurement if kind == EntryKind.Tag else fields)[m][keys[k]] = column
    tables = []
    for m, name in enumerate(measurements):
        lines = grouping.line_order[
            grouping.measurement_offsets[m] : grouping.measurement_offsets[m + 1]
        ]
        tables.append(
            Table(
                name,
                line_numbers[lines],
                scan.line_ts[lines],
                {**per_measurement[m], **fields[m]},
            )
        )
    return tables


def _column(
    scan: Scan, grouping: Any, entries: np.ndarray, n_rows: int, kind: ColumnType, first_line: int
) -> Column:
    full = len(entries) == n_rows  # then the rows are 0..n-1, in order
    rows = grouping.line_row[scan.entry_line[entries]]
    valid = None
    if not full:
        valid = np.zeros(n_rows, dtype=np.bool_)
        valid[rows] = True
    if kind in (ColumnType.TAG, ColumnType.STRING):
        offsets, data = gather_text_nb(
            scan.text, scan.entry_int[entries], scan.entry_end[entries], rows, n_rows
        )
        return Column(kind, data, offsets, valid, first_line)
    source = scan.entry_float if kind == ColumnType.FLOAT else scan.entry_int
    picked = source[entries]
    if kind == ColumnType.BOOLEAN:
        picked = picked.astype(np.bool_)
    if full:
        return Column(kind, picked, None, None, first_line)
    values = np.zeros(n_rows, dtype=picked.dtype)
    values[rows] = picked
    return Column(kind, values, None, valid, first_line)


# -- errors -----------------------------------------------------------------------------------


def _line_text(data: np.ndarray, start: int) -> str:
    end = start
    size = data.size
    while end < size and end - start < _SHOWN and data[end] != 10:
        end += 1
    shown = data[start:end].tobytes().decode("utf-8", "replace")
    return shown + ("..." if end < size and data[end] != 10 else "")


def _token(data: np.ndarray, start: int, end: int) -> str:
    text = data[start : min(end, start + _SHOWN)].tobytes().decode("utf-8", "replace")
    return text + ("..." if end - start > _SHOWN else "")


def _line_start(data: np.ndarray, pos: int) -> int:
    before = data[:pos]
    newlines = np.flatnonzero(before == 10)
    return int(newlines[-1]) + 1 if newlines.size else 0


def _error(
    data: np.ndarray, code: int, line_at: int, start: int, end: int, precision: str
) -> LineProtocolError:
    number = int(line_numbers_nb(data, np.array([line_at], dtype=np.int64))[0])
    token = _token(data, start, end)
    reasons = {
        ErrorCode.NoMeasurement: "the line has no measurement name",
        ErrorCode.NoFields: "no fields: a line is a measurement, then ,tag=value pairs and/or "
        "a space and key=value fields (at least one of either), then optionally a timestamp",
        ErrorCode.EmptyKey: f"an empty tag or field key at {token!r}",
        ErrorCode.TagWithoutValue: f"tag {token!r} has no '=' and value",
        ErrorCode.FieldWithoutValue: f"field {token!r} has no '=' and value",
        ErrorCode.EmptyFieldValue: f"field {token!r} has no value",
        ErrorCode.BadFieldValue: f"invalid field value in {token!r}: expected a float (1.5), "
        "an integer (1i), an unsigned integer (1u), a boolean (t, true, f, false), a quoted "
        "string, or a timestamp (1t microseconds, 1n nanoseconds)",
        ErrorCode.IntRange: f"the integer in {token!r} is outside int64",
        ErrorCode.UintRange: f"the unsigned integer in {token!r} is above 2**63 - 1, the most a "
        "bigint holds",
        ErrorCode.Unterminated: f"the string of field {token!r} has no closing quote",
        ErrorCode.BadTimestamp: f"invalid timestamp {token!r}: expected an integer (a field "
        "is key=value)",
        ErrorCode.TimestampRange: f"the timestamp {token!r} (precision {precision}) is outside "
        "the nanoseconds an int64 holds (1677-09-21 to 2262-04-11)",
        ErrorCode.Trailing: f"unexpected {token!r} after the timestamp",
        ErrorCode.Binary: f"binary field value in {token!r} (ILP protocol version 2): send "
        "text, protocol version 1",
        ErrorCode.AfterString: f"unexpected text after the closing quote in {token!r}",
        ErrorCode.Utf8: "the body is not valid UTF-8 here",
        ErrorCode.Nul: "a NUL byte",
        ErrorCode.Names: f"more than {MAX_NAMES:,} distinct measurement names or keys",
    }
    text = _line_text(data, _line_start(data, line_at))
    return LineProtocolError(number, reasons.get(code, f"error {code}"), text)


def _grouping_error(
    data: np.ndarray,
    scan: Scan,
    grouping: Any,
    code: int,
    at_fault: int,
    first: int,
    keys: list[str],
    measurements: list[str],
) -> LineProtocolError:
    starts = scan.line_start[scan.entry_line[np.array([at_fault, first])]]
    here, there = line_numbers_nb(data, np.sort(starts)).tolist()
    if starts[0] > starts[1]:
        here, there = there, here
    key = keys[scan.entry_key[at_fault]]
    measurement = measurements[scan.line_measurement[scan.entry_line[at_fault]]]
    now = _TYPE_OF_KIND[int(scan.entry_kind[at_fault])]
    before = _TYPE_OF_KIND[int(scan.entry_kind[first])]
    if code == ErrorCode.Duplicate:
        reason = f"{key!r} appears twice in the line ({_DESCRIBED[before]} and {_DESCRIBED[now]})"
    else:
        reason = (
            f"{key!r} is {_DESCRIBED[now]} here but {_DESCRIBED[before]} on line {there} of "
            f"measurement {measurement!r}: a key keeps one type"
        )
    return LineProtocolError(here, reason, _line_text(data, int(starts[0])))
