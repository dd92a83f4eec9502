"""An OpenAPI 3.1 document built from the route list.

Each endpoint says what it takes and answers with :func:`describe`: pydantic models for its
path, query and body parameters and for its answers, and the error statuses of its own. The
document adds what every route shares: each error status answers in the error schema of the
endpoint's family (``rest/errors.py``; defined once, under ``components/schemas``); every
route may answer 400 (a malformed path or query string), a route with a body 413 too, and a
route that needs a caller 401. The docstring gives the summary (first line) and description.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema
from starlette.routing import BaseRoute, Mount, Route

if TYPE_CHECKING:
    from rest.errors import Family

F = TypeVar("F", bound=Callable[..., Any])
_PARAM = re.compile(r"{([^}:]+)(:[^}]+)?}")
_REF = "#/components/schemas/{model}"

_CODED = {"$ref": _REF.format(model="CodedError")}
ERROR_SCHEMAS: dict[str, dict[str, Any]] = {
    "PlainError": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "string"}},
    },
    "CodedError": {
        "type": "object",
        "required": ["code", "message", "details"],
        "properties": {
            "code": {"type": "string", "examples": ["INVALID_PARAMETER", "NOT_FOUND"]},
            "message": {"type": "string"},
            "details": {"type": "object"},
        },
    },
    # Not closed: an error from outside a Cracktrader route under /api/v1 adds request_id.
    "CracktraderError": {"type": "object", "required": ["error"], "properties": {"error": _CODED}},
    "SigmaLabError": {
        "type": "object",
        "required": ["error", "request_id"],
        "properties": {"error": _CODED, "request_id": {"type": ["string", "null"]}},
    },
    "OrcaError": {
        "type": "object",
        "required": ["detail", "status_code"],
        "properties": {"detail": {"type": "string"}, "status_code": {"type": "integer"}},
    },
    "InfluxError": {
        "type": "object",
        "required": ["code", "message"],
        "properties": {
            "code": {"type": "string", "examples": ["invalid", "unauthorized", "not found"]},
            "message": {"type": "string"},
            "line": {
                "type": "integer",
                "minimum": 1,
                "description": "the first line of the body that was refused (1-based)",
            },
        },
    },
}
# Each family's error schema, by the family's name (rest/errors.py).
FAMILY_ERRORS = {
    "hub": "PlainError",
    "stage1": "PlainError",
    "executions": "PlainError",
    "orca": "OrcaError",
    "sigmalab": "SigmaLabError",
    "cracktrader": "CracktraderError",
    "influx": "InfluxError",
}
ERROR_STATUSES = {
    400: "Invalid request: a malformed or out-of-range parameter, or a body that is not the "
    "JSON object described (today also one over the size limit)",
    401: "No valid credentials: missing, unknown, revoked, expired or a disabled user's",
    403: "Not the caller's: another user's resource, or an admin's route",
    404: "Not found",
    409: "Conflicts with the current state",
    413: "The body is larger than the hub accepts",
    422: "A parameter that fails validation (ORCA's answer to what other families call a 400)",
    429: "Too many requests: retry after the seconds Retry-After names",
    501: "Not implemented on this hub",
}
SUCCESS = {200: "OK", 201: "Created", 202: "Accepted", 204: "No content", 503: "Unavailable"}
SECURITY: list[dict[str, list[str]]] = [{"bearer": []}, {"stage1": []}]
# InfluxDB's clients send their token as ``Authorization: Token`` (v2) or basic credentials
# (v1; the ``u`` and ``p`` query parameters too).
FAMILY_SECURITY = {"influx": [*SECURITY, {"token": []}, {"basic": []}]}

ErrorStatus = Literal[401, 403, 404, 409, 422, 429, 501]
# A success answer: a JSON model, None (no body), or several media types, each with its model
# (``{"text/csv": Csv, "application/json": Rows}``: a route answering either, as asked).
Answer = type[BaseModel] | Mapping[str, type[BaseModel]] | None


@dataclass(frozen=True)
class Operation:
    """What :func:`describe` records on an endpoint."""

    family: str
    tag: str
    public: bool
    answers: Mapping[int, Answer]
    errors: tuple[int, ...]
    path: type[BaseModel] | None
    query: type[BaseModel] | None
    body: type[BaseModel] | None
    form: type[BaseModel] | None = None  # a multipart/form-data body
    media: Mapping[int, str] | None = None  # a success answer's media type, if not JSON
    text: type[BaseModel] | None = None  # a text/plain body (a RootModel[str])


def describe(
    family: Family,
    *,
    answers: Mapping[int, Answer],
    errors: Iterable[ErrorStatus] = (),
    public: bool = False,
    path: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    body: type[BaseModel] | None = None,
    tag: str | None = None,
    form: type[BaseModel] | None = None,
    media: Mapping[int, str] | None = None,
    text: type[BaseModel] | None = None,
) -> Callable[[F], F]:
    """Document a route: the family whose errors it answers with, its success answers by
    status (a model, or None for no body), the error statuses of its own, its parameters, and
    its body: JSON (``body``), multipart/form-data (``form``, files as binary strings) or
    text/plain (``text``, a ``RootModel[str]``).
    ``media`` names a success answer's media type when it is not JSON (``text/event-stream``:
    the model is then what each event carries).
    A public route needs no credentials (``security: []``)."""
    operation = Operation(
        family.name,
        tag or family.name,
        public,
        dict(answers),
        tuple(errors),
        path,
        query,
        body,
        form,
        media,
        text,
    )

    def decorate(fn: F) -> F:
        fn.openapi = operation  # type: ignore[attr-defined]
        return fn

    return decorate


class _Schema(GenerateJsonSchema):
    def field_title_should_be_set(self, schema: Any) -> bool:
        return False  # a property's title only repeats its name


class _Components:
    """The schemas the operations reference, each under its model's name, once."""

    def __init__(self) -> None:
        self.schemas: dict[str, Any] = dict(ERROR_SCHEMAS)

    def add(self, name: str, schema: dict[str, Any]) -> None:
        if self.schemas.setdefault(name, schema) != schema:
            raise ValueError(f"two different schemas are named {name!r}")

    def model(self, model: type[BaseModel], mode: Literal["validation", "serialization"]) -> Any:
        schema = model.model_json_schema(ref_template=_REF, schema_generator=_Schema, mode=mode)
        for name, nested in schema.pop("$defs", {}).items():
            self.add(name, nested)
        return schema

    def ref(self, model: type[BaseModel], mode: Literal["validation", "serialization"]) -> Any:
        self.add(model.__name__, self.model(model, mode))
        return {"$ref": _REF.format(model=model.__name__)}

    def parameters(self, model: type[BaseModel], where: str) -> list[dict[str, Any]]:
        schema = self.model(model, "validation")
        required = set(schema.get("required", ()))
        return [
            {
                "name": name,
                "in": where,
                "required": where == "path" or name in required,
                **({"description": prop.pop("description")} if "description" in prop else {}),
                # Every route reads an empty query value (?page=) as the parameter's absence.
                **({"allowEmptyValue": True} if where == "query" else {}),
                "schema": _not_null(prop),
            }
            for name, prop in schema["properties"].items()
        ]


def _not_null(prop: dict[str, Any]) -> dict[str, Any]:
    """A parameter's schema without pydantic's ``| None`` branch: an absent parameter is the
    None, and a query string cannot carry a null."""
    prop = {k: v for k, v in prop.items() if k != "title" and not (k == "default" and v is None)}
    branches = [b for b in prop.pop("anyOf", ()) if b != {"type": "null"}]
    if len(branches) == 1:
        prop.update(branches[0])
    elif branches:
        prop["anyOf"] = branches
    return prop


def _walk(routes: Iterable[BaseRoute], prefix: str = "") -> Iterable[tuple[str, Route]]:
    for route in routes:
        if isinstance(route, Mount):
            yield from _walk(route.routes, prefix + route.path)
        elif isinstance(route, Route) and route.include_in_schema:
            yield prefix + route.path, route


def _parameters(raw_path: str, spec: Operation, components: _Components) -> list[Any]:
    names = [name for name, _ in _PARAM.findall(raw_path)]
    if spec.path is None:
        path = [
            {"name": n, "in": "path", "required": True, "schema": {"type": "string"}} for n in names
        ]
    else:
        path = components.parameters(spec.path, "path")
    if [p["name"] for p in path] != names:
        raise ValueError(f"{raw_path} has the parameters {names}; its path model names {path}")
    return path + ([] if spec.query is None else components.parameters(spec.query, "query"))


def _responses(spec: Operation, components: _Components) -> dict[str, Any]:
    responses: dict[int, Any] = {}
    for status, model in spec.answers.items():
        responses[status] = {"description": SUCCESS[status]}
        if isinstance(model, Mapping):
            responses[status]["content"] = {
                kind: {"schema": components.ref(each, "serialization")}
                for kind, each in model.items()
            }
        elif model is not None:
            schema = components.ref(model, "serialization")
            kind = (spec.media or {}).get(status, "application/json")
            responses[status]["content"] = {kind: {"schema": schema}}
    error = {
        "application/json": {"schema": {"$ref": _REF.format(model=FAMILY_ERRORS[spec.family])}}
    }
    sized = spec.body is not None or spec.form is not None or spec.text is not None
    statuses = {400, *spec.errors, *([413] if sized else []), *([] if spec.public else [401])}
    for status in statuses:
        responses[status] = {"description": ERROR_STATUSES[status], "content": error}
    if 429 in responses:
        responses[429]["headers"] = {
            "Retry-After": {"required": True, "schema": {"type": "integer", "minimum": 0}}
        }
    return {str(status): responses[status] for status in sorted(responses)}


def _operation(raw_path: str, route: Route, spec: Operation, components: _Components) -> Any:
    endpoint = route.endpoint
    summary, _, description = (endpoint.__doc__ or "").strip().partition("\n")
    operation: dict[str, Any] = {
        "tags": [spec.tag],
        "summary": summary.strip() or endpoint.__name__.replace("_", " "),
        "operationId": endpoint.__name__,
        "security": [] if spec.public else FAMILY_SECURITY.get(spec.family, SECURITY),
    }
    if description.strip():
        operation["description"] = " ".join(description.split())
    if parameters := _parameters(raw_path, spec, components):
        operation["parameters"] = parameters
    if spec.body is not None:
        schema = components.ref(spec.body, "validation")
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": schema}},
        }
    elif spec.form is not None:
        schema = components.ref(spec.form, "validation")
        operation["requestBody"] = {
            "required": True,
            "content": {"multipart/form-data": {"schema": schema}},
        }
    elif spec.text is not None:
        schema = components.ref(spec.text, "validation")
        operation["requestBody"] = {"required": True, "content": {"text/plain": {"schema": schema}}}
    operation["responses"] = _responses(spec, components)
    return operation


def openapi_document(routes: Iterable[BaseRoute]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    components = _Components()
    for raw_path, route in _walk(routes):
        spec = getattr(route.endpoint, "openapi", None)
        if not isinstance(spec, Operation):
            raise TypeError(f"{raw_path} is not described: wrap its endpoint in describe(...)")
        path = _PARAM.sub(r"{\1}", raw_path)
        for method in sorted((route.methods or set()) - {"HEAD"}):
            paths.setdefault(path, {})[method.lower()] = _operation(
                raw_path, route, spec, components
            )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "tradehub REST API",
            "version": "1",
            "description": "The five legacy REST families and the hub's own routes; each "
            "family answers errors in its own format. GraphQL is at /graphql.",
        },
        "paths": paths,
        "components": {
            "schemas": components.schemas,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key (th_...) or a JWT from a login route",
                },
                "stage1": {"type": "apiKey", "in": "header", "name": "X-Stage1-Token"},
                "token": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": "InfluxDB v2 clients: Token <API key or JWT>",
                },
                "basic": {
                    "type": "http",
                    "scheme": "basic",
                    "description": "InfluxDB v1 clients: any user name, the API key or JWT as "
                    "the password",
                },
            },
        },
    }
