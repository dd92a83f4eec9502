"""The foundation through real HTTP: health, readiness, metrics, request ids, auth, errors."""

from __future__ import annotations

import logging
import re

import httpx
import pytest

from hub.db import connect, load_migrations, migrate
from hub.settings import Settings
from tests.conftest import Account, LiveServer, free_port


async def test_liveness_and_readiness(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready"}


@pytest.mark.parametrize("path", ["/api/health", "/api/health/"])
async def test_detailed_health_is_the_union_of_both_seeds(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.get(path)
    body = response.json()
    assert response.status_code == 200
    assert body["status"] == "healthy"
    if path == "/api/health":  # Stage1: "2025-11-10T01:30:00Z"
        assert body["timestamp"].endswith("Z")
    else:  # ORCA: "2025-01-21T20:00:00.000000"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}", body["timestamp"])
    assert isinstance(body["uptime"], int)
    assert body["checks"] == {"postgres": "healthy", "redis": "healthy"}


async def test_request_id_is_echoed_or_minted(client: httpx.AsyncClient) -> None:
    minted = await client.get("/healthz")
    assert len(minted.headers["x-request-id"]) == 32
    kept = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert kept.headers["x-request-id"] == "abc-123"
    junk = await client.get("/healthz", headers={"X-Request-ID": "bad id with spaces"})
    assert junk.headers["x-request-id"] != "bad id with spaces"


async def test_metrics_count_requests(client: httpx.AsyncClient) -> None:
    await client.get("/healthz")
    text = (await client.get("/metrics")).text
    assert 'tradehub_http_requests_total{method="GET",route="/healthz",status="200"}' in text
    assert "tradehub_http_request_duration_seconds_bucket" in text
    assert "tradehub_websockets_open" in text


async def test_protected_route_needs_credentials(client: httpx.AsyncClient) -> None:
    missing = await client.get("/api/me")
    assert missing.status_code == 401
    assert missing.json() == {"error": "authentication required"}
    wrong = await client.get(
        "/api/me", headers={"Authorization": "Bearer th_abcdefghijkl_" + "x" * 43}
    )
    assert wrong.status_code == 401
    assert wrong.json() == {"error": "invalid token"}
    garbage = await client.get("/api/me", headers={"Authorization": "Bearer nonsense"})
    assert garbage.status_code == 401


async def test_api_key_by_bearer_and_stage1_header(
    client: httpx.AsyncClient, alice: Account
) -> None:
    bearer = await client.get("/api/me", headers=alice.headers)
    assert bearer.status_code == 200
    assert bearer.json()["username"] == alice.username
    stage1 = await client.get("/api/me", headers={"X-Stage1-Token": alice.token})
    assert stage1.json()["user_id"] == alice.user_id


async def test_admin_route_is_forbidden_to_users(
    client: httpx.AsyncClient, alice: Account, admin: Account
) -> None:
    forbidden = await client.get("/api/admin/users", headers=alice.headers)
    assert forbidden.status_code == 403
    assert forbidden.json() == {"error": "admin role required"}
    allowed = await client.get("/api/admin/users", headers=admin.headers)
    assert allowed.status_code == 200
    assert alice.username in {u["username"] for u in allowed.json()["users"]}


async def test_password_login_gives_a_working_jwt(
    client: httpx.AsyncClient, admin: Account
) -> None:
    created = await client.post(
        "/api/admin/users",
        headers=admin.headers,
        json={"username": "carol-login", "password": "correct horse", "role": "user"},
    )
    assert created.status_code == 201
    bad = await client.post(
        "/api/auth/login", json={"username": "carol-login", "password": "nope nope"}
    )
    assert bad.status_code == 401
    token = (
        await client.post(
            "/api/auth/login", json={"username": "carol-login", "password": "correct horse"}
        )
    ).json()
    assert token["token_type"] == "bearer" and token["expires_in"] > 0
    me = await client.get("/api/me", headers={"Authorization": f"Bearer {token['access_token']}"})
    assert me.json()["username"] == "carol-login"
    # Sigma Lab's token route, in Sigma Lab's error format.
    sigma = await client.post(
        "/api/v1/auth/token", json={"username": "carol-login", "password": "correct horse"}
    )
    assert sigma.status_code == 200 and sigma.json()["access_token"]
    sigma_bad = await client.post("/api/v1/auth/token", json={"username": "carol-login"})
    assert sigma_bad.status_code == 400
    body = sigma_bad.json()
    assert body["error"]["code"] == "INVALID_PARAMETER"
    assert body["error"]["details"]["field"] == "password"
    assert body["request_id"] == sigma_bad.headers["x-request-id"]


async def test_expired_jwt_is_refused(
    client: httpx.AsyncClient, settings: Settings, alice: Account
) -> None:
    import time

    import jwt as pyjwt

    token = pyjwt.encode(
        {"sub": alice.user_id, "name": alice.username, "role": "user", "exp": int(time.time()) - 5},
        settings.jwt_secret,
        algorithm="HS256",
    )
    response = await client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.json() == {"error": "token expired"}


async def test_revoked_key_stops_working(client: httpx.AsyncClient, alice: Account) -> None:
    made = await client.post("/api/auth/keys", headers=alice.headers, json={"name": "temp"})
    assert made.status_code == 201
    key = made.json()
    headers = {"Authorization": f"Bearer {key['api_key']}"}
    assert (await client.get("/api/me", headers=headers)).status_code == 200
    assert (
        await client.delete(f"/api/auth/keys/{key['key_id']}", headers=alice.headers)
    ).status_code == 204
    refused = await client.get("/api/me", headers=headers)
    assert refused.status_code == 401
    assert refused.json() == {"error": "API key revoked"}
    again = await client.delete(f"/api/auth/keys/{key['key_id']}", headers=alice.headers)
    assert again.status_code == 404


@pytest.mark.parametrize("body", [b"{not json", b"", b"[1, 2", b'"just a string"'])
async def test_malformed_json_is_400(client: httpx.AsyncClient, body: bytes) -> None:
    response = await client.post(
        "/api/auth/login", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert "error" in response.json()


async def test_unknown_path_is_json_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/no/such/thing")
    assert response.status_code == 404
    assert response.json() == {"error": "Not Found"}


async def test_graphql_health_and_me(client: httpx.AsyncClient, alice: Account) -> None:
    query = {"query": "{ health { status postgres redis } me { username role } }"}
    response = await client.post("/graphql", json=query, headers=alice.headers)
    data = response.json()["data"]
    assert data["health"] == {"status": "HEALTHY", "postgres": True, "redis": True}
    assert data["me"] == {"username": alice.username, "role": "USER"}
    anonymous = (await client.post("/graphql", json={"query": "{ me { username } }"})).json()
    assert anonymous["errors"][0]["message"] == "authentication required"


async def test_graphiql_served_to_browsers(client: httpx.AsyncClient) -> None:
    response = await client.get("/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert "graphiql" in response.text.lower()


async def test_openapi_lists_rest_routes(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/openapi.json")).json()
    assert doc["openapi"].startswith("3.")
    assert "/api/health" in doc["paths"] and "/api/v1/auth/token" in doc["paths"]
    assert (await client.get("/docs")).status_code == 200


async def test_access_log_has_no_secrets(
    client: httpx.AsyncClient, alice: Account, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        await client.get("/api/me?token=" + alice.token, headers=alice.headers)
        await client.get("/api/me", headers={"X-Stage1-Token": alice.token})
    # The server's records (the test's own HTTP client logs its URLs; that is not the hub).
    lines = [
        r.getMessage() + " " + str(r.__dict__)
        for r in caplog.records
        if not r.name.startswith("httpx")
    ]
    assert any("/api/me" in line for line in lines)
    leaked = [line for line in lines if alice.token in line]
    assert not leaked, leaked[:2]


async def test_readyz_reports_unreachable_redis(settings: Settings) -> None:
    broken = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    live = LiveServer(broken)
    await live.start()
    try:
        async with httpx.AsyncClient(base_url=live.url) as http:
            ready = await http.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["failed"] == ["redis"]
            health = (await http.get("/api/health")).json()
            assert health["status"] == "degraded"
            assert health["checks"]["redis"] == "unhealthy"
    finally:
        await live.stop()


async def test_migrations_apply_once(settings: Settings) -> None:
    assert settings.database_url
    conn = await connect(settings.database_url)
    try:
        before = await conn.fetch(
            "select version, checksum from schema_migrations order by version"
        )
        assert await migrate(conn) == []
        after = await conn.fetch("select version, checksum from schema_migrations order by version")
        assert before == after
        assert [r["version"] for r in after] == [m.version for m in load_migrations()]
    finally:
        await conn.close()


async def test_concurrent_migrations_run_once(services: object) -> None:
    import asyncio
    import secrets

    import asyncpg

    admin_url = services.admin_database_url  # type: ignore[attr-defined]
    name = f"tradehub_migrate_{secrets.token_hex(4)}"
    conn = await asyncpg.connect(admin_url)
    await conn.execute(f'create database "{name}"')
    await conn.close()
    url = admin_url.rpartition("/")[0] + "/" + name
    try:
        conns = [await connect(url) for _ in range(4)]
        results = await asyncio.gather(*(migrate(c) for c in conns))
        applied = sorted(m.version for result in results for m in result)
        assert applied == [m.version for m in load_migrations()]
        rows = await conns[0].fetchval("select count(*) from schema_migrations")
        assert rows == len(load_migrations())
        for c in conns:
            await c.close()
    finally:
        conn = await asyncpg.connect(admin_url)
        await conn.execute(f'drop database if exists "{name}" with (force)')
        await conn.close()
