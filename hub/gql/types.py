"""GraphQL types shared across domains."""

from __future__ import annotations

import enum
from datetime import datetime

import strawberry


def parse_time(value: str | None) -> datetime | None:
    """An ISO 8601 time from a stream document (``Z`` included), or None."""
    return None if value is None else datetime.fromisoformat(value)


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
