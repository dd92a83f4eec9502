"""Every Redis key and channel name tradehub uses, in one place (as arq's ``constants.py``).

All of them start with the configured prefix (``TRADEHUB_REDIS_PREFIX``, default ``th:``), so
several hubs or test runs can share one Redis without seeing each other's data.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    prefix: str = "th:"

    # -- jobs and workers -------------------------------------------------------------
    @property
    def queue(self) -> str:
        """The arq queue (a sorted set) the workers poll."""
        return f"{self.prefix}arq:queue"

    @property
    def worker_health(self) -> str:
        return f"{self.prefix}arq:health"

    # -- the bus ----------------------------------------------------------------------
    def topic_channel(self, topic: str) -> str:
        """Pub/sub channel on which a topic's live events are published."""
        return f"{self.prefix}bus:{topic}"

    def topic_sequence(self, topic: str) -> str:
        """Hash of a recent topic's last assigned sequence and its epoch."""
        return f"{self.prefix}seq:{topic}"

    def topic_history(self, topic: str) -> str:
        """Stream holding a recent topic's bounded history."""
        return f"{self.prefix}hist:{topic}"

    def topic_state(self, topic: str) -> str:
        """Hash of a state topic kept in Redis (``bars:{symbol}:{timeframe}``): its last
        sequence and current document."""
        return f"{self.prefix}state:{topic}"

    # -- bars from ticks --------------------------------------------------------------
    @property
    def bars_wanted(self) -> str:
        """Sorted set of the ``symbol|timeframe`` pairs somebody wants bars of, scored by when
        that wish expires (epoch seconds)."""
        return f"{self.prefix}bars:wanted"

    def bars_lease(self, symbol: str) -> str:
        """Who builds ``symbol``'s bars now: one hub process at a time (a lease)."""
        return f"{self.prefix}lease:bars:{symbol}"

    # -- caches -----------------------------------------------------------------------
    def orca_cache(self, user_id: str, part: str, scope: str) -> str:
        """ORCA's cached answer of one part (``accounts``, ``positions``, ``orders``,
        ``balances``) for one user and one filter (``scope``: a digest of it)."""
        return f"{self.prefix}orca:{user_id}:{part}:{scope}"

    # -- limits -----------------------------------------------------------------------
    def matcher_lease(self, symbol: str) -> str:
        """Who matches ``symbol``'s orders now: one hub process at a time (a lease)."""
        return f"{self.prefix}lease:matcher:{symbol}"

    def live_lease(self, execution_id: int) -> str:
        """Which worker runs live execution ``execution_id`` now (a lease, renewed as its
        heartbeat)."""
        return f"{self.prefix}lease:live:{execution_id}"

    def rate_limit(self, scope: str, subject: str) -> str:
        """Counter of one subject's hits in the current window of a rate limit."""
        return f"{self.prefix}rl:{scope}:{subject}"

    def slots(self, scope: str, subject: str) -> str:
        """Sorted set of the slots one subject holds at once (``backtests``: its running
        backtests), each member an owner's token scored by when it lapses (epoch ms)."""
        return f"{self.prefix}slots:{scope}:{subject}"
