"""The floor kernel against an independent plain-Python reference, bar by bar.

The reference re-implements docs/engine-strategies.md ("floor") with lists and a recomputed
SMA; the kernel keeps a ring buffer and its own state machine. Agreement is checked on every
trade field, every event (layer_number and retracement_count included) and every bar's equity.
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

from engine import floor
from engine.floor import FLOOR_PARAMS, FloorSimulator, FloorState, run_floor
from engine.records import Direction, EventKind, ExitReason, TradeStatus, event_dt, trade_dt

# --------------------------------------------------------------------------- reference


@dataclass
class Layer:
    price: float
    units: float
    fee: float
    index: int
    ts: int


@dataclass
class RefRun:
    trades: list[tuple[Any, ...]] = field(default_factory=list)
    retracements: list[int] = field(default_factory=list)
    events: list[tuple[Any, ...]] = field(default_factory=list)
    equity: list[float] = field(default_factory=list)
    cash: list[float] = field(default_factory=list)
    position: list[float] = field(default_factory=list)


def plain_sum(values: Any) -> float:
    """Left-to-right float addition: Python 3.12's sum() compensates, which is not the
    definition's order and could flip a tie by one ulp."""
    total = 0.0
    for v in values:
        total += v
    return total


def reference_floor(
    ts: list[int], open_: list[float], close: list[float], *, sma_window: int = 20,
    unit: str = "percent", retracement: float = 1.0, max_layers: int = 4,
    take_profit: float = 1.0, stop_loss: float = 0.0, units: float = 1.0, scale: float = 1.0,
    layer_units: str = "", fees: float = 0.0, slippage: float = 0.0,
    initial_capital: float = 10_000.0, direction: str = "long", fill: str = "close",
) -> RefRun:  # fmt: skip
    percent = unit == "percent"
    div = 100.0 if percent else 1.0
    r_dist, tp_dist, sl_dist = retracement / div, take_profit / div, stop_loss / div
    sizes = (
        [float(u) for u in layer_units.split("_")][:max_layers]
        if layer_units
        else [units * scale**k for k in range(max_layers)]
    )

    def level(base: float, dist: float, up: bool) -> float:
        if percent:
            return base * (1.0 + dist) if up else base * (1.0 - dist)
        return base + dist if up else base - dist

    out = RefRun()
    cash, pos = initial_capital, 0.0
    basket: list[Layer] = []
    side = "long"
    retr = 0
    ref = math.nan
    pending: tuple[str, str, int] | None = None
    prev_close: float | None = None
    prev_sma: float | None = None

    def code(s: str) -> int:
        return Direction.Long if s == "long" else Direction.Short

    def execute(action: str, act_side: str, reason: int, base: float, i: int) -> None:
        nonlocal cash, pos, side, retr, ref
        buy = (act_side == "long") != (action == "exit")
        px = base + slippage if buy else base - slippage
        if action == "exit":
            total = 0.0
            for k, lay in enumerate(basket):
                fee = px * lay.units * fees
                if side == "long":
                    cash += px * lay.units - fee
                    pnl = (px - lay.price) * lay.units - lay.fee - fee
                else:
                    cash -= px * lay.units + fee
                    pnl = (lay.price - px) * lay.units - lay.fee - fee
                total += lay.units
                out.trades.append((len(out.trades), lay.index, i, lay.ts, ts[i], lay.price, px,
                                   lay.units, code(side), TradeStatus.Closed, reason, k + 1, pnl,
                                   pnl / (lay.price * lay.units), lay.fee + fee))  # fmt: skip
                out.retracements.append(retr)
            out.events.append((i, ts[i], EventKind.Exit, code(side), px, total, len(basket), retr))
            basket.clear()
            pos = 0.0
            return
        if action == "open":
            side, retr = act_side, 0
        u = sizes[len(basket)]
        fee = px * u * fees
        if side == "long":
            cash -= px * u + fee
            pos += u
        else:
            cash += px * u - fee
            pos -= u
        basket.append(Layer(px, u, fee, i, ts[i]))
        ref = px
        kind = EventKind.Entry if len(basket) == 1 else EventKind.ScaleIn
        out.events.append((i, ts[i], kind, code(side), px, u, len(basket), retr))

    for i, c in enumerate(close):
        if pending is not None:
            execute(*pending, open_[i], i)
            pending = None
        sma = (
            plain_sum(close[i - sma_window + 1 : i + 1]) / sma_window
            if i + 1 >= sma_window
            else None
        )
        decision: tuple[str, str, int] | None = None
        if basket:
            long = side == "long"
            avg = plain_sum(lay.units * lay.price for lay in basket) / plain_sum(
                lay.units for lay in basket
            )
            last = basket[-1].price
            reason = ExitReason.NoExit
            if sl_dist > 0:
                stop = level(last, sl_dist, up=not long)
                if (c <= stop) if long else (c >= stop):
                    reason = ExitReason.StopLoss
            if reason == ExitReason.NoExit:
                target = level(avg, tp_dist, up=long)
                if (c >= target) if long else (c <= target):
                    reason = ExitReason.TakeProfit
            if reason != ExitReason.NoExit:
                decision = ("exit", side, reason)
            elif (
                (c <= level(ref, r_dist, up=False)) if long else (c >= level(ref, r_dist, up=True))
            ):
                retr += 1
                if len(basket) < max_layers:
                    decision = ("add", side, ExitReason.NoExit)
                    out.events.append((i, ts[i], EventKind.Signal, code(side), c,
                                       sizes[len(basket)], len(basket) + 1, retr))  # fmt: skip
                else:
                    ref = c
        elif sma is not None and prev_sma is not None and prev_close is not None:
            if direction != "short" and prev_close <= prev_sma and c > sma:
                decision = ("open", "long", ExitReason.NoExit)
            elif direction != "long" and prev_close >= prev_sma and c < sma:
                decision = ("open", "short", ExitReason.NoExit)
            if decision is not None:
                retr = 0
                out.events.append(
                    (i, ts[i], EventKind.Signal, code(decision[1]), c, sizes[0], 1, 0)
                )
        prev_close, prev_sma = c, sma
        if decision is not None:
            if fill == "next_open":
                pending = decision
            else:
                execute(*decision, c, i)
        out.equity.append(cash + pos * c)
        out.cash.append(cash)
        out.position.append(pos)
    for k, lay in enumerate(basket):
        last_close = close[-1]
        move = (last_close - lay.price) if side == "long" else (lay.price - last_close)
        pnl = move * lay.units - lay.fee
        out.trades.append((len(out.trades), lay.index, -1, lay.ts, ts[-1], lay.price, last_close,
                           lay.units, code(side), TradeStatus.Open, ExitReason.NoExit, k + 1, pnl,
                           pnl / (lay.price * lay.units), lay.fee))  # fmt: skip
        out.retracements.append(retr)
    return out


TRADE_FIELDS = ("id", "entry_index", "exit_index", "entry_ts", "exit_ts", "entry_price",
                "exit_price", "units", "direction", "status", "exit_reason", "layer", "pnl",
                "return", "fees")  # fmt: skip
EVENT_FIELDS = ("bar_index", "ts", "kind", "direction", "price", "units", "layer",
                "retracement_count")  # fmt: skip


def assert_matches(got: Any, ref: RefRun) -> None:
    assert got.trades.shape[0] == len(ref.trades)
    for rec, want in zip(got.trades, ref.trades, strict=True):
        for name, value in zip(TRADE_FIELDS, want, strict=True):
            if isinstance(value, float):
                assert rec[name] == pytest.approx(value, rel=1e-12, abs=1e-9), name
            else:
                assert rec[name] == value, name
    assert got.extras["retracement_count"].tolist() == ref.retracements
    assert len(got.events) == len(ref.events)
    for ev, want in zip(got.events, ref.events, strict=True):
        assert tuple(ev[f] for f in EVENT_FIELDS) == pytest.approx(want, rel=1e-12, abs=1e-9)
    np.testing.assert_allclose(got.equity, ref.equity, rtol=0, atol=1e-9)
    np.testing.assert_allclose(got.cash, ref.cash, rtol=0, atol=1e-9)
    np.testing.assert_allclose(got.position, ref.position, rtol=0, atol=1e-12)


# --------------------------------------------------------------------------- data


def make_bars(seed: int, n: int, grid: bool) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    if grid:  # whole points: levels are hit exactly, so ties are exercised
        close = 100.0 + np.cumsum(rng.integers(-2, 3, n)).astype(float)
        close = np.maximum(close, 1.0)
        open_ = np.maximum(close + rng.integers(-1, 2, n), 1.0)
    else:
        close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
        open_ = close * np.exp(rng.normal(0.0, 0.004, n))
    ts = 1_735_000_000_000_000_000 + np.cumsum(rng.integers(1, 4, n)) * 60_000_000_000
    return {"ts": ts.astype(np.int64), "open": open_, "high": np.maximum(open_, close),
            "low": np.minimum(open_, close), "close": close, "volume": np.ones(n)}  # fmt: skip


@st.composite
def scenarios(
    draw: Callable[[Any], Any],
) -> tuple[dict[str, np.ndarray], dict[str, Any], dict[str, Any]]:
    grid = draw(st.booleans())
    data = make_bars(draw(st.integers(0, 2**32 - 1)), draw(st.integers(0, 300)), grid)
    max_layers = draw(st.integers(1, 5))
    points = grid and draw(st.booleans())
    params: dict[str, Any] = {
        "sma_window": draw(st.integers(2, 8)),
        "unit": "points" if points else "percent",
        "retracement": draw(st.sampled_from([1.0, 2.0, 3.0] if points else [0.5, 1.0, 2.5])),
        "take_profit": draw(st.sampled_from([1.0, 2.0, 4.0] if points else [0.5, 1.5, 3.0])),
        "stop_loss": draw(st.sampled_from([0.0, 2.0, 5.0] if points else [0.0, 1.0, 4.0])),
        "max_layers": max_layers,
    }
    sizing = draw(st.sampled_from(["default", "scale", "explicit"]))
    if sizing == "scale":
        params["units"] = draw(st.sampled_from([0.5, 2.0]))
        params["scale"] = draw(st.sampled_from([1.5, 2.0]))
    elif sizing == "explicit":
        sizes = draw(
            st.lists(st.sampled_from([0.3, 1.0, 3.0]), min_size=max_layers, max_size=max_layers + 2)
        )
        params["layer_units"] = "_".join(f"{u:g}" for u in sizes)
    options = {
        "fees": draw(st.sampled_from([0.0, 0.001])),
        "slippage": draw(st.sampled_from([0.0, 0.05])),
        "initial_capital": draw(st.sampled_from([10_000.0, 250.0])),
        "direction": draw(st.sampled_from(["long", "short", "both"])),
        "fill": draw(st.sampled_from(["close", "next_open"])),
    }
    return data, params, options


FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def run_reference(
    data: dict[str, np.ndarray], params: dict[str, Any], options: dict[str, Any]
) -> RefRun:
    return reference_floor(
        data["ts"].tolist(), data["open"].tolist(), data["close"].tolist(), **params, **options
    )


# --------------------------------------------------------------------------- oracle


@FAST
@given(scenarios())
def test_kernel_equals_reference(
    sc: tuple[dict[str, np.ndarray], dict[str, Any], dict[str, Any]],
) -> None:
    data, params, options = sc
    assert_matches(run_floor(data, params, **options), run_reference(data, params, options))


@pytest.mark.parametrize("fill", ["close", "next_open"])
def test_reference_agreement_covers_every_rule(fill: str) -> None:
    """Guards the oracle test against passing on data that never exercises a rule."""
    data = make_bars(1, 6_000, grid=False)
    params = {"sma_window": 5, "retracement": 1.0, "max_layers": 3, "take_profit": 1.0,
              "stop_loss": 2.5, "scale": 2.0}  # fmt: skip
    got = run_floor(data, params, direction="both", fill=fill, fees=0.001, slippage=0.01)
    assert_matches(got, run_reference(data, params, {"direction": "both", "fill": fill,
                                                     "fees": 0.001, "slippage": 0.01}))  # fmt: skip
    closed = got.trades[got.trades["status"] == TradeStatus.Closed]
    assert set(closed["direction"]) == {Direction.Long, Direction.Short}
    assert set(closed["exit_reason"]) == {ExitReason.TakeProfit, ExitReason.StopLoss}
    assert set(closed["layer"]) == {1, 2, 3}
    # retracements beyond the last layer were counted
    assert np.any(got.extras["retracement_count"] > got.trades["layer"].max() - 1)
    assert set(got.events["kind"]) == {EventKind.Signal, EventKind.Entry, EventKind.ScaleIn,
                                       EventKind.Exit}  # fmt: skip


# --------------------------------------------------------------------------- chunks


@FAST
@given(scenarios(), st.lists(st.integers(0, 300), max_size=5))
def test_chunked_equals_one_pass(
    sc: tuple[dict[str, np.ndarray], dict[str, Any], dict[str, Any]], cuts: list[int]
) -> None:
    data, params, options = sc
    one = run_floor(data, params, **options)
    n = data["close"].size
    bounds = [0, *sorted(min(c, n) for c in cuts), n]
    sim = FloorSimulator(params, **options)
    chunks = []
    for a, b in itertools.pairwise(bounds):
        # a checkpoint as JSON would hand it back: arrays as lists
        saved = {k: v.tolist() if isinstance(v, np.ndarray) else v
                 for k, v in sim.state._asdict().items()}  # fmt: skip
        sim = FloorSimulator(params, state=FloorState(**saved), **options)
        chunks.append(sim.feed(data["ts"][a:b], data["open"][a:b], data["close"][a:b]))
    open_trades, open_retr = sim.open_trades()
    np.testing.assert_array_equal(
        np.concatenate([*(c.trades for c in chunks), open_trades]), one.trades
    )
    np.testing.assert_array_equal(
        np.concatenate([*(c.retracements for c in chunks), open_retr]),
        one.extras["retracement_count"],
    )
    np.testing.assert_array_equal(np.concatenate([c.events for c in chunks]), one.events)
    for name in ("equity", "cash", "position"):
        np.testing.assert_array_equal(
            np.concatenate([getattr(c, name) for c in chunks]), getattr(one, name)
        )


def test_run_floor_internal_chunks_cross_boundaries(monkeypatch: pytest.MonkeyPatch) -> None:
    data = make_bars(4, 3_000, grid=False)
    params = {"sma_window": 4, "max_layers": 3, "stop_loss": 3.0}
    whole = run_floor(data, params, fill="next_open", direction="both")
    monkeypatch.setattr(floor, "_CHUNK", 5)
    split = run_floor(data, params, fill="next_open", direction="both")
    assert whole.trades.size > 20
    np.testing.assert_array_equal(split.trades, whole.trades)
    np.testing.assert_array_equal(split.events, whole.events)
    np.testing.assert_array_equal(split.equity, whole.equity)


# --------------------------------------------------------------------------- worked example

# docs/engine-strategies.md, "floor": the worked example
EXAMPLE_CLOSE = [10, 10, 10, 11, 10, 9, 7, 5, 8, 11.5]
EXAMPLE_PARAMS = {"sma_window": 3, "unit": "points", "retracement": 2, "max_layers": 3,
                  "take_profit": 3, "stop_loss": 0, "units": 1, "scale": 2}  # fmt: skip


def example_bars(close: list[float]) -> dict[str, np.ndarray]:
    c = np.array(close, float)
    return {"ts": np.arange(c.size, dtype=np.int64), "open": c, "high": c, "low": c, "close": c,
            "volume": np.ones(c.size)}  # fmt: skip


def test_worked_example() -> None:
    r = run_floor(example_bars(EXAMPLE_CLOSE), EXAMPLE_PARAMS)
    t = r.trades
    assert t["layer"].tolist() == [1, 2, 3]
    assert t["entry_index"].tolist() == [3, 5, 6]
    assert t["entry_price"].tolist() == [11.0, 9.0, 7.0]
    assert t["units"].tolist() == [1.0, 2.0, 4.0]
    assert set(t["exit_index"]) == {9} and set(t["exit_reason"]) == {ExitReason.TakeProfit}
    assert t["pnl"].tolist() == [0.5, 5.0, 18.0]
    assert r.extras["retracement_count"].tolist() == [3, 3, 3]
    assert [(e["bar_index"], e["kind"], e["layer"], e["retracement_count"]) for e in r.events] == [
        (3, EventKind.Signal, 1, 0), (3, EventKind.Entry, 1, 0),
        (5, EventKind.Signal, 2, 1), (5, EventKind.ScaleIn, 2, 1),
        (6, EventKind.Signal, 3, 2), (6, EventKind.ScaleIn, 3, 2),
        (9, EventKind.Exit, 3, 3),
    ]  # fmt: skip
    assert r.equity[-1] == 10_023.5


def test_worked_example_next_open_fills_a_bar_later() -> None:
    bars = example_bars(EXAMPLE_CLOSE)
    bars["open"] = bars["close"] + 0.5
    r = run_floor(bars, EXAMPLE_PARAMS, fill="next_open")
    assert r.trades["entry_index"].tolist()[:1] == [4]
    assert r.trades["entry_price"][0] == 10.5  # the open of the bar after the cross


# --------------------------------------------------------------------------- edges


def test_empty_input() -> None:
    r = run_floor(example_bars([]), {})
    assert r.trades.dtype == trade_dt and r.trades.size == 0
    assert r.events.dtype == event_dt and r.events.size == 0
    assert r.equity.size == 0 and r.extras["retracement_count"].size == 0


def test_single_bar_and_short_data_never_trade() -> None:
    assert run_floor(example_bars([5.0]), {}).equity.tolist() == [10_000.0]
    r = run_floor(example_bars(EXAMPLE_CLOSE), {**EXAMPLE_PARAMS, "sma_window": 11})
    assert r.trades.size == 0 and np.all(r.equity == 10_000.0)


def test_open_basket_at_end_is_marked_to_last_close() -> None:
    r = run_floor(example_bars(EXAMPLE_CLOSE[:8]), EXAMPLE_PARAMS, fees=0.01)
    t = r.trades
    assert set(t["status"]) == {TradeStatus.Open} and set(t["exit_index"]) == {-1}
    assert set(t["exit_price"]) == {5.0} and set(t["exit_ts"]) == {7}
    assert t["pnl"].tolist() == pytest.approx(
        [(5 - 11) - 0.11, (5 - 9) * 2 - 0.18, (5 - 7) * 4 - 0.28]
    )
    assert r.extras["retracement_count"].tolist() == [3, 3, 3]
    assert r.equity[-1] == pytest.approx(10_000 + t["pnl"].sum())
    assert r.metrics["unrealized_pnl"] == pytest.approx(t["pnl"].sum())


def test_order_pending_at_the_end_is_not_filled() -> None:
    r = run_floor(example_bars(EXAMPLE_CLOSE[:4]), EXAMPLE_PARAMS, fill="next_open")
    assert r.trades.size == 0 and [e["kind"] for e in r.events] == [EventKind.Signal]
    assert r.extras["state"]["pending"] == floor.Pending.Open


# --------------------------------------------------------------------------- bad input


@pytest.fixture
def no_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object) -> None:
        raise AssertionError("the kernel ran on invalid input")

    monkeypatch.setattr(floor, "simulate_floor_nb", refuse)


@pytest.mark.usefixtures("no_kernel")
@pytest.mark.parametrize(
    ("params", "options", "match"),
    [
        ({"sma_windw": 3}, {}, r"unknown floor parameter 'sma_windw'"),
        ({}, {"sizing": "cash"}, r"unknown floor option 'sizing'"),
        ({"sma_window": 1}, {}, r"sma_window must be >= 2, got 1"),
        ({"sma_window": 2.5}, {}, r"sma_window must be an integer, got 2.5"),
        ({"retracement": -1.0}, {}, r"retracement must be > 0 and < 100, got -1.0"),
        ({"retracement": 100}, {}, r"retracement must be > 0 and < 100, got 100"),
        ({"unit": "points", "take_profit": 0}, {}, r"take_profit must be > 0, got 0"),
        ({"stop_loss": -2}, {}, r"stop_loss must be >= 0 and < 100, got -2"),
        ({"unit": "pips"}, {}, r"unit must be one of .*'pips'"),
        ({"max_layers": 0}, {}, r"max_layers must be between 1 and 100, got 0"),
        ({"units": math.nan}, {}, r"units must be > 0, got nan"),
        ({"max_layers": 2, "layer_units": "1"}, {}, r"at least max_layers=2 sizes, got 1"),
        ({"max_layers": 2, "layer_units": "1_-1"}, {}, r"layer_units item must be > 0, got -1.0"),
        ({"max_layers": 2, "layer_units": "1_x"}, {}, r"layer_units must be '_'-separated"),
        ({"max_layers": 2, "layer_units": (1, 0)}, {}, r"layer_units item must be > 0, got 0"),
        ({"max_layers": 2, "layer_units": 3}, {}, r"layer_units must be a string .*, got 3"),
        ({"scale": 1e300, "max_layers": 3}, {}, r"units \* scale\*\*k overflows"),
        ({}, {"direction": "up"}, r"direction must be one of .*'up'"),
        ({}, {"fill": "open"}, r"fill must be one of .*'open'"),
        ({}, {"fees": 2.0}, r"fees must be >= 0 and < 1, got 2.0"),
        ({}, {"initial_capital": 0}, r"initial_capital must be > 0, got 0"),
    ],
)
def test_bad_parameters(params: dict[str, Any], options: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        run_floor(make_bars(0, 30, grid=True), params, **options)


@pytest.mark.usefixtures("no_kernel")
def test_bad_bars() -> None:
    data = make_bars(0, 30, grid=True)
    cases: list[tuple[str, Any, str]] = [
        ("ts", data["ts"][::-1].copy(), r"ts must be strictly increasing, got ts\[1\]="),
        ("ts", np.repeat(data["ts"][:15], 2), r"ts must be strictly increasing"),
        ("ts", data["ts"].astype(float), r"ts must be int64 nanoseconds, got dtype float64"),
        ("close", -data["close"], r"close must be finite and > 0, got close\[0\]=-"),
        ("open", np.where(np.arange(30) == 4, np.nan, data["open"]), r"open .*open\[4\]=nan"),
        ("volume", np.ones(29), r"'volume' of 29 and 'ts' of 30"),
    ]
    for key, value, match in cases:
        with pytest.raises(ValueError, match=match):
            run_floor({**data, key: value}, {})
    with pytest.raises(ValueError, match=r"ohlcv is missing 'open'"):
        run_floor({k: v for k, v in data.items() if k != "open"}, {})


def test_chunks_must_move_forward_and_states_must_fit() -> None:
    data = make_bars(0, 10, grid=True)
    sim = FloorSimulator({"sma_window": 3})
    sim.feed(data["ts"][:5], data["open"][:5], data["close"][:5])
    with pytest.raises(ValueError, match=r"ts must move forward across chunks"):
        sim.feed(data["ts"][4:], data["open"][4:], data["close"][4:])
    with pytest.raises(ValueError, match=r"state.closes must hold 5 values, got shape \(3,\)"):
        FloorSimulator({"sma_window": 5}, state=sim.state)


def test_schema_defaults_run() -> None:
    defaults = {p["name"]: p["default"] for p in FLOOR_PARAMS}
    data = make_bars(2, 500, grid=False)
    np.testing.assert_array_equal(run_floor(data, {}).trades, run_floor(data, defaults).trades)
