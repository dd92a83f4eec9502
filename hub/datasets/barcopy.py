"""Decoding a binary COPY of OHLCV bars into column arrays while it arrives.

asyncpg hands a COPY's output over in ~9 KB pieces; a sink decodes them a megabyte at a time
(every row has the same width: a field count, then each value's length and value), so the
whole payload (74 bytes a bar) is never held at once. Two reads of one window decode into
regions of the same arrays, so their halves need no joining afterwards: the fresh memory a
join would touch costs more than the copy itself (~0.1 s for 48 MB on a new worker).
"""

from __future__ import annotations

import ctypes

import numpy as np

from hub import pgcopy

COLUMNS = ("ts", "open", "high", "low", "close", "volume")
_BATCH_BYTES = 1 << 20

Bars = dict[str, np.ndarray]


def row_dtype(columns: tuple[str, ...]) -> np.dtype:
    """A binary COPY row of ``columns`` (``ts`` first): a field count, then each value's length
    and value."""
    if not columns or columns[0] != "ts" or not set(columns) <= set(COLUMNS):
        raise ValueError(f"bar columns are ts then some of {COLUMNS[1:]}, got {columns}")
    fields: list[tuple[str, str]] = [("count", ">i2")]
    for i, c in enumerate(columns):
        fields += [(f"len{i}", ">i4"), (c, ">i8" if c == "ts" else ">f8")]
    return np.dtype(fields)


def allocate(capacity: int, columns: tuple[str, ...] = COLUMNS) -> Bars:
    return {
        c: np.empty(max(capacity, 1), dtype=np.int64 if c == "ts" else np.float64) for c in columns
    }


class BarsSink:
    """An ``output`` for ``copy_from_query``: decodes into ``into`` from row ``start``, at most
    ``room`` rows (moving to arrays of its own if more come), or into arrays of its own sized
    for ``expected`` rows."""

    def __init__(
        self,
        *,
        columns: tuple[str, ...] = COLUMNS,
        expected: int = 0,
        into: Bars | None = None,
        start: int = 0,
        room: int | None = None,
    ) -> None:
        self.columns = columns
        self.row = row_dtype(columns)
        self.own = into is None
        self.arrays = allocate(expected, columns) if into is None else into
        self.start = 0 if into is None else start
        self.room = len(self.arrays["ts"]) - self.start if room is None else room
        self.n = 0
        self.pending: list[bytes] = []
        self.pending_bytes = 0
        self.header = True
        self.rest = b""

    async def __call__(self, data: bytes) -> None:
        self.pending.append(data)
        self.pending_bytes += len(data)
        if self.pending_bytes >= _BATCH_BYTES:
            self._decode(final=False)

    def _decode(self, *, final: bool) -> None:
        data = b"".join([self.rest, *self.pending])
        self.pending, self.pending_bytes = [], 0
        start = 0
        if self.header:
            if not data.startswith(pgcopy.SIGNATURE[:11]):
                raise ValueError("not a binary COPY payload")
            start = 19 + int.from_bytes(data[15:19], "big")
            self.header = False
        end = len(data) - 2 if final else len(data)
        rows = (end - start) // self.row.itemsize
        stop = start + rows * self.row.itemsize
        if final and (stop != end or data[end:] != pgcopy.TRAILER):
            raise ValueError("binary COPY rows are not fixed-width (a NULL value?)")
        self.rest = data[stop:]
        if rows:
            self._place(np.frombuffer(data, dtype=self.row, count=rows, offset=start))

    def _place(self, decoded: np.ndarray) -> None:
        rows = len(decoded)
        if self.n + rows > self.room:  # more than expected: continue in arrays of our own
            size = max(self.n + rows, 2 * (self.n + self.room))
            grown = allocate(size, self.columns)
            for c, a in self.arrays.items():
                grown[c][: self.n] = a[self.start : self.start + self.n]
            self.arrays, self.start, self.room, self.own = grown, 0, size, True
        window = slice(self.start + self.n, self.start + self.n + rows)
        for c, column in self.arrays.items():
            column[window] = decoded[c]
        self.n += rows

    def result(self) -> Bars:
        """The decoded bars (views of the arrays written), times as ns since 1970."""
        self._decode(final=True)
        out = {c: a[self.start : self.start + self.n] for c, a in self.arrays.items()}
        ts = out["ts"]
        np.add(ts, pgcopy.PG_EPOCH_US, out=ts)  # Postgres microseconds since 2000
        np.multiply(ts, 1000, out=ts)
        return out


def close_gap(arrays: Bars, first: int, second_start: int, second: int) -> Bars:
    """Bars held as ``first`` rows from 0 and ``second`` rows from ``second_start``, made one
    run from 0 by moving the second down in place (memmove: the regions may overlap)."""
    if second_start != first:
        for a in arrays.values():
            size = a.itemsize
            ctypes.memmove(
                a.ctypes.data + first * size, a.ctypes.data + second_start * size, second * size
            )
    return {c: a[: first + second] for c, a in arrays.items()}
