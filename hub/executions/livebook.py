"""A live run's book-keeping: its own holding, how it sizes an entry, and its options.

Kept apart from the run's state machine (:mod:`hub.executions.live`): these are the rules a run
shares with the bar simulator (vectorbt's sizing), not how it reads ticks or writes its streams.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from engine.simulate import Sizing
from hub.auth import Identity, Role
from hub.executions.documents import EXIT_REASONS

_DIRECTIONS = ("long", "short", "both")
_SIZINGS = ("cash", "units", "notional")
REASON_CODES = {name: code for code, name in EXIT_REASONS.items()}


@dataclass
class Holding:
    """The run's own position (an account may hold other runs' and bots' positions too)."""

    units: float = 0.0  # signed
    entry_index: int = -1
    entry_ts: int = 0
    entry_price: float = 0.0
    entry_fees: float = 0.0

    @property
    def side(self) -> int:
        return 0 if self.units == 0.0 else (1 if self.units > 0 else -1)


@dataclass
class Sizer:
    """How many units an entry takes: the simulator's ``_entry_units_nb`` with the account's fee."""

    sizing: int
    size: float
    fee_rate: float

    def units(self, side: int, quote_price: float, px: float, cash: float) -> float:
        if px <= 0.0:
            return 0.0
        if self.sizing == Sizing.Cash:
            limit = cash * self.size
            return limit / (1.0 + self.fee_rate) / px if limit > 0.0 else 0.0
        units = self.size if self.sizing == Sizing.Units else self.size / quote_price
        if side > 0 and units * px * (1.0 + self.fee_rate) > cash:
            return cash / (1.0 + self.fee_rate) / px if cash > 0.0 else 0.0
        return units


def live_options(options: dict[str, Any]) -> tuple[int, Sizer, bool]:
    """(direction code, sizer without its fee, close_on_stop), ValueError naming what is wrong."""
    direction = options.get("direction", "long")
    if direction not in _DIRECTIONS:
        raise ValueError(f"direction must be one of {_DIRECTIONS}, got {direction!r}")
    sizing = options.get("sizing", "cash")
    if sizing not in _SIZINGS:
        raise ValueError(f"sizing must be one of {_SIZINGS}, got {sizing!r}")
    size = options.get("size", 1.0)
    if isinstance(size, bool) or not isinstance(size, int | float) or not math.isfinite(size):
        raise ValueError(f"size must be a finite number, got {size!r}")
    if size <= 0 or (sizing == "cash" and size > 1.0):
        raise ValueError(f"size must be > 0 (and <= 1 for sizing='cash'), got {size!r}")
    close = options.get("close_on_stop", True)
    if not isinstance(close, bool):
        raise ValueError(f"close_on_stop must be true or false, got {close!r}")  # noqa: TRY004
    return _DIRECTIONS.index(direction), Sizer(_SIZINGS.index(sizing), float(size), 0.0), close


def owner_identity(row: Any) -> Identity:
    """The run acts for its owner (a user role: the account must be theirs)."""
    return Identity(str(row["owner_id"]), "", Role.USER)
