"""GraphQL types shared across domains."""

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


@strawberry.enum
class Role(enum.Enum):
    USER = "user"
    ADMIN = "admin"


@strawberry.type
class Me:
    user_id: strawberry.ID
    username: str
    role: Role
