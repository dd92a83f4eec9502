"""Ticks from a CSV file: one time column and one price column, read in blocks with pyarrow.

What a file may look like (the README's "Max bot backtests" section says it to clients):

- a header row naming the columns, matched without regard to case, spaces or ``-``/``_``: the
  time is the first of :data:`TIME_COLUMNS` present, the price the first of
  :data:`PRICE_COLUMNS`; other columns are ignored. A file whose first row is already a tick
  (a time, then a price) has no header: its first two columns are the time and the price;
- fields separated by ``,`` (or ``;``, a tab or ``|``, as the header row shows), UTF-8;
- each time is an ISO 8601 string (no zone means UTC) or a number of epoch seconds,
  milliseconds, microseconds or nanoseconds told apart by magnitude, exactly as the ticks
  route reads ``ts`` (:func:`hub.marketdata.ticks.ts_ns_of`); each price a finite number above 0;
- rows in time order (equal times are kept in the file's order), at most ``max_ticks`` of them.

The first thing wrong is a :class:`~hub.errors.BadRequest` naming the data row (1 is the row
after the header; blank lines are skipped) and the column, or the line for a row with the wrong
number of fields; too many rows is a :class:`~hub.errors.PayloadTooLarge`. Blocking: call it in
a thread (pyarrow's parsing and conversions release the GIL).
"""

from __future__ import annotations

import math
import re
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from hub.errors import BadRequest, HubError, PayloadTooLarge
from hub.marketdata.ticks import ts_ns_of
from hub.times import LATEST, ns_of

TIME_COLUMNS = ("timestamp", "datetime", "date_time", "time", "ts", "time_stamp", "date")
PRICE_COLUMNS = ("price", "last", "last_price", "trade_price", "close", "px")
DELIMITERS = (",", ";", "\t", "|")
FIELD = "file"
_BLOCK_BYTES = 1 << 20
_HEAD_BYTES = 64 << 10  # the header row must fit in this
_LAST_NS = ns_of(LATEST)  # times end before 2262-04-11, as the ticks route reads them
_INTEGER = re.compile(r"[+-]?[0-9]+")
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
# An epoch number's unit by magnitude, as hub.marketdata.ticks reads it: (below, ns per unit).
_UNITS = ((10**11, 10**9), (10**14, 10**6), (10**17, 10**3), (_LAST_NS, 1))


def read_tick_csv(file: BinaryIO, *, max_ticks: int) -> tuple[np.ndarray, np.ndarray]:
    """The file's ticks as (int64 ns, float64 price), in the file's (time) order."""
    head = file.read(_HEAD_BYTES)
    file.seek(0)
    first = head.removeprefix(b"\xef\xbb\xbf").split(b"\n", 1)[0].rstrip(b"\r")
    try:
        header = first.decode()
    except UnicodeDecodeError:
        raise _bad("the file is not UTF-8 text") from None
    if not header.strip():
        raise _bad("the file is empty: expected a header row, then one tick a row")
    delimiter = max(DELIMITERS, key=header.count)
    names = [_word(name) for name in header.split(delimiter)]
    headless = _is_tick(header.split(delimiter))
    if headless:
        time_at, price_at = 0, 1
    else:
        time_at = _find(names, TIME_COLUMNS, "time", header)
        price_at = _find(names, PRICE_COLUMNS, "price", header)
    time_name, price_name = ("time", "price") if headless else (names[time_at], names[price_at])
    column_names = [f"c{i}" for i in range(len(names))]
    keep = [column_names[time_at], column_names[price_at]]
    broken: list[str] = []

    def invalid_row(row: pacsv.InvalidRow) -> str:
        at = f"line {row.number}" if row.number is not None else f"the row {row.text[:64]!r}"
        broken.append(
            f"{at} has {row.actual_columns} fields where the header has {row.expected_columns}"
        )
        return "error"

    reader_options = pacsv.ReadOptions(
        use_threads=False,  # so a broken row is reported with its line number
        block_size=_BLOCK_BYTES,
        column_names=column_names,
        skip_rows=0 if headless else 1,
    )
    parse_options = pacsv.ParseOptions(delimiter=delimiter, invalid_row_handler=invalid_row)
    convert_options = pacsv.ConvertOptions(
        include_columns=keep,
        column_types={name: pa.string() for name in keep},
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
    )
    times: list[np.ndarray] = []
    prices: list[np.ndarray] = []
    count = 0
    try:
        reader = pacsv.open_csv(file, reader_options, parse_options, convert_options)
        for batch in reader:
            first_row = count + 1
            count += batch.num_rows
            if count > max_ticks:
                raise PayloadTooLarge(
                    f"the file holds more than {max_ticks:,} ticks, the most a backtest reads",
                    field=FIELD,
                )
            times.append(_times(batch.column(0), first_row, time_name))
            prices.append(_prices(batch.column(1), first_row, price_name))
    except pa.ArrowException as exc:
        if broken:
            raise _bad(broken[0]) from None
        raise _bad(f"the file is not a CSV of ticks: {str(exc)[:200]}") from None
    if count == 0:
        raise _bad("the file holds no ticks: expected a header row, then one tick a row")
    ts = np.concatenate(times)
    back = np.flatnonzero(np.diff(ts) < 0)
    if back.size:
        row = int(back[0]) + 2
        raise _bad(
            f"row {row}, column {time_name!r}: the ticks must be in time order, and this one is "
            f"earlier than row {row - 1}'s"
        )
    return ts, np.concatenate(prices)


def _bad(message: str) -> HubError:
    return BadRequest(f"file: {message}", field=FIELD)


def _word(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.strip().strip("\"'").strip().lower())


def _find(names: list[str], accepted: tuple[str, ...], what: str, header: str) -> int:
    for candidate in accepted:
        if candidate in names:
            return names.index(candidate)
    raise _bad(
        f"no {what} column: the header row must name one of {', '.join(accepted)}; "
        f"got {header[:200]!r}"
    )


def _is_tick(fields: list[str]) -> bool:
    """A first row that is a tick (a time, then a price): the file has no header."""
    if len(fields) < 2:
        return False
    try:
        _cell_ns(fields[0].strip().strip("\"'"))
        price = float(fields[1].strip().strip("\"'"))
    except ValueError:
        return False
    return math.isfinite(price)


def _cell_ns(text: str) -> int:
    if _INTEGER.fullmatch(text):
        return ts_ns_of(int(text))
    if _NUMBER.fullmatch(text):
        return ts_ns_of(float(text))
    return ts_ns_of(text)


def _times(column: pa.Array, first_row: int, name: str) -> np.ndarray:
    """A block's times as int64 ns: the common forms at once, else cell by cell (which also
    names the first bad cell)."""
    text = pc.utf8_trim_whitespace(column)
    ns = _epoch_ns(text)
    if ns is None:
        ns = _iso_ns(text)
    if ns is not None and (ns.size == 0 or (ns.min() >= 0 and ns.max() < _LAST_NS)):
        return ns
    out = np.empty(len(text), dtype=np.int64)
    for i, cell in enumerate(text.to_pylist()):
        try:
            out[i] = _cell_ns(cell)
        except ValueError as exc:
            raise _bad(f"row {first_row + i}, column {name!r}: {exc}") from None
    return out


def _epoch_ns(text: pa.Array) -> np.ndarray | None:
    """Whole epoch numbers, each unit read from its magnitude; None if any cell is not one or
    is out of range (the cell-by-cell pass says which)."""
    try:
        values = pc.cast(text, pa.int64()).to_numpy(zero_copy_only=False)
    except pa.ArrowException:
        return None
    if values.size and values.min() < 0:
        return None  # before 1970
    out = np.empty_like(values)
    magnitude = values
    placed = np.zeros(values.shape, dtype=bool)
    for below, factor in _UNITS:
        mine = ~placed & (magnitude < below)
        if np.any(values[mine] > _LAST_NS // factor):
            return None
        out[mine] = values[mine] * factor
        placed |= mine
    return out if placed.all() else None


def _iso_ns(text: pa.Array) -> np.ndarray | None:
    """ISO 8601 times, all without a zone (UTC) or all with one; None otherwise."""
    for kind in (pa.timestamp("ns"), pa.timestamp("ns", tz="UTC")):
        try:
            stamps = pc.cast(text, kind)
        except pa.ArrowException:
            continue
        return np.asarray(stamps.cast(pa.int64()).to_numpy(zero_copy_only=False))
    return None


def _prices(column: pa.Array, first_row: int, name: str) -> np.ndarray:
    text = pc.utf8_trim_whitespace(column)
    try:
        values = np.asarray(pc.cast(text, pa.float64()).to_numpy(zero_copy_only=False))
    except pa.ArrowException:
        values = None
    if values is not None:
        bad = np.flatnonzero(~(np.isfinite(values) & (values > 0)))
        if not bad.size:
            return values
        first_bad = int(bad[0])
    else:
        first_bad = next(i for i, cell in enumerate(text.to_pylist()) if not _is_price(cell))
    cell = text[first_bad].as_py()
    raise _bad(
        f"row {first_row + first_bad}, column {name!r}: must be a finite number above 0, "
        f"got {cell[:64]!r}"
    )


def _is_price(cell: str) -> bool:
    try:
        value = float(cell)
    except ValueError:
        return False
    return math.isfinite(value) and value > 0
