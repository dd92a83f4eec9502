"""Errors in GraphQL responses: a code on every one, no server internals, and logs that say what
went wrong without the values a client sent."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import Any

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from hub.errors import HubError

log = logging.getLogger("tradehub.graphql")

INTERNAL = "internal error"
# graphql-core's words for a variable value that does not fit its type.
_VARIABLE_VALUE = re.compile(
    r"Variable '\$(?P<name>\w+)' (?:got|has) invalid value"
    r"(?:(?: at '(?P<path>[^']+)')|(?: at (?P<dotted>[.\w\[\]]+))|[^;:]*)[;:]",
)
_LAST_NAME = re.compile(r"[A-Za-z_]\w*")


def _unexpected(error: GraphQLError) -> bool:
    """A resolver failed for a reason that is not the client's (a bug, a database error)."""
    original = error.original_error
    return (
        error.path is not None
        and original is not None
        and not isinstance(original, HubError | GraphQLError)
    )


def error_extensions(error: GraphQLError) -> None:
    """Give ``error`` its ``extensions.code`` (and the domain error's status and field); an
    unexpected failure reads ``internal error``, never the exception's own text."""
    original = error.original_error
    extensions = dict(error.extensions or {})
    if isinstance(original, HubError):
        extensions.setdefault("code", original.code)
        extensions.setdefault("status", original.status_code)
        if original.field is not None:
            extensions.setdefault("field", original.field)
    elif _unexpected(error):
        error.message = INTERNAL
        extensions["code"] = "INTERNAL_ERROR"
    elif (variable := _VARIABLE_VALUE.match(error.message)) is not None:
        # A variable's value does not fit its type (an unknown enum value, a string for a
        # number): name the input field, as a service's INVALID_PARAMETER does.
        extensions.setdefault("code", "INVALID_PARAMETER")
        names = _LAST_NAME.findall(variable["path"] or variable["dotted"] or "")
        extensions.setdefault("field", names[-1] if names else variable["name"])
    else:  # parse and validation errors: the request itself is wrong
        extensions.setdefault("code", "BAD_REQUEST")
    error.extensions = extensions


def format_error(error: GraphQLError) -> dict[str, Any]:
    error_extensions(error)
    return error.formatted  # type: ignore[return-value]


def log_errors(errors: list[GraphQLError], operation: str | None) -> None:
    """Client errors once at INFO with their code and path, never their values; server
    failures at ERROR with the traceback."""
    for error in errors:
        if _unexpected(error):
            log.error(
                "graphql resolver failed",
                exc_info=error.original_error,
                extra={"operation": operation, "path": error.path},
            )
        else:
            code = (error.extensions or {}).get("code")
            if code is None and isinstance(error.original_error, HubError):
                code = error.original_error.code
            log.info(
                "graphql request refused",
                extra={"operation": operation, "code": code or "BAD_REQUEST", "path": error.path},
            )


class ErrorCodes(SchemaExtension):
    def on_execute(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        for error in getattr(result, "errors", None) or []:
            error_extensions(error)
