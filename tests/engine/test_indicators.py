"""Indicator kernels against TA-Lib, pandas and textbook formulas; incremental against batch."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
import talib
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.lib.stride_tricks import sliding_window_view

from engine import indicators as ind

SEEDS = (0, 1, 2)
WINDOWS = (1, 2, 3, 9, 14, 50)


def assert_same(ours: np.ndarray, ref: np.ndarray) -> None:
    """Same length, NaN exactly where the reference has NaN, values within 1e-9."""
    assert ours.dtype == np.float64
    assert ours.shape == ref.shape
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(ref))
    np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=1e-9)


def walk(seed: int, n: int = 600, lead_nan: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = 100.0 + np.cumsum(rng.normal(0.0, 1.0, n))
    a[:lead_nan] = np.nan
    return a


def bars(seed: int, n: int = 600, lead_nan: int = 0) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed + 1000)
    close = walk(seed, n, lead_nan)
    high = close + rng.random(n) * 2.0
    low = close - rng.random(n) * 2.0
    volume = rng.integers(1, 1_000, n).astype(np.float64)
    return high, low, close, volume


def exact_std(a: np.ndarray, window: int, ddof: int) -> np.ndarray:
    """Two-pass deviation of every full window (numpy's np.std), NaN before."""
    out = np.full(a.shape[0], np.nan)
    if a.shape[0] >= window:
        out[window - 1 :] = np.std(sliding_window_view(a, window), axis=1, ddof=ddof)
    return out


# ---------------------------------------------------------------------------------------------
# Batch kernels against TA-Lib


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("window", WINDOWS)
@pytest.mark.parametrize("lead_nan", [0, 7])
def test_moving_averages_equal_talib(seed: int, window: int, lead_nan: int) -> None:
    a = walk(seed, lead_nan=lead_nan)
    assert_same(ind.sma_1d_nb(a, window), talib.SMA(a, window))
    assert_same(ind.ema_1d_nb(a, window), talib.EMA(a, window))
    assert_same(ind.wma_1d_nb(a, window), talib.WMA(a, window))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("window", [w for w in WINDOWS if w > 1])
@pytest.mark.parametrize("lead_nan", [0, 7])
def test_rsi_std_bollinger_equal_talib(seed: int, window: int, lead_nan: int) -> None:
    a = walk(seed, lead_nan=lead_nan)
    assert_same(ind.rsi_1d_nb(a, window), talib.RSI(a, window))
    assert_same(ind.rolling_std_1d_nb(a, window, 0), talib.STDDEV(a, window, 1.0))
    for nstd in (1.0, 2.0, 2.5):
        middle, upper, lower = ind.bollinger_1d_nb(a, window, nstd)
        t_upper, t_middle, t_lower = talib.BBANDS(a, window, nstd, nstd)  # SMA by default
        assert_same(middle, t_middle)
        assert_same(upper, t_upper)
        assert_same(lower, t_lower)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("window", [2, 5, 20])
def test_rolling_std_ddof1_equals_pandas(seed: int, window: int) -> None:
    a = walk(seed)
    assert_same(ind.rolling_std_1d_nb(a, window, 1), pd.Series(a).rolling(window).std().to_numpy())


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(
    ("fast", "slow", "signal"), [(12, 26, 9), (3, 6, 4), (5, 5, 1), (2, 30, 7), (8, 3, 2)]
)
@pytest.mark.parametrize("lead_nan", [0, 11])
def test_macd_equals_talib(seed: int, fast: int, slow: int, signal: int, lead_nan: int) -> None:
    a = walk(seed, lead_nan=lead_nan)
    for ours, ref in zip(ind.macd_1d_nb(a, fast, slow, signal), talib.MACD(a, fast, slow, signal)):
        assert_same(ours, ref)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("window", WINDOWS)
@pytest.mark.parametrize("lead_nan", [0, 5])
def test_atr_equals_talib(seed: int, window: int, lead_nan: int) -> None:
    high, low, close, _ = bars(seed, lead_nan=lead_nan)
    # A NaN in high alone also delays the start: TA-Lib waits for a row where all three exist.
    high[lead_nan] = np.nan
    assert_same(ind.atr_1d_nb(high, low, close, window), talib.ATR(high, low, close, window))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("lead_nan", [0, 3])
def test_returns_equal_talib(seed: int, lead_nan: int) -> None:
    a = walk(seed, lead_nan=lead_nan)
    assert_same(ind.simple_returns_1d_nb(a), talib.ROCP(a, 1))
    assert_same(ind.log_returns_1d_nb(a), np.log(talib.ROCR(a, 1)))


def test_returns_edges() -> None:
    a = np.array([2.0, 0.0, 3.0, -1.0, 4.0])
    # TA-Lib's ROCP answers 0.0 after a zero; a log return is undefined at a non-positive value.
    assert_same(ind.simple_returns_1d_nb(a), talib.ROCP(a, 1))
    assert_same(ind.log_returns_1d_nb(a), np.array([np.nan, np.nan, np.nan, np.nan, np.nan]))


@pytest.mark.parametrize("seed", SEEDS)
def test_vwap_equals_cumulative_formula(seed: int) -> None:
    high, low, close, volume = bars(seed)
    typical = (high + low + close) / 3.0
    expected = np.cumsum(typical * volume) / np.cumsum(volume)
    assert_same(ind.vwap_1d_nb(high, low, close, volume), expected)


@pytest.mark.parametrize("seed", SEEDS)
def test_session_vwap_equals_pandas_groupby(seed: int) -> None:
    high, low, close, volume = bars(seed, n=2_000)
    rng = np.random.default_rng(seed)
    day = 86_400 * 10**9
    ts = np.cumsum(rng.integers(1, 3_600, high.shape[0])) * 10**9 + 1_700_000_000 * 10**9
    frame = pd.DataFrame({"pv": (high + low + close) / 3.0 * volume, "v": volume})
    sessions = pd.to_datetime(ts).floor("D")
    cum = frame.groupby(sessions).cumsum()
    expected = (cum["pv"] / cum["v"]).to_numpy()
    assert len(set(sessions)) > 5
    assert_same(ind.vwap_session_1d_nb(ts, high, low, close, volume, day, 0), expected)


def test_vwap_skips_nan_rows_and_zero_volume() -> None:
    high = np.array([np.nan, 3.0, 6.0, 9.0])
    low = np.array([1.0, 3.0, 6.0, 9.0])
    close = np.array([1.0, 3.0, 6.0, 9.0])
    volume = np.array([1.0, 0.0, 2.0, np.nan])
    out = ind.vwap_1d_nb(high, low, close, volume)
    assert_same(out, np.array([np.nan, np.nan, 6.0, np.nan]))


# ---------------------------------------------------------------------------------------------
# NaN conventions


def test_interior_nan_windowed_recover_like_pandas() -> None:
    a = walk(3, n=80)
    a[30] = np.nan
    s = pd.Series(a)
    for window in (1, 4, 10):
        assert_same(ind.sma_1d_nb(a, window), s.rolling(window).mean().to_numpy())
        assert_same(ind.rolling_std_1d_nb(a, window, 0), s.rolling(window).std(ddof=0).to_numpy())
        weights = np.arange(1, window + 1, dtype=np.float64)
        wma = s.rolling(window).apply(lambda w, k=weights: float(w @ k / k.sum()), raw=True)
        assert_same(ind.wma_1d_nb(a, window), wma.to_numpy())


def test_interior_nan_recursive_propagate_like_talib() -> None:
    a = walk(4, n=80)
    a[40] = np.nan
    assert_same(ind.ema_1d_nb(a, 5), talib.EMA(a, 5))
    # TA-Lib's RSI reads its NaN average as "no movement" and reports 0.0 (deeply oversold)
    # from the NaN on; here it stays NaN, like every other recursive indicator.
    rsi = ind.rsi_1d_nb(a, 5)
    assert_same(rsi[:40], talib.RSI(a, 5)[:40])
    assert (talib.RSI(a, 5)[40:] == 0.0).all() and np.isnan(rsi[40:]).all()
    for ours, ref in zip(ind.macd_1d_nb(a, 3, 8, 4), talib.MACD(a, 3, 8, 4)):
        assert_same(ours, ref)
    high, low, close, _ = bars(4, n=80)
    close[40] = np.nan
    assert_same(ind.atr_1d_nb(high, low, close, 5), talib.ATR(high, low, close, 5))


def test_all_nan_input() -> None:
    a = np.full(30, np.nan)
    for out in (
        ind.sma_1d_nb(a, 3),
        ind.ema_1d_nb(a, 3),
        ind.rsi_1d_nb(a, 3),
        ind.wma_1d_nb(a, 3),
        ind.rolling_std_1d_nb(a, 3, 0),
        *ind.bollinger_1d_nb(a, 3, 2.0),
        *ind.macd_1d_nb(a, 2, 4, 3),
        ind.atr_1d_nb(a, a, a, 3),
        ind.vwap_1d_nb(a, a, a, a),
    ):
        assert out.shape == (30,) and np.isnan(out).all()


# ---------------------------------------------------------------------------------------------
# Precision: large and small scales, flat series, long series


def test_std_is_exact_on_large_prices_moving_by_cents() -> None:
    rng = np.random.default_rng(7)
    # A price near 1e5 that moves by cents: E[x^2] - mean^2 would keep about five digits.
    a = np.asarray(100_000.0 + np.round(np.cumsum(rng.normal(0.0, 0.05, 3_000)), 2), np.float64)
    for window in (5, 20):
        ours = ind.rolling_std_1d_nb(a, window, 0)
        np.testing.assert_allclose(ours, exact_std(a, window, 0), rtol=1e-9, atol=0.0)
        np.testing.assert_allclose(ours, talib.STDDEV(a, window, 1.0), rtol=1e-9, atol=0.0)


def test_small_scale_series_match_talib_relatively() -> None:
    # An asset priced near 1e-5 that moves by 1e-9: compared relative to the values themselves.
    rng = np.random.default_rng(8)
    a = np.asarray(1e-5 * (1.0 + np.cumsum(rng.normal(0.0, 1e-4, 500))), dtype=np.float64)
    std = ind.rolling_std_1d_nb(a, 20, 0)
    np.testing.assert_allclose(std, exact_std(a, 20, 0), rtol=1e-9, atol=0.0)
    np.testing.assert_allclose(std, talib.STDDEV(a, 20, 1.0), rtol=1e-9, atol=0.0)
    np.testing.assert_allclose(ind.rsi_1d_nb(a, 14), talib.RSI(a, 14), rtol=1e-9, atol=0.0)
    assert (std[19:] > 0.0).all()


def test_constant_series() -> None:
    for c in (0.1, 7.0, 123456.789):
        a = np.full(60, c)
        for window in (1, 2, 5, 20):
            assert_same(ind.sma_1d_nb(a, window), talib.SMA(a, window))
            assert_same(ind.ema_1d_nb(a, window), talib.EMA(a, window))
            assert_same(ind.wma_1d_nb(a, window), talib.WMA(a, window))
            std = ind.rolling_std_1d_nb(a, window, 0)
            assert (std[window - 1 :] == 0.0).all()
            assert_same(
                ind.rsi_1d_nb(a, window),
                talib.RSI(a, window) if window > 1 else np.r_[np.nan, np.zeros(59)],
            )


def test_sums_do_not_drift_over_a_million_values() -> None:
    rng = np.random.default_rng(9)
    n = 1_000_000
    a = 1e6 + np.cumsum(rng.normal(0.0, 10.0, n))
    window = 777
    tail = sliding_window_view(a[-5_000:], window)
    exact_mean = np.array([math.fsum(w) / window for w in tail])
    np.testing.assert_allclose(
        ind.sma_1d_nb(a, window)[-tail.shape[0] :], exact_mean, rtol=1e-14, atol=0.0
    )
    np.testing.assert_allclose(
        ind.rolling_std_1d_nb(a, window, 1)[-tail.shape[0] :],
        np.std(tail, axis=1, ddof=1),
        rtol=1e-10,
        atol=0.0,
    )
    weights = np.arange(1, window + 1, dtype=np.float64)
    np.testing.assert_allclose(
        ind.wma_1d_nb(a, window)[-tail.shape[0] :],
        tail @ weights / weights.sum(),
        rtol=1e-13,
        atol=0.0,
    )


def test_bad_parameters_raise() -> None:
    a = walk(0, n=10)
    with pytest.raises(ValueError, match="window must be >= 1, got 0"):
        ind.sma_1d_nb(a, 0)
    with pytest.raises(ValueError, match="window must be >= 1, got -3"):
        ind.ema_1d_nb(a, -3)
    with pytest.raises(ValueError, match="ddof=2 with window=2"):
        ind.rolling_std_1d_nb(a, 2, 2)
    with pytest.raises(ValueError, match="same length"):
        ind.atr_1d_nb(a, a[:-1], a, 3)
    with pytest.raises(ValueError, match="session_ns must be >= 0, got -1"):
        ind.vwap_init_nb(-1, 0)


# ---------------------------------------------------------------------------------------------
# Incremental kernels fed value by value equal the batch kernels, bit for bit


def assert_identical(ours: np.ndarray, ref: np.ndarray) -> None:
    """Bit for bit, NaNs in the same places."""
    np.testing.assert_array_equal(ours, ref)


def feed(state: Any, update: Callable[..., Any], *columns: np.ndarray) -> np.ndarray:
    rows = []
    for values in zip(*columns):
        state, *out = update(state, *(float(v) for v in values))
        rows.append(out)
    return np.array(rows, dtype=np.float64).reshape(len(rows), -1).T


@pytest.mark.parametrize("seed", [0, 1])
def test_incremental_equals_batch(seed: int) -> None:
    a = walk(seed, n=400, lead_nan=4)
    a[200] = np.nan
    high, low, close, volume = bars(seed, n=400, lead_nan=2)
    ts = np.arange(400, dtype=np.int64) * 3_600 * 10**9
    for window in (1, 3, 14):
        assert_identical(
            feed(ind.sma_init_nb(window), ind.sma_update_nb, a)[0], ind.sma_1d_nb(a, window)
        )
        assert_identical(
            feed(ind.ema_init_nb(window), ind.ema_update_nb, a)[0], ind.ema_1d_nb(a, window)
        )
        assert_identical(
            feed(ind.wma_init_nb(window), ind.wma_update_nb, a)[0], ind.wma_1d_nb(a, window)
        )
        assert_identical(
            feed(ind.rsi_init_nb(window), ind.rsi_update_nb, a)[0], ind.rsi_1d_nb(a, window)
        )
        assert_identical(
            feed(ind.atr_init_nb(window), ind.atr_update_nb, high, low, close)[0],
            ind.atr_1d_nb(high, low, close, window),
        )
        assert_identical(
            feed(ind.rolling_std_init_nb(window + 1, 1), ind.rolling_std_update_nb, a)[0],
            ind.rolling_std_1d_nb(a, window + 1, 1),
        )
        bands = feed(ind.bollinger_init_nb(window, 2.0), ind.bollinger_update_nb, a)
        for ours, ref in zip(bands, ind.bollinger_1d_nb(a, window, 2.0)):
            assert_identical(ours, ref)
    macd = feed(ind.macd_init_nb(12, 26, 9), ind.macd_update_nb, a)
    for ours, ref in zip(macd, ind.macd_1d_nb(a, 12, 26, 9)):
        assert_identical(ours, ref)
    assert_identical(
        feed(ind.return_init_nb(), ind.simple_return_update_nb, a)[0], ind.simple_returns_1d_nb(a)
    )
    assert_identical(
        feed(ind.return_init_nb(), ind.log_return_update_nb, a)[0], ind.log_returns_1d_nb(a)
    )
    day = 86_400 * 10**9
    assert_identical(
        feed(ind.vwap_init_nb(day, 0), ind.vwap_update_nb, ts, high, low, close, volume)[0],
        ind.vwap_session_1d_nb(ts, high, low, close, volume, day, 0),
    )
    assert_identical(
        feed(ind.vwap_init_nb(0, 0), ind.vwap_update_nb, ts, high, low, close, volume)[0],
        ind.vwap_1d_nb(high, low, close, volume),
    )


# ---------------------------------------------------------------------------------------------
# Hypothesis: edges (empty, shorter than the window, leading NaNs, flat stretches)


@st.composite
def cent_series(draw: st.DrawFn) -> np.ndarray:
    """Prices in cents with optional leading NaNs, flat stretches included."""
    lead = draw(st.integers(0, 4))
    steps = draw(st.lists(st.integers(-300, 300), max_size=60))
    cents = 10_000 + np.cumsum(np.asarray(steps, dtype=np.int64))
    return np.concatenate([np.full(lead, np.nan), cents / 100.0])


@given(cent_series(), st.integers(1, 20))
@settings(max_examples=150, deadline=None)
def test_hypothesis_averages_macd_atr(a: np.ndarray, window: int) -> None:
    assert_same(ind.sma_1d_nb(a, window), talib.SMA(a, window))
    assert_same(ind.ema_1d_nb(a, window), talib.EMA(a, window))
    assert_same(ind.wma_1d_nb(a, window), talib.WMA(a, window))
    fast = max(2, window // 2)  # TA-Lib's MACD takes periods from 2
    for ours, ref in zip(
        ind.macd_1d_nb(a, fast, window + 2, 3), talib.MACD(a, fast, window + 2, 3)
    ):
        assert_same(ours, ref)
    high = a + 0.5
    low = a - 0.25
    assert_same(ind.atr_1d_nb(high, low, a, window), talib.ATR(high, low, a, window))


def wilder_rsi(a: np.ndarray, window: int) -> np.ndarray:
    """Textbook Wilder RSI after leading NaNs; 0.0 when there was no movement (TA-Lib's)."""
    out = np.full(a.shape[0], np.nan)
    valid = np.flatnonzero(~np.isnan(a))
    if valid.size == 0:
        return out
    x = a[valid[0] :]
    diffs = np.diff(x)
    if diffs.size < window:
        return out
    gain = float(np.clip(diffs[:window], 0.0, None).sum()) / window
    loss = float(-np.clip(diffs[:window], None, 0.0).sum()) / window
    for k in range(window, diffs.size + 1):
        if k > window:
            d = float(diffs[k - 1])
            gain = (gain * (window - 1) + max(d, 0.0)) / window
            loss = (loss * (window - 1) + max(-d, 0.0)) / window
        out[valid[0] + k] = 0.0 if gain + loss == 0.0 else 100.0 * gain / (gain + loss)
    return out


@given(cent_series(), st.integers(1, 20), st.sampled_from([0, 1]))
@settings(max_examples=150, deadline=None)
def test_hypothesis_rsi_std_bollinger(a: np.ndarray, window: int, ddof: int) -> None:
    assert_same(ind.rsi_1d_nb(a, window), wilder_rsi(a, window))
    if window > ddof:
        start = int(np.argmax(~np.isnan(a))) if a.size else 0
        ref = np.full(a.shape[0], np.nan)
        ref[start:] = exact_std(a[start:], window, ddof)
        assert_same(ind.rolling_std_1d_nb(a, window, ddof), ref)
        middle, upper, lower = ind.bollinger_1d_nb(a, window, 2.0)
        ref0 = np.full(a.shape[0], np.nan)
        ref0[start:] = exact_std(a[start:], window, 0)
        assert_same(middle, talib.SMA(a, window))
        assert_same(upper, middle + 2.0 * ref0)
        assert_same(lower, middle - 2.0 * ref0)


@given(cent_series(), st.integers(2, 20))
@settings(max_examples=150, deadline=None)
def test_hypothesis_rsi_equals_talib(a: np.ndarray, window: int) -> None:
    assert_same(ind.rsi_1d_nb(a, window), talib.RSI(a, window))
