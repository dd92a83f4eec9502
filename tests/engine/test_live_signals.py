"""Live strategies against their batch signals, bit for bit, and across a snapshot's JSON trip."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.indicators import bollinger_1d_nb, sma_1d_nb
from engine.live import LIVE_STRATEGIES, LiveSignals
from engine.strategies import BAR_STRATEGIES

MINUTE = 60_000_000_000
FAST = settings(derandomize=True, deadline=None)

PARAMS: dict[str, list[dict[str, Any]]] = {
    "sma_crossover": [
        {"fast": 1, "slow": 2},
        {"fast": 2, "slow": 5},
        {"fast": 10, "slow": 50},
        {"fast": 20, "slow": 21},
        {"fast": 7, "slow": 300},
    ],
    "ema_crossover": [
        {"fast": 1, "slow": 2},
        {"fast": 3, "slow": 7},
        {"fast": 12, "slow": 26},
        {"fast": 50, "slow": 51},
    ],
    "rsi_reversion": [
        {"window": 2},
        {"window": 14, "lower": 30.0, "upper": 70.0},
        {"window": 5, "lower": 45, "upper": 55},
        {"window": 3, "lower": 10.0, "upper": 90.0},
        {"window": 30, "lower": 49.0, "upper": 51.0},
    ],
    "bollinger_breakout": [
        {"window": 2, "nstd": 0.0},
        {"window": 5, "nstd": 1.0},
        {"window": 20},
        {"window": 50, "nstd": 3.5},
    ],
}
CASES = [(name, params) for name, sets in PARAMS.items() for params in sets]


def grid_bars(n: int, seed: int) -> dict[str, np.ndarray]:
    """A random walk on a cent grid with many unchanged closes and flat stretches, so averages
    tie, bands collapse onto the close and the ``<=`` / ``>=`` sides of each rule are hit."""
    rng = np.random.default_rng(seed)
    steps = rng.choice(np.array([-2, -1, 0, 0, 0, 1, 2]), size=n).astype(np.float64)
    for start in rng.integers(0, max(1, n - 100), size=n // 250):
        steps[start : start + rng.integers(20, 100)] = 0.0
    close = np.round(100.0 + 0.01 * np.cumsum(steps), 2)
    return _bars(close)


def walk_bars(n: int, seed: int) -> dict[str, np.ndarray]:
    """A geometric random walk: no ties, every value distinct."""
    rng = np.random.default_rng(seed)
    return _bars(100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n))))


def nan_bars(n: int, seed: int) -> dict[str, np.ndarray]:
    """Leading NaNs and a few inside: the batch indicators' NaN rules must hold live too."""
    bars = grid_bars(n, seed)
    close = bars["close"]
    close[:7] = np.nan
    close[[n // 3, n // 3 + 1, n // 2]] = np.nan
    return bars


def _bars(close: np.ndarray) -> dict[str, np.ndarray]:
    n = close.shape[0]
    ts = 1_700_000_000_000_000_000 + np.arange(n, dtype=np.int64) * MINUTE
    return {"ts": ts, "open": close, "high": close + 0.05, "low": close - 0.05, "close": close}


def batch(name: str, params: dict[str, Any], bars: dict[str, np.ndarray]) -> np.ndarray:
    out: np.ndarray = BAR_STRATEGIES[name].signals(bars, params)
    return out


def feed(live: LiveSignals, bars: dict[str, np.ndarray], start: int = 0) -> np.ndarray:
    flags = [
        live.update(
            int(bars["ts"][i]), *(float(bars[k][i]) for k in ("open", "high", "low", "close"))
        )
        for i in range(start, bars["ts"].shape[0])
    ]
    return np.array(flags, dtype=np.uint8)


def json_trip(state: dict[str, Any]) -> Any:
    return orjson.loads(orjson.dumps(state))


# ---------------------------------------------------------------------------------------------
# Equal to the batch signals


@pytest.mark.parametrize(("name", "params"), CASES)
@pytest.mark.parametrize("make", [grid_bars, walk_bars, nan_bars])
@pytest.mark.parametrize("seed", [0, 1])
def test_live_flags_equal_the_batch_signals(
    name: str, params: dict[str, Any], make: Any, seed: int
) -> None:
    bars = make(3000, seed)
    live = LiveSignals.create(name, params)
    want = batch(name, live.params, bars)
    assert want.any()
    np.testing.assert_array_equal(feed(live, bars), want)
    assert live.bars_seen == 3000


def test_the_grid_bars_hit_the_ties() -> None:
    """The ``<=`` / ``>=`` sides of the rules are exercised, not only strict crossings."""
    close = grid_bars(3000, 0)["close"]
    assert (sma_1d_nb(close, 1) == sma_1d_nb(close, 2)).sum() > 100
    middle, upper, lower = bollinger_1d_nb(close, 5, 1.0)
    assert ((close == upper) & (close == middle) & (close == lower)).sum() > 100


@FAST
@given(
    closes=st.lists(st.integers(1, 6), min_size=0, max_size=120),
    case=st.sampled_from(CASES),
)
def test_hypothesis_small_integer_prices(
    closes: list[int], case: tuple[str, dict[str, Any]]
) -> None:
    name, params = case
    bars = _bars(np.array(closes, dtype=np.float64))
    live = LiveSignals.create(name, params)
    np.testing.assert_array_equal(feed(live, bars), batch(name, live.params, bars))


def test_defaults_are_the_batch_defaults() -> None:
    for name in LIVE_STRATEGIES:
        live = LiveSignals.create(name, None)
        assert live.name == name
        assert live.bars_seen == 0
        assert live.params == {p["name"]: p["default"] for p in BAR_STRATEGIES[name].params}


def test_live_strategies_are_the_four_bar_strategies() -> None:
    assert LIVE_STRATEGIES == {
        "sma_crossover", "ema_crossover", "rsi_reversion", "bollinger_breakout",
    }  # fmt: skip
    assert LIVE_STRATEGIES <= set(BAR_STRATEGIES)


# ---------------------------------------------------------------------------------------------
# Snapshots


def cut_points(name: str, params: dict[str, Any], n: int) -> list[int]:
    window = max(int(v) for k, v in params.items() if k in ("fast", "slow", "window"))
    return sorted({0, 1, 2, window - 1, window, window + 1, 2 * window + 3, 1000, n // 2, n - 1})


@pytest.mark.parametrize(("name", "params"), CASES)
@pytest.mark.parametrize("make", [grid_bars, nan_bars])
def test_a_snapshot_through_json_continues_exactly(
    name: str, params: dict[str, Any], make: Any
) -> None:
    n = 1500
    bars = make(n, 3)
    want = batch(name, LiveSignals.create(name, params).params, bars)
    for cut in cut_points(name, params, n):
        live = LiveSignals.create(name, params)
        np.testing.assert_array_equal(feed(live, _head(bars, cut)), want[:cut])
        state = live.state()
        text = orjson.dumps(state)
        assert orjson.loads(text) == state  # no NaN turned into null on the way
        for restored in (
            LiveSignals.restore(name, params, orjson.loads(text)),
            LiveSignals.restore(name, params, state),
            live,  # the snapshot left the original alone
        ):
            assert restored.bars_seen == cut
            assert restored.params == live.params
            np.testing.assert_array_equal(feed(restored, bars, cut), want[cut:], err_msg=str(cut))
        # Restoring from the same snapshot twice gives the same strategy: nothing was shared.
        again = LiveSignals.restore(name, params, orjson.loads(text))
        np.testing.assert_array_equal(feed(again, bars, cut), want[cut:])


def _head(bars: dict[str, np.ndarray], stop: int) -> dict[str, np.ndarray]:
    return {k: v[:stop] for k, v in bars.items()}


def test_a_snapshot_names_its_values_and_spells_out_nan() -> None:
    live = LiveSignals.create("sma_crossover", {"fast": 2, "slow": 3})
    live.update(0, 1.0, 1.0, 1.0, 1.5)
    state = live.state()
    assert state["strategy"] == "sma_crossover"
    assert state["params"] == {"fast": 2, "slow": 3}
    assert state["bars_seen"] == 1
    fast = state["values"]["fast"]
    assert fast == {"pos": 1, "seen": 1, "nan_count": 0, "total": 1.5, "buf": [1.5, "nan"]}
    assert state["values"]["prev"] == {"fast": "nan", "slow": "nan"}
    assert "window" not in fast  # the parameters set it


def test_a_snapshot_keeps_the_sign_of_zero() -> None:
    """Spelled out, so that a JSONB column (numeric: no -0) keeps it as well."""
    state = _snapshot()
    state["values"]["prev"]["fast"] = "-0.0"
    state["values"]["prev"]["slow"] = 0.0
    restored = LiveSignals.restore("sma_crossover", {"fast": 2, "slow": 3}, state)
    assert restored.state()["values"]["prev"] == {"fast": "-0.0", "slow": 0.0}


def test_a_snapshot_keeps_infinities() -> None:
    live = LiveSignals.create("bollinger_breakout", {"window": 3})
    for close in (1.0, np.inf, 2.0):
        live.update(0, close, close, close, close)
    state = live.state()
    assert "inf" in state["values"]["bands"]["buf"]
    restored = LiveSignals.restore("bollinger_breakout", {"window": 3}, json_trip(state))
    assert restored.state() == state


# ---------------------------------------------------------------------------------------------
# Refusals


@pytest.mark.parametrize(
    ("name", "params", "match"),
    [
        ("macd_cross", None, r"unknown strategy 'macd_cross'; live strategies: \['bollinger"),
        ("threshold", None, r"strategy 'threshold' cannot run live: it reads a prediction column"),
        ("sma_crossover", {"fast": 50, "slow": 50}, r"params\['fast'\] must be smaller"),
        ("ema_crossover", {"fast": 30}, r"fast=30 and slow=26"),
        ("sma_crossover", {"fast": 0}, r"params\['fast'\] of sma_crossover must be within"),
        ("rsi_reversion", {"lower": 70, "upper": 30}, r"params\['lower'\] must be below"),
        ("rsi_reversion", {"window": 1.5}, r"params\['window'\] of rsi_reversion must be an int"),
        ("bollinger_breakout", {"nstd": "2"}, r"params\['nstd'\] .* must be a finite number"),
        ("bollinger_breakout", {"windw": 20}, r"unknown parameter 'windw'"),
        ("bollinger_breakout", [("window", 20)], r"params must be a mapping"),
    ],
)
def test_create_refuses(name: str, params: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        LiveSignals.create(name, params)


def test_every_other_bar_strategy_is_refused_by_name() -> None:
    for name in set(BAR_STRATEGIES) - LIVE_STRATEGIES:
        with pytest.raises(ValueError, match=f"strategy '{name}' cannot run live"):
            LiveSignals.create(name, None)


def _snapshot() -> dict[str, Any]:
    live = LiveSignals.create("sma_crossover", {"fast": 2, "slow": 3})
    for close in (1.0, 2.0, 3.0, 4.0):
        live.update(0, close, close, close, close)
    state: dict[str, Any] = json_trip(live.state())
    return state


def _damaged(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    state = _snapshot()
    target = state
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return state


@pytest.mark.parametrize(
    ("name", "params", "state", "match"),
    [
        ("ema_crossover", {"fast": 2, "slow": 3}, _snapshot(), r"state is of strategy 'sma_cr"),
        ("sma_crossover", {"fast": 2, "slow": 4}, _snapshot(), r"state was taken with params"),
        ("sma_crossover", {"fast": 2, "slow": 3}, [], r"state must be a mapping"),
        ("sma_crossover", {"fast": 2, "slow": 3}, _damaged(("version",), 2), r"'version'\] must"),
        (
            "sma_crossover",
            {"fast": 2, "slow": 3},
            _damaged(("values", "slow", "pos"), 3),
            r"'slow.pos' must be below 3, got 3",
        ),
        (
            "sma_crossover",
            {"fast": 2, "slow": 3},
            _damaged(("values", "fast", "seen"), -1),
            r"'fast.seen' must be an integer >= 0",
        ),
        (
            "sma_crossover",
            {"fast": 2, "slow": 3},
            _damaged(("values", "fast", "buf"), [1.0]),
            r"'fast.buf' must be a list of 2 numbers",
        ),
        (
            "sma_crossover",
            {"fast": 2, "slow": 3},
            _damaged(("values", "prev", "fast"), None),
            r"'prev.fast' must be a number or one of \('nan', 'inf', '-inf', '-0.0'\), got None",
        ),
        (
            "sma_crossover",
            {"fast": 2, "slow": 3},
            _damaged(("values", "slow"), {}),
            r"state\['values'\]\['slow'\] is missing 'pos'",
        ),
        (
            "sma_crossover",
            {"fast": 2, "slow": 3},
            _damaged(("bars_seen",), "4"),
            r"state\['bars_seen'\] must be an integer",
        ),
    ],
)
def test_restore_refuses(name: str, params: dict[str, Any], state: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        LiveSignals.restore(name, params, state)
