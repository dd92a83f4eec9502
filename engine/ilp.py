"""InfluxDB Line Protocol (ILP) encoding of columns, byte-identical to the QuestDB client.

``encode_ilp`` produces what ``questdb.ingress.Buffer(protocol_version=1).dataframe(...)``
produces for the same rows: symbols first, then fields, each group in column order; floats
as the shortest round-trip digits (see ``engine._ryu``); the client's escaping, name rules
and null handling. The rows are encoded in parallel chunks by ``engine._ilp_nb``; this module
validates, factorises strings once per distinct value, and joins the chunks.
"""

from __future__ import annotations

import ctypes
import functools
import math
import sys
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from numba import parallel_chunksize
from numpy.typing import ArrayLike

from engine._ilp_nb import (
    BOOL_MAX_LEN,
    COPY_WIDTH,
    FLOAT_MAX_LEN,
    INT64_MIN,
    INT_MAX_LEN,
    TIMESTAMP_MAX_LEN,
    ColumnKind,
    chunk_bounds_nb,
    encode_rows_nb,
    escape_values_nb,
    factorize_rows_nb,
    gather_chunks_nb,
    utf8_offsets_nb,
)

__all__ = ["MAX_NAME_LEN", "encode_ilp"]

# The client's default (QuestDB's cairo.max.file.name.length), counted in UTF-8 bytes.
MAX_NAME_LEN = 127
# Rows per parallel work item: ~0.4 MB of OHLCV text, and a million rows make a few hundred
# items to balance across cores.
CHUNK_ROWS = 4096

_INT64_MAX = np.iinfo(np.int64).max
_CONTROL = "\0\x01\x02\x03\x04\x05\x06\x07\x08\t\x0b\x0c\x0e\x0f\x7f"
# The client's TableName::new / ColumnName::new rules (c-questdb-client, ingress/buffer.rs).
_TABLE_FORBIDDEN = frozenset("?,'\"\\/:)(+*%~\r\n" + _CONTROL + "\ufeff")
_COLUMN_FORBIDDEN = _TABLE_FORBIDDEN | {".", "-"}


def encode_ilp(
    table: str,
    columns: Mapping[str, ArrayLike],
    *,
    symbols: Iterable[str] = (),
    at: ArrayLike,
) -> bytes:
    """Encode one ILP line per row of ``columns`` into table ``table``.

    ``columns`` maps column names to 1-D arrays: float (float32/float64), integer (up to
    int64; uint64 values must fit in int64), bool, or strings (numpy unicode, or object arrays
    of ``str`` where ``None``, float NaN, ``pd.NA`` and ``pd.NaT`` are nulls). ``symbols`` names
    the string columns written as tags. ``at`` holds the designated timestamps as int64
    nanoseconds since the epoch (or ``datetime64[ns]``); ``INT64_MIN`` (NaT) leaves a row's
    timestamp out so the server assigns one, as the client does.

    Like the client: NaN and infinities are written ``NaN``, ``Infinity``, ``-Infinity``; a
    null string leaves the column out of that row; a row with every column null, a negative
    timestamp, or a string that is not valid UTF-8 is refused. Every check raises
    ``ValueError`` (``TypeError`` for an argument of the wrong type) naming the argument, and
    the row where there is one, before any encoding starts.
    """
    table_bytes = _escape_unquoted(_name_bytes(table, "table", is_table=True))
    if not isinstance(columns, Mapping):
        raise TypeError(f"columns: expected a mapping of column names to arrays, got {columns!r}")
    if isinstance(symbols, (str, bytes)):
        raise TypeError(f"symbols: expected a collection of column names, got {symbols!r}")
    symbol_names = list(dict.fromkeys(symbols))
    for name in symbol_names:
        if name not in columns:
            raise ValueError(f"symbols: {name!r} is not a column (columns: {list(columns)})")
    timestamps = _timestamps(at)
    n = timestamps.size

    arrays: dict[str, np.ndarray] = {}
    for name, values in columns.items():
        _name_bytes(name, "columns", is_table=False)
        array = np.asarray(values)
        if array.ndim != 1 or array.shape[0] != n:
            raise ValueError(
                f"columns: column {name!r} has shape {array.shape}, expected ({n},) like `at`"
            )
        arrays[name] = array
    is_symbol = set(symbol_names)
    order = [name for name in arrays if name in is_symbol]
    order += [name for name in arrays if name not in is_symbol]
    kinds = [_column_kind(name, arrays[name], name in is_symbol) for name in order]
    if n == 0:
        return b""
    if not order:
        raise ValueError("columns: no columns; every ILP line needs a symbol or a field")
    return _encode(table_bytes, order, kinds, arrays, timestamps)


def _encode(
    table: bytes,
    order: list[str],
    kinds: list[int],
    arrays: dict[str, np.ndarray],
    at: np.ndarray,
) -> bytes:
    n = at.size
    numeric = (ColumnKind.Float, ColumnKind.Int, ColumnKind.Bool)
    strings = (ColumnKind.String, ColumnKind.Symbol)
    string_names = [name for name, kind in zip(order, kinds) if kind in strings]
    str_codes, str_bytes, str_offsets = _string_table(
        [
            (name, arrays[name], kind == ColumnKind.String)
            for name, kind in zip(order, kinds)
            if kind in strings
        ],
        n,
    )
    if not any(kind in numeric for kind in kinds):
        present = (str_codes >= 0).any(axis=0)
        if not present.all():
            raise ValueError(
                f"columns: row {int(np.argmin(present))}: every column is null; an ILP line "
                "needs at least one symbol or field"
            )

    # Numeric columns are read in place: only dtypes other than float64/int64/bool are
    # copied (converted), and `native` keeps every array read by address alive.
    native = {
        name: _native(arrays[name], kind) for name, kind in zip(order, kinds) if kind in numeric
    }
    column_at = np.array(
        [native[name].ctypes.data if name in native else 0 for name in order], dtype=np.int64
    )
    slots = np.array(
        [string_names.index(name) if name in string_names else -1 for name in order],
        dtype=np.int64,
    )
    keys = [b"," + _escape_unquoted(name.encode()) + b"=" for name in order]
    key_offsets = np.zeros(len(keys) + 1, dtype=np.int64)
    np.cumsum([len(key) for key in keys], out=key_offsets[1:])
    value_max = {
        ColumnKind.Float: FLOAT_MAX_LEN,
        ColumnKind.Int: INT_MAX_LEN,
        ColumnKind.Bool: BOOL_MAX_LEN,
    }
    # Upper bound of a row's bytes except its strings, which chunk_bounds_nb adds per row.
    row_fixed = len(table) + int(key_offsets[-1]) + TIMESTAMP_MAX_LEN
    row_fixed += sum(value_max.get(kind, 0) for kind in kinds)

    starts = chunk_bounds_nb(n, CHUNK_ROWS, row_fixed, str_codes, str_offsets)
    out = np.empty(int(starts[-1]), dtype=np.uint8)
    # Chunks handed out one at a time: uneven chunk costs (long strings, a noisy neighbour on
    # one core) then balance across threads.
    with parallel_chunksize(1):
        lengths = encode_rows_nb(
            out,
            starts,
            CHUNK_ROWS,
            _padded(table),
            np.asarray(kinds, dtype=np.int64),
            slots,
            _padded(b"".join(keys)),
            key_offsets,
            column_at,
            str_codes,
            str_bytes,
            str_offsets,
            at,
        )
    return _join_chunks(out, starts, lengths)


# CPython's documented way to fill a bytes object in place: PyBytes_FromStringAndSize(NULL, n)
# makes one with uninitialised contents, which may be written through PyBytes_AsString until
# it is shared. Private prototypes, so ctypes.pythonapi's shared ones are left alone.
_new_bytes = ctypes.PYFUNCTYPE(ctypes.py_object, ctypes.c_void_p, ctypes.c_ssize_t)(
    ("PyBytes_FromStringAndSize", ctypes.pythonapi)
)
_bytes_data = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.py_object)(
    ("PyBytes_AsString", ctypes.pythonapi)
)


@functools.cache
def _madvise() -> Any:
    """libc's madvise where there is one (Linux), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):
        return None
    function.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    function.restype = ctypes.c_int
    return function


_MADV_HUGEPAGE = 14
_HUGE_PAGE = 2 << 20


def _advise_huge_pages(address: int, length: int) -> None:
    """Ask for 2 MiB pages under a fresh result (best effort, as numpy does for its own large
    arrays): 100 MB of 4 KiB pages is 25,000 page faults, which cost more than the copy."""
    madvise = _madvise()
    start = -(-address // _HUGE_PAGE) * _HUGE_PAGE
    end = (address + length) // _HUGE_PAGE * _HUGE_PAGE
    if madvise is not None and end > start:
        madvise(start, end - start, _MADV_HUGEPAGE)


def _join_chunks(scratch: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> bytes:
    """The chunks' bytes back to back, copied once, in parallel, into the result itself
    (``b"".join`` would copy on one core)."""
    total = int(lengths.sum())
    result: bytes = _new_bytes(None, total)
    if total:
        address = _bytes_data(result)
        _advise_huge_pages(address, total)
        target = np.ctypeslib.as_array((ctypes.c_uint8 * total).from_address(address))
        gather_chunks_nb(target, scratch, starts, lengths)
    return result


def _padded(data: bytes | np.ndarray) -> np.ndarray:
    """``data`` as uint8 followed by the COPY_WIDTH bytes that _copy_nb may read past it."""
    padded = np.zeros(len(data) + COPY_WIDTH, dtype=np.uint8)
    padded[: len(data)] = np.frombuffer(data, dtype=np.uint8) if isinstance(data, bytes) else data
    return padded


def _native(array: np.ndarray, kind: int) -> np.ndarray:
    """A numeric column as the kernel reads it: C-contiguous float64, int64 or bool (uint64
    is viewed as int64 once its values are known to fit)."""
    if kind == ColumnKind.Float:
        return np.ascontiguousarray(array, dtype=np.float64)
    if kind == ColumnKind.Bool:
        return np.ascontiguousarray(array, dtype=np.bool_)
    if array.dtype == np.uint64:
        return np.ascontiguousarray(array).view(np.int64)
    return np.ascontiguousarray(array, dtype=np.int64)


def _string_table(
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
    return codes, _padded(table), np.concatenate(offsets)


def _name_bytes(name: object, arg: str, *, is_table: bool) -> bytes:
    """Validate a table or column name by the client's rules; return its UTF-8 bytes."""
    what = "table" if is_table else "column"
    if not isinstance(name, str):
        raise TypeError(f"{arg}: {what} names must be str, got {name!r}")
    if not name:
        raise ValueError(f"{arg}: {what} name must not be empty")
    try:
        raw = name.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValueError(
            f"{arg}: {what} name {name!r} cannot be encoded as UTF-8 (character {error.start})"
        ) from None
    forbidden = _TABLE_FORBIDDEN if is_table else _COLUMN_FORBIDDEN
    for index, char in enumerate(name):
        if is_table and char == ".":
            # Table names may hold dots, but not first, last or two in a row.
            bad = index == 0 or index == len(name) - 1 or name[index - 1] == "."
        else:
            bad = char in forbidden
        if bad:
            position = len(name[:index].encode())
            raise ValueError(
                f"{arg}: invalid {what} name {name!r}: {char!r} is not allowed "
                f"(byte position {position})"
            )
    if len(raw) > MAX_NAME_LEN:
        raise ValueError(
            f"{arg}: {what} name {name!r} is {len(raw)} UTF-8 bytes long, "
            f"the limit is {MAX_NAME_LEN}"
        )
    return raw


def _escape_unquoted(raw: bytes) -> bytes:
    raw = raw.replace(b"\\", b"\\\\")
    for char in (b" ", b",", b"=", b"\n", b"\r"):
        raw = raw.replace(char, b"\\" + char)
    return raw


def _timestamps(at: ArrayLike) -> np.ndarray:
    array = np.asarray(at)
    if array.ndim != 1:
        raise ValueError(f"at: expected a 1-D array of int64 nanoseconds, got shape {array.shape}")
    if array.dtype == np.dtype("datetime64[ns]"):
        array = array.view(np.int64)
    elif array.dtype.kind in "iu" and np.can_cast(array.dtype, np.int64):
        array = array.astype(np.int64, copy=False)
    elif array.dtype == np.uint64:
        if array.size and int(array.max()) > _INT64_MAX:
            row = int(np.argmax(array > _INT64_MAX))
            raise ValueError(f"at: row {row}: timestamp {int(array[row])} exceeds int64")
        array = array.astype(np.int64)
    else:
        raise ValueError(
            f"at: expected int64 nanoseconds or datetime64[ns], got dtype {array.dtype}"
        )
    array = np.ascontiguousarray(array)
    if array.size and int(array.min()) < 0:
        negative = (array < 0) & (array != INT64_MIN)
        if negative.any():
            row = int(np.argmax(negative))
            raise ValueError(
                f"at: row {row}: timestamp {int(array[row])} is negative; ILP timestamps are "
                "nanoseconds since the Unix epoch"
            )
    return array


def _column_kind(name: str, array: np.ndarray, is_symbol: bool) -> int:
    dtype = array.dtype
    if dtype.kind in "UO":
        return ColumnKind.Symbol if is_symbol else ColumnKind.String
    if is_symbol:
        raise ValueError(f"symbols: column {name!r} has dtype {dtype}; symbols must be strings")
    if dtype in (np.float64, np.float32):
        return ColumnKind.Float
    if dtype == np.bool_:
        return ColumnKind.Bool
    if dtype.kind in "iu" and np.can_cast(dtype, np.int64):
        return ColumnKind.Int
    if dtype == np.uint64:
        if array.size and int(array.max()) > _INT64_MAX:
            row = int(np.argmax(array > _INT64_MAX))
            raise ValueError(
                f"columns: column {name!r} row {row}: {int(array[row])} does not fit in int64"
            )
        return ColumnKind.Int
    raise ValueError(
        f"columns: column {name!r} has unsupported dtype {dtype}; expected float32/float64, "
        "integers, bool, or strings"
    )


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
            return np.zeros(n, dtype=np.int32), *_encode_values(name, [""], quoted, None)
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
    name: str, values: list[str], quoted: bool, row_of: Any
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
