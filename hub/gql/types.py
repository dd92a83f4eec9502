"""GraphQL types of the hub itself (not of a domain)."""

from __future__ import annotations

import enum

import strawberry


@strawberry.enum
class HealthStatus(enum.Enum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"


@strawberry.type
class Health:
    status: HealthStatus
    postgres: bool
    redis: bool
    uptime_seconds: int
