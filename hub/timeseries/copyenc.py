"""Columns (pyarrow arrays) into one Postgres binary COPY payload, in constant passes.

Each value becomes its wire form column by column with numpy (big-endian integers and floats,
microseconds since 2000 for timestamps, days since 2000 for dates, UTF-8 bytes for text). When
no value is NULL and no column is text, every row has the same width and the payload is one
structured array; otherwise a numba kernel lays the rows out one after another.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit

from hub import pgcopy

Kind = Literal["bigint", "double precision", "boolean", "text", "timestamptz", "date"]
KINDS: tuple[Kind, ...] = ("bigint", "double precision", "boolean", "text", "timestamptz", "date")
_WIRE: dict[str, str] = {
    "bigint": ">i8",
    "double precision": ">f8",
    "boolean": "u1",
    "timestamptz": ">i8",
    "date": ">i4",
}
PG_EPOCH_DAYS = 10_957  # 2000-01-01 in days since 1970-01-01
# What a stored time may be: years 1 to 9999, in microseconds since 1970.
MIN_US = -62_135_596_800_000_000
MAX_US = 253_402_300_799_999_999
_US_PER = {"s": 1_000_000, "ms": 1_000, "us": 1, "ns": 0}


class ValueProblem(ValueError):
    """A value the table cannot hold (a time out of range, a NUL in text)."""


def kind_of(data_type: pa.DataType) -> Kind | None:
    """The column type that holds values of ``data_type``; None for the null type (a column
    with no value at all). Raises ValueError for a type no measurement column holds."""
    if pa.types.is_null(data_type):
        return None
    if pa.types.is_boolean(data_type):
        return "boolean"
    if pa.types.is_integer(data_type):
        return "bigint"
    if pa.types.is_floating(data_type) or pa.types.is_decimal(data_type):
        return "double precision"
    if pa.types.is_string(data_type) or pa.types.is_large_string(data_type):
        return "text"
    if pa.types.is_timestamp(data_type):
        return "timestamptz"
    if pa.types.is_date(data_type):
        return "date"
    raise ValueError(f"values of type {data_type} fit no column type ({', '.join(KINDS)})")


def timestamp_us(array: pa.Array) -> np.ndarray:
    """A timestamp array as int64 microseconds since 1970 (nanoseconds floored); NULLs read 0."""
    unit = array.type.unit
    values = pc.fill_null(array.cast(pa.int64()), 0).to_numpy(zero_copy_only=False)
    values = np.asarray(values, dtype=np.int64)
    if unit == "ns":
        return values // 1000
    limit = np.iinfo(np.int64).max // _US_PER[unit]
    if len(values) and (values.max() > limit or values.min() < -limit):
        raise ValueProblem(f"a time is out of range (years 1 to 9999): {values.max()} {unit}")
    return values * _US_PER[unit]


@dataclass(frozen=True)
class Wire:
    """One column in wire form: fixed-width big-endian bytes (n, width), or text as one UTF-8
    buffer with n + 1 offsets; ``valid`` is None when no value is NULL."""

    fixed: np.ndarray | None
    data: np.ndarray | None
    offsets: np.ndarray | None
    valid: np.ndarray | None


def to_wire(array: pa.Array, kind: str, name: str) -> Wire:
    """``array`` (of a type :func:`kind_of` maps to ``kind``, or an integer for a double column)
    in wire form; ``name`` only names the column in errors."""
    valid = None
    if array.null_count:
        valid = np.asarray(array.is_valid().to_numpy(zero_copy_only=False), dtype=np.bool_)
    if kind == "text":
        large = array.cast(pa.large_string())
        _, offsets_buffer, data_buffer = large.buffers()
        offsets = np.frombuffer(offsets_buffer, dtype=np.int64)[
            large.offset : large.offset + len(large) + 1
        ]
        data = (
            np.frombuffer(data_buffer, dtype=np.uint8)
            if data_buffer is not None
            else np.zeros(0, dtype=np.uint8)
        )
        data = data[offsets[0] : offsets[-1]] if len(offsets) else data[:0]
        if len(data) and int(np.count_nonzero(data == 0)):
            raise ValueProblem(f"column {name!r} holds a NUL character, which text cannot")
        return Wire(None, data, (offsets - offsets[0]).astype(np.int64), valid)
    if kind == "timestamptz":
        us = timestamp_us(array)
        if valid is not None:
            us = np.where(valid, us, 0)
        if len(us) and (us.min() < MIN_US or us.max() > MAX_US):
            raise ValueProblem(f"column {name!r} holds a time outside the years 1 to 9999")
        values: np.ndarray = us - pgcopy.PG_EPOCH_US
    elif kind == "date":
        days = pc.fill_null(array.cast(pa.date32()).cast(pa.int32()), 0)
        values = np.asarray(days.to_numpy(zero_copy_only=False), dtype=np.int32) - PG_EPOCH_DAYS
    elif kind == "boolean":
        values = np.asarray(pc.fill_null(array, False).to_numpy(zero_copy_only=False), np.uint8)
    elif kind == "double precision":
        values = np.asarray(
            pc.fill_null(array.cast(pa.float64()), 0.0).to_numpy(zero_copy_only=False),
            dtype=np.float64,
        )
    else:
        if pa.types.is_uint64(array.type) and len(array) and pc.max(array).as_py() > 2**63 - 1:
            raise ValueProblem(f"column {name!r} holds an integer above 2**63 - 1")
        values = np.asarray(
            pc.fill_null(array.cast(pa.int64()), 0).to_numpy(zero_copy_only=False),
            dtype=np.int64,
        )
    wire = np.ascontiguousarray(values.astype(_WIRE[kind]))
    return Wire(wire.view(np.uint8).reshape(len(values), -1), None, None, valid)


def encode(columns: list[Wire], n: int) -> np.ndarray:
    """The binary COPY payload (signature, rows, trailer) of ``n`` rows of ``columns``."""
    if all(c.fixed is not None and c.valid is None for c in columns):
        return _encode_fixed(columns, n)
    widths = np.zeros(len(columns), dtype=np.int64)
    slots = np.zeros(len(columns), dtype=np.int64)
    valid = np.ones((n, len(columns)), dtype=np.bool_)
    fixed_parts: list[np.ndarray] = []
    texts: list[Wire] = []
    width = 0
    for j, column in enumerate(columns):
        if column.valid is not None:
            valid[:, j] = column.valid
        if column.fixed is not None:
            widths[j] = column.fixed.shape[1]
            slots[j] = width
            width += int(widths[j])
            fixed_parts.append(column.fixed)
        else:
            widths[j] = -1
            slots[j] = len(texts)
            texts.append(column)
    fixed = (
        np.ascontiguousarray(np.hstack(fixed_parts))
        if fixed_parts
        else np.zeros((n, 0), dtype=np.uint8)
    )
    data = np.concatenate([t.data for t in texts if t.data is not None] or [np.zeros(0, np.uint8)])
    offsets = np.zeros((max(len(texts), 1), n + 1), dtype=np.int64)
    base = 0
    for v, text in enumerate(texts):
        assert text.offsets is not None and text.data is not None
        offsets[v] = text.offsets + base
        base += len(text.data)
    header = np.frombuffer(pgcopy.SIGNATURE, dtype=np.uint8)
    return _copy_rows_nb(header, widths, slots, fixed, valid, data, offsets)


def _encode_fixed(columns: list[Wire], n: int) -> np.ndarray:
    """Rows of one width: a field count, then each value's length and bytes."""
    fields: list[tuple[str, object]] = [("count", ">i2")]
    for j, column in enumerate(columns):
        assert column.fixed is not None
        fields += [(f"len{j}", ">i4"), (f"v{j}", (np.uint8, column.fixed.shape[1]))]
    rows = np.empty(n, dtype=np.dtype(fields))
    rows["count"] = len(columns)
    for j, column in enumerate(columns):
        assert column.fixed is not None
        rows[f"len{j}"] = column.fixed.shape[1]
        rows[f"v{j}"] = column.fixed
    out = np.empty(len(pgcopy.SIGNATURE) + rows.nbytes + 2, dtype=np.uint8)
    out[: len(pgcopy.SIGNATURE)] = np.frombuffer(pgcopy.SIGNATURE, dtype=np.uint8)
    out[len(pgcopy.SIGNATURE) : -2] = rows.view(np.uint8)
    out[-2:] = 0xFF
    return out


@njit(cache=True, nogil=True)
def _be32_nb(out: np.ndarray, p: int, value: int) -> None:
    out[p] = (value >> 24) & 0xFF
    out[p + 1] = (value >> 16) & 0xFF
    out[p + 2] = (value >> 8) & 0xFF
    out[p + 3] = value & 0xFF


@njit(cache=True, nogil=True)
def _copy_rows_nb(
    header: np.ndarray,
    widths: np.ndarray,
    slots: np.ndarray,
    fixed: np.ndarray,
    valid: np.ndarray,
    data: np.ndarray,
    offsets: np.ndarray,
) -> np.ndarray:  # pragma: no cover - compiled
    """Binary COPY rows, one after another: equal to ``COPY ... TO STDOUT (FORMAT binary)`` of
    the same values. Column j is fixed-width (``widths[j]`` bytes at ``fixed[i, slots[j]:]``)
    or text (``widths[j] == -1``: bytes ``data[offsets[slots[j], i]:offsets[slots[j], i + 1]]``);
    ``valid[i, j]`` False writes NULL (length -1)."""
    n, k = valid.shape
    total = len(header) + 2 + n * (2 + 4 * k)
    for i in range(n):
        for j in range(k):
            if valid[i, j]:
                if widths[j] >= 0:
                    total += widths[j]
                else:
                    total += offsets[slots[j], i + 1] - offsets[slots[j], i]
    out = np.empty(total, dtype=np.uint8)
    out[: len(header)] = header
    p = len(header)
    for i in range(n):
        out[p] = (k >> 8) & 0xFF
        out[p + 1] = k & 0xFF
        p += 2
        for j in range(k):
            if not valid[i, j]:
                out[p : p + 4] = 0xFF
                p += 4
                continue
            w = widths[j]
            if w >= 0:
                _be32_nb(out, p, w)
                p += 4
                s = slots[j]
                for b in range(w):
                    out[p + b] = fixed[i, s + b]
                p += w
            else:
                start = offsets[slots[j], i]
                length = offsets[slots[j], i + 1] - start
                _be32_nb(out, p, length)
                p += 4
                out[p : p + length] = data[start : start + length]
                p += length
    out[p] = 0xFF
    out[p + 1] = 0xFF
    return out
