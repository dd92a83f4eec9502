"""Ticks from a CSV file, read in blocks with pyarrow: for the Max backtest a time and a price
(:func:`read_tick_csv`), for ORCA's tick upload also the volume, bid and ask, in batches
(:func:`read_tick_batches`).

What a file may look like (the README's "Max bot backtests" and "Tick upload" sections say it
to clients):

- a header row naming the columns, matched without regard to case, spaces or ``-``/``_``: the
  time is the first of :data:`TIME_COLUMNS` present, the price the first of
  :data:`PRICE_COLUMNS`, and for an upload the volume, bid and ask the first of
  :data:`VOLUME_COLUMNS`, :data:`BID_COLUMNS` and :data:`ASK_COLUMNS` (each optional); other
  columns are ignored. Without a header the columns go by position: the Max backtest reads a
  time, then a price (it sees no header when the first row is already a tick); an upload reads
  :data:`HEADLESS` by the number of fields (5 is NinjaTrader's ``time;last;bid;ask;volume``);
- fields separated by ``,`` (or ``;``, a tab or ``|``, as the first row shows), UTF-8;
- each time is an ISO 8601 string (no zone means UTC), a number of epoch seconds,
  milliseconds, microseconds or nanoseconds told apart by magnitude, exactly as the ticks
  route reads ``ts`` (:func:`hub.marketdata.ticks.ts_ns_of`), or NinjaTrader's
  ``yyyyMMdd HHmmss fffffff`` (UTC, the fraction in 100 ns units, optional); each price a
  finite number above 0; a volume finite and at least 0, a bid or ask finite and above 0, each
  of these three may be empty (not known);
- for the Max backtest rows in time order (equal times are kept in the file's order), at most
  ``max_ticks`` of them. An upload takes any order.

The first thing wrong is a :class:`~hub.errors.BadRequest` naming the data row (1 is the row
after the header; blank lines are skipped) and the column, or the line for a row with the wrong
number of fields; too many rows is a :class:`~hub.errors.PayloadTooLarge`. Blocking: call it in
a thread (pyarrow's parsing and conversions release the GIL).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
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
VOLUME_COLUMNS = ("volume", "size", "vol", "qty", "quantity", "last_size", "trade_size")
BID_COLUMNS = ("bid", "bid_price")
ASK_COLUMNS = ("ask", "ask_price", "offer")
# An upload's columns without a header row, by the number of fields.
HEADLESS = {
    2: ("time", "price"),
    3: ("time", "price", "volume"),
    5: ("time", "price", "bid", "ask", "volume"),  # NinjaTrader: time;last;bid;ask;volume
}
DELIMITERS = (",", ";", "\t", "|")
FIELD = "file"
_BLOCK_BYTES = 1 << 20
_HEAD_BYTES = 64 << 10  # the header row must fit in this
_LAST_NS = ns_of(LATEST)  # times end before 2262-04-11, as the ticks route reads them
_INTEGER = re.compile(r"[+-]?[0-9]+")
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_NINJA = r"^[0-9]{8} [0-9]{6}(?: [0-9]{1,9})?$"
_NINJA_CELL = re.compile(
    r"([0-9]{4})([0-9]{2})([0-9]{2}) ([0-9]{2})([0-9]{2})([0-9]{2})(?: ([0-9]{1,9}))?"
)
# An epoch number's unit by magnitude, as hub.marketdata.ticks reads it: (below, ns per unit).
_UNITS = ((10**11, 10**9), (10**14, 10**6), (10**17, 10**3), (_LAST_NS, 1))
# The columns an upload reads, each with the names a header may give it.
_ROLES = {"time": TIME_COLUMNS, "price": PRICE_COLUMNS, "volume": VOLUME_COLUMNS}
_ROLES |= {"bid": BID_COLUMNS, "ask": ASK_COLUMNS}
_ARRAYS = ("ts_ns", "price", "volume", "bid", "ask")


@dataclass(frozen=True)
class TickRows:
    """Rows of an upload as columns: int64 ns times, float64 the rest; NaN is not known."""

    first_row: int  # the file's data row of the first of them (1 is the first)
    ts_ns: np.ndarray
    price: np.ndarray
    volume: np.ndarray
    bid: np.ndarray
    ask: np.ndarray

    def __len__(self) -> int:
        return len(self.ts_ns)

    def split(self, at: int) -> tuple[TickRows, TickRows]:
        cols = [getattr(self, name) for name in _ARRAYS]
        head = TickRows(self.first_row, *(c[:at] for c in cols))
        return head, TickRows(self.first_row + at, *(c[at:] for c in cols))

    @staticmethod
    def join(parts: list[TickRows]) -> TickRows:
        columns = (np.concatenate([getattr(p, name) for p in parts]) for name in _ARRAYS)
        return parts[0] if len(parts) == 1 else TickRows(parts[0].first_row, *columns)


@dataclass(frozen=True)
class _Layout:
    delimiter: str
    skip_rows: int
    width: int
    at: dict[str, int]  # role -> the column's index
    names: dict[str, str]  # role -> the column's name in messages


def read_tick_csv(file: BinaryIO, *, max_ticks: int) -> tuple[np.ndarray, np.ndarray]:
    """The file's ticks as (int64 ns, float64 price), in the file's (time) order."""
    layout = _layout(file, has_header=None, roles=("time", "price"))
    times: list[np.ndarray] = []
    prices: list[np.ndarray] = []
    count = 0
    for first_row, columns in _blocks(file, layout):
        count += len(columns["time"])
        if count > max_ticks:
            raise PayloadTooLarge(
                f"the file holds more than {max_ticks:,} ticks, the most a backtest reads",
                field=FIELD,
            )
        times.append(_times(columns["time"], first_row, layout.names["time"]))
        prices.append(_numbers(columns["price"], first_row, layout.names["price"], "price"))
    if count == 0:
        raise _bad("the file holds no ticks: expected a header row, then one tick a row")
    ts = np.concatenate(times)
    back = np.flatnonzero(np.diff(ts) < 0)
    if back.size:
        row = int(back[0]) + 2
        raise _bad(
            f"row {row}, column {layout.names['time']!r}: the ticks must be in time order, and "
            f"this one is earlier than row {row - 1}'s"
        )
    return ts, np.concatenate(prices)


def read_tick_batches(file: BinaryIO, *, has_header: bool, batch_rows: int) -> Iterator[TickRows]:
    """The file's ticks, ``batch_rows`` at a time (the last batch may hold fewer), in the
    file's order; the first bad row raises when its block is reached. A file without a single
    tick raises after its header."""
    layout = _layout(file, has_header=has_header, roles=tuple(_ROLES))
    names = layout.names
    held: list[TickRows] = []
    count = 0
    empty = True
    for first_row, columns in _blocks(file, layout):
        nan = np.full(len(columns["time"]), math.nan)
        held.append(
            TickRows(
                first_row,
                _times(columns["time"], first_row, names["time"]),
                *(
                    _numbers(columns[role], first_row, names[role], role)
                    if role in columns
                    else nan
                    for role in ("price", "volume", "bid", "ask")
                ),
            )
        )
        count += len(nan)
        empty = False
        while count >= batch_rows:
            batch, rest = TickRows.join(held).split(batch_rows)
            yield batch
            held, count = ([rest] if len(rest) else []), len(rest)
    if held:
        yield TickRows.join(held)
    if empty:
        raise _bad("the file holds no ticks: expected one tick a row")


def _layout(file: BinaryIO, *, has_header: bool | None, roles: tuple[str, ...]) -> _Layout:
    """Where each role's column is. ``has_header`` None: the first row is a header unless it
    is a tick, and without one the time and price are the first two columns."""
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
    fields = header.split(delimiter)
    width = len(fields)
    looks_like_tick = _is_tick(fields)
    if has_header is None and looks_like_tick:
        return _Layout(
            delimiter, 0, width, {"time": 0, "price": 1}, {"time": "time", "price": "price"}
        )
    if has_header is False:
        positional = HEADLESS.get(width)
        if positional is None:
            raise _bad(
                f"a file without a header row has 2 (time, price), 3 (time, price, volume) or "
                f"5 (NinjaTrader: time, last, bid, ask, volume) fields a row; the first row "
                f"has {width}"
            )
        at = {role: i for i, role in enumerate(positional)}
        return _Layout(delimiter, 0, width, at, {role: role for role in at})
    names = [_word(name) for name in fields]
    hint = " (the first row looks like a tick: send has_header=false)" if looks_like_tick else ""
    at = {
        "time": _find(names, TIME_COLUMNS, "time", header, hint),
        "price": _find(names, PRICE_COLUMNS, "price", header, hint),
    }
    for role in roles[2:]:
        found = [names.index(name) for name in _ROLES[role] if name in names]
        if found:
            at[role] = found[0]
    return _Layout(delimiter, 1, width, at, {role: names[i] for role, i in at.items()})


def _blocks(file: BinaryIO, layout: _Layout) -> Iterator[tuple[int, dict[str, pa.Array]]]:
    """Each block of rows as (its first data row, its columns by role, as text)."""
    column_names = [f"c{i}" for i in range(layout.width)]
    keep = sorted({column_names[i] for i in layout.at.values()})
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
        skip_rows=layout.skip_rows,
    )
    parse_options = pacsv.ParseOptions(delimiter=layout.delimiter, invalid_row_handler=invalid_row)
    convert_options = pacsv.ConvertOptions(
        include_columns=keep,
        column_types={name: pa.string() for name in keep},
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
    )
    count = 0
    try:
        reader = pacsv.open_csv(file, reader_options, parse_options, convert_options)
        for batch in reader:
            if batch.num_rows == 0:
                continue
            columns = {role: batch.column(column_names[i]) for role, i in layout.at.items()}
            yield count + 1, columns
            count += batch.num_rows
    except pa.ArrowException as exc:
        if broken:
            raise _bad(broken[0]) from None
        raise _bad(f"the file is not a CSV of ticks: {str(exc)[:200]}") from None


def _bad(message: str) -> HubError:
    return BadRequest(f"file: {message}", field=FIELD)


def _word(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.strip().strip("\"'").strip().lower())


def _find(names: list[str], accepted: tuple[str, ...], what: str, header: str, hint: str) -> int:
    for candidate in accepted:
        if candidate in names:
            return names.index(candidate)
    raise _bad(
        f"no {what} column: the header row must name one of {', '.join(accepted)}; "
        f"got {header[:200]!r}{hint}"
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
    ninja = _NINJA_CELL.fullmatch(text)
    if ninja is not None:
        year, month, day, hour, minute, second, fraction = ninja.groups()
        text = f"{year}-{month}-{day}T{hour}:{minute}:{second}.{fraction or 0}+00:00"
    return ts_ns_of(text)


def _times(column: pa.Array, first_row: int, name: str) -> np.ndarray:
    """A block's times as int64 ns: the common forms at once, else cell by cell (which also
    names the first bad cell)."""
    text = pc.utf8_trim_whitespace(column)
    ns = _epoch_ns(text)
    if ns is None:
        ns = _ninja_ns(text)
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


def _ninja_ns(text: pa.Array) -> np.ndarray | None:
    """NinjaTrader's ``yyyyMMdd HHmmss fffffff`` (UTC; the fraction's digits, up to nine, are
    a decimal fraction of the second); None unless every cell is one."""
    if not pc.all(pc.match_substring_regex(text, _NINJA)).as_py():
        return None
    try:
        whole = pc.strptime(pc.utf8_slice_codeunits(text, 0, 15), "%Y%m%d %H%M%S", "ns")
    except pa.ArrowException:
        return None
    fraction = pc.cast(pc.utf8_rpad(pc.utf8_slice_codeunits(text, 16, 25), 9, "0"), pa.int64())
    seconds = whole.cast(pa.int64()).to_numpy(zero_copy_only=False)
    return np.asarray(seconds + fraction.to_numpy(zero_copy_only=False))


def _iso_ns(text: pa.Array) -> np.ndarray | None:
    """ISO 8601 times, all without a zone (UTC) or all with one; None otherwise."""
    for kind in (pa.timestamp("ns"), pa.timestamp("ns", tz="UTC")):
        try:
            stamps = pc.cast(text, kind)
        except pa.ArrowException:
            continue
        return np.asarray(stamps.cast(pa.int64()).to_numpy(zero_copy_only=False))
    return None


# What each numeric column accepts: (whether a cell may be empty, whether it may be 0).
_RULES = {
    "price": (False, False),
    "volume": (True, True),
    "bid": (True, False),
    "ask": (True, False),
}


def _numbers(column: pa.Array, first_row: int, name: str, role: str) -> np.ndarray:
    """A block's numbers as float64 (an empty optional cell is NaN); the first bad cell raises."""
    optional, zero_ok = _RULES[role]
    text = pc.utf8_trim_whitespace(column)
    if optional:
        text = pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)
    try:
        values = np.asarray(pc.cast(text, pa.float64()).to_numpy(zero_copy_only=False))
    except pa.ArrowException:  # some cell is no number: find which
        values = np.array([_float(cell) for cell in text.to_pylist()], dtype=np.float64)
    fine = np.isfinite(values) & ((values >= 0) if zero_ok else (values > 0))
    if optional:
        fine |= np.asarray(text.is_null().to_numpy(zero_copy_only=False))
    bad = np.flatnonzero(~fine)
    if not bad.size:
        return values
    rule = ("at least 0" if zero_ok else "above 0") + (" or empty" if optional else "")
    raise _bad(
        f"row {first_row + int(bad[0])}, column {name!r}: must be a finite number {rule}, "
        f"got {text[int(bad[0])].as_py()[:64]!r}"
    )


def _float(cell: str | None) -> float:
    """A cell's number; NaN for an empty one, -inf (refused) for one that is no number."""
    if cell is None:
        return math.nan
    try:
        return float(cell)
    except ValueError:
        return -math.inf
