"""Postgres binary COPY encoded and decoded with numpy: bulk bars in and out without row objects.

Every column here is fixed-width (int8, float8, timestamptz), so a COPY row is a fixed-size
record and a whole table maps onto one structured numpy array. Rows that share a text value
and which columns are NULL are fixed-size too (:func:`encode_rows`): a payload of such groups,
one after another, writes ticks of many symbols, some without a size or a quote, in one COPY.
"""

from __future__ import annotations

import numpy as np

SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
TRAILER = b"\xff\xff"
# Postgres timestamps count microseconds from 2000-01-01.
PG_EPOCH_US = 946_684_800_000_000

_WIRE = {"int8": ">i8", "float8": ">f8", "timestamptz": ">i8", "float4": ">f4", "int4": ">i4"}
_WIDTH = {"int8": 8, "float8": 8, "timestamptz": 8, "float4": 4, "int4": 4}


def _row_dtype(types: list[str]) -> np.dtype:
    fields: list[tuple[str, str]] = [("count", ">i2")]
    for i, kind in enumerate(types):
        fields += [(f"len{i}", ">i4"), (f"v{i}", _WIRE[kind])]
    return np.dtype(fields)


def encode(columns: list[tuple[np.ndarray, str]]) -> bytes:
    """Binary COPY payload for fixed-width, non-null columns; timestamptz given as int64 ns."""
    n = len(columns[0][0]) if columns else 0
    dtype = _row_dtype([kind for _, kind in columns])
    rows = np.empty(n, dtype=dtype)
    rows["count"] = len(columns)
    for i, (values, kind) in enumerate(columns):
        if len(values) != n:
            raise ValueError(f"column {i} has {len(values)} values, expected {n}")
        rows[f"len{i}"] = _WIDTH[kind]
        if kind == "timestamptz":
            rows[f"v{i}"] = np.asarray(values, dtype=np.int64) // 1000 - PG_EPOCH_US
        else:
            rows[f"v{i}"] = values
    return SIGNATURE + rows.tobytes() + TRAILER


Column = tuple[np.ndarray | bytes | None, str]


def encode_rows(n: int, columns: list[Column]) -> bytes:
    """The rows of a binary COPY payload, without its header and trailer (join groups of rows
    between :data:`SIGNATURE` and :data:`TRAILER`). Each column is an array of ``n`` values of
    a fixed-width kind, one ``bytes`` value every row shares (kind ``"text"``, UTF-8), or None:
    NULL in every row."""
    fields: list[tuple[str, str]] = [("count", ">i2")]
    for i, (values, kind) in enumerate(columns):
        fields.append((f"len{i}", ">i4"))
        if isinstance(values, bytes):
            if kind != "text" or not values:
                raise ValueError(f"column {i}: a shared value must be non-empty text")
            fields.append((f"v{i}", f"S{len(values)}"))
        elif values is not None:
            fields.append((f"v{i}", _WIRE[kind]))
    rows = np.empty(n, dtype=np.dtype(fields))
    rows["count"] = len(columns)
    for i, (values, kind) in enumerate(columns):
        if values is None:
            rows[f"len{i}"] = -1
        elif isinstance(values, bytes):
            rows[f"len{i}"] = len(values)
            rows[f"v{i}"] = values
        else:
            if len(values) != n:
                raise ValueError(f"column {i} has {len(values)} values, expected {n}")
            rows[f"len{i}"] = _WIDTH[kind]
            if kind == "timestamptz":
                rows[f"v{i}"] = np.asarray(values, dtype=np.int64) // 1000 - PG_EPOCH_US
            else:
                rows[f"v{i}"] = values
    return rows.tobytes()


def decode(payload: bytes, types: list[str]) -> list[np.ndarray]:
    """Columns of a binary COPY payload (no NULLs); timestamptz come back as int64 ns."""
    if not payload.startswith(SIGNATURE[:11]):
        raise ValueError("not a binary COPY payload")
    ext = int.from_bytes(payload[15:19], "big")
    body = memoryview(payload)[19 + ext : len(payload) - 2]
    dtype = _row_dtype(types)
    if len(body) % dtype.itemsize:
        raise ValueError("binary COPY rows are not fixed-width (a NULL value?)")
    rows = np.frombuffer(body, dtype=dtype)
    out = []
    for i, kind in enumerate(types):
        values = rows[f"v{i}"]
        if kind == "timestamptz":
            out.append((values.astype(np.int64) + PG_EPOCH_US) * 1000)
        else:
            out.append(values.astype(values.dtype.newbyteorder("=")))
    return out
