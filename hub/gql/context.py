"""The typed context every resolver receives as ``info.context``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.websockets import WebSocket

from hub.auth import Identity
from hub.errors import Forbidden, Unauthorized

if TYPE_CHECKING:
    from hub.settings import Settings


@dataclass
class Context:
    request: Request | WebSocket
    state: Any  # the app's lifespan state (pool, redis, bus, services...)
    identity: Identity | None
    auth_error: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def settings(self) -> Settings:
        return self.state.settings  # type: ignore[no-any-return]

    def require_identity(self) -> Identity:
        if self.identity is None:
            raise Unauthorized(self.auth_error or "authentication required")
        if self.identity.expired():
            raise Unauthorized("token expired")
        return self.identity

    def require_admin(self) -> Identity:
        identity = self.require_identity()
        if not identity.is_admin:
            raise Forbidden("admin role required")
        return identity
