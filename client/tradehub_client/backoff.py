"""How long to wait before the next reconnect: exponential, bounded, with jitter."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """``initial * factor**attempt`` seconds, capped at ``maximum``, of which a random half is
    waited ("equal jitter": a fleet of bots that lost one hub does not come back in step).
    ``retries`` bounds the consecutive failed attempts (None: keep trying)."""

    initial: float = 0.1
    maximum: float = 5.0
    factor: float = 2.0
    retries: int | None = None

    def __post_init__(self) -> None:
        if not 0 < self.initial <= self.maximum:
            raise ValueError(
                f"backoff needs 0 < initial <= maximum, got {self.initial} and {self.maximum}"
            )
        if self.factor < 1:
            raise ValueError(f"backoff factor must be at least 1, got {self.factor}")

    def delay(self, attempt: int) -> float:
        cap = min(self.maximum, self.initial * self.factor ** min(attempt, 64))
        return cap / 2 + random.uniform(0, cap / 2)

    def exhausted(self, attempt: int) -> bool:
        return self.retries is not None and attempt >= self.retries
