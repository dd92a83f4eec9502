"""String columns for ``engine.ilp``: per-row codes into one table of distinct values, each
UTF-8 encoded and escaped once, so that the row kernel only copies bytes.

Symbol columns usually hold a handful of distinct values over millions of rows; looking each
row up in a dict would cost more than encoding the floats. Rows are grouped by numba instead
(``factorize_rows_nb``): an object array by its PyObject pointers, a numpy unicode array by its
UTF-32 words. Python then sees only the distinct objects.
"""

from __future__ import annotations

import ctypes
import math
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from engine._ilp_nb import COPY_WIDTH, escape_values_nb, factorize_rows_nb, utf8_offsets_nb


def padded(data: bytes | np.ndarray) -> np.ndarray:
    """``data`` as uint8 followed by the COPY_WIDTH bytes that the kernel may read past it."""
    result = np.zeros(len(data) + COPY_WIDTH, dtype=np.uint8)
    result[: len(data)] = np.frombuffer(data, dtype=np.uint8) if isinstance(data, bytes) else data
    return result


def string_table(
    columns: list[tuple[str, np.ndarray, bool]], n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-row codes (-1 for null) of every string column into one table of escaped values
    shared by all of them: ``(codes[column, row], padded bytes, offsets)``."""
    codes = np.empty((len(columns), n), dtype=np.int32)
    parts: list[np.ndarray] = []
    offsets = [np.zeros(1, dtype=np.int64)]
    base = 0  # values so far
    size = 0  # their bytes
    for slot, (name, array, quoted) in enumerate(columns):
        column_codes, escaped, value_offsets = _factorize_strings(name, array, quoted)
        codes[slot] = np.where(column_codes >= 0, column_codes + base, -1)
        parts.append(escaped)
        offsets.append(value_offsets[1:] + size)
        base += value_offsets.size - 1
        size += int(value_offsets[-1])
    table = np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint8)
    return codes, padded(table), np.concatenate(offsets)


def _pandas_nulls() -> tuple[Any, ...]:
    """``pd.NA`` and ``pd.NaT`` if pandas is loaded (if it is not, no value can be one)."""
    pandas = sys.modules.get("pandas")
    return (pandas.NA, pandas.NaT) if pandas is not None else ()


def _factorize_strings(
    name: str, array: np.ndarray, quoted: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-row codes (-1 for null) into this column's distinct values, and those values
    UTF-8 encoded and escaped (``quoted`` for string fields, bare for symbols)."""
    n = array.size
    array = np.ascontiguousarray(array)
    if array.dtype.kind == "U":
        width = array.dtype.itemsize // 4
        if width == 0:
            return np.zeros(n, dtype=np.int32), *_encode_values(name, [""], quoted, int)
        codes, first = factorize_rows_nb(array.view(np.uint32).reshape(n, width))
        values = array[first].tolist()
        return codes, *_encode_values(name, values, quoted, lambda v: int(first[v]))

    # Object arrays hold PyObject pointers; factorising those words groups identical objects
    # at C speed, leaving Python only the distinct objects (usually a handful) to look at.
    words = array.dtype.itemsize // 4
    pointers = (ctypes.c_uint32 * (n * words)).from_address(array.ctypes.data)
    identity_codes, first = factorize_rows_nb(np.ctypeslib.as_array(pointers).reshape(n, words))
    objects = array[first].tolist()
    if set(map(type, objects)) <= {str}:
        index = dict.fromkeys(objects)
        values = list(index)
        for code, value in enumerate(values):
            index[value] = code
        remap = np.fromiter(map(index.__getitem__, objects), dtype=np.int32, count=len(objects))
    else:
        nulls = _pandas_nulls()
        lookup: dict[str, int] = {}
        remap = np.empty(len(objects), dtype=np.int32)
        for u, obj in enumerate(objects):
            if isinstance(obj, str):
                remap[u] = lookup.setdefault(obj, len(lookup))
            elif (
                obj is None
                or (isinstance(obj, float) and math.isnan(obj))
                or any(obj is x for x in nulls)
            ):
                remap[u] = -1
            else:
                raise ValueError(
                    f"columns: column {name!r} row {int(first[u])}: expected str or None, got "
                    f"{type(obj).__name__} {obj!r}"
                )
        values = list(lookup)
    codes = remap[identity_codes]
    return codes, *_encode_values(name, values, quoted, lambda v: int(np.argmax(codes == v)))


def _encode_values(
    name: str, values: list[str], quoted: bool, row_of: Callable[[int], int]
) -> tuple[np.ndarray, np.ndarray]:
    joined = "".join(values)
    char_lens = np.fromiter(map(len, values), dtype=np.int64, count=len(values))
    try:
        raw = joined.encode("utf-8")
    except UnicodeEncodeError as error:
        v = int(np.searchsorted(np.cumsum(char_lens), error.start, side="right"))
        raise ValueError(
            f"columns: column {name!r} row {row_of(v)}: {values[v]!r} cannot be encoded as UTF-8"
        ) from None
    raw_array = np.frombuffer(raw, dtype=np.uint8)
    if len(raw) == len(joined):
        offsets = np.zeros(len(values) + 1, dtype=np.int64)
        np.cumsum(char_lens, out=offsets[1:])
    else:
        offsets = utf8_offsets_nb(raw_array, char_lens)
    return escape_values_nb(raw_array, offsets, quoted)
