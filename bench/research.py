"""Research (Sigma Lab) in one run: a feature matrix and a sweep, ours beside their anchors.

(a) build_matrix's arithmetic on 1,000,000 hourly bars: 20 feature columns (close, volume,
    returns, returns_5, log_returns, RSI, MACD x3, Bollinger x3, SMA_50, EMA_20, ATR, Williams
    %R, fast stochastic, OBV, volatility, volume z-score) plus hour and the 5-bar forward
    return. Ours: ``engine.features.feature_matrix`` (the one-pass kernels of
    ``engine._features_nb``, features side by side on two threads, the columns rows of one
    reused block), then the same columns as deterministic Parquet (``matrix_bytes``); its
    CPU time (every thread's) is printed too.
    Anchor: the same features with TA-Lib and pandas (rolling, shift) into a DataFrame, then
    ``DataFrame.to_parquet`` with the same codec (LZ4, no dictionaries). Both produce the same
    numbers (checked before timing).
(b) A 36-config sweep (4 thresholds x 3 allowed-hour sets x 3 top_pct) of the ``threshold``
    strategy on 1,000,000 predictions. Ours: ``hub.research.evaluate.sweep_metrics``
    (``engine.sweep_threshold``: each config's flags computed in the simulator's loop from the
    shared predictions, hours and cut-offs, configs in parallel, configs with the same signals
    run once). Its CPU time (every thread's) is printed too: on a busy machine the wall
    clock also counts waiting for a core. Anchor: a loop of 36 vectorbt backtests
    (signals with numpy, ``Portfolio.from_signals``, total return, max drawdown, sharpe), as a
    research notebook would run them.

Each contender runs ``REPEATS`` times interleaved after a warm-up; best and median are printed,
and the ratio is anchor / ours (> 1: ours is faster).

Run: ``.venv/bin/python bench/research.py``
"""

from __future__ import annotations

import sys as _sys
from pathlib import Path as _Path

_sys.path.insert(0, str(_Path(__file__).resolve().parent.parent))

import io
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import talib
import vectorbt as vbt

from engine.features import feature_matrix, parse_features
from hub.research import evaluate
from hub.research.artifacts import matrix_bytes

N = 1_000_000
HORIZON = 5
REPEATS = 3
FEATURES = [
    "close", "volume", "returns", "returns_5", "log_returns", "RSI", "MACD", "BB", "SMA_50",
    "EMA_20", "ATR", "willr", "stoch", "obv", "volatility", "volume_z",
]  # fmt: skip
HOUR_NS = 3_600_000_000_000


def bars(n: int = N, seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.002, n)))
    spread = np.abs(rng.normal(0, 0.1, n))
    return {
        "ts": np.arange(n, dtype=np.int64) * HOUR_NS,
        "open": close + rng.normal(0, 0.05, n),
        "high": close + spread,
        "low": close - spread,
        "close": close,
        "volume": rng.integers(1, 1000, n).astype(np.float64),
    }


def timed(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def race(contenders: dict[str, Callable[[], Any]]) -> dict[str, list[float]]:
    for fn in contenders.values():
        fn()  # warm-up (compiles, caches)
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(REPEATS):
        for name, fn in contenders.items():
            times[name].append(timed(fn))
    return times


def report(title: str, times: dict[str, list[float]], ours: str, anchor: str) -> None:
    print(f"\n{title}")
    for name, values in times.items():
        print(
            f"  {name:<44} best {min(values) * 1000:9.1f} ms   median {statistics.median(values) * 1000:9.1f} ms"
        )
    ratio = min(times[anchor]) / min(times[ours])
    print(f"  -> {anchor} / {ours}: {ratio:.1f}x (best against best)")


# -- (a) the matrix ---------------------------------------------------------------------------


def pandas_talib_features(b: dict[str, np.ndarray]) -> pd.DataFrame:
    df = pd.DataFrame(b)
    c, h, lo, v = df["close"], df["high"], df["low"], df["volume"]
    out = pd.DataFrame({"ts": df["ts"], "hour": (df["ts"] // HOUR_NS) % 24})
    out["close"], out["volume"] = c, v
    out["returns_1"] = talib.ROCP(c, 1)
    out["returns_5"] = talib.ROCP(c, 5)
    out["log_returns"] = np.log(c / c.shift(1))
    out["rsi_14"] = talib.RSI(c, 14)
    out["macd"], out["macd_signal"], out["macd_hist"] = talib.MACD(c, 12, 26, 9)
    upper, middle, lower = talib.BBANDS(c, 20, 2.0, 2.0)
    out["bb_middle_20"], out["bb_upper_20"], out["bb_lower_20"] = middle, upper, lower
    out["sma_50"] = talib.SMA(c, 50)
    out["ema_20"] = talib.EMA(c, 20)
    out["atr_14"] = talib.ATR(h, lo, c, 14)
    out["willr_14"] = talib.WILLR(h, lo, c, 14)
    out["stoch_14"] = talib.STOCHF(h, lo, c, fastk_period=14, fastd_period=1)[0]
    out["obv"] = talib.OBV(c, v)
    out["volatility_20"] = c.pct_change().rolling(20).std()
    rolling = v.rolling(20)
    out["volume_z_20"] = (v - rolling.mean()) / rolling.std(ddof=0)
    out["target"] = c.shift(-HORIZON) / c - 1
    return out


def check_same(b: dict[str, np.ndarray]) -> None:
    ours = feature_matrix(b, parse_features(FEATURES), HORIZON)
    theirs = pandas_talib_features(b)
    assert list(ours) == list(theirs.columns), (list(ours), list(theirs.columns))
    for name in ours:
        np.testing.assert_allclose(
            np.asarray(ours[name], dtype=float), theirs[name].to_numpy(dtype=float),
            rtol=1e-6, atol=1e-8, equal_nan=True, err_msg=name,
        )  # fmt: skip


def bench_matrix() -> None:
    b = bars()
    check_same({k: v[:20_000] for k, v in b.items()})
    specs = parse_features(FEATURES)
    columns = 2 + sum(len(s.columns) for s in specs) + 1

    def ours_compute() -> Any:
        return feature_matrix(b, specs, HORIZON, threads=2)

    def ours_full() -> Any:
        return matrix_bytes(feature_matrix(b, specs, HORIZON, threads=2))

    def anchor_compute() -> Any:
        return pandas_talib_features(b)

    def anchor_full() -> Any:
        sink = io.BytesIO()
        pandas_talib_features(b).to_parquet(
            sink, compression="lz4", use_dictionary=False, index=False
        )
        return sink.getvalue()

    times = race({
        "ours: feature_matrix (numba, 2 threads)": ours_compute,
        "anchor: TA-Lib + pandas DataFrame": anchor_compute,
        "ours: + deterministic Parquet": ours_full,
        "anchor: + DataFrame.to_parquet": anchor_full,
    })  # fmt: skip
    print(f"(a) build_matrix: {N:,} bars, {len(specs)} names = {columns - 3} feature columns "
          f"(+ ts, hour, target)")  # fmt: skip
    report("  features alone", {k: times[k] for k in list(times)[:2]},
           "ours: feature_matrix (numba, 2 threads)", "anchor: TA-Lib + pandas DataFrame")  # fmt: skip
    cpu = []
    for _ in range(REPEATS):
        started = time.process_time()
        ours_compute()
        cpu.append(time.process_time() - started)
    print(f"  ours: CPU time, all threads: best {min(cpu) * 1000:.1f} ms, "
          f"median {statistics.median(cpu) * 1000:.1f} ms")  # fmt: skip
    report("  features written as Parquet", {k: times[k] for k in list(times)[2:]},
           "ours: + deterministic Parquet", "anchor: + DataFrame.to_parquet")  # fmt: skip


# -- (b) the sweep ---------------------------------------------------------------------------


def bench_sweep() -> None:
    b = bars(seed=2)
    rng = np.random.default_rng(3)
    data = {k: b[k] for k in ("ts", "open", "high", "low", "close")}
    data["prediction"] = np.clip(
        0.5 + np.convolve(rng.normal(0, 0.1, N), np.ones(8) / 8, "same"), 0, 1
    )
    configs = evaluate.grid_configs(
        [0.5, 0.55, 0.6, 0.65], [[9, 10, 11], [12, 13, 14], list(range(9, 16))], [5.0, 10.0, 15.0]
    )
    assert len(configs) == 36
    exit_ = 0.45
    close = pd.Series(data["close"], index=pd.to_datetime(data["ts"]))
    pred = data["prediction"]
    hour = (data["ts"] // HOUR_NS) % 24

    def ours() -> Any:
        return evaluate.sweep_metrics(data, configs, exit_)

    def vectorbt_loop() -> Any:
        out = []
        for c in configs:
            cutoff = np.quantile(pred, 1.0 - (c["top_pct"] or 100.0) / 100.0)
            allowed = np.isin(hour, c["allowed_hours"])
            entries = allowed & (pred >= c["threshold"]) & (pred >= cutoff)
            exits = ~allowed | (pred <= exit_)
            pf = vbt.Portfolio.from_signals(
                close, pd.Series(entries, index=close.index), pd.Series(exits, index=close.index),
                init_cash=10_000.0, freq="1h",
            )  # fmt: skip
            out.append((pf.total_return(), pf.max_drawdown(), pf.sharpe_ratio()))
        return out

    swept = ours()
    first = vectorbt_loop()[0]
    print(f"\n(b) sweep: {len(configs)} configs on {N:,} predictions "
          f"(first config: ours cum_ret {swept[0]['cum_ret']:.4f}, vectorbt {first[0]:.4f})")  # fmt: skip
    times = race(
        {"ours: engine sweep kernels": ours, "anchor: 36 vectorbt backtests": vectorbt_loop}
    )
    report("  36 configs", times, "ours: engine sweep kernels", "anchor: 36 vectorbt backtests")
    cpu = []
    for _ in range(REPEATS):
        started = time.process_time()
        ours()
        cpu.append(time.process_time() - started)
    print(f"  ours: CPU time, all threads: best {min(cpu) * 1000:.1f} ms, "
          f"median {statistics.median(cpu) * 1000:.1f} ms")  # fmt: skip


if __name__ == "__main__":
    bench_matrix()
    bench_sweep()
