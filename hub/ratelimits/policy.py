"""Which limits a request is counted in, by the REST family its path belongs to.

| family | subject | limits |
|---|---|---|
| Sigma Lab (seed 001) | the user (an anonymous caller: its address, as ``free``) | the user's tier: a minute's and an hour's requests |
| Cracktrader (seed 004) | the API key (a JWT: its user; anonymous: the address) | 100 requests a minute |
| ORCA (seed 002), when ``TRADEHUB_ORCA_RATE_LIMITS`` is on | the client address | HFT 1,000 a minute, batch 100 a minute, upload 10 an hour |

Health checks are never limited. Every other route (Stage1, Executions, InfluxDB's write API,
GraphQL, the hub's own) has no per-request rate: their seeds name none, and their work is capped
by jobs, bars and connections.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from hub.auth import Identity
from hub.ratelimit import Limit
from hub.ratelimits.tiers import TIERS, Tier
from hub.settings import Settings
from rest.errors import CRACKTRADER, ORCA, SIGMALAB, Family, cracktrader_paths, family_for


class Kind(enum.StrEnum):
    SIGMALAB = "sigmalab"
    CRACKTRADER = "cracktrader"
    ORCA_HFT = "orca:hft"
    ORCA_BATCH = "orca:batch"
    ORCA_UPLOAD = "orca:upload"


FAMILIES: dict[Kind, Family] = {
    Kind.SIGMALAB: SIGMALAB,
    Kind.CRACKTRADER: CRACKTRADER,
    Kind.ORCA_HFT: ORCA,
    Kind.ORCA_BATCH: ORCA,
    Kind.ORCA_UPLOAD: ORCA,
}


# Health checks answer whoever asks, however often: a load balancer probing every second
# from one address must not be refused (nor spend a user's budget).
HEALTH_PATHS = frozenset({"/api/v1/health", "/api/v1/healthz", "/api/v1/trading/health"})


def classify(path: str) -> Kind | None:
    """The kind of limits ``path`` is counted in, or None for an unlimited route."""
    if path in HEALTH_PATHS:
        return None
    if path in cracktrader_paths():
        return Kind.CRACKTRADER
    family = family_for(path)
    if family is SIGMALAB:
        return Kind.SIGMALAB
    if family is ORCA:
        if path.startswith("/api/v1/trading/batch/"):
            return Kind.ORCA_BATCH
        if path.startswith(("/api/v1/trading/", "/api/v1/run-bot/")) or path in (
            "/api/v1/trading",
            "/api/v1/run-bot",
        ):
            return Kind.ORCA_HFT
        if path == "/api/upload-tick-data":
            return Kind.ORCA_UPLOAD
    return None  # ORCA's health, and every family without limits


@dataclass(frozen=True)
class Plan:
    """The limits one request is counted in, and the family its refusal answers in."""

    kind: Kind
    family: Family
    limits: tuple[tuple[Limit, str], ...]


def subject_of(identity: Identity | None, address: str | None) -> str:
    if identity is not None:
        return f"user:{identity.user_id}"
    return f"address:{address or 'unknown'}"


def sigmalab_limits(tier: Tier, subject: str) -> tuple[tuple[Limit, str], ...]:
    return tuple((limit, subject) for limit in TIERS[tier].request_limits(tier))


def fixed_limits(
    kind: Kind, settings: Settings, identity: Identity | None, address: str | None
) -> tuple[tuple[Limit, str], ...]:
    """The limits of a kind that does not depend on the caller's tier."""
    if kind is Kind.CRACKTRADER:
        allowed = settings.cracktrader_requests_per_minute
        if identity is not None and identity.key_id is not None:
            subject = f"key:{identity.key_id}"
        else:
            subject = subject_of(identity, address)
        return ((Limit("cracktrader:minute", allowed, 60.0), subject),) if allowed else ()
    if not settings.orca_rate_limits:
        return ()
    by_address = f"address:{address or 'unknown'}"
    allowed, window, name = {
        Kind.ORCA_HFT: (settings.orca_hft_per_minute, 60.0, "hft"),
        Kind.ORCA_BATCH: (settings.orca_batch_per_minute, 60.0, "batch"),
        Kind.ORCA_UPLOAD: (settings.orca_upload_per_hour, 3600.0, "upload"),
    }[kind]
    return ((Limit(f"orca:{name}", allowed, window), by_address),) if allowed else ()
