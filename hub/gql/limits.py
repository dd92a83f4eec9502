"""Depth, alias and token limits, shared by the HTTP and WebSocket GraphQL paths."""

from __future__ import annotations

from collections.abc import Callable

from graphql import ValidationRule
from strawberry.extensions import (
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
    SchemaExtension,
)
from strawberry.extensions.max_aliases import create_validator as alias_validator
from strawberry.extensions.query_depth_limiter import create_validator as depth_validator

MAX_DEPTH = 10
MAX_ALIASES = 30
MAX_TOKENS = 2000


def validation_rules() -> list[type[ValidationRule]]:
    return [depth_validator(MAX_DEPTH, None), alias_validator(MAX_ALIASES)]


def extensions() -> list[Callable[[], SchemaExtension]]:
    return [
        lambda: QueryDepthLimiter(max_depth=MAX_DEPTH),
        lambda: MaxAliasesLimiter(max_alias_count=MAX_ALIASES),
        lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
    ]
