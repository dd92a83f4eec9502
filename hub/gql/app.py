"""The strawberry ASGI app, with a context built from the hub's lifespan state."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL

from hub import web
from hub.gql.context import Context


class HubGraphQL(GraphQL[Context, None]):
    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        state = request.state
        return Context(
            request=request,
            state=state,
            identity=getattr(state, "identity", None),
            auth_error=getattr(state, "auth_error", None),
        )

    async def render_graphql_ide(self, request: Request) -> Response:
        """Strawberry's GraphiQL page, its scripts and styles served by the hub (not a CDN)."""
        return web.html("graphiql.html")
