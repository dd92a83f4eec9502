"""What a model's prediction on a closed bar means, apart from I/O.

A trained model predicts ``p``, the probability that its ticker's forward return over the
model's horizon is positive (hub/research/training.py). On each closed bar of its ticker:

- ``p >= entry`` emits a BUY, ``p <= exit`` a SELL (``confidence`` is ``p`` or ``1 - p``), on
  a bar whose UTC hour is allowed, unless the model's active signal already says the same;
- a model holds at most one active signal: a signal the other way cancels it;
- an active signal that has lived ``horizon`` bars is ``filled``: its ``realized_return`` is the
  ticker's return from its price to that bar's close, signed by its action (a SELL that saw the
  price fall gained). A cancelled signal is measured the same way up to the bar that cancelled it.

``expected_return`` is the prediction in return terms: ``(2p - 1)`` times the mean absolute
forward return over the horizon on the bars the model just read (what a move of that horizon
is worth lately), positive for a rise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# What a signal is sized at, by the model's risk profile: this notional at the bar's close.
NOTIONAL = {"Conservative": 10_000.0, "Balanced": 25_000.0, "Aggressive": 50_000.0}
SECONDS_PER_YEAR = 365 * 86_400


@dataclass
class Active:
    """A model's active signal, as the evaluator carries it from bar to bar."""

    doc: dict[str, Any]  # the signal as emitted (hub.signals.documents.signal_document)
    bar_ts: int  # ns, the start of the bar it was emitted on
    age: int = 0  # bars closed since

    @property
    def action(self) -> str:
        return str(self.doc["action"])

    @property
    def price(self) -> float:
        return float(self.doc["price"])


@dataclass(frozen=True)
class Rules:
    entry: float
    exit: float
    horizon: int
    allowed_hours: frozenset[int] | None
    risk_profile: str


@dataclass
class Outcome:
    """What one pass over new bars decided, in bar order: ``("ended", signal, status,
    realized_return)`` for an active signal that ended and ``("emitted", signal)`` for a new
    one (at one bar, what ended comes first); ``active`` is the model's active signal after."""

    steps: list[tuple[Any, ...]] = field(default_factory=list)
    active: Active | None = None

    @property
    def emitted(self) -> list[dict[str, Any]]:
        return [step[1] for step in self.steps if step[0] == "emitted"]


def quantity(price: float, risk_profile: str) -> float:
    """Whole units when the notional buys one or more, else the fraction (six decimals)."""
    if not (price > 0 and math.isfinite(price)):
        return 0.0
    units = NOTIONAL.get(risk_profile, NOTIONAL["Balanced"]) / price
    return float(math.floor(units)) if units >= 1 else math.floor(units * 1e6) / 1e6


def typical_move(close: np.ndarray, horizon: int) -> float:
    """Mean absolute return over ``horizon`` bars across ``close`` (0 when too short)."""
    if close.size <= horizon:
        return 0.0
    moves = np.abs(close[horizon:] / close[:-horizon] - 1.0)
    moves = moves[np.isfinite(moves)]
    return float(moves.mean()) if moves.size else 0.0


def signed_return(action: str, entry_price: float, price: float) -> float:
    change = price / entry_price - 1.0
    return change if action == "BUY" else -change


def judge(
    rules: Rules,
    ts: np.ndarray,
    close: np.ndarray,
    hours: np.ndarray,
    p: np.ndarray,
    first: int,
    active: Active | None,
    move: float,
    make: Any,
) -> Outcome:
    """Walk bars ``first..`` of the window (``ts`` ns starts, ``close``, UTC ``hours``, the
    predictions ``p``) in order; ``make(fields)`` turns a new signal's fields into its
    document (its id, model, ticker and time added)."""
    out = Outcome(active=active)
    for i in range(first, ts.size):
        held = out.active
        if held is not None:
            held.age += 1
            if held.age >= rules.horizon:
                realized = signed_return(held.action, held.price, float(close[i]))
                out.steps.append(("ended", held.doc, "filled", realized))
                out.active = held = None
        prob = float(p[i])
        if not math.isfinite(prob):
            continue
        if rules.allowed_hours is not None and int(hours[i]) not in rules.allowed_hours:
            continue
        action = "BUY" if prob >= rules.entry else "SELL" if prob <= rules.exit else None
        if action is None or (held is not None and held.action == action):
            continue
        price = float(close[i])
        if held is not None:  # the other way: the new view cancels the old one
            realized = signed_return(held.action, held.price, price)
            out.steps.append(("ended", held.doc, "cancelled", realized))
        doc = make(
            {
                "action": action,
                "quantity": quantity(price, rules.risk_profile),
                "price": price,
                "bar_ts": int(ts[i]),
                "confidence": prob if action == "BUY" else 1.0 - prob,
                "expected_return": (2.0 * prob - 1.0) * move,
            }
        )
        out.steps.append(("emitted", doc))
        out.active = Active(doc, int(ts[i]))
    return out


def live_metrics(
    count: int, resolved: int, wins: int, mean: float | None, std: float | None, period_ns: int
) -> dict[str, Any]:
    """The signals leaderboard's metrics: ``success_rate`` and ``avg_return`` over the signals
    that ended (filled or cancelled), ``sharpe_live`` their mean over their standard deviation,
    annualized by how many horizons fit in a year (``period_ns``: the horizon's length)."""
    sharpe = None
    if resolved >= 2 and mean is not None and std is not None and std > 0 and period_ns > 0:
        sharpe = mean / std * math.sqrt(SECONDS_PER_YEAR * 1e9 / period_ns)
    return {
        "total_signals": count,
        "resolved_signals": resolved,
        "success_rate": wins / resolved if resolved else None,
        "avg_return": mean if resolved else None,
        "sharpe_live": sharpe,
    }
