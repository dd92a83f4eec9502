"""``run_bars_nb`` against the kernel it replaced (``reference_run_bars``, frozen before the
stretch kernels of issue 15), on random bars, signal sources, options, bad bars, chunks and
trade buffers: the state, the bad bar, every trade field and every per-bar value, bit for bit.

``test_one_pass.py`` holds the public entry points to the older plain-Python simulator on a few
hundred bars; this runs the kernel itself, on thousands of bars (past the SMA sums' refreshes),
with the inputs only the kernel sees: a bar refused by the check, a full trade buffer, a run
cut anywhere and resumed, no outputs (a sweep's row)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import reference_run_bars as reference
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.records import trade_dt
from engine.sim_options import sim_config
from engine.simulate import (
    SignalSource,
    SimState,
    held_curves,
    initial_state,
    open_trade_record,
    run_bars_nb,
)
from engine.strategies import hours_mask

MINUTE = 60_000_000_000
EXAMPLES = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SENTINEL = -7.25  # in every per-bar output before a run: a bar left unwritten shows


def make_bars(n: int, seed: int, decimals: int | None) -> dict[str, np.ndarray]:
    """A random walk with opens, highs and lows; rounded prices make ties between the averages."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
    open_ = close * np.exp(rng.normal(0.0, 0.003, n))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0.0, 0.004, n)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0.0, 0.004, n)))
    if decimals is not None:
        close, open_, high, low = (np.round(a, decimals) for a in (close, open_, high, low))
    ts = 1_700_000_000_000_000_000 + np.cumsum(rng.integers(1, 90, n)) * MINUTE
    return {"ts": ts, "open": open_, "high": high, "low": low, "close": close}


def spoil(bars: dict[str, np.ndarray], at: float, kind: str) -> None:
    """One bad bar for the check: a close that is not positive and finite, or a timestamp not
    above the previous one."""
    n = bars["ts"].shape[0]
    if n == 0:
        return
    k = min(n - 1, int(at * n))
    if kind == "ts":
        bars["ts"][k] = bars["ts"][k - 1] if k > 0 else bars["ts"][k]
    else:
        bars["close"][k] = {"nan": math.nan, "zero": 0.0, "negative": -1.0, "inf": math.inf}[kind]


def flat(state: Any) -> list[Any]:
    """A state's fields, the accumulator's inline, floats as their bytes (NaN and -0.0 too)."""
    fields = [*state[:-1], *state.acc]
    return [np.float64(v).tobytes() if isinstance(v, float) else int(v) for v in fields]


def run_both(
    data: dict[str, np.ndarray],
    source: int,
    signals: np.ndarray,
    windows: tuple[int, int],
    opts: dict[str, Any],
    check: bool,
    store: bool,
    cuts: list[int],
    room: int,
    equity_only: bool = False,
) -> None:
    """Both kernels from the initial state, stopping at each cut and resuming from their own
    state, each with its own outputs and trade buffers of ``room`` records (grown by the
    kernels); every chunk compared. ``equity_only``: the current kernel writes the equity
    alone, and ``held_curves`` makes the cash and position the previous one wrote."""
    cfg, hours = sim_config(opts)
    ts = data["ts"]
    n = ts.shape[0]
    hours_ok = hours_mask(ts, hours)
    fast, slow = windows
    prices = (data["open"], data["high"], data["low"], data["close"])
    states: list[Any] = [
        initial_state(cfg.initial_capital),
        reference.initial_state_nb(cfg.initial_capital),
    ]
    configs: list[Any] = [cfg, reference.SimConfig(*cfg)]
    outputs = [[np.full(n if store else 0, SENTINEL) for _ in range(3)] for _ in range(2)]
    kernels: list[Any] = [run_bars_nb, reference.run_bars_nb]
    entry_cash = np.full(n if equity_only else 0, SENTINEL)
    if equity_only:
        outputs[0][1:] = [np.empty(0), np.empty(0)]
    for stop in [*sorted(c for c in cuts if c < n), n]:
        if stop < states[0].i:
            continue
        results = []
        for k in range(2):
            extra = (entry_cash,) if k == 0 else ()
            state, trades, written, bad = kernels[k](
                source, signals, fast, slow, *prices, ts, hours_ok, configs[k], states[k], stop,
                check, *outputs[k], np.empty(room, dtype=trade_dt), *extra,
            )  # fmt: skip
            states[k] = state
            results.append((trades[:written], bad))
        assert flat(states[0]) == flat(states[1])
        (ours, our_bad), (theirs, their_bad) = results
        assert our_bad == their_bad
        assert ours.shape == theirs.shape
        for name in trade_dt.names or ():
            np.testing.assert_array_equal(ours[name], theirs[name], err_msg=name)
        if equity_only and our_bad < 0 and n > 0:
            every = np.concatenate([ours, open_trade_record(states[0], cfg, ts, data["close"])])
            cash, position = held_curves(outputs[0][0], every, entry_cash, 0)
            outputs[0][1:] = [cash, position]
        if not equity_only or our_bad < 0:
            for mine, ref in zip(outputs[0], outputs[1], strict=True):
                np.testing.assert_array_equal(mine, ref)
        if our_bad >= 0:
            break


options = st.fixed_dictionaries(
    {},
    optional={
        "fill": st.sampled_from(["close", "next_open"]),
        "direction": st.sampled_from(["long", "short", "both"]),
        "fees": st.sampled_from([0.0, 0.001, 0.02]),
        "slippage": st.sampled_from([0.0, 0.001]),
        "stop_loss": st.sampled_from([0.005, 0.02]),
        "take_profit": st.sampled_from([0.005, 0.03]),
        "max_bars": st.integers(1, 12),
        "allowed_hours": st.lists(st.integers(0, 23), min_size=1, max_size=20, unique=True),
        "sizing": st.sampled_from(["cash", "units", "notional"]),
    },
)
bar_sets = st.tuples(
    st.one_of(st.integers(0, 300), st.integers(1_000, 3_000)),
    st.integers(0, 10_000),
    st.sampled_from([None, None, 1, 2]),
)
windows = st.tuples(st.integers(1, 30), st.integers(1, 60)).map(lambda fs: (fs[0], fs[0] + fs[1]))
spoils = st.none() | st.tuples(
    st.floats(0.0, 1.0), st.sampled_from(["nan", "zero", "negative", "inf", "ts"])
)


def sized(opts: dict[str, Any]) -> dict[str, Any]:
    sizing = opts.get("sizing", "cash")
    return {**opts, "size": {"cash": 0.7, "units": 30.0, "notional": 2500.0}[sizing]}


@EXAMPLES
@given(
    bars=bar_sets,
    pair=windows,
    opts=options,
    exponential=st.booleans(),
    check=st.booleans(),
    store=st.booleans(),
    bad=spoils,
    cut=st.integers(0, 3_000),
    room=st.integers(0, 40),
)
def test_crossover_runs_equal_the_previous_kernel(
    bars: tuple[int, int, int | None],
    pair: tuple[int, int],
    opts: dict[str, Any],
    exponential: bool,
    check: bool,
    store: bool,
    bad: tuple[float, str] | None,
    cut: int,
    room: int,
) -> None:
    """The averages computed in the loop, from bar 0; a run may stop early (a chunk's end)."""
    data = make_bars(*bars)
    if bad is not None and check:  # unchecked, the bars must be good (the callers check them)
        spoil(data, *bad)
    source = SignalSource.EmaCross if exponential else SignalSource.SmaCross
    n = data["ts"].shape[0]
    run_both(
        data, source, np.empty(0, dtype=np.uint8), pair, sized(opts), check, store,
        [] if cut >= n else [cut], room, equity_only=store and cut >= n and cut % 2 == 0,
    )  # fmt: skip


@EXAMPLES
@given(
    bars=bar_sets,
    opts=options,
    density=st.sampled_from([0.0, 0.01, 0.1, 0.5]),
    check=st.booleans(),
    store=st.booleans(),
    bad=spoils,
    cuts=st.lists(st.integers(0, 3_000), max_size=6),
    room=st.integers(0, 40),
)
def test_signal_runs_in_chunks_equal_the_previous_kernel(
    bars: tuple[int, int, int | None],
    opts: dict[str, Any],
    density: float,
    check: bool,
    store: bool,
    bad: tuple[float, str] | None,
    cuts: list[int],
    room: int,
) -> None:
    """Any signal flags (all sixteen combinations), cut anywhere and resumed from the state."""
    data = make_bars(*bars)
    if bad is not None and check:  # unchecked, the bars must be good (the callers check them)
        spoil(data, *bad)
    n = data["ts"].shape[0]
    rng = np.random.default_rng(bars[1] + 1)
    signals = np.where(rng.random(n) < density, rng.integers(1, 16, n), 0).astype(np.uint8)
    run_both(
        data, SignalSource.Array, signals, (0, 0), sized(opts), check, store, cuts, room,
        equity_only=store and not cuts and room % 2 == 0,
    )  # fmt: skip


@pytest.mark.parametrize("fast, slow", [(10, 50), (3, 1100), (40, 1030), (1, 2)])
def test_long_runs_equal_the_previous_kernel(fast: int, slow: int) -> None:
    """Tens of thousands of bars: every refresh of the SMA sums, long stretches, deepening
    drawdowns, a trade buffer grown several times."""
    for seed, decimals in [(5, None), (6, 1)]:
        data = make_bars(40_000, seed, decimals)
        options: list[dict[str, Any]] = [
            {"fees": 0.001},
            {"direction": "both", "fill": "next_open"},
            {},
        ]
        for opts in options:
            for source in (SignalSource.SmaCross, SignalSource.EmaCross):
                for equity_only in (False, True):
                    run_both(
                        data, source, np.empty(0, dtype=np.uint8), (fast, slow), opts, True,
                        True, [], 0, equity_only,
                    )  # fmt: skip


def test_a_state_resumes_the_same_in_both() -> None:
    """A state from the current kernel, handed to the previous one, goes on the same way: the
    two agree on what a checkpoint holds."""
    data = make_bars(2_000, 11, None)
    cfg, _ = sim_config({"fees": 0.001, "direction": "both"})
    rng = np.random.default_rng(3)
    signals = ((rng.random(2_000) < 0.05) * rng.integers(1, 16, 2_000)).astype(np.uint8)
    prices = (data["open"], data["high"], data["low"], data["close"])
    none = np.empty(0)
    args = (SignalSource.Array, signals, 0, 0, *prices, data["ts"], np.empty(0, dtype=np.bool_))
    half, _, _, _ = run_bars_nb(
        *args, cfg, initial_state(cfg.initial_capital), 1_000, False, none, none, none,
        np.empty(0, dtype=trade_dt), none,
    )  # fmt: skip
    assert isinstance(half, SimState)
    handed = reference.SimState(*half[:-1], reference.MetricsAcc(*half.acc))
    ours, _, _, _ = run_bars_nb(
        *args, cfg, half, 2_000, False, none, none, none, np.empty(0, dtype=trade_dt), none
    )
    theirs, _, _, _ = reference.run_bars_nb(
        *args, reference.SimConfig(*cfg), handed, 2_000, False, none, none, none,
        np.empty(0, dtype=trade_dt),
    )  # fmt: skip
    assert flat(ours) == flat(theirs)
