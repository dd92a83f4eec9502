"""Depth, alias and token limits and text rules, shared by the HTTP and WebSocket paths."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from graphql import ASTValidationRule, GraphQLError, StringValueNode, ValidationRule
from strawberry.extensions import (
    AddValidationRules,
    MaxTokensLimiter,
    ParserCache,
    SchemaExtension,
    ValidationCache,
)
from strawberry.extensions.max_aliases import create_validator as alias_validator
from strawberry.extensions.query_depth_limiter import create_validator as depth_validator

MAX_DEPTH = 10
MAX_ALIASES = 30
MAX_TOKENS = 2000


class NoNulCharacters(ValidationRule):
    """No string literal may carry a NUL character: no field accepts one, and Postgres cannot
    store it (variables are checked where they arrive)."""

    def enter_string_value(self, node: StringValueNode, *_args: Any) -> None:
        if "\x00" in node.value:
            self.report_error(GraphQLError("string values may not contain a NUL character", node))


def validation_rules() -> list[type[ValidationRule]]:
    return [depth_validator(MAX_DEPTH, None), alias_validator(MAX_ALIASES), NoNulCharacters]


def extensions() -> list[Callable[[], SchemaExtension]]:
    """The limits as strawberry extensions, built once: the rule classes are the same objects
    on every request, so a parsed and validated document is cached by its text."""
    rules: list[type[ASTValidationRule]] = list(validation_rules())
    return [
        lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
        lambda: ParserCache(maxsize=512),
        lambda: AddValidationRules(rules),
        lambda: ValidationCache(maxsize=512),
    ]
