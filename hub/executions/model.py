"""The execution domain's vocabulary: statuses, event types, and a backtest request."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class ExecutionStatus(enum.StrEnum):
    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"
    COMPLETED = "completed"
    FAILED = "failed"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


ACTIVE = frozenset({ExecutionStatus.CREATED, ExecutionStatus.RUNNING, ExecutionStatus.PAUSED})
TERMINAL = frozenset({ExecutionStatus.STOPPED, ExecutionStatus.COMPLETED, ExecutionStatus.FAILED})


class EventType(enum.StrEnum):
    TICK_RECEIVED = "tick_received"
    STRATEGY_SIGNAL = "strategy_signal"
    TRADE_EXECUTED = "trade_executed"
    STATUS_CHANGED = "status_changed"
    ERROR_OCCURRED = "error_occurred"


class Direction(enum.StrEnum):
    LONG = "long"
    SHORT = "short"


# Simulation options a backtest may carry beside the strategy's own parameters.
OPTION_KEYS = (
    "fill",
    "fees",
    "slippage",
    "slippage_unit",
    "direction",
    "sizing",
    "size",
    "stop_loss",
    "take_profit",
    "stop_unit",
    "max_bars",
    "allowed_hours",
)


@dataclass
class BacktestRequest:
    """A backtest as every interface asks for one. Errors about it name these fields
    (``strategy``, ``params``, ``symbols``, ``timeframe``, ``start``, ``end``,
    ``initial_capital``, ``options``); each interface maps them to its own words."""

    strategy: str
    params: dict[str, Any]
    symbols: list[str]
    timeframe: str
    start: datetime | None = None
    end: datetime | None = None
    initial_capital: float = 10_000.0
    exchange: str = ""
    options: dict[str, Any] = field(default_factory=dict)


# What a live run may carry beside its strategy's parameters: how it sizes and which sides it
# trades (fees and slippage are the account's), and whether stopping it closes its position.
LIVE_OPTION_KEYS = ("direction", "sizing", "size", "close_on_stop")


@dataclass
class LiveRequest:
    """A live paper run as every interface asks for one. Errors name these fields
    (``strategy``, ``params``, ``symbol``, ``timeframe``, ``account_id``, ``initial_capital``,
    ``options``)."""

    strategy: str
    params: dict[str, Any]
    symbol: str
    timeframe: str
    account_id: str
    initial_capital: float | None = None  # None: the account's cash when the run starts
    exchange: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    mode: str = "paper"
    exchange_secret: bytes | None = None  # already encrypted
