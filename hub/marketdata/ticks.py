"""A batch of ticks as clients send it: validated whole, then held as columns.

The rules (the README's "Market data" section says them to clients):

- at most :data:`MAX_TICKS` ticks a batch (more is a 400), and :data:`MAX_BODY_BYTES` of JSON
  (more is a 413);
- ``symbol`` matches ``hub.topics.SYMBOL``; ``price`` (and ``bid``, ``ask`` when given) is a
  finite number above 0, ``size`` a finite number of at least 0, and ``bid`` is not above ``ask``;
- ``ts`` is an ISO 8601 string (no zone means UTC; up to nine fractional digits are kept) or a
  number of epoch seconds, milliseconds, microseconds or nanoseconds, told apart by magnitude
  (:func:`ts_ns_of`), between 1970-01-01 and 2262-04-11.

The first thing wrong is a 400 naming the tick's index and field (``ticks[3].price``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

import numpy as np
import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)
from pydantic.functional_validators import BeforeValidator

from hub import pgcopy
from hub.errors import BadRequest, HubError
from hub.times import EARLIEST, LATEST, aware, ns_of
from hub.topics import SYMBOL

MAX_TICKS = 10_000  # migration 0007 numbers a batch's ticks from a sequence stepping by this
MAX_BODY_BYTES = 4 << 20  # about 400 bytes a tick at the cap: far more than a tick needs

# Magnitude bounds (of the number as sent) of each unit, the first that the number is below
# wins: 1e11 s is the year 5138, and 1e11 ms, 1e14 us and 1e17 ns are all 1973-03-03.
_UNITS: tuple[tuple[int, int, str], ...] = (
    (10**11, 10**9, "seconds"),
    (10**14, 10**6, "ms"),
    (10**17, 10**3, "us"),
)
_LAST_NS = ns_of(LATEST)
_FRACTION = re.compile(r"(T\d\d:?\d\d:?\d\d)[.,](\d+)")
TS_RULE = (
    "an ISO 8601 string, or a number of epoch seconds (below 1e11), milliseconds (below 1e14), "
    "microseconds (below 1e17) or nanoseconds, between 1970-01-01 and 2262-04-11"
)


def ts_ns_of(value: str | float) -> int:
    """A tick's time as int64 nanoseconds since the epoch; ValueError says what is wrong.

    A number's unit is read from its magnitude: below 1e11 seconds, below 1e14 milliseconds,
    below 1e17 microseconds, else nanoseconds. Fractions are kept to the nanosecond (a float
    is read as the decimal it was written as, not its binary approximation).
    """
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        # A ValueError, not a TypeError: pydantic reports only the former as the field's error.
        raise ValueError(f"must be {TS_RULE}; got {value!r}")  # noqa: TRY004
    if isinstance(value, str):
        return _iso_ns(value)
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"must be {TS_RULE}; got {value!r}")
    exact = Decimal(value) if isinstance(value, int) else Decimal(repr(value))
    scale, unit = 1, "ns"
    for below, factor, name in _UNITS:
        if abs(exact) < below:
            scale, unit = factor, name
            break
    ns = int(exact * scale)
    if not 0 <= ns < _LAST_NS:
        raise ValueError(
            f"{value!r} read as {unit} since the epoch is outside 1970-01-01..2262-04-11 "
            "(below 1e11 a number is seconds, below 1e14 ms, below 1e17 us, else ns)"
        )
    return ns


def _iso_ns(text: str) -> int:
    fraction = 0
    match = _FRACTION.search(text)
    if match is not None:
        digits = match[2]
        fraction = int(digits[:9].ljust(9, "0"))
        text = text[: match.start(2) - 1] + text[match.end(2) :]
    try:
        moment = aware(datetime.fromisoformat(text))
    except ValueError:
        raise ValueError(f"must be {TS_RULE}; got {text[:64]!r}") from None
    if not EARLIEST <= moment < LATEST:
        raise ValueError(f"{text[:64]!r} is outside 1970-01-01..2262-04-11")
    ns = ns_of(moment) + fraction
    if ns >= _LAST_NS:
        raise ValueError(f"{text[:64]!r} is outside 1970-01-01..2262-04-11")
    return ns


def _tick_time(value: Any) -> int:
    return ts_ns_of(value)


TickTime = Annotated[
    int,
    BeforeValidator(_tick_time),
    WithJsonSchema(
        {
            "anyOf": [{"type": "string"}, {"type": "integer"}, {"type": "number"}],
            "description": f"the tick's time: {TS_RULE}",
            "examples": ["2026-01-12T10:00:00.123456789Z", 1768212000123],
        }
    ),
]


class TickIn(BaseModel):
    """One tick as a client sends it."""

    model_config = ConfigDict(extra="forbid", strict=True)

    symbol: str = Field(pattern=f"^{SYMBOL}$", description="1-32 letters, digits and / _ . : -")
    ts: TickTime
    price: float = Field(gt=0, allow_inf_nan=False)
    size: float | None = Field(None, ge=0, allow_inf_nan=False)
    bid: float | None = Field(None, gt=0, allow_inf_nan=False)
    ask: float | None = Field(None, gt=0, allow_inf_nan=False)

    @field_validator("ask")
    @classmethod
    def _not_below_bid(cls, ask: float | None, info: ValidationInfo) -> float | None:
        bid = info.data.get("bid")
        if ask is not None and bid is not None and bid > ask:
            raise ValueError(f"bid {bid} is above ask {ask}")
        return ask


class TickBatch(BaseModel):
    """A batch of ticks: ``POST /api/v1/marketdata/ticks``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    ticks: list[TickIn] = Field(
        min_length=1,
        max_length=MAX_TICKS,
        description=f"1 to {MAX_TICKS:,} ticks of any symbols, oldest first within a symbol",
    )


@dataclass(frozen=True)
class Ticks:
    """A validated batch as columns; a missing size, bid or ask is NaN in the arrays."""

    symbols: list[str]
    ts_ns: np.ndarray  # int64
    price: np.ndarray  # float64
    size: np.ndarray
    bid: np.ndarray
    ask: np.ndarray

    def __len__(self) -> int:
        return len(self.symbols)

    @classmethod
    def of(cls, ticks: list[TickIn]) -> Ticks:
        nan = math.nan
        return cls(
            symbols=[t.symbol for t in ticks],
            ts_ns=np.fromiter((t.ts for t in ticks), dtype=np.int64, count=len(ticks)),
            price=np.fromiter((t.price for t in ticks), dtype=np.float64, count=len(ticks)),
            size=np.array([nan if t.size is None else t.size for t in ticks], dtype=np.float64),
            bid=np.array([nan if t.bid is None else t.bid for t in ticks], dtype=np.float64),
            ask=np.array([nan if t.ask is None else t.ask for t in ticks], dtype=np.float64),
        )

    def part(self, start: int, stop: int) -> Ticks:
        return Ticks(
            self.symbols[start:stop],
            self.ts_ns[start:stop],
            self.price[start:stop],
            self.size[start:stop],
            self.bid[start:stop],
            self.ask[start:stop],
        )

    def copy_payload(self, first_number: int, recv_ns: int) -> bytes:
        """A binary COPY of the batch into ``ts.ticks`` (columns as ``repository.TICK_COLUMNS``),
        its ticks numbered ``first_number``, ``first_number + 1``... in batch order.

        Rows are grouped by symbol and by which of size, bid and ask are missing (NULL): within
        a group every row has the same width, so numpy encodes it at once."""
        n = len(self)
        numbers = first_number + np.arange(n, dtype=np.int64)
        received = np.full(n, recv_ns, dtype=np.int64)
        missing = [np.isnan(self.size), np.isnan(self.bid), np.isnan(self.ask)]
        masks = (missing[0] | (missing[1] << 1) | (missing[2] << 2)).tolist()
        groups: dict[tuple[str, int], list[int]] = {}
        for i, key in enumerate(zip(self.symbols, masks, strict=True)):
            groups.setdefault(key, []).append(i)
        parts = []
        for (symbol, mask), indices in groups.items():
            at = np.asarray(indices, dtype=np.intp)
            ts = self.ts_ns[at]
            optional = [
                (None if mask & (1 << k) else values[at], "float8")
                for k, values in enumerate((self.size, self.bid, self.ask))
            ]
            parts.append(
                pgcopy.encode_rows(
                    len(at),
                    [
                        (symbol.encode(), "text"),
                        (ts, "timestamptz"),
                        (ts, "int8"),
                        (self.price[at], "float8"),
                        *optional,
                        (received[at], "int8"),
                        (numbers[at], "int8"),
                    ],
                )
            )
        return pgcopy.SIGNATURE + b"".join(parts) + pgcopy.TRAILER

    def payloads(self, recv_ns: int) -> list[bytes]:
        """Each tick as the bus carries it on ``ticks:{symbol}`` (the contract the broker's
        matcher reads): ``{"symbol", "ts" (int ns), "price", "size", "bid", "ask", "recv_ns"}``,
        null for what was not sent."""
        dumps = orjson.dumps
        return [
            dumps(
                {
                    "symbol": symbol,
                    "ts": ts,
                    "price": price,
                    "size": size,
                    "bid": bid,
                    "ask": ask,
                    "recv_ns": recv_ns,
                }
            )
            for symbol, ts, price, size, bid, ask in zip(
                self.symbols,
                self.ts_ns.tolist(),
                self.price.tolist(),
                _nullable(self.size),
                _nullable(self.bid),
                _nullable(self.ask),
                strict=True,
            )
        ]


def _nullable(values: np.ndarray) -> list[float | None]:
    """NaN (what was not sent) as None."""
    isnan = math.isnan
    return [None if isnan(v) else v for v in values.tolist()]


def parse_batch(body: bytes | dict[str, Any]) -> Ticks:
    """Validate a whole batch (JSON bytes or the parsed object) before anything is written."""
    try:
        if isinstance(body, bytes | bytearray | memoryview):
            batch = TickBatch.model_validate_json(body)
        else:
            batch = TickBatch.model_validate(body)
    except ValidationError as exc:
        raise _bad_batch(exc) from None
    return Ticks.of(batch.ticks)


def _bad_batch(exc: ValidationError) -> HubError:
    first = exc.errors(include_url=False)[0]
    loc, kind = first["loc"], first["type"]
    if kind == "json_invalid":
        return BadRequest(f"malformed JSON body: {first['msg']}", field="body")
    if loc == ("ticks",) and kind == "too_long":
        # A 400, like every other breach of the documented schema (maxItems); 413 is for a
        # body past MAX_BODY_BYTES, refused before it is even read whole.
        return BadRequest(
            f"ticks: a batch holds at most {MAX_TICKS:,} ticks; send this one in parts",
            field="ticks",
            details={"limit": MAX_TICKS},
        )
    if len(loc) >= 3 and loc[0] == "ticks" and isinstance(loc[1], int):
        index, name = loc[1], str(loc[2])
        field = f"ticks[{index}].{name}"
        message = str(first["msg"]).removeprefix("Value error, ")
        if name == "ts" and kind not in ("value_error", "missing"):
            message = f"must be {TS_RULE}"
        got = first.get("input")
        shown = "" if kind in ("missing", "value_error") else f"; got {_short(got)}"
        return BadRequest(
            f"{field}: {message}{shown}", field=field, details={"index": index, "name": name}
        )
    if len(loc) == 2 and loc[0] == "ticks" and isinstance(loc[1], int):
        field = f"ticks[{loc[1]}]"
        return BadRequest(
            f"{field}: {first['msg']}; got {_short(first.get('input'))}",
            field=field,
            details={"index": loc[1]},
        )
    field = ".".join(str(part) for part in loc) or "body"
    return BadRequest(f"{field}: {first['msg']}", field=field)


def _short(value: Any) -> str:
    try:
        text = orjson.dumps(value).decode()
    except TypeError:
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


__all__ = ["MAX_BODY_BYTES", "MAX_TICKS", "TickBatch", "TickIn", "Ticks", "parse_batch"]
