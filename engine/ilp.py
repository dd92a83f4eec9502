"""InfluxDB Line Protocol (ILP) encoding of columns, byte-identical to the QuestDB client.

``encode_ilp`` produces what ``questdb.ingress.Buffer(protocol_version=1).dataframe(...)``
produces for the same rows: symbols first, then fields, each group in column order; floats
as the shortest round-trip digits (see ``engine._ryu``); the client's escaping, name rules
and null handling. The rows are encoded in parallel chunks by ``engine._ilp_nb``; this module
validates and assembles; ``engine._ilp_strings`` turns string columns into codes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
from numba import parallel_chunksize
from numpy.typing import ArrayLike

from engine._ilp_nb import (
    BOOL_MAX_LEN,
    FLOAT_MAX_LEN,
    INT64_MIN,
    INT_MAX_LEN,
    TIMESTAMP_MAX_LEN,
    ColumnKind,
    chunk_bounds_nb,
    encode_rows_nb,
    gather_chunks_nb,
)
from engine._ilp_strings import padded, string_table
from engine._rawmem import KeptScratch, new_bytes

__all__ = ["MAX_NAME_LEN", "encode_ilp"]

# The client's default (QuestDB's cairo.max.file.name.length), counted in UTF-8 bytes.
MAX_NAME_LEN = 127
# Rows per parallel work item: ~0.4 MB of OHLCV text, and a million rows make a few hundred
# items to balance across cores.
CHUNK_ROWS = 4096
# The rows are encoded into scratch memory sized by an upper bound per row (about twice the
# text), then gathered into the result. Kept between calls up to this size: committing its
# pages cost a fifth of a million-row call (``KeptScratch``).
_SCRATCH = KeptScratch(keep_max=512 << 20)

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
    str_codes, str_bytes, str_offsets = string_table(
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
    # Chunks handed out one at a time: uneven chunk costs (long strings, a noisy neighbour on
    # one core) then balance across threads.
    with _SCRATCH.taken(int(starts[-1])) as out, parallel_chunksize(1):
        lengths = encode_rows_nb(
            out,
            starts,
            CHUNK_ROWS,
            padded(table),
            np.asarray(kinds, dtype=np.int64),
            slots,
            padded(b"".join(keys)),
            key_offsets,
            column_at,
            str_codes,
            str_bytes,
            str_offsets,
            at,
        )
        return _join_chunks(out, starts, lengths)


def _join_chunks(chunks: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> bytes:
    """The chunks' bytes back to back, copied once, in parallel, into the result itself
    (``b"".join`` would copy on one core)."""
    result, target = new_bytes(int(lengths.sum()))
    gather_chunks_nb(target, chunks, starts, lengths)
    return result


def _native(array: np.ndarray, kind: int) -> np.ndarray:
    """A numeric column as the kernel reads it: C-contiguous float64, int64 or bool (uint64
    is viewed as int64 once its values are known to fit)."""
    if kind == ColumnKind.Float:
        return np.ascontiguousarray(array, dtype=np.float64)
    if kind == ColumnKind.Bool:
        return np.ascontiguousarray(array, dtype=np.bool_)
    if array.dtype.kind == "u" and array.dtype.itemsize == 8:  # values checked to fit
        return np.ascontiguousarray(array, dtype=np.uint64).view(np.int64)
    return np.ascontiguousarray(array, dtype=np.int64)


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
    dtype = array.dtype
    if dtype.kind == "M" and np.datetime_data(dtype)[0] == "ns":
        array = array.astype("datetime64[ns]", copy=False).view(np.int64)
    elif dtype.kind in "iu" and np.can_cast(dtype, np.int64):
        array = array.astype(np.int64, copy=False)
    elif dtype.kind == "u" and dtype.itemsize == 8:
        if array.size and int(array.max()) > _INT64_MAX:
            row = int(np.argmax(array > _INT64_MAX))
            raise ValueError(f"at: row {row}: timestamp {int(array[row])} exceeds int64")
        array = array.astype(np.int64)
    else:
        raise ValueError(f"at: expected int64 nanoseconds or datetime64[ns], got dtype {dtype}")
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
    if dtype.kind == "f" and dtype.itemsize in (4, 8):
        return ColumnKind.Float
    if dtype.kind == "b":
        return ColumnKind.Bool
    if dtype.kind in "iu" and np.can_cast(dtype, np.int64):
        return ColumnKind.Int
    if dtype.kind == "u" and dtype.itemsize == 8:
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
