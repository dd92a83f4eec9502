"""Netting: one position per account and symbol, a signed quantity at an average price.

A fill in the position's direction (or into a flat position) moves the average price; a fill
against it realizes ``closed * (fill price - average) * sign(position)`` and leaves the average
alone; a fill through zero realizes the closed part and opens the rest at the fill price.
Fees are not part of realized P&L: they come off cash and are counted in ``fees_paid``.
"""

from __future__ import annotations

from dataclasses import dataclass

# Quantities closer to zero than this are zero (float sums of partial fills).
EPSILON = 1e-9


@dataclass(frozen=True, slots=True)
class Position:
    quantity: float = 0.0
    average_price: float = 0.0
    realized_pnl: float = 0.0

    def unrealized(self, mark: float | None) -> float:
        if mark is None or self.quantity == 0:
            return 0.0
        return self.quantity * (mark - self.average_price)


def apply_fill(position: Position, signed_quantity: float, price: float) -> tuple[Position, float]:
    """The position after a fill of ``signed_quantity`` (negative: sold) at ``price``, and the
    P&L that fill realized."""
    held = position.quantity
    after = held + signed_quantity
    if abs(after) < EPSILON:
        after = 0.0
    if held == 0 or (held > 0) == (signed_quantity > 0):
        average = (abs(held) * position.average_price + abs(signed_quantity) * price) / abs(after)
        return Position(after, average, position.realized_pnl), 0.0
    closed = min(abs(signed_quantity), abs(held))
    realized = closed * (price - position.average_price) * (1 if held > 0 else -1)
    if after == 0:
        average = 0.0
    elif (after > 0) == (held > 0):
        average = position.average_price
    else:
        average = price  # went through zero: the rest is a new position at this fill's price
    return Position(after, average, position.realized_pnl + realized), realized
