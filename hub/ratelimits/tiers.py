"""Sigma Lab's rate-limit tiers (seed 001): requests a minute and an hour, and backtests at once.

| tier | requests/minute | requests/hour | concurrent backtests |
|---|---|---|---|
| free | 60 | 1,000 | 1 |
| basic | 300 | 10,000 | 5 |
| pro | 1,000 | 50,000 | 20 |
| enterprise | unlimited | unlimited | unlimited |
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from hub.ratelimit import Limit


class Tier(enum.StrEnum):
    FREE = "free"
    BASIC = "basic"
    PRO = "pro"
    ENTERPRISE = "enterprise"


@dataclass(frozen=True)
class TierLimits:
    per_minute: int | None  # None: unlimited
    per_hour: int | None
    concurrent_backtests: int | None

    def request_limits(self, tier: Tier) -> tuple[Limit, ...]:
        """The windows a request is counted in (one counter per tier and window, so a user
        moved to another tier starts fresh windows)."""
        windows = ((self.per_minute, 60.0, "minute"), (self.per_hour, 3600.0, "hour"))
        return tuple(
            Limit(f"sigmalab:{tier.value}:{name}", allowed, seconds)
            for allowed, seconds, name in windows
            if allowed is not None
        )

    def as_dict(self) -> dict[str, int | None]:
        return {
            "requests_per_minute": self.per_minute,
            "requests_per_hour": self.per_hour,
            "concurrent_backtests": self.concurrent_backtests,
        }


TIERS: dict[Tier, TierLimits] = {
    Tier.FREE: TierLimits(60, 1_000, 1),
    Tier.BASIC: TierLimits(300, 10_000, 5),
    Tier.PRO: TierLimits(1_000, 50_000, 20),
    Tier.ENTERPRISE: TierLimits(None, None, None),
}


def parse_tier(raw: object) -> Tier:
    """A tier name, or ValueError naming the tiers."""
    try:
        return Tier(raw) if isinstance(raw, str) else Tier(str(raw))
    except ValueError:
        names = ", ".join(t.value for t in Tier)
        raise ValueError(f"tier must be one of {names}; got {str(raw)[:40]!r}") from None
