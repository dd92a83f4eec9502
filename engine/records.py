"""Record layouts and result containers shared by every simulator.

Enums are int-coded NamedTuples (as vectorbt's ``portfolio/enums.py``) so kernels can use them
as compile-time constants; records are aligned structured dtypes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np


class DirectionT(NamedTuple):
    Long: int = 0
    Short: int = 1


Direction = DirectionT()


class TradeStatusT(NamedTuple):
    Open: int = 0
    Closed: int = 1


TradeStatus = TradeStatusT()


class ExitReasonT(NamedTuple):
    NoExit: int = 0  # still open at the last bar
    Signal: int = 1
    StopLoss: int = 2
    TakeProfit: int = 3
    MaxBars: int = 4
    Hours: int = 5
    Stopped: int = 6  # a live run closed its position when it was stopped


ExitReason = ExitReasonT()


class EventKindT(NamedTuple):
    Entry: int = 0
    ScaleIn: int = 1
    Exit: int = 2
    Signal: int = 3


EventKind = EventKindT()

trade_dt = np.dtype(
    [
        ("id", np.int64),
        ("entry_index", np.int64),
        ("exit_index", np.int64),  # -1 while open
        ("entry_ts", np.int64),  # ns
        ("exit_ts", np.int64),  # ns; the last bar's ts for an open trade
        ("entry_price", np.float64),
        ("exit_price", np.float64),  # last close for an open trade
        ("units", np.float64),
        ("direction", np.int8),  # Direction
        ("status", np.int8),  # TradeStatus
        ("exit_reason", np.int8),  # ExitReason
        ("layer", np.int32),  # 0 unless a layered strategy scaled in
        ("pnl", np.float64),  # net of fees
        ("return", np.float64),  # pnl / entry notional
        ("fees", np.float64),  # entry plus exit fees
    ],
    align=True,
)

event_dt = np.dtype(
    [
        ("bar_index", np.int64),
        ("ts", np.int64),
        ("kind", np.int8),  # EventKind
        ("direction", np.int8),
        ("price", np.float64),
        ("units", np.float64),
        ("layer", np.int32),
        ("retracement_count", np.int32),
    ],
    align=True,
)


class PerBar:
    """A per-bar curve of a ``BacktestResult``, given as the array or as a function of no
    arguments that makes it: called on first access, its array kept. A simulator whose
    callers seldom want a curve (the bar simulator's cash and position) leaves it to them."""

    def __set_name__(self, owner: type, name: str) -> None:
        self._slot = f"_{name}"

    def __get__(self, obj: object, owner: type | None = None) -> np.ndarray:
        if obj is None:
            raise AttributeError(self._slot[1:])  # a required field, without a default
        value = obj.__dict__[self._slot]
        if not isinstance(value, np.ndarray):
            value = value()
            obj.__dict__[self._slot] = value
        array: np.ndarray = value
        return array

    def __set__(self, obj: object, value: np.ndarray | Callable[[], np.ndarray]) -> None:
        obj.__dict__[self._slot] = value


@dataclass(frozen=True, kw_only=True)
class BacktestResult:
    """What every simulator returns: per-trade records, per-bar curves, and metrics. Built by
    keyword: ``cash`` and ``position`` (``PerBar``) may be functions that make them."""

    trades: np.ndarray  # trade_dt
    equity: np.ndarray  # float64, one per bar
    cash: PerBar = PerBar()  # float64, one per bar
    position: PerBar = PerBar()  # float64 signed units, one per bar
    metrics: dict[str, float]
    events: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=event_dt))
    extras: dict[str, Any] = field(default_factory=dict)
