"""Credentials already handed out are checked again: a revoked API key, a disabled user or a
changed role ends every open socket within 10 s (4401, or 4403 for a role change) and takes
effect on every JWT, through the real hub, /ws and GraphQL over WebSocket."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import orjson
import websockets

from hub.settings import Settings
from tests.conftest import Account, LiveServer, make_account
from tests.test_graphql_ws import closed_with, connect, init

LIMIT = 12.0  # the promise is 10 s; the monitor looks every 5 s


async def feed(server: LiveServer, token: str) -> Any:
    ws = await websockets.connect(f"{server.ws_url}/ws")
    await ws.send(orjson.dumps({"op": "auth", "token": token}).decode())
    assert orjson.loads(await ws.recv())["op"] == "authenticated"
    return ws


async def feed_closed(ws: Any) -> tuple[int, dict[str, Any]]:
    """The close code, and the last error frame before it."""
    last: dict[str, Any] = {}
    async with asyncio.timeout(LIMIT):
        try:
            while True:
                last = orjson.loads(await ws.recv())
        except websockets.ConnectionClosed as closed:
            assert closed.rcvd is not None
            return closed.rcvd.code, last


async def jwt_for(client: httpx.AsyncClient, username: str, password: str) -> str:
    response = await client.post(
        "/api/auth/login", json={"username": username, "password": password}
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


async def test_revoking_a_key_closes_its_sockets(
    server: LiveServer, client: httpx.AsyncClient, settings: Settings
) -> None:
    carol = await make_account(settings)
    bot = await feed(server, carol.token)
    dashboard = await connect(server)
    await init(dashboard, carol.token)
    key_id = carol.token.split("_")[1]
    revoked = await client.delete(f"/api/auth/keys/{key_id}", headers=carol.headers)
    assert revoked.status_code == 204
    (bot_code, last), (gql_code, gql_reason) = await asyncio.gather(
        feed_closed(bot), closed_with(dashboard, timeout=LIMIT)
    )
    assert bot_code == 4401 and last["code"] == "unauthorized" and "revoked" in last["message"]
    assert (gql_code, gql_reason) == (4401, "API key revoked")
    assert (await client.get("/api/me", headers=carol.headers)).status_code == 401


async def test_a_demoted_admin_loses_admin_rights_on_tokens_and_sockets(
    server: LiveServer, client: httpx.AsyncClient, settings: Settings, admin: Account
) -> None:
    password = "correct horse battery"
    dana = await make_account(settings, admin=True, password=password)
    token = await jwt_for(client, dana.username, password)
    bearer = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/api/admin/users", headers=bearer)).status_code == 200
    bot = await feed(server, token)
    dashboard = await connect(server)
    await init(dashboard, token)

    demoted = await client.patch(
        f"/api/admin/users/{dana.user_id}", json={"role": "user"}, headers=admin.headers
    )
    assert demoted.status_code == 200 and demoted.json()["role"] == "user"
    (bot_code, last), (gql_code, _) = await asyncio.gather(
        feed_closed(bot), closed_with(dashboard, timeout=LIMIT)
    )
    assert bot_code == 4403 and last["code"] == "forbidden"
    assert gql_code == 4403
    # The JWT still says "admin"; the hub no longer believes it, so she cannot promote herself.
    assert (await client.get("/api/admin/users", headers=bearer)).status_code == 403
    again = await client.patch(
        f"/api/admin/users/{dana.user_id}", json={"role": "admin"}, headers=bearer
    )
    assert again.status_code == 403
    me = await client.get("/api/me", headers=bearer)
    assert me.json()["role"] == "user"


async def test_a_disabled_user_is_locked_out_everywhere(
    server: LiveServer, client: httpx.AsyncClient, settings: Settings, admin: Account
) -> None:
    password = "correct horse battery"
    erin = await make_account(settings, password=password)
    token = await jwt_for(client, erin.username, password)
    bot = await feed(server, erin.token)
    dashboard = await connect(server)
    await init(dashboard, token)
    disabled = await client.patch(
        f"/api/admin/users/{erin.user_id}", json={"disabled": True}, headers=admin.headers
    )
    assert disabled.status_code == 200 and disabled.json()["disabled"] is True
    (bot_code, _), (gql_code, gql_reason) = await asyncio.gather(
        feed_closed(bot), closed_with(dashboard, timeout=LIMIT)
    )
    assert bot_code == 4401 and (gql_code, gql_reason) == (4401, "user disabled")
    for headers in ({"Authorization": f"Bearer {token}"}, erin.headers):
        assert (await client.get("/api/me", headers=headers)).status_code == 401
    login = await client.post(
        "/api/auth/login", json={"username": erin.username, "password": password}
    )
    assert login.status_code == 401


async def test_an_admin_may_not_demote_themselves_or_reach_a_missing_user(
    client: httpx.AsyncClient, admin: Account, alice: Account
) -> None:
    self_demote = await client.patch(
        f"/api/admin/users/{admin.user_id}", json={"role": "user"}, headers=admin.headers
    )
    assert self_demote.status_code == 400
    missing = await client.patch(
        "/api/admin/users/00000000-0000-0000-0000-000000000000",
        json={"disabled": True},
        headers=admin.headers,
    )
    assert missing.status_code == 404
    not_admin = await client.patch(
        f"/api/admin/users/{admin.user_id}", json={"disabled": True}, headers=alice.headers
    )
    assert not_admin.status_code == 403
