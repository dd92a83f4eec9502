"""An OpenAPI 3.1 document built from the route list.

Each endpoint's docstring gives the summary (first line) and description; an endpoint may carry
an ``openapi`` dict (set with :func:`describe`) with parameters, request body and responses.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from starlette.routing import BaseRoute, Mount, Route

F = TypeVar("F", bound=Callable[..., Any])
_PARAM = re.compile(r"{([^}:]+)(:[^}]+)?}")


def describe(**operation: Any) -> Callable[[F], F]:
    """Attach OpenAPI operation fields (``tags``, ``parameters``, ``requestBody``...) to a route."""

    def decorate(fn: F) -> F:
        fn.openapi = {**getattr(fn, "openapi", {}), **operation}  # type: ignore[attr-defined]
        return fn

    return decorate


def _walk(routes: Iterable[BaseRoute], prefix: str = "") -> Iterable[tuple[str, Route]]:
    for route in routes:
        if isinstance(route, Mount):
            yield from _walk(route.routes, prefix + route.path)
        elif isinstance(route, Route) and route.include_in_schema:
            yield prefix + route.path, route


def openapi_document(routes: Iterable[BaseRoute]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for raw_path, route in _walk(routes):
        path = _PARAM.sub(r"{\1}", raw_path)
        endpoint = route.endpoint
        doc = (endpoint.__doc__ or "").strip()
        summary, _, description = doc.partition("\n")
        extra: dict[str, Any] = dict(getattr(endpoint, "openapi", {}))
        params = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in _PARAM.findall(raw_path)
            for name in [name[0]]
        ]
        if params:
            extra["parameters"] = params + list(extra.get("parameters", []))
        for method in sorted((route.methods or set()) - {"HEAD"}):
            operation = {
                "summary": summary or endpoint.__name__.replace("_", " "),
                "operationId": f"{endpoint.__module__}.{endpoint.__name__}.{method.lower()}",
                "responses": {"200": {"description": "OK"}},
                **extra,
            }
            if description.strip():
                operation["description"] = description.strip()
            paths.setdefault(path, {})[method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "tradehub REST API", "version": "1"},
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "stage1": {"type": "apiKey", "in": "header", "name": "X-Stage1-Token"},
            }
        },
        "security": [{"bearer": []}, {"stage1": []}],
    }
