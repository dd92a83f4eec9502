"""``engine.features``: each reference kernel (``engine._features_reference_nb``) and one-pass
kernel (``engine._features_nb``) against TA-Lib or pandas, and the catalogue's name resolution
and matrix layout."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import talib

from engine._features_nb import (
    BANDS,
    STD,
    ZSCORE,
    atr_into_nb,
    ema_into_nb,
    forward_return_into_nb,
    high_low_into_nb,
    macd_into_nb,
    moments_into_nb,
    obv_into_nb,
    returns_std_into_nb,
    rocp_into_nb,
    rsi_into_nb,
    sma_into_nb,
    utc_hour_into_nb,
)
from engine._features_reference_nb import (
    forward_return_1d_nb,
    obv_1d_nb,
    rocp_1d_nb,
    rolling_max_1d_nb,
    rolling_min_1d_nb,
    rolling_zscore_1d_nb,
    stochf_k_1d_nb,
    willr_1d_nb,
)
from engine.features import UnknownFeatures, feature_matrix, parse_features
from engine.indicators import (
    atr_1d_nb,
    bollinger_1d_nb,
    ema_1d_nb,
    log_returns_1d_nb,
    macd_1d_nb,
    rsi_1d_nb,
    sma_1d_nb,
)

N = 2_000


def bars(seed: int = 7, n: int = N) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    spread = np.abs(rng.normal(0, 0.5, n))
    return {
        "ts": np.arange(n, dtype=np.int64) * 3_600_000_000_000,
        "open": close + rng.normal(0, 0.1, n),
        "high": close + spread,
        "low": close - spread,
        "close": close,
        # whole numbers with repeats: OBV's equal closes and ties in the extremes
        "volume": rng.integers(1, 50, n).astype(np.float64),
    }


def same(ours: np.ndarray, reference: np.ndarray) -> None:
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(np.asarray(reference, dtype=float)))
    np.testing.assert_allclose(ours, reference, rtol=1e-10, atol=1e-10, equal_nan=True)


@pytest.mark.parametrize("period", [1, 2, 5, 30])
def test_rocp_is_talib(period: int) -> None:
    b = bars()
    close = b["close"].copy()
    close[100] = 0.0  # TA-Lib's 0.0 after a zero
    same(rocp_1d_nb(close, period), talib.ROCP(close, period))


@pytest.mark.parametrize("horizon", [1, 5, 24])
def test_forward_return_is_pandas_shift(horizon: int) -> None:
    close = pd.Series(bars()["close"])
    same(forward_return_1d_nb(close.to_numpy(), horizon), close.shift(-horizon) / close - 1)


@pytest.mark.parametrize("window", [2, 3, 14, 48, 49, 200])
def test_rolling_extremes_are_talib(window: int) -> None:
    volume = bars()["volume"]  # many ties
    same(rolling_max_1d_nb(volume, window), talib.MAX(volume, window))
    same(rolling_min_1d_nb(volume, window), talib.MIN(volume, window))
    series = pd.Series(volume)
    same(rolling_max_1d_nb(volume, window), series.rolling(window).max())


@pytest.mark.parametrize("window", [2, 14, 50])
def test_willr_and_stochastic_are_talib(window: int) -> None:
    b = bars()
    high, low, close = b["high"], b["low"], b["close"]
    same(willr_1d_nb(high, low, close, window), talib.WILLR(high, low, close, window))
    fastk, _ = talib.STOCHF(high, low, close, fastk_period=window, fastd_period=1)
    same(stochf_k_1d_nb(high, low, close, window), fastk)


def test_flat_windows_answer_zero_as_talib() -> None:
    flat = np.full(50, 10.0)
    same(willr_1d_nb(flat, flat, flat, 5), talib.WILLR(flat, flat, flat, 5))
    fastk, _ = talib.STOCHF(flat, flat, flat, fastk_period=5, fastd_period=1)
    same(stochf_k_1d_nb(flat, flat, flat, 5), fastk)


def test_obv_is_talib() -> None:
    b = bars()
    close = np.round(b["close"], 0)  # equal closes in a row
    same(obv_1d_nb(close, b["volume"]), talib.OBV(close, b["volume"]))


@pytest.mark.parametrize("window", [5, 20, 100])
def test_zscore_is_pandas(window: int) -> None:
    close = bars()["close"]
    s = pd.Series(close)
    rolling = s.rolling(window)
    ours = rolling_zscore_1d_nb(close, window)
    # pandas' online variance drifts by ~1e-9 on small windows: a two-pass one is exact.
    np.testing.assert_allclose(ours, (s - rolling.mean()) / rolling.std(ddof=0), rtol=1e-7)
    windows = np.lib.stride_tricks.sliding_window_view(close, window)
    exact = (close[window - 1 :] - windows.mean(axis=1)) / windows.std(axis=1)
    same(ours[window - 1 :], exact)
    assert np.isnan(ours[: window - 1]).all()


def test_names_resolve_case_insensitively_with_windows() -> None:
    specs = parse_features(["close", "RSI", "rsi_7", "MACD", "BB", "SMA_50", "returns_5", "OBV"])
    columns = [c for s in specs for c in s.columns]
    assert columns == [
        "close", "rsi_14", "rsi_7", "macd", "macd_signal", "macd_hist",
        "bb_middle_20", "bb_upper_20", "bb_lower_20", "sma_50", "returns_5", "obv",
    ]  # fmt: skip
    assert [c for s in parse_features(["rsi", "RSI_14"]) for c in s.columns] == ["rsi_14"]


def test_every_unknown_name_is_named() -> None:
    with pytest.raises(UnknownFeatures) as caught:
        parse_features(["close", "FOO", "rsi_0", "macd_9", "RSI"])
    assert caught.value.names == ["FOO", "rsi_0", "macd_9"]


def test_the_matrix_is_the_kernels_and_a_forward_target() -> None:
    b = bars()
    m = feature_matrix(b, parse_features(["close", "RSI", "MACD", "willr"]), horizon=5, threads=2)
    assert list(m) == [
        "ts", "hour", "close", "rsi_14", "macd", "macd_signal", "macd_hist", "willr_14", "target",
    ]  # fmt: skip
    same(m["rsi_14"], rsi_1d_nb(b["close"], 14))
    same(m["macd_hist"], macd_1d_nb(b["close"], 12, 26, 9)[2])
    same(m["rsi_14"], talib.RSI(b["close"], 14))
    np.testing.assert_array_equal(m["hour"], (b["ts"] // 3_600_000_000_000) % 24)
    same(m["target"], pd.Series(b["close"]).shift(-5) / b["close"] - 1)


# -- the matrix's one-pass kernels (engine._features_nb) ---------------------------------------

NONE = np.empty(0)


def moments(a: np.ndarray, window: int, ddof: int, mode: int) -> list[np.ndarray]:
    out = [np.empty_like(a) for _ in range(3 if mode == BANDS else 1)]
    assert moments_into_nb(a, window, ddof, mode, 2.0, *out, *[NONE] * (3 - len(out)))
    return out


@pytest.mark.parametrize("window", [2, 5, 20, 129, 300])
def test_one_pass_bands_are_talib(window: int) -> None:
    close = bars(n=5_000)["close"]
    middle, upper, lower = moments(close, window, 0, BANDS)
    t_upper, t_middle, t_lower = talib.BBANDS(close, window, 2.0, 2.0)
    same(middle, t_middle)
    same(upper, t_upper)
    same(lower, t_lower)


@pytest.mark.parametrize("window", [2, 20, 200])
def test_one_pass_volatility_is_pandas(window: int) -> None:
    returns = rocp_1d_nb(bars(n=5_000)["close"], 1)  # a leading NaN: the window starts after it
    series = pd.Series(returns)
    (std,) = moments(returns, window, 1, STD)
    same(std, series.rolling(window).std())


@pytest.mark.parametrize("window", [5, 20, 100])
def test_one_pass_zscore_is_two_pass_numpy(window: int) -> None:
    volume = bars(n=5_000)["volume"]
    (z,) = moments(volume, window, 0, ZSCORE)
    windows = np.lib.stride_tricks.sliding_window_view(volume, window)
    same(z[window - 1 :], (volume[window - 1 :] - windows.mean(axis=1)) / windows.std(axis=1))
    assert np.isnan(z[: window - 1]).all()


def test_one_pass_moments_survive_jumps_and_flat_windows() -> None:
    rng = np.random.default_rng(3)
    a = np.concatenate([
        np.full(300, 5.0), 1e5 + np.arange(300) * 1e-3, np.full(50, 0.1),
        rng.normal(0, 1, 400), np.full(200, 7.0),
    ])  # fmt: skip
    middle, upper, _ = moments(a, 20, 0, BANDS)
    windows = np.lib.stride_tricks.sliding_window_view(a, 20)
    np.testing.assert_allclose(middle[19:], windows.mean(axis=1), rtol=1e-12)
    deviation = windows.std(axis=1)
    ours = (upper[19:] - middle[19:]) / 2
    moving = deviation > 1e-12  # numpy leaves ~1e-17 of noise on a flat window
    np.testing.assert_allclose(ours[moving], deviation[moving], rtol=1e-9)
    flat = np.array([(w == w[0]).all() for w in windows])
    assert (ours[flat] == 0.0).all() and (middle[19:][flat] == windows[flat, 0]).all()
    (z,) = moments(a, 20, 0, ZSCORE)
    assert (z[19:][flat] == 0.0).all()


@pytest.mark.parametrize("window", [2, 3, 14, 50, 700])
def test_one_pass_willr_and_stochastic_are_talib(window: int) -> None:
    b = bars()
    high, low, close = b["high"], b["low"], b["close"]
    willr, stochk = np.empty_like(close), np.empty_like(close)
    assert high_low_into_nb(high, low, close, window, willr, stochk)
    same(willr, talib.WILLR(high, low, close, window))
    same(stochk, talib.STOCHF(high, low, close, fastk_period=window, fastd_period=1)[0])
    alone = np.empty_like(close)
    assert high_low_into_nb(high, low, close, window, NONE, alone)
    np.testing.assert_array_equal(alone, stochk)
    flat = np.full(60, 10.0)
    assert high_low_into_nb(flat, flat, flat, 5, willr[:60], stochk[:60])
    assert (willr[4:60] == 0.0).all() and not np.signbit(willr[4:60]).any()
    assert (stochk[4:60] == 0.0).all()


def test_missing_values_take_the_reference_kernels() -> None:
    b = bars()
    for column, at in (("close", 500), ("volume", 700), ("high", 900)):
        b[column] = b[column].copy()
        b[column][at] = np.nan
    m = feature_matrix(b, parse_features(["BB", "volatility", "volume_z", "willr", "stoch"]), 5)
    upper = bollinger_1d_nb(b["close"], 20, 2.0)[1]
    np.testing.assert_array_equal(m["bb_upper_20"], upper)
    np.testing.assert_array_equal(m["volume_z_20"], rolling_zscore_1d_nb(b["volume"], 20))
    high, low, close = b["high"], b["low"], b["close"]
    np.testing.assert_array_equal(m["willr_14"], willr_1d_nb(high, low, close, 14))
    np.testing.assert_array_equal(m["stoch_14"], stochf_k_1d_nb(high, low, close, 14))
    assert np.isnan(m["volatility_20"][500:521]).all()
    assert not np.isnan(m["volatility_20"][522:]).any()


def test_the_matrix_is_the_same_bytes_on_one_thread_or_two() -> None:
    names = ["close", "returns_5", "log_returns", "RSI", "MACD", "BB", "SMA_50", "EMA_20", "ATR",
             "willr", "stoch", "stoch_7", "obv", "volatility", "volume_z"]  # fmt: skip
    specs = parse_features(names)
    one = feature_matrix(bars(), specs, 5)
    two = feature_matrix(bars(), specs, 5, threads=2)
    assert list(one) == list(two)
    for name in one:
        assert one[name].tobytes() == two[name].tobytes(), name


def into(kernel: object, *args: object) -> np.ndarray:
    out = np.empty(len(args[0]))  # type: ignore[arg-type]
    assert kernel(*args, out) is not False  # type: ignore[operator]
    return out


@pytest.mark.parametrize("window", [2, 14, 50, 300])
def test_one_pass_averages_are_talib(window: int) -> None:
    b = bars(n=5_000)
    high, low, close = b["high"], b["low"], b["close"]
    same(into(sma_into_nb, close, window), talib.SMA(close, window))
    same(into(ema_into_nb, close, window), talib.EMA(close, window))
    same(into(rsi_into_nb, close, window), talib.RSI(close, window))
    same(into(atr_into_nb, high, low, close, window), talib.ATR(high, low, close, window))
    same(into(rocp_into_nb, close, window), talib.ROCP(close, window))
    shifted = pd.Series(close).shift(-window) / close - 1
    same(into(forward_return_into_nb, close, window), shifted)


@pytest.mark.parametrize(("fast", "slow", "signal"), [(12, 26, 9), (3, 10, 1), (26, 12, 5)])
def test_one_pass_macd_is_talib(fast: int, slow: int, signal: int) -> None:
    close = bars(n=5_000)["close"]
    lines = [np.empty_like(close) for _ in range(3)]
    assert macd_into_nb(close, fast, slow, signal, *lines)
    for ours, theirs in zip(lines, talib.MACD(close, fast, slow, signal), strict=True):
        same(ours, theirs)


def test_one_pass_obv_is_talib_bit_for_bit() -> None:
    b = bars()
    close = np.round(b["close"], 0)  # equal closes in a row
    np.testing.assert_array_equal(
        into(obv_into_nb, close, b["volume"]), talib.OBV(close, b["volume"])
    )


def test_short_inputs_are_all_warm_up() -> None:
    close = bars(n=10)["close"]
    assert np.isnan(into(sma_into_nb, close, 20)).all()
    assert np.isnan(into(ema_into_nb, close, 20)).all()
    assert np.isnan(into(rsi_into_nb, close, 14)).all()
    lines = [np.empty_like(close) for _ in range(3)]
    assert macd_into_nb(close, 12, 26, 9, *lines) and np.isnan(lines).all()


def test_the_hour_is_floor_division_even_at_the_edges() -> None:
    hour_ns = 3_600_000_000_000
    rng = np.random.default_rng(5)
    edges = np.arange(-50, 50, dtype=np.int64) * hour_ns
    ts = np.concatenate([edges, edges - 1, edges + 1, rng.integers(-(2**62), 2**62, 100_000)])
    out = np.empty(ts.shape[0], dtype=np.int8)
    utc_hour_into_nb(ts, out)
    np.testing.assert_array_equal(out, (ts // hour_ns) % 24)


def test_the_matrix_keeps_the_references_for_missing_values() -> None:
    b = bars()
    b["close"] = b["close"].copy()
    b["close"][300] = np.nan
    b["close"][600] = -1.0  # no log return at or after a non-positive close
    names = ["RSI", "MACD", "SMA_50", "EMA_20", "ATR", "obv", "log_returns"]
    m = feature_matrix(b, parse_features(names), 5)
    high, low, close = b["high"], b["low"], b["close"]
    np.testing.assert_array_equal(m["rsi_14"], rsi_1d_nb(close, 14))
    np.testing.assert_array_equal(m["macd_hist"], macd_1d_nb(close, 12, 26, 9)[2])
    np.testing.assert_array_equal(m["sma_50"], sma_1d_nb(close, 50))
    np.testing.assert_array_equal(m["ema_20"], ema_1d_nb(close, 20))
    np.testing.assert_array_equal(m["atr_14"], atr_1d_nb(high, low, close, 14))
    np.testing.assert_array_equal(m["obv"], obv_1d_nb(close, b["volume"]))
    same(m["log_returns"], log_returns_1d_nb(close))


def test_a_live_matrix_keeps_its_columns_while_others_are_built() -> None:
    specs = parse_features(["close", "RSI", "MACD", "BB", "volatility", "willr", "stoch"])
    first = feature_matrix(bars(seed=1), specs, 5, threads=2)
    kept = {name: column.copy() for name, column in first.items()}
    rsi = first["rsi_14"][100:200]  # a view outliving the matrix
    del first
    second = feature_matrix(bars(seed=2), specs, 5, threads=2)  # may not reuse a live block
    np.testing.assert_array_equal(rsi, kept["rsi_14"][100:200])
    del rsi
    third = feature_matrix(bars(seed=1), specs, 5)  # may reuse the first block now
    for name, column in kept.items():
        assert third[name].tobytes() == column.tobytes(), name
    assert not np.array_equal(second["rsi_14"], third["rsi_14"], equal_nan=True)


@pytest.mark.parametrize("window", [2, 20, 200, 5000])
def test_volatility_in_chunks_is_pandas(window: int) -> None:
    close = bars(n=20_000)["close"]  # several chunks, a window longer than one
    ours = np.empty_like(close)
    assert returns_std_into_nb(close, window, 1, ours)
    same(ours, pd.Series(close).pct_change().rolling(window).std())
