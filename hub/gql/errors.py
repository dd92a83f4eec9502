"""Domain errors in GraphQL responses: ``extensions.code`` and ``extensions.status``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from hub.errors import HubError


def error_extensions(error: GraphQLError) -> None:
    original = error.original_error
    if isinstance(original, HubError):
        extensions = dict(error.extensions or {})
        extensions.setdefault("code", original.code)
        extensions.setdefault("status", original.status_code)
        if original.field is not None:
            extensions.setdefault("field", original.field)
        error.extensions = extensions


def format_error(error: GraphQLError) -> dict[str, Any]:
    error_extensions(error)
    return error.formatted  # type: ignore[return-value]


class ErrorCodes(SchemaExtension):
    def on_execute(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        for error in getattr(result, "errors", None) or []:
            error_extensions(error)
