"""Rate limits: Sigma Lab's tiers per user, Cracktrader's per API key, ORCA's per address, and
the concurrent-backtest slots of a tier. The counting is ``hub/ratelimit.py``; the middleware
that applies it to every request is ``hub/middleware.py``'s :class:`RateLimitMiddleware`.

Other domains use the service: ``resources.service("ratelimits").acquire_backtest(...)``.
"""

from __future__ import annotations

from hub.domains import Domain
from hub.ratelimits.service import RateLimits

domain = Domain(name="ratelimits", service=RateLimits)
