"""GraphQL for users: ``me``."""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from hub.auth import Role
from hub.gql.context import Context

strawberry.enum(Role)  # the domain enum, as a GraphQL enum of the same name


@strawberry.type
class Me:
    user_id: strawberry.ID
    username: str
    role: Role


@strawberry.type
class Query:
    @strawberry.field(description="The authenticated caller.")  # type: ignore[untyped-decorator]
    def me(self, info: Info[Context, None]) -> Me:
        identity = info.context.require_identity()
        return Me(
            user_id=strawberry.ID(identity.user_id), username=identity.username, role=identity.role
        )
