"""Binary COPY payloads for the event and trade tables, built from a chunk's columns.

A backtest chunk writes thousands of rows; handing asyncpg a tuple per row (with a datetime per
timestamp) costs more than Postgres takes to store them. Here the fixed-width columns of every
row are laid out at once as one numpy record array, and only the variable-width tail of a row
(its JSON, and text from a handful of values) is joined in Python. The columns are listed with
the fixed-width ones first, so each row is ``fixed part + tail``.

Timestamps are stored as before: nanoseconds floored to the microsecond.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import chain

import numpy as np

SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
TRAILER = b"\xff\xff"
PG_EPOCH_US = 946_684_800_000_000  # Postgres counts microseconds from 2000-01-01

EVENT_COLUMNS = ["execution_id", "sequence", "ts", "strategy_type", "event", "event_type"]
TRADE_COLUMNS = [
    "execution_id",
    "sequence",
    "entry_index",
    "exit_index",
    "entry_time",
    "exit_time",
    "entry_price",
    "exit_price",
    "units",
    "pnl",
    "return_pct",
    "fees",
    # variable width, after the fixed part
    "instrument",
    "direction",
    "status",
    "exit_reason",
    "details",
]
_TRADE_FIXED = (
    ("eid", ">i8"),
    ("seq", ">i8"),
    ("entry_index", ">i8"),
    ("exit_index", ">i8"),
    ("entry_time", ">i8"),
    ("exit_time", ">i8"),
    ("entry_price", ">f8"),
    ("exit_price", ">f8"),
    ("units", ">f8"),
    ("pnl", ">f8"),
    ("return_pct", ">f8"),
    ("fees", ">f8"),
)


def field(data: bytes) -> bytes:
    """One variable-width value: its length, then its bytes."""
    return len(data).to_bytes(4, "big") + data


def pg_time(ns: np.ndarray) -> np.ndarray:
    """Nanoseconds since the epoch as Postgres's timestamptz (microseconds since 2000)."""
    return np.asarray(ns, dtype=np.int64) // 1000 - PG_EPOCH_US


def _rows(fixed: np.ndarray, tails: Iterable[bytes]) -> bytes:
    raw = fixed.tobytes()
    width = fixed.dtype.itemsize
    heads = [raw[i : i + width] for i in range(0, len(raw), width)]
    return b"".join(chain.from_iterable(zip(heads, tails, strict=True)))


def events_copy(
    execution_id: int,
    strategy: str,
    first_seq: int,
    types: Sequence[str],
    ts_ns: np.ndarray,
    bodies: Sequence[bytes],
) -> bytes:
    """The rows of consecutive events (``EVENT_COLUMNS``), without signature or trailer;
    ``bodies`` is each event's JSON text."""
    n = len(bodies)
    if not n:
        return b""
    name = strategy.encode()
    dtype = np.dtype(
        [
            ("count", ">i2"),
            ("l0", ">i4"),
            ("eid", ">i8"),
            ("l1", ">i4"),
            ("seq", ">i8"),
            ("l2", ">i4"),
            ("ts", ">i8"),
            ("l3", ">i4"),
            ("strategy", np.uint8, (len(name),)),
            ("l4", ">i4"),  # the body's length; the body and the event type follow
        ]
    )
    fixed = np.empty(n, dtype=dtype)
    fixed["count"] = len(EVENT_COLUMNS)
    fixed["l0"] = fixed["l1"] = fixed["l2"] = 8
    fixed["eid"] = execution_id
    fixed["seq"] = np.arange(first_seq, first_seq + n, dtype=np.int64)
    fixed["ts"] = pg_time(ts_ns)
    fixed["l3"] = len(name)
    fixed["strategy"] = np.frombuffer(name, dtype=np.uint8)
    fixed["l4"] = np.fromiter(map(len, bodies), dtype=np.int64, count=n)
    kinds = {kind: field(kind.encode()) for kind in set(types)}
    tails = [body + kinds[kind] for body, kind in zip(bodies, types, strict=True)]
    return _rows(fixed, tails)


def trades_copy(
    execution_id: int,
    instrument: str,
    first_seq: int,
    records: np.ndarray,
    directions: Sequence[str],
    statuses: Sequence[str],
    exit_reasons: Sequence[str],
    details: Sequence[bytes],
) -> bytes:
    """The rows of consecutive trades (``TRADE_COLUMNS``) from ``trade_dt`` records, the
    texts they map to, and each trade's details as JSON text; no signature or trailer."""
    n = len(records)
    if not n:
        return b""
    dtype = np.dtype(
        [("count", ">i2")]
        + [x for name, kind in _TRADE_FIXED for x in ((f"l_{name}", ">i4"), (name, kind))]
    )
    fixed = np.empty(n, dtype=dtype)
    fixed["count"] = len(TRADE_COLUMNS)
    for name, _ in _TRADE_FIXED:
        fixed[f"l_{name}"] = 8
    fixed["eid"] = execution_id
    fixed["seq"] = np.arange(first_seq, first_seq + n, dtype=np.int64)
    for name in ("entry_index", "exit_index", "entry_price", "exit_price", "units", "pnl", "fees"):
        fixed[name] = records[name]
    fixed["return_pct"] = records["return"]
    fixed["entry_time"] = pg_time(records["entry_ts"])
    fixed["exit_time"] = pg_time(records["exit_ts"])
    where = field(instrument.encode())
    known: dict[tuple[str, str, str, bytes], bytes] = {}
    tails = []
    for key in zip(directions, statuses, exit_reasons, details, strict=True):
        tail = known.get(key)
        if tail is None:
            direction, status, reason, detail = key
            tail = known[key] = b"".join(
                (
                    where,
                    field(direction.encode()),
                    field(status.encode()),
                    field(reason.encode()),
                    field(b"\x01" + detail),  # jsonb's binary form: a version byte, then text
                )
            )
        tails.append(tail)
    return _rows(fixed, tails)


def payload(parts: Iterable[bytes]) -> bytes:
    """A whole COPY payload from the rows of one or more calls above."""
    return b"".join(chain((SIGNATURE,), parts, (TRAILER,)))
