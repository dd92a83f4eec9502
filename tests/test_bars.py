"""Bars from ticks, the pure parts: :class:`BarBuilder` against a numpy oracle, the market
clock, where a late-joining track starts, and the names of bar topics and wishes."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest

from hub.datasets.timeframes import timeframe_ns
from hub.errors import BadRequest
from hub.marketdata.bars import Bar, BarBuilder, BarTrack, MarketClock
from hub.marketdata.barstate import TIMEFRAME, bars_topic, parse_pairs, split_pair
from hub.marketdata.symbolbars import tick_of

SECOND = 1_000_000_000
MINUTE = 60 * SECOND
T0 = 1_768_212_000 * SECOND  # 2026-01-12T10:00:00Z, on the hour


def oracle(ts: np.ndarray, price: np.ndarray, size: np.ndarray, step: int) -> list[Bar]:
    """OHLCV per epoch-aligned period of ``step`` ns, computed with numpy over ticks in time
    order (what every builder must equal)."""
    periods = ts - ts % step
    starts, first = np.unique(periods, return_index=True)
    last = np.append(first[1:], len(ts)) - 1
    return [
        Bar(
            int(start),
            float(price[a]),
            float(price[a : b + 1].max()),
            float(price[a : b + 1].min()),
            float(price[b]),
            float(size[a : b + 1].sum()),
            int(b - a + 1),
        )
        for start, a, b in zip(starts, first, last, strict=True)
    ]


def random_ticks(
    seed: int, count: int, span: int, start: int = T0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ts = np.sort(start + rng.integers(0, span, count)).astype(np.int64)
    price = np.round(100 + np.cumsum(rng.normal(0, 0.5, count)), 2)
    size = np.round(rng.uniform(0, 3, count), 3)
    return ts, price, size


def build(builder: BarBuilder, ts: np.ndarray, price: np.ndarray, size: np.ndarray) -> list[Bar]:
    """Every closed bar, then the forming one."""
    bars = []
    for t, p, s in zip(ts.tolist(), price.tolist(), size.tolist(), strict=True):
        closed = builder.on_tick(t, p, s)
        if closed is not None:
            bars.append(closed)
    if builder.forming is not None:
        bars.append(builder.forming)
    return bars


def same(got: list[Bar], expected: list[Bar]) -> None:
    """Equal, volumes to rounding (summed in another order)."""
    assert [b._replace(volume=0.0) for b in got] == [b._replace(volume=0.0) for b in expected]
    assert [b.volume for b in got] == pytest.approx([b.volume for b in expected])


@pytest.mark.parametrize(
    ("timeframe", "count", "span", "seed"),
    [("1s", 500, 20 * SECOND, 1), ("1m", 2000, 30 * MINUTE, 2), ("5m", 3000, 180 * MINUTE, 3),
     ("1h", 1000, 50 * 3600 * SECOND, 4), ("1d", 300, 9 * 86_400 * SECOND, 5)],
)  # fmt: skip
def test_builder_equals_numpy_per_period(timeframe: str, count: int, span: int, seed: int) -> None:
    step = timeframe_ns(timeframe)
    ts, price, size = random_ticks(seed, count, span)
    got = build(BarBuilder(step), ts, price, size)
    same(got, oracle(ts, price, size, step))
    assert all(b.ts % step == 0 for b in got)


def test_a_closed_bar_is_the_tick_before_the_next_period_and_periods_without_ticks_have_none() -> (
    None
):
    builder = BarBuilder(MINUTE)
    assert builder.on_tick(T0 + 5 * SECOND, 10.0, 1.0) is None
    assert builder.on_tick(T0 + 59 * SECOND, 12.0, None) is None  # no size: no volume
    assert builder.forming == Bar(T0, 10.0, 12.0, 10.0, 12.0, 1.0, 2)
    closed = builder.on_tick(T0 + 3 * MINUTE, 11.0, 2.0)  # two empty minutes skipped
    assert closed == Bar(T0, 10.0, 12.0, 10.0, 12.0, 1.0, 2)
    assert builder.forming == Bar(T0 + 3 * MINUTE, 11.0, 11.0, 11.0, 11.0, 2.0, 1)
    assert builder.on_tick(T0 + 4 * MINUTE, 9.0, float("nan")) is not None  # NaN size: none
    assert builder.forming is not None and builder.forming.volume == 0.0


def test_late_ticks_never_change_a_closed_bar_nor_reopen_its_period() -> None:
    builder = BarBuilder(MINUTE, delay_ns=2 * SECOND)
    builder.on_tick(T0 + SECOND, 10.0, 1.0)
    builder.on_tick(T0 + MINUTE + SECOND, 11.0, 1.0)  # closes the first minute
    assert builder.on_tick(T0 + 30 * SECOND, 99.0, 1.0) is None  # older than the forming bar
    assert builder.late == 1
    # The clock closes the second minute; a tick of that minute arriving after is late too.
    assert builder.on_clock(T0 + 2 * MINUTE + SECOND) is None  # not past the delay yet
    assert builder.close_deadline() == T0 + 2 * MINUTE + 2 * SECOND
    closed = builder.on_clock(T0 + 2 * MINUTE + 2 * SECOND)
    assert closed == Bar(T0 + MINUTE, 11.0, 11.0, 11.0, 11.0, 1.0, 1)
    assert builder.forming is None and builder.close_deadline() is None
    assert builder.on_tick(T0 + MINUTE + 50 * SECOND, 50.0, 1.0) is None
    assert builder.late == 2 and builder.forming is None
    assert builder.on_clock(T0 + 10 * MINUTE) is None  # nothing forms: nothing to close
    # The next period opens normally.
    assert builder.on_tick(T0 + 2 * MINUTE, 12.0, 1.0) is None
    assert builder.forming == Bar(T0 + 2 * MINUTE, 12.0, 12.0, 12.0, 12.0, 1.0, 1)


def test_state_restores_a_builder_that_goes_on_as_if_never_stopped() -> None:
    ts, price, size = random_ticks(7, 1500, 40 * MINUTE)
    step = timeframe_ns("5m")
    whole = build(BarBuilder(step, SECOND), ts, price, size)
    for cut in (1, 300, 777, 1499):
        first = BarBuilder(step, SECOND)
        closed = build(first, ts[:cut], price[:cut], size[:cut])[:-1]
        first.on_tick(int(ts[0]) - 10 * MINUTE, 1.0, 1.0)  # a late tick, counted
        resumed = BarBuilder.restore(step, first.state(), SECOND)
        assert resumed.state() == first.state() and resumed.late == 1
        assert closed + build(resumed, ts[cut:], price[cut:], size[cut:]) == whole
    after_clock = BarBuilder(step)
    after_clock.on_tick(T0, 1.0, 1.0)
    after_clock.on_clock(T0 + step)
    again = BarBuilder.restore(step, after_clock.state())
    assert again.closed_until == T0 + step and again.on_tick(T0 + 1, 2.0) is None
    assert BarBuilder.restore(step, {"bar": None, "late": 3}).late == 3  # an older state
    assert BarBuilder.restore(step, None).forming is None
    with pytest.raises(ValueError, match="positive"):
        BarBuilder(0)


def test_bar_document_is_what_the_topic_carries() -> None:
    bar = Bar(T0, 1.0, 2.0, 0.5, 1.5, 10.0, 4)
    assert bar.document("BTC/USD", "1m", True) == {
        "symbol": "BTC/USD",
        "timeframe": "1m",
        "ts": T0,
        "open": 1.0,
        "high": 2.0,
        "low": 0.5,
        "close": 1.5,
        "volume": 10.0,
        "ticks": 4,
        "closed": True,
    }


def test_market_clock_runs_from_the_newest_tick() -> None:
    clock = MarketClock()
    assert clock.now(5) is None and clock.wall_at(10) is None
    wall = 1_000 * SECOND
    clock.on_tick(T0, wall)
    assert clock.now(wall) == T0
    assert clock.now(wall + 3 * SECOND) == T0 + 3 * SECOND
    assert clock.now(wall - SECOND) == T0  # a wall clock behind the tick's stamp: no going back
    assert clock.wall_at(T0 + 2 * SECOND) == wall + 2 * SECOND
    clock.on_tick(T0 - MINUTE, wall + 4 * SECOND)  # an older tick does not set it back
    assert clock.now(wall + 5 * SECOND) == T0 + 5 * SECOND
    clock.on_tick(T0 + MINUTE, wall + 6 * SECOND)
    assert clock.now(wall + 7 * SECOND) == T0 + MINUTE + SECOND


def test_a_track_joining_the_stream_late_starts_at_a_whole_period() -> None:
    step = MINUTE
    # Tick 1 begins the stream: everything counts.
    whole = BarTrack(BarBuilder(step))
    assert whole.feed(1, T0 + 30 * SECOND, 5.0, 1.0) is None
    assert whole.start is None and whole.builder.forming is not None
    # Joining at tick 7: its minute may miss ticks 1..6, so bars start at the next minute.
    joined = BarTrack(BarBuilder(step))
    assert joined.feed(7, T0 + 30 * SECOND, 5.0, 1.0) is None
    assert joined.start == T0 + MINUTE and joined.builder.forming is None
    joined.feed(8, T0 + 50 * SECOND, 6.0, 1.0)
    assert joined.builder.forming is None
    joined.feed(9, T0 + MINUTE, 7.0, 1.0)
    assert joined.builder.forming == Bar(T0 + MINUTE, 7.0, 7.0, 7.0, 7.0, 1.0, 1)
    # Stored up to T0 + 1m and joining at an older tick: the stream covers the rest.
    resumed = BarTrack(BarBuilder(step), start=T0 + MINUTE)
    resumed.feed(40, T0 + 45 * SECOND, 1.0, 1.0)
    assert resumed.start == T0 + MINUTE and resumed.builder.forming is None
    resumed.feed(41, T0 + MINUTE + SECOND, 2.0, 1.0)
    assert resumed.builder.forming is not None and resumed.builder.forming.ts == T0 + MINUTE
    # Stored up to T0 + 1m but the stream begins later, mid-period: start after it.
    gap = BarTrack(BarBuilder(step), start=T0 + MINUTE)
    gap.feed(90, T0 + 5 * MINUTE + SECOND, 1.0, 1.0)
    assert gap.start == T0 + 6 * MINUTE


def test_timeframe_names_agree_with_the_datasets() -> None:
    pattern = re.compile(TIMEFRAME)
    for name in ("1s", "15s", "1m", "4h", "1d", "1w", "9999m", "0m", "1y", "m", "10000s", "01m"):
        try:
            timeframe_ns(name)
            valid = True
        except ValueError:
            valid = False
        assert (pattern.fullmatch(name) is not None) == valid, name


def test_topic_names_pairs_and_settings() -> None:
    assert bars_topic("BTC/USD", "1m") == "bars:BTC/USD:1m"
    assert split_pair("ES:CME:5m") == ("ES:CME", "5m")  # a symbol may hold ':'
    assert split_pair("ES:CME|5m", "|") == ("ES:CME", "5m")
    with pytest.raises(BadRequest) as bad_tf:
        bars_topic("BTC/USD", "7x")
    assert bad_tf.value.field == "timeframe"
    with pytest.raises(BadRequest) as bad_symbol:
        bars_topic("NO SPACES", "1m")
    assert bad_symbol.value.field == "symbol"
    assert parse_pairs(["BTC/USD:1m", " BTC/USD:5m", "ES:CME:1h"]) == {
        "BTC/USD": {"1m", "5m"},
        "ES:CME": {"1h"},
    }
    with pytest.raises(ValueError, match="TRADEHUB_BARS entry 'BTC/USD'"):
        parse_pairs(["BTC/USD"])


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"ts": 5, "price": 1.5, "size": 2, "recv_ns": 9}, (5, 1.5, 2.0, 9)),
        ({"ts": 5, "price": 1, "size": None}, (5, 1.0, None, 77)),  # no stamp: when it came
        ({"ts": 5.0, "price": 1.0}, None),
        ({"ts": 5, "price": None}, None),
        ({"ts": True, "price": 1.0}, None),
        ({"ts": 5, "price": float("inf")}, None),
        ([1, 2], None),
    ],
)
def test_a_tick_payload_is_read_or_skipped(data: Any, expected: Any) -> None:
    assert tick_of(data, 77) == expected
