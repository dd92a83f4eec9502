"""GraphQL over HTTP: ``POST /graphql`` checked at the edge, run, and answered off the loop.

The body is read under the same limit as REST (``TRADEHUB_MAX_BODY_BYTES``) and must be one JSON
object with a ``query`` string, object ``variables`` (no deeper than ``MAX_VARIABLE_DEPTH``, no
NUL characters) and an optional ``operationName``; anything else is a 400 in GraphQL's error
format. A large answer is encoded a slice at a time, and one over ``TRADEHUB_GRAPHQL_MAX_RESPONSE_BYTES``
is replaced by an error. ``GET /graphql`` serves GraphiQL (strawberry's view), not operations.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import strawberry
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import ASGIApp, Receive, Scope, Send
from strawberry.schema.exceptions import InvalidOperationTypeError
from strawberry.types.graphql import OperationType

from hub.errors import HubError
from hub.gql.context import Context
from hub.gql.cost import COST_KEY
from hub.gql.errors import format_error
from hub.gql.paced import encode
from hub.http import check_json, read_json
from hub.settings import Settings

# Answers costing more rows than this are encoded a slice at a time, the loop free in between.
ENCODE_IN_SLICES_ROWS = 2_000
MAX_VARIABLE_DEPTH = 32
HTTP_OPERATIONS = {OperationType.QUERY, OperationType.MUTATION}


def _error_body(message: str, code: str, **extensions: Any) -> bytes:
    return orjson.dumps(
        {"data": None, "errors": [{"message": message, "extensions": {"code": code, **extensions}}]}
    )


async def _iterate(parts: list[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def _json(body: bytes, status_code: int = 200) -> Response:
    return Response(body, status_code=status_code, media_type="application/json")


class GraphQLEndpoint:
    """The ASGI app behind ``Route("/graphql")``: POST here, GET to GraphiQL."""

    def __init__(self, schema: strawberry.Schema, graphiql: ASGIApp, settings: Settings) -> None:
        self.schema = schema
        self.graphiql = graphiql
        self.max_body_bytes = settings.max_body_bytes
        self.max_response_bytes = settings.graphql_max_response_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("method") != "POST":
            await self.graphiql(scope, receive, send)
            return
        request = Request(scope, receive)
        response = await self.post(request)
        await response(scope, receive, send)

    async def post(self, request: Request) -> Response:
        try:
            query, variables, operation_name = await self._read(request)
        except HubError as exc:
            code = "PAYLOAD_TOO_LARGE" if exc.status_code == 413 else "BAD_REQUEST"
            return _json(_error_body(exc.message, code, **exc.details), exc.status_code)
        state = request.state
        context = Context(
            request=request,
            state=state,
            identity=getattr(state, "identity", None),
            auth_error=getattr(state, "auth_error", None),
        )
        try:
            result = await self.schema.execute(
                query,
                variable_values=variables,
                context_value=context,
                operation_name=operation_name,
                allowed_operation_types=HTTP_OPERATIONS,
            )
        except InvalidOperationTypeError:
            message = "subscriptions are served over WebSocket at /graphql, not over POST"
            return _json(_error_body(message, "BAD_REQUEST"), 400)
        answer: dict[str, Any] = {"data": result.data}
        if result.errors:
            answer["errors"] = [format_error(e) for e in result.errors]
        if context.extras.get(COST_KEY, 0) <= ENCODE_IN_SLICES_ROWS:
            body = orjson.dumps(answer)
            return _json(self._capped(body, len(body)) or body)
        parts = await encode(answer)
        size = sum(len(part) for part in parts)
        refusal = self._capped(b"", size)
        if refusal is not None:
            return _json(refusal)
        # Sent part by part: the transport takes one slice at a time, the loop free between.
        return StreamingResponse(
            _iterate(parts), media_type="application/json", headers={"Content-Length": str(size)}
        )

    def _capped(self, body: bytes, size: int) -> bytes | None:
        """The error that replaces an answer of ``size`` bytes over the cap, else None."""
        if size <= self.max_response_bytes:
            return None
        return _error_body(
            f"the answer is {size:,} bytes, more than the {self.max_response_bytes:,} "
            "one response may carry: ask for fewer rows or fields",
            "RESPONSE_TOO_LARGE",
            bytes=size,
            limit=self.max_response_bytes,
        )

    async def _read(self, request: Request) -> tuple[str, dict[str, Any] | None, str | None]:
        payload = await read_json(request, max_bytes=self.max_body_bytes)
        if not isinstance(payload, dict):
            kind = (
                "a list (batches are not supported)"
                if isinstance(payload, list)
                else type(payload).__name__
            )
            raise HubError(f"the body must be one JSON object, got {kind}")
        query = payload.get("query")
        if not isinstance(query, str) or not query.strip():
            raise HubError("the body needs a non-empty query string", field="query")
        variables = payload.get("variables")
        if variables is not None and not isinstance(variables, dict):
            raise HubError("variables must be a JSON object", field="variables")
        operation_name = payload.get("operationName")
        if operation_name is not None and not isinstance(operation_name, str):
            raise HubError("operationName must be a string", field="operationName")
        check_json(query, "query")
        check_json(variables, "variables", max_depth=MAX_VARIABLE_DEPTH)
        return query, variables or None, operation_name or None
