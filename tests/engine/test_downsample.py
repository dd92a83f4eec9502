"""Downsampling against tsdownsample and a reference LTTB; resampling against pandas."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tsdownsample import LTTBDownsampler, MinMaxDownsampler

from engine import downsample as ds

T0 = 1_700_000_000 * 10**9


def reference_lttb(x: np.ndarray, y: np.ndarray, n_out: int) -> np.ndarray:
    """Sveinn Steinarsson's published LTTB (flot-downsample), transcribed to Python floats."""
    n = len(x)
    if n_out >= n:
        return np.arange(n)
    every = (n - 2) / (n_out - 2)
    a = 0
    kept = [0]
    for i in range(n_out - 2):
        avg_start = int((i + 1) * every) + 1
        avg_end = min(int((i + 2) * every) + 1, n)
        avg_x = sum(float(v) for v in x[avg_start:avg_end]) / (avg_end - avg_start)
        avg_y = sum(float(v) for v in y[avg_start:avg_end]) / (avg_end - avg_start)
        ax, ay = float(x[a]), float(y[a])
        max_area = -1.0
        chosen = a
        for j in range(int(i * every) + 1, int((i + 1) * every) + 1):
            area = abs((ax - avg_x) * (float(y[j]) - ay) - (ax - float(x[j])) * (avg_y - ay)) * 0.5
            if area > max_area:
                max_area = area
                chosen = j
        kept.append(chosen)
        a = chosen
    kept.append(n - 1)
    return np.asarray(kept)


def ts_lttb(x: np.ndarray, y: np.ndarray, n_out: int) -> np.ndarray:
    kept = LTTBDownsampler().downsample(x, y, n_out=n_out)  # type: ignore[no-untyped-call]
    return np.asarray(kept, dtype=np.int64)


def ts_minmax(y: np.ndarray, n_out: int) -> np.ndarray:
    kept = MinMaxDownsampler().downsample(y, n_out=n_out)  # type: ignore[no-untyped-call]
    return np.asarray(kept, dtype=np.int64)


def walk(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = T0 + np.cumsum(rng.integers(1, 2 * 10**9, n)).astype(np.int64)
    return x, 100.0 + np.cumsum(rng.normal(0.0, 1.0, n))


# ---------------------------------------------------------------------------------------------
# LTTB


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize(("n", "n_out"), [(10, 3), (1_000, 37), (5_003, 500), (20_000, 1_999)])
def test_lttb_equals_tsdownsample(seed: int, n: int, n_out: int) -> None:
    x, y = walk(seed, n)
    expected = ts_lttb(x, y, n_out)
    out = ds.lttb(x, y, n_out)
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(
        ds.lttb(x.astype(np.float64), y, n_out), ts_lttb(x.astype(np.float64), y, n_out)
    )


@pytest.mark.parametrize("seed", range(4))
def test_lttb_with_ties_equals_tsdownsample_and_reference(seed: int) -> None:
    # Buckets of exactly 4 points over small integers: every mean and area is exact in both
    # formulas, so ties are real and both must keep the first point of a tie.
    rng = np.random.default_rng(seed)
    n_out = 250
    n = 4 * (n_out - 2) + 2
    x = np.arange(n, dtype=np.int64)
    for y in (
        rng.integers(0, 3, n).astype(np.float64),
        np.full(n, 7.0),
        np.repeat(rng.integers(-2, 3, n // 8 + 1), 8)[:n].astype(np.float64),
    ):
        out = ds.lttb(x, y, n_out)
        np.testing.assert_array_equal(out, ts_lttb(x, y, n_out))
        np.testing.assert_array_equal(out, reference_lttb(x, y, n_out))


@pytest.mark.parametrize("seed", range(4))
def test_lttb_equals_reference_on_evenly_spaced_x(seed: int) -> None:
    # tsdownsample takes the next bucket's x midpoint where the reference averages its x: on
    # evenly spaced x they are the same number.
    _, y = walk(seed, 3_000)
    x = np.arange(3_000, dtype=np.int64) * 60
    for n_out in (3, 4, 100, 999):
        np.testing.assert_array_equal(ds.lttb(x, y, n_out), reference_lttb(x, y, n_out))


@given(
    st.integers(100, 1_500),
    st.integers(34, 200),
    st.integers(2, 9),
    st.integers(0, 2**32 - 1),
    st.sampled_from(["walk", "ties", "noise", "spikes"]),
)
@settings(max_examples=60, deadline=None)
def test_lttb_parallel_chunks_are_exact(
    n: int, n_out: int, chunks: int, seed: int, kind: str
) -> None:
    # Speculative chunks start from a guessed point; whatever the guess, the result is exact.
    rng = np.random.default_rng(seed)
    x = np.cumsum(rng.integers(0, 3, n)).astype(np.int64)
    y = {
        "walk": np.cumsum(rng.normal(size=n)),
        "ties": rng.integers(0, 2, n).astype(np.float64),
        "noise": rng.normal(size=n),
        "spikes": np.where(rng.random(n) < 0.02, 50.0, 0.0) + rng.normal(size=n) * 1e-3,
    }[kind]
    expected = ts_lttb(x, y, n_out)
    np.testing.assert_array_equal(ds.lttb_nb(x, y, n_out, chunks), expected)
    np.testing.assert_array_equal(ds.lttb_nb(x, y, n_out, 1), expected)


def test_lttb_large_input_takes_the_parallel_path() -> None:
    x, y = walk(11, 600_000)
    np.testing.assert_array_equal(ds.lttb(x, y, 2_000), ts_lttb(x, y, 2_000))


def test_lttb_edges() -> None:
    x, y = walk(0, 50)
    np.testing.assert_array_equal(ds.lttb(x, y, 50), np.arange(50))
    np.testing.assert_array_equal(ds.lttb(x, y, 500), np.arange(50))
    assert ds.lttb(np.array([], dtype=np.int64), np.array([]), 3).shape == (0,)
    np.testing.assert_array_equal(ds.lttb(x[:3], y[:3], 3), [0, 1, 2])
    out = ds.lttb(x, y, 3)
    assert out[0] == 0 and out[-1] == 49 and len(out) == 3
    # datetime64 x is taken as its int64 nanoseconds
    np.testing.assert_array_equal(ds.lttb(x.astype("datetime64[ns]"), y, 10), ds.lttb(x, y, 10))
    # a NaN y wins its bucket, as in tsdownsample (which compares the areas' bits)
    y_nan = y.copy()
    y_nan[[7, 30]] = np.nan
    np.testing.assert_array_equal(ds.lttb(x, y_nan, 10), ts_lttb(x, y_nan, 10))


# ---------------------------------------------------------------------------------------------
# Min-max


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(("n", "n_out"), [(10, 4), (1_000, 36), (5_003, 500), (20_000, 2_000)])
def test_minmax_equals_tsdownsample(seed: int, n: int, n_out: int) -> None:
    x, y = walk(seed, n)
    out = ds.minmax(x, y, n_out)
    assert out.dtype == np.int64
    assert np.all(np.diff(out) >= 0)
    np.testing.assert_array_equal(out, ts_minmax(y, n_out))
    np.testing.assert_array_equal(ds.minmax(x, y, n_out, assume_sorted=True), out)


@given(
    st.integers(5, 800),
    st.integers(2, 120),
    st.integers(0, 2**32 - 1),
    st.sampled_from(["ties", "nan", "inf", "flat", "zeros"]),
)
@settings(max_examples=80, deadline=None)
def test_minmax_ties_nan_inf_equal_tsdownsample(n: int, half: int, seed: int, kind: str) -> None:
    rng = np.random.default_rng(seed)
    y = rng.integers(-2, 3, n).astype(np.float64)
    if kind == "nan":
        y[rng.random(n) < 0.3] = np.nan
    elif kind == "inf":
        y[rng.random(n) < 0.1] = np.inf
        y[rng.random(n) < 0.1] = -np.inf
    elif kind == "flat":
        y[:] = 3.5
    elif kind == "zeros":
        y = np.where(rng.random(n) < 0.5, -0.0, 0.0)
    x = np.arange(n, dtype=np.int64)
    n_out = 2 * max(half, 2)
    np.testing.assert_array_equal(ds.minmax(x, y, n_out), ts_minmax(y, n_out))


def test_minmax_all_nan_bin_and_short_input() -> None:
    y = np.array([np.nan, np.nan, np.nan, np.nan, 2.0, 2.0, 5.0, np.nan, 0.0, 0.0, np.nan, 4.0])
    x = np.arange(12)
    np.testing.assert_array_equal(ds.minmax(x, y, 6), ts_minmax(y, 6))
    np.testing.assert_array_equal(ds.minmax(x[:4], y[:4], 4), np.arange(4))
    assert ds.minmax(np.array([], dtype=np.int64), np.array([]), 4).shape == (0,)


# ---------------------------------------------------------------------------------------------
# Resampling


def pandas_ohlcv(
    ts: np.ndarray, price: np.ndarray, size: np.ndarray, bucket_ns: int, origin_ns: int
) -> dict[str, np.ndarray]:
    index = pd.to_datetime(ts)
    rule = f"{bucket_ns}ns"
    origin: Any = pd.Timestamp(origin_ns)
    bars = pd.Series(price, index=index).resample(rule, origin=origin).ohlc()
    volume = pd.Series(size, index=index).resample(rule, origin=origin).sum()
    count = pd.Series(price, index=index).resample(rule, origin=origin).count()
    keep = count.to_numpy() > 0
    return {
        "ts": bars.index.to_numpy()[keep].astype("datetime64[ns]").view(np.int64),
        "open": bars["open"].to_numpy()[keep],
        "high": bars["high"].to_numpy()[keep],
        "low": bars["low"].to_numpy()[keep],
        "close": bars["close"].to_numpy()[keep],
        "volume": volume.to_numpy()[keep],
    }


def assert_bars_equal(ours: dict[str, np.ndarray], ref: dict[str, np.ndarray]) -> None:
    assert list(ours) == ["ts", "open", "high", "low", "close", "volume"]
    assert ours["ts"].dtype == np.int64
    np.testing.assert_array_equal(ours["ts"], ref["ts"])
    for key in ("open", "high", "low", "close"):
        np.testing.assert_array_equal(ours[key], ref[key])
    np.testing.assert_allclose(ours["volume"], ref["volume"], rtol=1e-12)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("bucket_ns", [10**9, 60 * 10**9, 3_600 * 10**9])
@pytest.mark.parametrize("origin_ns", [0, 17 * 10**9])
def test_resample_ohlcv_equals_pandas(seed: int, bucket_ns: int, origin_ns: int) -> None:
    rng = np.random.default_rng(seed)
    n = 5_000
    gaps = rng.integers(0, 20 * 10**9, n)
    gaps[rng.random(n) < 0.01] += 3 * 3_600 * 10**9  # empty buckets in between
    ts = T0 + np.cumsum(gaps).astype(np.int64)
    price = 100.0 + np.round(np.cumsum(rng.normal(0.0, 0.05, n)), 2)
    size = rng.integers(1, 100, n).astype(np.float64)
    ours = ds.resample_ohlcv(ts, price, size, bucket_ns, origin_ns=origin_ns)
    assert_bars_equal(ours, pandas_ohlcv(ts, price, size, bucket_ns, origin_ns))


def test_resample_before_the_origin_and_empty() -> None:
    ts = np.array([-5, -1, 0, 3, 9, 10], dtype=np.int64) * 10**9
    price = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    bars = ds.resample_ohlcv(ts, price, np.ones(6), 10**10)
    np.testing.assert_array_equal(bars["ts"], np.array([-10, 0, 10]) * 10**9)
    np.testing.assert_array_equal(bars["open"], [1.0, 3.0, 6.0])
    np.testing.assert_array_equal(bars["close"], [2.0, 5.0, 6.0])
    np.testing.assert_array_equal(bars["volume"], [2.0, 3.0, 1.0])
    empty = ds.resample_ohlcv(np.array([], dtype=np.int64), [], [], 10**9)
    assert all(v.shape == (0,) for v in empty.values())


@pytest.mark.parametrize("seed", range(3))
def test_resample_bars_equals_pandas(seed: int) -> None:
    rng = np.random.default_rng(seed)
    minute = 60 * 10**9
    n = 3_000
    ts = T0 + np.sort(rng.choice(20_000, n, replace=False)).astype(np.int64) * minute
    close = 100.0 + np.cumsum(rng.normal(0.0, 0.1, n))
    open_ = close + rng.normal(0.0, 0.05, n)
    high = np.maximum(open_, close) + rng.random(n)
    low = np.minimum(open_, close) - rng.random(n)
    volume = rng.integers(1, 1_000, n).astype(np.float64)
    ohlcv = {"ts": ts, "open": open_, "high": high, "low": low, "close": close, "volume": volume}
    hour = 60 * minute
    ours = ds.resample_bars(ohlcv, hour)
    frame = pd.DataFrame({k: v for k, v in ohlcv.items() if k != "ts"}, index=pd.to_datetime(ts))
    agg = frame.resample(f"{hour}ns", origin="epoch").agg(
        {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
    )
    count = frame["close"].resample(f"{hour}ns", origin="epoch").count().to_numpy()
    agg = agg[count > 0]
    ref = {
        "ts": agg.index.to_numpy().astype("datetime64[ns]").view(np.int64),
        **{k: agg[k].to_numpy() for k in ("open", "high", "low", "close", "volume")},
    }
    assert_bars_equal(ours, ref)
    # Bars re-bucketed from ticks' bars equal bars made from the ticks directly.
    ticks_ts = T0 + np.sort(rng.choice(10**7, 5_000, replace=False)).astype(np.int64) * 10**7
    price = 50.0 + np.cumsum(rng.normal(0.0, 0.01, 5_000))
    size = rng.integers(1, 10, 5_000).astype(np.float64)
    direct = ds.resample_ohlcv(ticks_ts, price, size, hour)
    via_minutes = ds.resample_bars(ds.resample_ohlcv(ticks_ts, price, size, minute), hour)
    for key in ("ts", "open", "high", "low", "close"):
        np.testing.assert_array_equal(via_minutes[key], direct[key])
    np.testing.assert_allclose(via_minutes["volume"], direct["volume"], rtol=1e-12)


# ---------------------------------------------------------------------------------------------
# Bad input: a ValueError naming the argument and the offending value


def test_bad_input() -> None:
    x, y = walk(1, 100)
    unsorted = x.copy()
    unsorted[40] = unsorted[39] - 1
    with pytest.raises(ValueError, match=r"x must be sorted .*x\[40\] = "):
        ds.lttb(unsorted, y, 10)
    with pytest.raises(ValueError, match=r"x must be sorted .*x\[40\] = "):
        ds.minmax(unsorted, y, 10)
    with pytest.raises(ValueError, match=r"x must be sorted .*x\[99\] = "):
        ds.lttb(np.r_[x[:-1], x[0]], y, 500)  # also when every point is kept
    x_nan = x.astype(np.float64)
    x_nan[5] = np.nan
    with pytest.raises(ValueError, match=r"x\[5\] = nan"):
        ds.lttb(x_nan, y, 10)
    with pytest.raises(ValueError, match="same length, got 100 and 99"):
        ds.lttb(x, y[:-1], 10)
    with pytest.raises(ValueError, match="n_out must be >= 3, got 2"):
        ds.lttb(x, y, 2)
    with pytest.raises(ValueError, match="n_out must be an integer, got 10.0"):
        ds.lttb(x, y, 10.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n_out must be even, got 11"):
        ds.minmax(x, y, 11)
    with pytest.raises(ValueError, match="x must be one-dimensional"):
        ds.lttb(np.zeros((2, 2)), np.zeros(4), 3)
    ts = np.array([3, 2, 5], dtype=np.int64)
    with pytest.raises(ValueError, match=r"ts must be sorted .*ts\[1\] = "):
        ds.resample_ohlcv(ts, [1.0, 1.0, 1.0], [1.0, 1.0, 1.0], 10)
    with pytest.raises(ValueError, match=r"price must be finite and >= 0: price\[1\] = -1.0"):
        ds.resample_ohlcv(np.arange(3), [1.0, -1.0, 1.0], [1.0, 1.0, 1.0], 10)
    with pytest.raises(ValueError, match=r"size must be finite and >= 0: size\[2\] = nan"):
        ds.resample_ohlcv(np.arange(3), [1.0, 1.0, 1.0], [1.0, 1.0, np.nan], 10)
    with pytest.raises(ValueError, match="bucket_ns must be > 0, got 0"):
        ds.resample_ohlcv(np.arange(3), [1.0] * 3, [1.0] * 3, 0)
    with pytest.raises(ValueError, match=r"missing \['volume'\]"):
        ds.resample_bars(
            {
                "ts": np.arange(3),
                "open": [1.0] * 3,
                "high": [1.0] * 3,
                "low": [1.0] * 3,
                "close": [1.0] * 3,
            },
            10,
        )


def test_engine_exports() -> None:
    import engine

    assert engine.lttb is ds.lttb
    assert engine.minmax is ds.minmax
    assert engine.resample_ohlcv is ds.resample_ohlcv
