"""Synthetic OHLCV bars: geometric Brownian motion from a seed, generated in resumable chunks.

The random stream is consumed in a fixed order (four normals per bar, row by row), so any
chunking of the same series gives the same bars.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

NS_PER_YEAR = 365.25 * 24 * 3600 * 1e9


class GbmState(NamedTuple):
    """Where a chunked generation stands: the next bar index and the last close."""

    next_bar: int
    last_close: float


def gbm_rng(seed: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(seed))


def gbm_ohlcv_chunk(
    rng: np.random.Generator,
    state: GbmState,
    n: int,
    *,
    start_ns: int,
    step_ns: int,
    drift: float,
    volatility: float,
) -> tuple[dict[str, np.ndarray], GbmState]:
    """The next ``n`` bars after ``state``. Open is the previous close; high and low wrap both."""
    dt = step_ns / NS_PER_YEAR
    draws = rng.standard_normal((n, 4))
    log_returns = (drift - 0.5 * volatility**2) * dt + volatility * np.sqrt(dt) * draws[:, 0]
    close = state.last_close * np.exp(np.cumsum(log_returns))
    open_ = np.empty(n)
    if n:
        open_[0] = state.last_close
        open_[1:] = close[:-1]
    wick = volatility * np.sqrt(dt) * 0.5
    high = np.maximum(open_, close) * np.exp(np.abs(draws[:, 1]) * wick)
    low = np.minimum(open_, close) * np.exp(-np.abs(draws[:, 2]) * wick)
    volume = np.exp(8.0 + 0.5 * draws[:, 3])
    ts = start_ns + (state.next_bar + np.arange(n, dtype=np.int64)) * step_ns
    bars = {"ts": ts, "open": open_, "high": high, "low": low, "close": close, "volume": volume}
    next_close = float(close[-1]) if n else state.last_close
    return bars, GbmState(state.next_bar + n, next_close)
