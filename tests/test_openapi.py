"""The OpenAPI document the hub serves: valid OpenAPI 3.1, every route in it, and the parts a
generated client relies on (security, request bodies, the family's error schema per status)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from openapi_spec_validator import validate
from starlette.routing import Route

from tests.conftest import LiveServer

PUBLIC = {
    "/healthz",
    "/readyz",
    "/api/health",
    "/api/health/",
    "/api/v1/health",
    "/api/v1/trading/health",
    "/api/auth/login",
    "/api/v1/auth/token",
}
# Served but not REST: Prometheus text, GraphQL (its own schema), the documentation itself and
# the dashboard (hub/web).
UNDOCUMENTED = {"/metrics", "/graphql", "/openapi.json", "/docs", "/"}
# POST routes that read no body.
NO_BODY = {("post", "/api/v1/run/stop"), ("post", "/api/questdb/import")}
# POST routes whose body is multipart/form-data (ORCA's bot forms).
FORMS = {
    ("post", "/api/v1/run-bot/max-backtest"),
    ("post", "/api/v1/run-bot/max"),
    ("post", "/api/upload-tick-data"),
}
# POST routes whose body is text/plain (InfluxDB's line protocol).
TEXT = {("post", "/write"), ("post", "/api/v2/write")}
# InfluxDB's write API: its own error format, and the credentials InfluxDB clients send.
INFLUX = {"/write", "/api/v2/write"}
CRACKTRADER = {
    "/api/v1/health",
    "/api/v1/status",
    "/api/v1/status/detailed",
    "/api/v1/run/backtest",
    "/api/v1/run/live",
    "/api/v1/run/stop",
    "/api/v1/run/reset",
    "/api/v1/results",
    "/api/v1/strategies",
    "/api/v1/exchanges",
}


def error_schema(path: str) -> str:
    """The README's table of error formats, by path."""
    if path in CRACKTRADER:
        return "CracktraderError"
    if path in INFLUX or path.startswith("/api/v2/"):
        return "InfluxError"
    if path.startswith("/api/trading/executions/"):
        return "PlainError"
    if path in ("/api/health/", "/api/upload-tick-data") or path.startswith(
        ("/api/v1/trading/", "/api/v1/run-bot/")
    ):
        return "OrcaError"
    if path.startswith("/api/v1/marketdata/"):
        return "PlainError"  # the hub's own, under Sigma Lab's base
    if path.startswith("/api/v1/"):
        return "SigmaLabError"
    return "PlainError"  # Stage1 and the hub's own


@pytest.fixture(scope="module")
async def document(server: LiveServer) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=server.url) as http:
        response = await http.get("/openapi.json")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def test_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"] == "3.1.0"
    validate(document)


def test_every_route_is_documented(document: dict[str, Any], server: LiveServer) -> None:
    served = {
        (method.lower(), route.path)
        for route in server.app.routes
        if isinstance(route, Route)
        for method in (route.methods or set()) - {"HEAD"}
    }
    documented = {(method, path) for path, method, _ in operations(document)}
    assert documented == {(method, path) for method, path in served if path not in UNDOCUMENTED}
    assert {path for _, path in served} >= UNDOCUMENTED


def test_operation_ids_are_unique(document: dict[str, Any]) -> None:
    ids = [operation["operationId"] for _, _, operation in operations(document)]
    assert len(ids) == len(set(ids))


def test_public_routes_need_no_credentials(document: dict[str, Any]) -> None:
    assert "security" not in document  # each operation says its own
    for path, method, operation in operations(document):
        if path in PUBLIC:
            assert operation["security"] == [], (method, path)
        else:
            expected: list[dict[str, list[str]]] = [{"bearer": []}, {"stage1": []}]
            if path in INFLUX:
                expected += [{"token": []}, {"basic": []}]
            assert operation["security"] == expected, (method, path)
            assert "401" in operation["responses"], (method, path)


def test_every_body_is_described(document: dict[str, Any]) -> None:
    for path, method, operation in operations(document):
        if method in ("post", "put", "patch") and (method, path) not in NO_BODY:
            body = operation["requestBody"]
            assert body["required"] is True
            media = "application/json"
            if (method, path) in FORMS:
                media = "multipart/form-data"
            elif (method, path) in TEXT:
                media = "text/plain"
            assert list(body["content"]) == [media], (method, path)
            schema = body["content"][media]["schema"]
            assert schema["$ref"].startswith("#/components/schemas/"), (method, path)
            assert "413" in operation["responses"], (method, path)
        else:
            assert "requestBody" not in operation, (method, path)


def test_errors_answer_in_the_family_schema(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    for path, method, operation in operations(document):
        expected = error_schema(path)
        errors = {s: r for s, r in operation["responses"].items() if 400 <= int(s) < 500}
        assert "400" in errors, (method, path)
        for status, response in errors.items():
            schema = response["content"]["application/json"]["schema"]
            assert schema == {"$ref": f"#/components/schemas/{expected}"}, (method, path, status)
    # Cracktrader's is open: under /api/v1 an error from outside its routes adds request_id.
    assert "additionalProperties" not in schemas["CracktraderError"]
    assert schemas["SigmaLabError"]["required"] == ["error", "request_id"]
    assert schemas["InfluxError"]["required"] == ["code", "message"]
    assert set(schemas["InfluxError"]["properties"]) == {"code", "message", "line"}


def test_rate_limits_name_retry_after(document: dict[str, Any]) -> None:
    limited = {
        (method, path)
        for path, method, operation in operations(document)
        if "429" in operation["responses"]
    }
    assert limited >= {
        ("post", "/api/auth/login"),
        ("post", "/api/v1/auth/token"),
        ("post", "/api/v1/run/backtest"),
    }
    for method, path in limited:
        headers = document["paths"][path][method]["responses"]["429"]["headers"]
        assert headers["Retry-After"]["required"] is True


def test_every_success_answer_has_a_schema(document: dict[str, Any]) -> None:
    for path, method, operation in operations(document):
        for status, response in operation["responses"].items():
            if status in ("200", "201", "503"):
                # JSON, or what each event of a text/event-stream carries (the tick upload),
                # or each of several media types (Stage1's predictions, CSV or JSON)
                assert response["content"], (path, status)
                for media in response["content"].values():
                    assert "$ref" in media["schema"], (path, status)
            elif status == "204":
                assert "content" not in response


def test_parameters_are_typed_as_the_routes_enforce_them(document: dict[str, Any]) -> None:
    def parameter(path: str, name: str) -> dict[str, Any]:
        listed = document["paths"][path]["get"]["parameters"]
        found: dict[str, Any] = next(p for p in listed if p["name"] == name)
        return found

    limit = parameter("/api/jobs", "limit")
    assert limit["schema"] == {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50}
    base = "/api/trading/executions/{execution_id}"
    execution = parameter(f"{base}/events/", "execution_id")
    assert execution["in"] == "path" and execution["required"] is True
    assert execution["schema"]["type"] == "integer" and execution["schema"]["minimum"] == 1
    event_type = parameter(f"{base}/events/", "event_type")
    assert event_type["schema"] == {"$ref": "#/components/schemas/EventType"}
    assert parameter(f"{base}/equity/", "page_size")["schema"]["default"] == 500
    assert parameter(f"{base}/trades/", "page_size")["schema"]["default"] == 1000
    assert parameter(f"{base}/equity/", "start_time")["schema"]["format"] == "date-time"
    job_id = parameter("/api/jobs/{job_id}", "job_id")
    assert job_id["schema"] == {"type": "string", "format": "uuid"}
