"""Backtest metrics, accumulated bar by bar so a simulation never stores what it only summarises.

A simulator folds every bar into a :class:`MetricsAcc` (``acc_bar_nb``) and every closed trade
into it (``acc_trade_nb``); :func:`metrics_vector_nb` turns the accumulator into the metrics.
The same accumulator is what a chunked run carries between chunks, so a checkpoint after any
bar is exact without keeping the equity curve. :func:`backtest_metrics` rebuilds the
accumulator from finished arrays, for simulators that do not fold as they go.

Definitions (the key names are seed 003's checkpoint fields):

* ``processed``: bars simulated.
* ``total_pnl`` = final equity - initial capital; ``realized_pnl`` = sum of closed-trade pnl
  (net of fees); ``unrealized_pnl`` = pnl of the open position marked to the last close, net of
  its entry fees (vectorbt's open-trade pnl). ``total_pnl == realized_pnl + unrealized_pnl``.
* ``total_return`` = total_pnl / initial capital, in percent (12.5 means +12.5%), as seed 003.
* ``total_trades``, ``winning_trades`` (pnl > 0), ``losing_trades`` (pnl < 0): closed trades
  only; ``win_rate`` = winning / total, in percent.
* ``max_drawdown``: the largest fall of equity from its running peak, in money;
  ``max_drawdown_pct``: the largest fall relative to that peak, in percent. The running peak
  starts at the initial capital, so a loss on the first bar is a drawdown.
* Per-bar returns ``r[i] = equity[i] / equity[i-1] - 1`` with ``equity[-1]`` the initial capital
  (vectorbt's ``returns``). Annualisation uses the observed bars per year:
  ``(bars - 1) * 365 days / (ts[last] - ts[first])``, so gaps (weekends, halts) count as time.
* ``sharpe_ratio`` = mean(r) / std(r, ddof=1) * sqrt(bars per year), risk-free 0.
* ``sortino_ratio`` = mean(r) / sqrt(mean(min(r, 0)^2)) * sqrt(bars per year).
* ``calmar_ratio`` = CAGR / (max_drawdown_pct / 100), CAGR = (final / initial)^(bars per year /
  bars) - 1.
* ``profit_factor`` = gross profit / gross loss of closed trades; ``average_win`` and
  ``average_loss`` are means over winning and losing trades, both positive amounts (seed 003
  shows the average loss as a positive number).
* ``exposure``: bars that closed with a position open, in percent of bars.

A ratio whose denominator is zero (no returns, no variance, no drawdown, no losing trade) is NaN
rather than an infinity: "undefined" is not "infinitely good".
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from engine import _cache  # noqa: F401  (before any kernel: the cache locator)
from engine.records import TradeStatus

__all__ = [
    "METRIC_KEYS",
    "MetricsAcc",
    "acc_bar_nb",
    "acc_count_bars_nb",
    "acc_deepest_nb",
    "acc_from_arrays_nb",
    "acc_held_bar_nb",
    "acc_trade_nb",
    "backtest_metrics",
    "initial_acc",
    "initial_acc_nb",
    "metrics_dict",
    "metrics_vector_nb",
]

YEAR_NS = 365 * 24 * 3600 * 1_000_000_000

METRIC_KEYS: tuple[str, ...] = (
    "processed",
    "total_return",
    "total_pnl",
    "realized_pnl",
    "unrealized_pnl",
    "total_trades",
    "winning_trades",
    "losing_trades",
    "win_rate",
    "max_drawdown",
    "max_drawdown_pct",
    "sharpe_ratio",
    "sortino_ratio",
    "calmar_ratio",
    "profit_factor",
    "average_win",
    "average_loss",
    "exposure",
)
_INT_KEYS = frozenset({"processed", "total_trades", "winning_trades", "losing_trades"})
N_METRICS = len(METRIC_KEYS)


class MetricsAcc(NamedTuple):
    """Everything the metrics need, folded bar by bar and trade by trade."""

    bars: int
    prev_equity: float  # equity after the last bar (the initial capital before the first)
    peak: float  # running peak of equity
    max_dd: float  # largest peak - equity so far, in money
    dd_num: float  # largest (peak - equity) / peak so far, kept as the fraction num / den
    dd_den: float
    ret_sum: float
    ret_sumsq: float
    neg_sumsq: float  # sum of squared negative returns
    exposed: int
    closed: int
    wins: int
    losses: int
    gross_profit: float
    gross_loss: float  # positive


@njit(cache=True, nogil=True)
def initial_acc_nb(capital: float) -> MetricsAcc:
    """Nothing folded yet: the capital is the previous equity and the peak."""
    return MetricsAcc(0, capital, capital, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0, 0, 0, 0, 0.0, 0.0)


def initial_acc(initial_capital: float) -> MetricsAcc:
    acc: MetricsAcc = initial_acc_nb(float(initial_capital))
    return acc


@njit(cache=True, nogil=True)
def acc_bar_nb(acc: MetricsAcc, equity: float, in_position: bool) -> MetricsAcc:
    """Fold one bar's closing equity; equals the pandas formulas in the module docstring.

    No division but the return's and no branch on the data: the sign of a return or a new peak
    would mispredict on every other bar of a live position. The deepest relative drawdown is
    kept as a fraction and compared by cross-multiplying.
    """
    prev = acc.prev_equity
    r = equity / prev - 1.0 if prev > 0.0 else 0.0
    down = min(r, 0.0)
    peak = max(acc.peak, equity)
    dd = peak - equity
    deeper = dd * acc.dd_den > acc.dd_num * peak and peak > 0.0
    return MetricsAcc(
        acc.bars + 1,
        equity,
        peak,
        max(acc.max_dd, dd),
        dd if deeper else acc.dd_num,
        peak if deeper else acc.dd_den,
        acc.ret_sum + r,
        acc.ret_sumsq + r * r,
        acc.neg_sumsq + down * down,
        acc.exposed + (1 if in_position else 0),
        acc.closed,
        acc.wins,
        acc.losses,
        acc.gross_profit,
        acc.gross_loss,
    )


@njit(cache=True, nogil=True)
def acc_count_bars_nb(acc: MetricsAcc, count: int) -> MetricsAcc:
    """``acc_bar_nb`` for ``count`` flat bars whose equity equals the previous one: their
    returns are exactly zero and their drawdown the previous bar's, so folding them changes
    only the bar count."""
    return MetricsAcc(
        acc.bars + count,
        acc.prev_equity,
        acc.peak,
        acc.max_dd,
        acc.dd_num,
        acc.dd_den,
        acc.ret_sum,
        acc.ret_sumsq,
        acc.neg_sumsq,
        acc.exposed,
        acc.closed,
        acc.wins,
        acc.losses,
        acc.gross_profit,
        acc.gross_loss,
    )


@njit(cache=True, nogil=True, inline="always")
def acc_held_bar_nb(acc: MetricsAcc, equity: float) -> tuple[MetricsAcc, bool]:
    """``acc_bar_nb`` of a bar with a position open, but for the deepest relative drawdown:
    returns whether this bar's is deeper, and the caller then takes it (``acc_deepest_nb``).

    It changes on few bars: a caller that branches there, out of its loop, keeps the blend of
    the fraction off the path from one bar to the next, which then holds only the return's
    division and the sums."""
    prev = acc.prev_equity
    r = equity / prev - 1.0 if prev > 0.0 else 0.0
    down = min(r, 0.0)
    peak = max(acc.peak, equity)
    dd = peak - equity
    deeper = dd * acc.dd_den > acc.dd_num * peak and peak > 0.0
    out = MetricsAcc(
        acc.bars + 1,
        equity,
        peak,
        max(acc.max_dd, dd),
        acc.dd_num,
        acc.dd_den,
        acc.ret_sum + r,
        acc.ret_sumsq + r * r,
        acc.neg_sumsq + down * down,
        acc.exposed + 1,
        acc.closed,
        acc.wins,
        acc.losses,
        acc.gross_profit,
        acc.gross_loss,
    )
    return out, deeper


@njit(cache=True, nogil=True, inline="always")
def acc_deepest_nb(acc: MetricsAcc) -> MetricsAcc:
    """The last bar folded holds the deepest relative drawdown (``acc_held_bar_nb`` said so)."""
    return MetricsAcc(
        acc.bars,
        acc.prev_equity,
        acc.peak,
        acc.max_dd,
        acc.peak - acc.prev_equity,
        acc.peak,
        acc.ret_sum,
        acc.ret_sumsq,
        acc.neg_sumsq,
        acc.exposed,
        acc.closed,
        acc.wins,
        acc.losses,
        acc.gross_profit,
        acc.gross_loss,
    )


@njit(cache=True, nogil=True)
def acc_trade_nb(acc: MetricsAcc, pnl: float) -> MetricsAcc:
    """Fold one closed trade's net pnl."""
    wins = acc.wins
    losses = acc.losses
    gp = acc.gross_profit
    gl = acc.gross_loss
    if pnl > 0.0:
        wins += 1
        gp += pnl
    elif pnl < 0.0:
        losses += 1
        gl -= pnl
    return MetricsAcc(
        acc.bars,
        acc.prev_equity,
        acc.peak,
        acc.max_dd,
        acc.dd_num,
        acc.dd_den,
        acc.ret_sum,
        acc.ret_sumsq,
        acc.neg_sumsq,
        acc.exposed,
        acc.closed + 1,
        wins,
        losses,
        gp,
        gl,
    )


@njit(cache=True, nogil=True)
def metrics_vector_nb(
    acc: MetricsAcc,
    initial_capital: float,
    ts_first: int,
    ts_last: int,
    unrealized_pnl: float,
) -> np.ndarray:
    """The metrics in ``METRIC_KEYS`` order; the formulas are the module docstring's."""
    out = np.full(N_METRICS, np.nan)
    n = acc.bars
    final = acc.prev_equity
    total_pnl = final - initial_capital
    realized = acc.gross_profit - acc.gross_loss
    out[0] = n
    out[1] = total_pnl / initial_capital * 100.0
    out[2] = total_pnl
    out[3] = realized
    out[4] = unrealized_pnl
    out[5] = acc.closed
    out[6] = acc.wins
    out[7] = acc.losses
    if acc.closed > 0:
        out[8] = acc.wins / acc.closed * 100.0
    out[9] = acc.max_dd
    dd_frac = acc.dd_num / acc.dd_den
    out[10] = dd_frac * 100.0
    span = ts_last - ts_first
    bars_per_year = (n - 1) * (YEAR_NS / span) if n >= 2 and span > 0 else np.nan
    if n >= 2:
        mean = acc.ret_sum / n
        var = (acc.ret_sumsq - acc.ret_sum * mean) / (n - 1)
        if var > 0.0:
            out[11] = mean / np.sqrt(var) * np.sqrt(bars_per_year)
        downside = np.sqrt(acc.neg_sumsq / n)
        if downside > 0.0:
            out[12] = mean / downside * np.sqrt(bars_per_year)
        if dd_frac > 0.0:
            growth = final / initial_capital
            cagr = growth ** (bars_per_year / n) - 1.0 if growth > 0.0 else -1.0
            out[13] = cagr / dd_frac
    if acc.gross_loss > 0.0:
        out[14] = acc.gross_profit / acc.gross_loss
    if acc.wins > 0:
        out[15] = acc.gross_profit / acc.wins
    if acc.losses > 0:
        out[16] = acc.gross_loss / acc.losses
    if n > 0:
        out[17] = acc.exposed / n * 100.0
    return out


def metrics_dict(vector: np.ndarray) -> dict[str, float]:
    """Name a ``metrics_vector_nb`` row; counts become ints."""
    return {
        key: int(value) if key in _INT_KEYS else float(value)
        for key, value in zip(METRIC_KEYS, vector.tolist(), strict=True)
    }


@njit(cache=True, nogil=True)
def acc_from_arrays_nb(
    acc: MetricsAcc,
    equity: np.ndarray,
    position: np.ndarray,
    trade_pnl: np.ndarray,
    trade_closed: np.ndarray,
) -> tuple[MetricsAcc, float]:
    """Fold finished arrays; returns the accumulator and the open trades' pnl."""
    for i in range(equity.shape[0]):
        acc = acc_bar_nb(acc, equity[i], position[i] != 0.0)
    unrealized = 0.0
    for k in range(trade_pnl.shape[0]):
        if trade_closed[k]:
            acc = acc_trade_nb(acc, trade_pnl[k])
        else:
            unrealized += trade_pnl[k]
    return acc, unrealized


def backtest_metrics(
    ts: np.ndarray,
    equity: np.ndarray,
    position: np.ndarray,
    trades: np.ndarray,
    initial_capital: float,
) -> dict[str, float]:
    """Metrics of a finished backtest from its arrays (any simulator's ``BacktestResult``).

    ``trades`` is a ``trade_dt`` array; open trades (status Open) count as unrealized pnl.
    Gives exactly what the bar simulator folds while it runs.
    """
    equity = np.ascontiguousarray(equity, dtype=np.float64)
    position = np.ascontiguousarray(position, dtype=np.float64)
    ts = np.ascontiguousarray(ts, dtype=np.int64)
    if not equity.shape == position.shape == ts.shape:
        raise ValueError(
            f"ts, equity and position must have one value per bar, got lengths "
            f"{ts.shape[0]}, {equity.shape[0]} and {position.shape[0]}"
        )
    pnl = np.ascontiguousarray(trades["pnl"], dtype=np.float64)
    closed = np.ascontiguousarray(trades["status"] == TradeStatus.Closed)
    acc, unrealized = acc_from_arrays_nb(
        initial_acc(initial_capital), equity, position, pnl, closed
    )
    n = ts.shape[0]
    ts_first = int(ts[0]) if n else 0
    ts_last = int(ts[-1]) if n else 0
    vector = metrics_vector_nb(acc, float(initial_capital), ts_first, ts_last, unrealized)
    return metrics_dict(vector)
