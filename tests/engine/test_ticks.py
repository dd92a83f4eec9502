"""The Max bot tick kernel against an independent plain-Python reference.

The reference below re-implements docs/engine-strategies.md ("point_key", "exit_strategy_key")
tick by tick, with the long and short sides written out separately (the kernel runs one machine
in signed price space), so a disagreement points at the kernel or at the definition.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import ticks
from engine.records import Direction, EventKind, ExitReason, TradeStatus, event_dt, trade_dt
from engine.ticks import (
    MAX_POINTS_PARAMS,
    TickSimulator,
    TickState,
    parse_exit_strategy_key,
    parse_point_key,
    run_max_points,
    simulate_ticks,
)

# --------------------------------------------------------------------------- reference


@dataclass
class RefSetup:
    phase: str = "seek"
    ref: float | None = None
    ext: float = math.nan
    pull: float = math.nan

    def restart(self, price: float | None) -> None:
        self.phase, self.ref, self.ext, self.pull = "seek", price, math.nan, math.nan


@dataclass(frozen=True)
class RefRules:
    impulse: float
    pullback: float
    max_pullback: float
    confirm: float
    take_profit: float
    stop_loss: float

    @classmethod
    def from_keys(cls, point_key: str, exit_key: str, point_size: float) -> RefRules:
        a, b, c, d = (float(v) for v in point_key.split("_"))
        tp, sl = (float(v) for v in exit_key.split("_"))
        return cls(a * point_size, b * point_size, (b + d) * point_size, c * point_size,
                   tp * point_size, sl * point_size)  # fmt: skip


def ref_long_step(s: RefSetup, x: float, r: RefRules) -> bool:
    if s.phase == "seek":
        if s.ref is None or x < s.ref:
            s.ref = x
        if x - s.ref >= r.impulse:
            s.phase, s.ext = "armed", x
        return False
    if s.phase == "armed":
        s.ext = max(s.ext, x)
        drop = s.ext - x
        if drop >= r.pullback:
            if drop > r.max_pullback:
                s.restart(x)
            else:
                s.phase, s.pull = "pullback", x
        return False
    s.pull = min(s.pull, x)
    if s.ext - s.pull > r.max_pullback:
        s.restart(x)
        return False
    return x - s.pull >= r.confirm


def ref_short_step(s: RefSetup, x: float, r: RefRules) -> bool:
    if s.phase == "seek":
        if s.ref is None or x > s.ref:
            s.ref = x
        if s.ref - x >= r.impulse:
            s.phase, s.ext = "armed", x
        return False
    if s.phase == "armed":
        s.ext = min(s.ext, x)
        rise = x - s.ext
        if rise >= r.pullback:
            if rise > r.max_pullback:
                s.restart(x)
            else:
                s.phase, s.pull = "pullback", x
        return False
    s.pull = max(s.pull, x)
    if s.pull - s.ext > r.max_pullback:
        s.restart(x)
        return False
    return s.pull - x >= r.confirm


@dataclass
class RefResult:
    trades: list[tuple[Any, ...]] = field(default_factory=list)
    events: list[tuple[Any, ...]] = field(default_factory=list)
    equity: list[float] = field(default_factory=list)
    cash: list[float] = field(default_factory=list)
    position: list[float] = field(default_factory=list)


def reference_simulate(
    ts: list[int], price: list[float], *, point_key: str, exit_strategy_key: str,
    point_size: float = 1.0, direction: str = "both", fees: float = 0.0, slippage: float = 0.0,
    initial_capital: float = 10_000.0, units: float = 1.0,
) -> RefResult:  # fmt: skip
    r = RefRules.from_keys(point_key, exit_strategy_key, point_size)
    long_setup, short_setup = RefSetup(), RefSetup()
    out = RefResult()
    cash, pos = initial_capital, 0.0
    side: str | None = None
    entry = entry_fee = 0.0
    entry_i = entry_t = 0
    for i, (t, x) in enumerate(zip(ts, price, strict=True)):
        if side is not None:
            gain, loss = (x - entry, entry - x) if side == "long" else (entry - x, x - entry)
            reason = None
            if gain >= r.take_profit:
                reason = ExitReason.TakeProfit
            elif loss >= r.stop_loss:
                reason = ExitReason.StopLoss
            if reason is not None:
                code = Direction.Long if side == "long" else Direction.Short
                if side == "long":
                    fill = x - slippage
                    fee = fill * units * fees
                    cash += fill * units - fee
                    pnl = (fill - entry) * units - entry_fee - fee
                else:
                    fill = x + slippage
                    fee = fill * units * fees
                    cash -= fill * units + fee
                    pnl = (entry - fill) * units - entry_fee - fee
                out.trades.append((len(out.trades), entry_i, i, entry_t, t, entry, fill, units,
                                   code, TradeStatus.Closed, reason, pnl,
                                   pnl / (entry * units), entry_fee + fee))  # fmt: skip
                out.events.append((i, t, EventKind.Exit, code, fill, units))
                side, pos = None, 0.0
                long_setup.restart(x)
                short_setup.restart(x)
        else:
            go_long = direction != "short" and ref_long_step(long_setup, x, r)
            go_short = direction != "long" and ref_short_step(short_setup, x, r)
            if go_long or go_short:
                side = "long" if go_long else "short"
                if side == "long":
                    entry = x + slippage
                    entry_fee = entry * units * fees
                    cash -= entry * units + entry_fee
                    pos = units
                else:
                    entry = x - slippage
                    entry_fee = entry * units * fees
                    cash += entry * units - entry_fee
                    pos = -units
                entry_i, entry_t = i, t
                code = Direction.Long if side == "long" else Direction.Short
                out.events.append((i, t, EventKind.Entry, code, entry, units))
                long_setup.restart(None)
                short_setup.restart(None)
        out.equity.append(cash + pos * x)
        out.cash.append(cash)
        out.position.append(pos)
    if side is not None:
        last = price[-1]
        pnl = ((last - entry) if side == "long" else (entry - last)) * units - entry_fee
        code = Direction.Long if side == "long" else Direction.Short
        out.trades.append((len(out.trades), entry_i, -1, entry_t, ts[-1], entry, last, units,
                           code, TradeStatus.Open, ExitReason.NoExit, pnl,
                           pnl / (entry * units), entry_fee))  # fmt: skip
    return out


TRADE_FIELDS = ("id", "entry_index", "exit_index", "entry_ts", "exit_ts", "entry_price",
                "exit_price", "units", "direction", "status", "exit_reason", "pnl", "return",
                "fees")  # fmt: skip
EVENT_FIELDS = ("bar_index", "ts", "kind", "direction", "price", "units")


def assert_matches_reference(got: Any, ref: RefResult) -> None:
    assert got.trades.shape[0] == len(ref.trades), (got.trades, ref.trades)
    for rec, want in zip(got.trades, ref.trades, strict=True):
        for name, value in zip(TRADE_FIELDS, want, strict=True):
            if isinstance(value, float):
                assert rec[name] == pytest.approx(value, rel=1e-12, abs=1e-9), name
            else:
                assert rec[name] == value, name
        assert rec["layer"] == 0
    assert [tuple(e[f] for f in EVENT_FIELDS) for e in got.events] == ref.events
    assert np.all(got.events["layer"] == 0) and np.all(got.events["retracement_count"] == 0)
    np.testing.assert_allclose(got.equity, ref.equity, rtol=0, atol=1e-9)
    np.testing.assert_allclose(got.cash, ref.cash, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(got.position, ref.position)


# --------------------------------------------------------------------------- data


def grid_walk(seed: int, n: int, tick: float, max_step: int) -> np.ndarray:
    """Prices on an exchange tick grid, so levels are hit exactly and ties are exercised."""
    rng = np.random.default_rng(seed)
    steps = rng.integers(-max_step, max_step + 1, n)
    return 2000.0 + np.cumsum(steps) * tick


def float_walk(seed: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 1000.0 * np.exp(np.cumsum(rng.normal(0.0, 0.002, n)))


def ns_times(seed: int, n: int) -> np.ndarray:
    """Irregular tick times with repeats (several prints in one nanosecond are legal)."""
    rng = np.random.default_rng(seed + 1)
    return 1_700_000_000_000_000_000 + np.cumsum(rng.integers(0, 3, n)).astype(np.int64)


def small_key(draw: Callable[[Any], Any], parts: int, zero_last: bool) -> str:
    values = [draw(st.sampled_from([1, 2, 3, 4, 5, 6, 1.5, 2.5])) for _ in range(parts)]
    if zero_last:
        values[-1] = draw(st.sampled_from([0, 0.5, 1, 2, 3]))
    return "_".join(f"{v:g}" for v in values)


@st.composite
def scenarios(draw: Callable[[Any], Any]) -> dict[str, Any]:
    seed = draw(st.integers(0, 2**32 - 1))
    n = draw(st.integers(0, 600))
    grid = draw(st.booleans())
    point_size = draw(st.sampled_from([0.25, 0.5, 1.0]))
    price = grid_walk(seed, n, 0.25, draw(st.integers(1, 6))) if grid else float_walk(seed, n)
    if not grid:
        point_size = draw(st.sampled_from([0.1, 0.37, 1.0]))
    return {
        "ts": ns_times(seed, n),
        "price": price,
        "point_key": small_key(draw, 4, zero_last=True),
        "exit_strategy_key": small_key(draw, 2, zero_last=False),
        "point_size": point_size,
        "direction": draw(st.sampled_from(["long", "short", "both"])),
        "fees": draw(st.sampled_from([0.0, 0.0005, 0.002])),
        "slippage": draw(st.sampled_from([0.0, 0.25])),
        "initial_capital": draw(st.sampled_from([10_000.0, 123.5])),
        "units": draw(st.sampled_from([1.0, 2.0, 0.3])),
    }


FAST = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def options_of(sc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in sc.items() if k not in ("ts", "price")}


# --------------------------------------------------------------------------- oracle


@FAST
@given(scenarios())
def test_kernel_equals_reference(sc: dict[str, Any]) -> None:
    got = simulate_ticks(sc["ts"], sc["price"], **options_of(sc))
    ref = reference_simulate(sc["ts"].tolist(), sc["price"].tolist(), **options_of(sc))
    assert_matches_reference(got, ref)


def test_reference_agreement_produces_trades_both_ways() -> None:
    """Guards the oracle test against passing vacuously on data that never trades."""
    price = grid_walk(7, 20_000, 0.25, 4)
    ts = np.arange(price.size, dtype=np.int64)
    got = simulate_ticks(ts, price, point_key="4_2_1.5_1", exit_strategy_key="3_3", point_size=1)
    ref = reference_simulate(ts.tolist(), price.tolist(), point_key="4_2_1.5_1",
                             exit_strategy_key="3_3")  # fmt: skip
    assert_matches_reference(got, ref)
    closed = got.trades[got.trades["status"] == TradeStatus.Closed]
    assert set(closed["direction"]) == {Direction.Long, Direction.Short}
    assert set(closed["exit_reason"]) == {ExitReason.TakeProfit, ExitReason.StopLoss}


# --------------------------------------------------------------------------- chunks


@FAST
@given(scenarios(), st.lists(st.integers(0, 600), max_size=6))
def test_chunked_equals_one_pass(sc: dict[str, Any], cuts: list[int]) -> None:
    one = simulate_ticks(sc["ts"], sc["price"], **options_of(sc))
    n = sc["price"].size
    bounds = [0, *sorted(min(c, n) for c in cuts), n]
    sim = TickSimulator(**options_of(sc))
    chunks = []
    for a, b in itertools.pairwise(bounds):
        # a checkpoint between chunks is the state's plain mapping
        sim = TickSimulator(**options_of(sc), state=TickState(**sim.state._asdict()))
        chunks.append(sim.feed(sc["ts"][a:b], sc["price"][a:b]))
    trades = np.concatenate([c.trades for c in chunks] + [sim.open_trades()])
    np.testing.assert_array_equal(trades, one.trades)
    np.testing.assert_array_equal(np.concatenate([c.events for c in chunks]), one.events)
    for name in ("equity", "cash", "position"):
        np.testing.assert_array_equal(
            np.concatenate([getattr(c, name) for c in chunks]), getattr(one, name)
        )
    assert sim.state._asdict() == pytest.approx(one.extras["state"], nan_ok=True)


def test_simulate_ticks_internal_chunks_cross_boundaries(monkeypatch: pytest.MonkeyPatch) -> None:
    """simulate_ticks splits long streams itself; a tiny split must not change anything."""
    price = grid_walk(3, 5_000, 0.25, 3)
    ts = np.arange(price.size, dtype=np.int64)
    kw: dict[str, Any] = {"point_key": "4_2_1_1", "exit_strategy_key": "3_5"}
    whole = simulate_ticks(ts, price, **kw)
    monkeypatch.setattr(ticks, "_CHUNK", 7)
    split = simulate_ticks(ts, price, **kw)
    assert whole.trades.size > 10
    np.testing.assert_array_equal(split.trades, whole.trades)
    np.testing.assert_array_equal(split.events, whole.events)
    np.testing.assert_array_equal(split.equity, whole.equity)


# --------------------------------------------------------------------------- worked examples

# the examples of docs/engine-strategies.md, "point_key"
LONG_EXAMPLE = [100, 108, 115, 118, 113, 111, 110, 113, 115, 122, 130]
VOID_EXAMPLE = [100, 115, 118, 111, 108, 113, 114, 123, 116, 114, 119]


def test_worked_example_long_take_profit() -> None:
    ts = np.arange(len(LONG_EXAMPLE), dtype=np.int64) * 1_000_000_000
    r = simulate_ticks(ts, np.array(LONG_EXAMPLE, float), point_key="15_7_5_2",
                       exit_strategy_key="15_15", direction="long")  # fmt: skip
    (t,) = r.trades
    assert (t["entry_index"], t["entry_price"], t["exit_index"], t["exit_price"]) == (
        8,
        115,
        10,
        130,
    )
    assert t["exit_reason"] == ExitReason.TakeProfit and t["pnl"] == 15.0
    assert r.equity[-1] == 10_015.0
    assert r.position.tolist() == [0.0] * 8 + [1.0, 1.0, 0.0]


def test_worked_example_void_pullback_then_entry() -> None:
    """A pullback deeper than B + D voids the setup; its low becomes the new reference."""
    ts = np.arange(len(VOID_EXAMPLE), dtype=np.int64)
    r = simulate_ticks(ts, np.array(VOID_EXAMPLE, float), point_key="15_7_5_2",
                       exit_strategy_key="15_15", direction="long")  # fmt: skip
    (t,) = r.trades  # 118 -> 108 is 10 > 9 points: void; 108 -> 123 re-arms; 114 -> 119 enters
    assert (t["entry_index"], t["entry_price"], t["status"]) == (10, 119.0, TradeStatus.Open)
    assert t["exit_index"] == -1 and t["exit_price"] == 119.0 and t["pnl"] == 0.0


def test_worked_example_short_stop() -> None:
    price = np.array([200, 185, 182, 189, 190, 185, 199.5, 200], float)
    ts = np.arange(price.size, dtype=np.int64)
    r = simulate_ticks(ts, price, point_key="15_7_5_2", exit_strategy_key="15_15", fees=0.001)
    (t,) = r.trades  # short: 200 -> 185 arms, 182 -> 189 pulls back 7, 190 -> 185 confirms
    assert (t["direction"], t["entry_index"], t["exit_index"]) == (Direction.Short, 5, 7)
    assert t["exit_reason"] == ExitReason.StopLoss and t["exit_price"] == 200.0
    assert t["fees"] == pytest.approx(0.185 + 0.2)
    assert t["pnl"] == pytest.approx(-15.0 - 0.385)


# --------------------------------------------------------------------------- edges


def test_empty_input() -> None:
    r = simulate_ticks(np.empty(0, np.int64), np.empty(0), point_key="15_7_5_2",
                       exit_strategy_key="15_15")  # fmt: skip
    assert r.trades.dtype == trade_dt and r.trades.size == 0
    assert r.events.dtype == event_dt and r.events.size == 0
    assert r.equity.size == r.cash.size == r.position.size == 0
    assert r.metrics["total_pnl"] == 0.0 and r.metrics["total_trades"] == 0.0


def test_single_tick() -> None:
    r = simulate_ticks(np.array([5], np.int64), np.array([101.0]), point_key="1_1_1_0",
                       exit_strategy_key="1_1", initial_capital=500.0)  # fmt: skip
    assert r.trades.size == 0 and r.equity.tolist() == [500.0]


def test_flat_market_never_trades() -> None:
    price = np.full(1000, 4321.25)
    r = simulate_ticks(np.arange(1000, dtype=np.int64), price, point_key="1_1_1_0",
                       exit_strategy_key="1_1")  # fmt: skip
    assert r.trades.size == 0 and np.all(r.equity == 10_000.0)


def test_open_position_at_end_is_marked_to_last_price() -> None:
    price = np.array([100, 115, 108, 113, 117, 120.5], float)
    r = simulate_ticks(np.arange(6, dtype=np.int64), price, point_key="15_7_5_2",
                       exit_strategy_key="15_15", fees=0.001, units=2.0)  # fmt: skip
    (t,) = r.trades
    assert t["status"] == TradeStatus.Open and t["exit_reason"] == ExitReason.NoExit
    assert (t["entry_index"], t["exit_index"], t["exit_ts"]) == (3, -1, 5)
    assert t["pnl"] == pytest.approx((120.5 - 113) * 2 - 113 * 2 * 0.001)
    assert r.equity[-1] == pytest.approx(10_000 + t["pnl"])
    assert r.metrics["unrealized_pnl"] == pytest.approx(t["pnl"])


# --------------------------------------------------------------------------- bad input


@pytest.fixture
def no_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    """Validation must fail before any kernel work starts."""

    def refuse(*args: object) -> None:
        raise AssertionError("the kernel ran on invalid input")

    monkeypatch.setattr(ticks, "simulate_ticks_nb", refuse)


GOOD: dict[str, Any] = {"point_key": "15_7_5_2", "exit_strategy_key": "15_15"}


@pytest.mark.usefixtures("no_kernel")
@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"point_key": "15_x"}, r"point_key .*'15_x'"),
        ({"point_key": "15_7_5"}, r"point_key .*'15_7_5'"),
        ({"point_key": "15_7_5_2_1"}, r"point_key .*'15_7_5_2_1'"),
        ({"point_key": ""}, r"point_key .*''"),
        ({"point_key": "15_-7_5_2"}, r"point_key B must not be negative, got -7 in '15_-7_5_2'"),
        ({"point_key": "0_7_5_2"}, r"point_key A must be > 0, got 0"),
        ({"point_key": "15_7_nan_2"}, r"point_key .*'15_7_nan_2'"),
        ({"point_key": 15}, r"point_key must be a string.*15"),
        ({"exit_strategy_key": "15"}, r"exit_strategy_key .*'15'"),
        ({"exit_strategy_key": "15_-15"}, r"exit_strategy_key SL must not be negative, got -15"),
        ({"exit_strategy_key": "0_15"}, r"exit_strategy_key TP must be > 0"),
        ({"point_size": -1.0}, r"point_size must be finite and > 0, got -1.0"),
        ({"direction": "sideways"}, r"direction .*'sideways'"),
        ({"fees": 1.5}, r"fees .* < 1, got 1.5"),
        ({"fees": -0.1}, r"fees must be finite and >= 0, got -0.1"),
        ({"slippage": math.inf}, r"slippage must be finite"),
        ({"units": 0}, r"units must be finite and > 0, got 0"),
        ({"initial_capital": -5}, r"initial_capital must be finite and > 0, got -5"),
    ],
)
def test_bad_parameters(overrides: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        simulate_ticks(np.arange(3, dtype=np.int64), np.ones(3), **{**GOOD, **overrides})


@pytest.mark.usefixtures("no_kernel")
@pytest.mark.parametrize(
    ("ts", "price", "match"),
    [
        (np.arange(3), np.ones(4), r"ts and price must have the same length, got 3 and 4"),
        (
            np.array([1, 3, 2]),
            np.ones(3),
            r"ts must be sorted ascending, got ts\[2\]=2 < ts\[1\]=3",
        ),
        (np.arange(3.0), np.ones(3), r"ts must be int64 nanoseconds, got dtype float64"),
        (np.arange(3), np.array([1.0, -2.0, 3.0]), r"price .* > 0, got price\[1\]=-2.0"),
        (np.arange(3), np.array([1.0, np.nan, 3.0]), r"price must be finite .*price\[1\]=nan"),
        (np.arange(4).reshape(2, 2), np.ones(4), r"ts must be one-dimensional, got shape \(2, 2\)"),
    ],
)
def test_bad_arrays(ts: np.ndarray, price: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        simulate_ticks(ts, price, **GOOD)


def test_chunk_going_back_in_time_is_refused() -> None:
    sim = TickSimulator(**GOOD)
    sim.feed(np.array([10, 20], np.int64), np.array([1.0, 2.0]))
    before = sim.state
    with pytest.raises(
        ValueError, match=r"ts must not go back in time across chunks, got ts\[0\]=19 after 20"
    ):
        sim.feed(np.array([19], np.int64), np.array([1.0]))
    assert sim.state == before


def test_datetime64_ts_is_accepted() -> None:
    stamps = np.array(["2025-01-02T09:30:00", "2025-01-02T09:30:01"], dtype="datetime64[s]")
    r = simulate_ticks(stamps, np.array([1.0, 2.0]), **GOOD)
    assert r.equity.size == 2


# --------------------------------------------------------------------------- registry runner


def bars(price: np.ndarray) -> dict[str, np.ndarray]:
    n = price.size
    ts = 1_735_000_000_000_000_000 + np.arange(n, dtype=np.int64) * 60_000_000_000
    return {"ts": ts, "open": price, "high": price + 1, "low": price - 1, "close": price,
            "volume": np.ones(n)}  # fmt: skip


def test_run_max_points_is_the_tick_rules_on_closes() -> None:
    data = bars(grid_walk(11, 3_000, 0.25, 4))
    params = {"point_key": "4_2_1_1", "exit_strategy_key": "3_3", "units": 2.0}
    got = run_max_points(data, params, fees=0.001, slippage=0.25, direction="short",
                         initial_capital=5_000.0, fill="close")  # fmt: skip
    want = simulate_ticks(data["ts"], data["close"], point_key="4_2_1_1", exit_strategy_key="3_3",
                          units=2.0, fees=0.001, slippage=0.25, direction="short",
                          initial_capital=5_000.0)  # fmt: skip
    assert got.trades.size > 0
    np.testing.assert_array_equal(got.trades, want.trades)
    np.testing.assert_array_equal(got.equity, want.equity)


def test_run_max_points_defaults_come_from_the_schema() -> None:
    data = bars(grid_walk(5, 2_000, 0.25, 6))
    defaults = {p["name"]: p["default"] for p in MAX_POINTS_PARAMS}
    parse_point_key(defaults["point_key"])
    parse_exit_strategy_key(defaults["exit_strategy_key"])
    np.testing.assert_array_equal(
        run_max_points(data, {}).trades, run_max_points(data, defaults).trades
    )


@pytest.mark.usefixtures("no_kernel")
@pytest.mark.parametrize(
    ("params", "options", "match"),
    [
        ({"point_kee": "1_1_1_1"}, {}, r"unknown max_points parameter 'point_kee'"),
        ({}, {"sizing": "cash"}, r"unknown max_points option 'sizing'"),
        ({}, {"fill": "next_open"}, r"fill must be 'close' .*'next_open'"),
        ({"point_key": "15_x"}, {}, r"point_key .*'15_x'"),
    ],
)
def test_run_max_points_refuses(
    params: dict[str, Any], options: dict[str, Any], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        run_max_points(bars(np.ones(5)), params, **options)


@pytest.mark.usefixtures("no_kernel")
def test_run_max_points_refuses_bad_bars() -> None:
    data = bars(np.ones(5))
    data["ts"] = data["ts"].copy()
    data["ts"][3] = data["ts"][2]
    with pytest.raises(ValueError, match=r"strictly increasing for bars, got ts\[3\]="):
        run_max_points(data, {})
    short = bars(np.ones(5))
    short["volume"] = np.ones(4)
    with pytest.raises(ValueError, match=r"'volume' of 4 and 'ts' of 5"):
        run_max_points(short, {})
