"""SMA-crossover backtests and sweeps: ours beside vectorbt and a plain numba loop, same run.

(a) One SMA 10/50 crossover backtest on 1,000,000 bars, fill at the close, 0.1% fee per side,
    all in. Ours: ``engine.run_backtest`` (trade records, per-bar equity, cash and position,
    metrics), one pass over the bars; beside it the chunked path the hub runs (averages and
    crossings first, then the simulator). Anchor: vectorbt ``MA.run`` +
    ``Portfolio.from_signals`` (``min_size=0``) + ``total_return``, ``max_drawdown``,
    ``sharpe_ratio``. Baseline: a plain numba loop (running sums for the averages, trades and
    equity, no metrics).
(b) A 100-combination fast/slow sweep on 100,000 bars. Ours: ``engine.run_sweep``, on every
    thread numba has and on one (the parallel speed-up). Anchor:
    vectorbt's broadcast sweep (one ``MA.run`` per side over the 100 column pairs,
    ``from_signals`` on the 100-column frame, the same three metrics). Baseline: the plain loop
    in ``prange`` over the combinations.
(c) Fresh processes: the first backtest with numba's disk cache warm (ours and vectorbt's), and
    with an empty cache (compile time, reported apart from run time).

Contenders run interleaved, ``REPEATS`` times each; best and median are printed, and ratios are
anchor / ours (> 1: ours is faster) or ours / baseline.

Run: ``.venv/bin/python bench/engine_backtest.py``
"""

from __future__ import annotations

import sys as _sys
from pathlib import Path as _Path

# bench/engine.py would shadow the engine package for scripts run from bench/: the repository
# root comes first on the path.
_sys.path.insert(0, str(_Path(__file__).resolve().parent.parent))

import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import vectorbt as vbt
from numba import get_num_threads, njit, prange, set_num_threads

from engine.backtest import BacktestRun, prepare, run_backtest, run_sweep
from engine.indicators import sma_1d_nb
from engine.strategies import BAR_STRATEGIES, cross_signals_nb

ROOT = Path(__file__).resolve().parent.parent
N_SINGLE = 1_000_000
N_SWEEP = 100_000
FASTS = [5, 8, 10, 12, 15, 20, 25, 30, 35, 40]
SLOWS = [50, 60, 70, 80, 90, 100, 120, 140, 160, 200]
FEES = 0.001
CAPITAL = 10_000.0
REPEATS = 9


def make_bars(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
    open_ = close * np.exp(rng.normal(0.0, 0.002, n))
    high = np.maximum(open_, close) * 1.002
    low = np.minimum(open_, close) * 0.998
    ts = 1_700_000_000 * 10**9 + np.arange(n, dtype=np.int64) * 60 * 10**9
    return {"ts": ts, "open": open_, "high": high, "low": low, "close": close}


@njit(cache=True, nogil=True)
def plain_backtest_nb(
    close: np.ndarray, fast: int, slow: int, fees: float, capital: float, store: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    """The baseline: running-sum averages, the crossover, all-in fills at the close with fees,
    trade records and equity, in one loop."""
    n = close.shape[0]
    equity = np.empty(n if store else 0)
    entries = np.empty(n // 2 + 1, dtype=np.int64)
    exits = np.empty(n // 2 + 1, dtype=np.int64)
    pnl = np.empty(n // 2 + 1)
    sum_fast = 0.0
    sum_slow = 0.0
    prev = np.nan
    cash = capital
    units = 0.0
    cost = 0.0
    entry = 0
    k = 0
    value = capital
    for i in range(n):
        c = close[i]
        sum_fast += c
        sum_slow += c
        if i >= fast:
            sum_fast -= close[i - fast]
        if i >= slow:
            sum_slow -= close[i - slow]
        diff = sum_fast / fast - sum_slow / slow if i >= slow - 1 else np.nan
        if units == 0.0:
            if diff > 0.0 and prev <= 0.0:
                units = cash / (1.0 + fees) / c
                cost = cash
                cash = 0.0
                entry = i
        elif diff < 0.0 and prev >= 0.0:
            proceeds = units * c
            cash = proceeds - proceeds * fees
            entries[k] = entry
            exits[k] = i
            pnl[k] = cash - cost
            k += 1
            units = 0.0
        prev = diff
        value = cash + units * c
        if store:
            equity[i] = value
    return equity, entries[:k], exits[:k], pnl[:k], value


@njit(cache=True, nogil=True, parallel=True)
def plain_sweep_nb(
    close: np.ndarray, fast: np.ndarray, slow: np.ndarray, fees: float, capital: float
) -> np.ndarray:
    out = np.empty(fast.shape[0])
    for k in prange(fast.shape[0]):
        out[k] = plain_backtest_nb(close, fast[k], slow[k], fees, capital, False)[4]
    return out


def vbt_single(close: pd.Series) -> tuple[float, float, float]:
    fast = vbt.MA.run(close, 10)
    slow = vbt.MA.run(close, 50)
    pf = vbt.Portfolio.from_signals(
        close, fast.ma_crossed_above(slow), fast.ma_crossed_below(slow), fees=FEES,
        init_cash=CAPITAL, min_size=0.0, freq="1min",
    )  # fmt: skip
    return pf.total_return(), pf.max_drawdown(), pf.sharpe_ratio()


def vbt_sweep(close: pd.Series) -> pd.Series:
    pairs = pd.MultiIndex.from_product([FASTS, SLOWS], names=["fast", "slow"])
    fast = vbt.MA.run(close, pairs.get_level_values("fast").to_list()).ma
    slow = vbt.MA.run(close, pairs.get_level_values("slow").to_list()).ma
    fast.columns = slow.columns = pairs
    pf = vbt.Portfolio.from_signals(
        close, fast.vbt.crossed_above(slow), fast.vbt.crossed_below(slow), fees=FEES,
        init_cash=CAPITAL, min_size=0.0, freq="1min",
    )  # fmt: skip
    pf.total_return()
    pf.max_drawdown()
    sharpe: pd.Series = pf.sharpe_ratio()
    return sharpe


def race(
    contenders: dict[str, Callable[[], Any]], repeats: int = REPEATS
) -> dict[str, list[float]]:
    """Each contender timed as ``timeit`` times it: garbage collected before (untimed) and the
    collector off during the call, so nobody pays for another contender's garbage (vectorbt's
    pandas objects otherwise trigger full collections inside the next call)."""
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, fn in contenders.items():
            gc.collect()
            gc.disable()
            try:
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
            finally:
                gc.enable()
    return times


def show(times: dict[str, list[float]]) -> None:
    for name, samples in times.items():
        print(
            f"  {name:58s} best {min(samples) * 1e3:9.2f} ms   median {statistics.median(samples) * 1e3:9.2f} ms"
        )


def ratio(label: str, num: list[float], den: list[float], target: str) -> None:
    best = min(num) / min(den)
    median = statistics.median(num) / statistics.median(den)
    print(f"  {label:58s} best {best:7.2f}x   median {median:7.2f}x   (target {target})")


_CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import numpy as np
kind, n = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(0)
close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
bars = dict(ts=np.arange(n, dtype=np.int64) * 60 * 10**9, open=close, high=close, low=close, close=close)
t1 = time.perf_counter()
out = {}
if kind == "floor":
    sys.path.insert(0, sys.argv[3])
    import numba
    t2 = time.perf_counter()
    import floor_probe
    floor_probe.probe_nb(1.0)
    t3 = time.perf_counter()
    out = {"import": t2 - t1, "first": t3 - t2}
elif kind in ("ours", "warm"):
    from engine.backtest import run_backtest, run_sweep, warm_up
    t2 = time.perf_counter()
    warmed = warm_up() if kind == "warm" else 0.0
    t3 = time.perf_counter()
    run_backtest(bars, "sma_crossover", {"fast": 10, "slow": 50}, fees=0.001)
    t4 = time.perf_counter()
    run_backtest(bars, "sma_crossover", {"fast": 10, "slow": 50}, fees=0.001)
    t5 = time.perf_counter()
    grid = {"fast": [5, 10], "slow": [50, 60]}
    run_sweep(bars, "sma_crossover", grid, fees=0.001)
    t6 = time.perf_counter()
    run_sweep(bars, "sma_crossover", grid, fees=0.001)
    t7 = time.perf_counter()
    out = {"import": t2 - t1, "warm_up": t3 - t2, "first": t4 - t3, "second": t5 - t4,
           "first_sweep": t6 - t5, "second_sweep": t7 - t6}
else:
    import pandas as pd
    import vectorbt as vbt
    t2 = time.perf_counter()
    c = pd.Series(close)
    f, s = vbt.MA.run(c, 10), vbt.MA.run(c, 50)
    pf = vbt.Portfolio.from_signals(c, f.ma_crossed_above(s), f.ma_crossed_below(s), fees=0.001,
                                    init_cash=10000.0, min_size=0.0, freq="1min")
    pf.total_return(), pf.max_drawdown(), pf.sharpe_ratio()
    t3 = time.perf_counter()
    out = {"import": t2 - t1, "first": t3 - t2}
print(json.dumps(out))
"""


def child(kind: str, n: int, cache_dir: str | None = None, *extra: str) -> dict[str, float]:
    env = dict(os.environ)
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = cache_dir
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, kind, str(n), *extra], cwd=ROOT, env=env,
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:7.1f} ms"


def fresh_processes() -> None:
    print(
        "\n(c) fresh processes (bars generated before the clock starts; warm = numba disk cache warm)"
    )
    with tempfile.TemporaryDirectory() as probe_dir:
        Path(probe_dir, "floor_probe.py").write_text(
            "from numba import njit\n\n\n@njit(cache=True)\ndef probe_nb(x):\n    return x + 1.0\n"
        )
        child("floor", 0, None, probe_dir)
        floor = child("floor", 0, None, probe_dir)
    print(
        f"  numba's floor: import numba {ms(floor['import'])}; first call of a trivial cached "
        f"function {ms(floor['first'])}"
    )
    child("ours", 1_000)  # the disk cache now holds every kernel the runs below use
    for n in (1_000, N_SINGLE):
        warm = child("ours", n)
        total = warm["import"] + warm["first"]
        print(
            f"  ours, {n:>9,} bars: import {ms(warm['import'])} + first backtest {ms(warm['first'])}"
            f" = {ms(total)} (target < 500 ms); second backtest {ms(warm['second'])}"
        )
    worker = child("warm", 1_000)
    print(
        f"  ours as a worker starts: import {ms(worker['import'])} + warm_up() {ms(worker['warm_up'])};"
        f" then first backtest {ms(worker['first'])}, first sweep {ms(worker['first_sweep'])}"
    )
    anchor = child("vbt", 1_000)
    print(
        f"  anchor, vectorbt, 1,000 bars: import {ms(anchor['import'])} + first backtest "
        f"{ms(anchor['first'])} = {ms(anchor['import'] + anchor['first'])}"
    )
    with tempfile.TemporaryDirectory() as empty:
        cold = child("ours", 1_000, empty)
    print(
        f"  ours, empty cache: compile + first backtest {cold['first']:5.1f} s (run alone "
        f"{ms(cold['second'])}); compile + first sweep {cold['first_sweep']:5.1f} s (run alone "
        f"{ms(cold['second_sweep'])})"
    )


def main() -> None:
    print(
        f"numba threads: {get_num_threads()}; {REPEATS} interleaved runs each; vectorbt {vbt.__version__}"
    )
    bars = make_bars(N_SINGLE)
    close = bars["close"]
    series = pd.Series(close)

    # Warm-ups: each first call loads (or compiles) its kernels; not timed below.
    ours = run_backtest(bars, "sma_crossover", {"fast": 10, "slow": 50}, fees=FEES)
    plain = plain_backtest_nb(close, 10, 50, FEES, CAPITAL, True)
    total_return, _, _ = vbt_single(series)
    assert abs(ours.metrics["total_return"] / 100 - total_return) < 1e-9 * max(
        1.0, abs(total_return)
    )
    assert ours.equity[-1] == plain[4] or abs(ours.equity[-1] / plain[4] - 1) < 1e-9
    print(
        f"\n(a) SMA 10/50 backtest, {N_SINGLE:,} bars: {len(ours.trades):,} trades, same final equity in all three"
    )
    entry = BAR_STRATEGIES["sma_crossover"]
    options = {"fees": FEES}

    def ours_from_signals() -> Any:
        """The chunked path the hub runs: averages and crossings first, then the simulator."""
        checked, _, cfg, hours_ok = prepare(bars, entry, {"fast": 10, "slow": 50}, options)
        signals = cross_signals_nb(sma_1d_nb(close, 10), sma_1d_nb(close, 50))
        return BacktestRun(checked, signals, cfg, hours_ok).result()

    single = race(
        {
            "ours: run_backtest (trades, equity/cash/position, metrics)": lambda: run_backtest(
                bars, "sma_crossover", {"fast": 10, "slow": 50}, fees=FEES
            ),
            "  the chunked path in one step (start_backtest's)": ours_from_signals,
            "anchor: vectorbt MA + from_signals + 3 metrics": lambda: vbt_single(series),
            "baseline: plain numba loop (trades, equity)": lambda: plain_backtest_nb(
                close, 10, 50, FEES, CAPITAL, True
            ),
        }
    )
    show(single)
    ours_t, chunked_t, anchor_t, plain_t = single.values()
    ratio("vectorbt / ours", anchor_t, ours_t, ">= 20x")
    ratio("ours / plain numba loop", ours_t, plain_t, "<= 1.5x")
    ratio("chunked path / plain numba loop", chunked_t, plain_t, "-")

    sweep_bars = make_bars(N_SWEEP, 1)
    sweep_close = sweep_bars["close"]
    sweep_series = pd.Series(sweep_close)
    grid = {"fast": FASTS, "slow": SLOWS}
    fast = np.repeat(np.array(FASTS, dtype=np.int64), len(SLOWS))
    slow = np.tile(np.array(SLOWS, dtype=np.int64), len(FASTS))
    result = run_sweep(sweep_bars, "sma_crossover", grid, fees=FEES)
    plain_final = plain_sweep_nb(sweep_close, fast, slow, FEES, CAPITAL)
    sharpe = vbt_sweep(sweep_series).to_numpy()
    assert np.allclose(result.metrics["sharpe_ratio"], sharpe, rtol=1e-9)
    assert np.allclose(10_000.0 + result.metrics["total_pnl"], plain_final, rtol=1e-9)
    print(
        f"\n(b) {len(result)}-combination fast/slow sweep, {N_SWEEP:,} bars: same Sharpe ratios as vectorbt"
    )
    threads = get_num_threads()

    def ours_on(n_threads: int) -> Callable[[], Any]:
        def run() -> Any:
            set_num_threads(n_threads)
            try:
                return run_sweep(sweep_bars, "sma_crossover", grid, fees=FEES)
            finally:
                set_num_threads(threads)

        return run

    sweep = race(
        {
            f"ours: run_sweep, {threads} threads (18 metrics per combination)": ours_on(threads),
            "ours: run_sweep, 1 thread": ours_on(1),
            "anchor: vectorbt broadcast sweep + 3 metrics": lambda: vbt_sweep(sweep_series),
            "baseline: plain numba loop in prange (final equity)": lambda: plain_sweep_nb(
                sweep_close, fast, slow, FEES, CAPITAL
            ),
        },
        repeats=5,
    )
    show(sweep)
    names = list(sweep)
    ratio("vectorbt / ours", sweep[names[2]], sweep[names[0]], ">= 80x")
    ratio(f"ours on 1 thread / ours on {threads}", sweep[names[1]], sweep[names[0]], "speed-up")
    ratio("ours / plain numba loop", sweep[names[0]], sweep[names[3]], "-")

    fresh_processes()


if __name__ == "__main__":
    main()
