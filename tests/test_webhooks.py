"""Webhooks as a receiver meets them: a real local HTTP server gets each delivery, checks both
signatures as the README shows, answers 500 once and sees the retry; every attempt is logged;
the secret is never answered or logged; private addresses are refused (at registration, and at
delivery time when a name rebinds); owners alone see and delete their webhooks."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import secrets
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn
from arq.constants import job_key_prefix

from hub.settings import Settings
from hub.webhooks.delivery import Sender
from tests.conftest import Account, LiveServer, free_port, make_account, operation
from tests.helpers import eventually, graphql, running_worker


@dataclass
class Hit:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A real HTTP server: answers each path with its scripted statuses (then 200)."""

    port: int = field(default_factory=free_port)
    script: dict[str, list[int]] = field(default_factory=dict)
    hits: asyncio.Queue[Hit] = field(default_factory=asyncio.Queue)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        statuses = self.script.get(scope["path"], [])
        status = statuses.pop(0) if statuses else 200
        await self.hits.put(Hit(scope["path"], headers, body))
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"thanks"})

    async def next(self) -> Hit:
        return await asyncio.wait_for(self.hits.get(), 60)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    app = Receiver()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=app.port, lifespan="off", log_level="warning")
    )
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(30):
        while not server.started:
            assert not task.done()
            await asyncio.sleep(0.01)
    try:
        yield app
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 15)


@pytest.fixture(scope="module")
def local_settings(settings: Settings) -> Settings:
    """Webhooks allowed to reach this machine, retried fast, three attempts; their own queue."""
    return settings.model_copy(
        update={
            "redis_prefix": f"{settings.redis_prefix}wh{secrets.token_hex(3)}:",
            "webhook_allow_private": True,
            "webhook_backoff_seconds": 0.05,
            "webhook_max_attempts": 3,
            "webhook_timeout": 10.0,
        }
    )


@pytest.fixture(scope="module")
async def local_hub(local_settings: Settings) -> AsyncIterator[LiveServer]:
    live = LiveServer(local_settings)
    await live.start()
    try:
        yield live
    finally:
        await live.stop()


def verify(raw: bytes, header: str, secret: str) -> dict[str, Any]:
    """The README's receiver check, written independently of the hub's code."""
    expected = "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(expected, header), "X-Signature-256 does not match"
    payload: dict[str, Any] = json.loads(raw)
    unsigned = raw[: raw.rindex(b',"signature":')] + b"}"
    own = "sha256=" + hmac.new(secret.encode(), unsigned, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(own, payload["signature"]), "signature does not match"
    assert list(payload) == ["event", "timestamp", "data", "signature"]
    return payload


async def register(
    http: httpx.AsyncClient, account: Account, url: str, events: list[str], secret: str
) -> dict[str, Any]:
    response = await http.post(
        "/api/v1/webhooks",
        json={"url": url, "events": events, "secret": secret},
        headers=account.headers,
    )
    assert response.status_code == 201, response.text
    assert secret not in response.text
    body: dict[str, Any] = response.json()
    return body


async def deliveries_of(
    http: httpx.AsyncClient, account: Account, webhook_id: str
) -> list[dict[str, Any]]:
    response = await http.get(f"/api/v1/webhooks/{webhook_id}/deliveries", headers=account.headers)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_a_delivery_is_signed_retried_after_a_500_and_every_attempt_logged(
    local_hub: LiveServer,
    local_settings: Settings,
    receiver: Receiver,
    pool: asyncpg.Pool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    user = await make_account(local_settings)
    secret = f"s3cret-{secrets.token_hex(12)}"
    receiver.script["/hook"] = [500]
    data = {
        "backtest_id": "bt_abc123",
        "model_id": "AAPL_equity_5d_daily",
        "status": "success",
        "metrics": {"sharpe": 1.85},
    }
    seen: list[str] = []
    with caplog.at_level(logging.DEBUG):
        async with httpx.AsyncClient(base_url=local_hub.url, timeout=30) as http:
            # By name: resolved, checked, then connected to the very address checked.
            url = receiver.url("/hook", host="localhost")
            hook = await register(http, user, url, ["backtest.completed"], secret)
            assert set(hook) == {"webhook_id", "url", "events", "created_at"}
            assert hook["url"] == url and hook["events"] == ["backtest.completed"]
            webhooks = local_hub.lifespan_state.webhooks
            ids = await webhooks.emit(user.user_id, "backtest.completed", data)
            assert len(ids) == 1
            assert await webhooks.emit(user.user_id, "sweep.completed", {"x": 1}) == []

            async with running_worker(local_settings):
                first, second = await receiver.next(), await receiver.next()

                async def delivered() -> list[dict[str, Any]] | None:
                    items = await deliveries_of(http, user, hook["webhook_id"])
                    return items if items and items[0]["status"] == "delivered" else None

                items = await eventually(delivered)
            listed = await http.get("/api/v1/webhooks", headers=user.headers)
            seen += [listed.text, json.dumps(items)]
    assert first.body == second.body  # the retry sends the same bytes
    for hit, attempt in ((first, "1"), (second, "2")):
        assert hit.headers["host"] == f"localhost:{receiver.port}"
        assert hit.headers["content-type"] == "application/json"
        assert hit.headers["x-webhook-event"] == "backtest.completed"
        assert hit.headers["x-webhook-delivery"] == ids[0]
        assert hit.headers["x-webhook-attempt"] == attempt
        payload = verify(hit.body, hit.headers["x-signature-256"], secret)
        assert payload["event"] == "backtest.completed" and payload["data"] == data
        assert payload["timestamp"].endswith("Z")
    with pytest.raises(AssertionError):
        verify(first.body, first.headers["x-signature-256"], "not-the-secret")

    (delivery,) = items
    assert delivery["delivery_id"] == ids[0] and delivery["event"] == "backtest.completed"
    assert [(a["attempt"], a["status_code"]) for a in delivery["attempts"]] == [(1, 500), (2, 200)]
    assert "500" in delivery["attempts"][0]["error"] and delivery["attempts"][1]["error"] is None
    assert all(a["duration_ms"] >= 0 for a in delivery["attempts"])
    assert listed.json()["items"] == [hook] and listed.json()["total"] == 1

    # The secret: in no answer, no log record, and not in the clear in Postgres.
    assert all(secret not in text for text in seen)
    assert secret not in caplog.text
    assert all(secret not in str(record.__dict__) for record in caplog.records)
    sealed = await pool.fetchval(
        "select secret_sealed from webhooks where webhook_id = $1", hook["webhook_id"]
    )
    assert secret.encode() not in bytes(sealed)


async def test_a_delivery_gives_up_after_its_attempts(
    local_hub: LiveServer, local_settings: Settings, receiver: Receiver
) -> None:
    user = await make_account(local_settings)
    receiver.script["/down"] = [503, 502, 500, 500]
    async with httpx.AsyncClient(base_url=local_hub.url, timeout=30) as http:
        hook = await register(
            http, user, receiver.url("/down"), ["signal.generated"], "another secret"
        )
        await local_hub.lifespan_state.webhooks.emit(
            user.user_id, "signal.generated", {"signal_id": "sig_1", "action": "BUY"}
        )
        async with running_worker(local_settings):
            hits = [await receiver.next() for _ in range(3)]

            async def failed() -> list[dict[str, Any]] | None:
                items = await deliveries_of(http, user, hook["webhook_id"])
                return items if items and items[0]["status"] == "failed" else None

            (delivery,) = await eventually(failed)
    assert [h.headers["x-webhook-attempt"] for h in hits] == ["1", "2", "3"]
    assert [a["status_code"] for a in delivery["attempts"]] == [503, 502, 500]
    assert delivery["next_attempt_at"] is None and delivery["completed_at"] is not None
    assert receiver.hits.empty()  # three attempts, as configured, and no fourth


async def test_a_name_that_rebinds_to_a_private_address_is_refused_at_delivery(
    local_hub: LiveServer, local_settings: Settings, receiver: Receiver
) -> None:
    """Registered while allowed; delivered by a worker that refuses private addresses: the
    address is checked again before connecting, and nothing reaches the receiver."""
    user = await make_account(local_settings)
    async with httpx.AsyncClient(base_url=local_hub.url, timeout=30) as http:
        hook = await register(
            http, user, receiver.url("/rebound", host="localhost"), ["sweep.completed"], "k" * 16
        )
        await local_hub.lifespan_state.webhooks.emit(user.user_id, "sweep.completed", {"n": 1})
        strict = local_settings.model_copy(
            update={"webhook_allow_private": False, "webhook_max_attempts": 1}
        )
        async with running_worker(strict):

            async def failed() -> list[dict[str, Any]] | None:
                items = await deliveries_of(http, user, hook["webhook_id"])
                return items if items and items[0]["status"] == "failed" else None

            (delivery,) = await eventually(failed)
    (attempt,) = delivery["attempts"]
    assert attempt["status_code"] is None and "loopback" in attempt["error"]
    assert receiver.hits.empty()


async def test_a_lost_attempt_is_queued_again_by_the_sweep(
    local_hub: LiveServer, local_settings: Settings, receiver: Receiver, pool: asyncpg.Pool
) -> None:
    user = await make_account(local_settings)
    async with httpx.AsyncClient(base_url=local_hub.url, timeout=30) as http:
        await register(http, user, receiver.url("/lost"), ["backtest.completed"], "z" * 20)
    state = local_hub.lifespan_state
    (delivery_id,) = await state.webhooks.emit(user.user_id, "backtest.completed", {"n": 7})
    # Its queued attempt lost, as a Redis restart would lose it, and long overdue.
    job_id = f"webhook:{delivery_id}"
    assert await state.redis.zrem(state.keys.queue, job_id) == 1
    await state.redis.delete(job_key_prefix + job_id)
    await pool.execute(
        """update webhook_deliveries set next_attempt_at = now() - interval '5 minutes'
            where delivery_id = $1""",
        delivery_id,
    )
    assert await state.webhooks.sweep() >= 1
    async with running_worker(local_settings):
        hit = await receiver.next()
    assert hit.path == "/lost" and hit.headers["x-webhook-delivery"] == delivery_id
    assert hit.headers["x-webhook-attempt"] == "1"


async def test_a_secret_sealed_under_another_hub_secret_fails_the_delivery_at_once(
    local_hub: LiveServer, local_settings: Settings, receiver: Receiver, pool: asyncpg.Pool
) -> None:
    """TRADEHUB_SECRET changed since the webhook was registered: nothing can be signed, so the
    delivery fails on its first attempt (no retries, nothing sent), saying what to do."""
    from hub import secretbox

    user = await make_account(local_settings)
    async with httpx.AsyncClient(base_url=local_hub.url, timeout=30) as http:
        hook = await register(http, user, receiver.url("/old"), ["sweep.completed"], "q" * 10)
        other = SimpleNamespace(jwt_secret="another hub secret")  # what secretbox reads
        await pool.execute(
            "update webhooks set secret_sealed = $2 where webhook_id = $1",
            hook["webhook_id"],
            secretbox.seal(other, {"secret": "q" * 10}),  # type: ignore[arg-type]
        )
        await local_hub.lifespan_state.webhooks.emit(user.user_id, "sweep.completed", {"n": 2})
        async with running_worker(local_settings):

            async def failed() -> list[dict[str, Any]] | None:
                items = await deliveries_of(http, user, hook["webhook_id"])
                return items if items and items[0]["status"] == "failed" else None

            (delivery,) = await eventually(failed)
    (attempt,) = delivery["attempts"]
    assert "register it again" in attempt["error"] and attempt["status_code"] is None
    assert receiver.hits.empty()


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:9/hook", "loopback"),
        ("http://localhost/hook", "loopback"),
        ("http://10.1.2.3/hook", "private"),
        ("https://192.168.0.10/hook", "private"),
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        ("http://[::1]/hook", "loopback"),
        ("http://[::ffff:127.0.0.1]/hook", "loopback"),
        ("http://[fd00::1]/hook", "private"),
        ("http://100.64.0.1/hook", "not a public address"),
        ("http://0.0.0.0/hook", "unspecified"),
    ],
)
async def test_private_addresses_are_refused_without_the_setting(
    client: httpx.AsyncClient, alice: Account, url: str, reason: str
) -> None:
    response = await client.post(
        "/api/v1/webhooks",
        json={"url": url, "events": ["backtest.completed"], "secret": "a-good-secret"},
        headers=alice.headers,
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "INVALID_PARAMETER" and error["details"]["field"] == "url"
    assert reason in error["message"] and response.json()["request_id"]


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"events": ["backtest.completed"], "secret": "long enough"}, "url", "url is required"),
        ({"url": "ftp://example.com/x", "events": ["backtest.completed"], "secret": "long enough"},
         "url", "http or https"),
        ({"url": "https://user:pw@example.com/", "events": ["backtest.completed"],
          "secret": "long enough"}, "url", "credentials"),
        ({"url": "https://example.com/", "events": [], "secret": "long enough"}, "events", "non-empty"),
        ({"url": "https://example.com/", "events": ["trade.done"], "secret": "long enough"},
         "events", "unknown event 'trade.done'"),
        ({"url": "https://example.com/", "events": ["backtest.completed"], "secret": "short"},
         "secret", "8 to 256 characters"),
        ({"url": "https://example.com/", "events": ["backtest.completed"]}, "secret", "required"),
    ],
)  # fmt: skip
async def test_bad_registrations_are_400s_naming_the_field(
    client: httpx.AsyncClient, alice: Account, body: dict[str, Any], field: str, words: str
) -> None:
    response = await client.post("/api/v1/webhooks", json=body, headers=alice.headers)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["details"]["field"] == field and words in error["message"]
    assert "short" not in error["message"]  # a secret is never quoted, even a bad one


async def test_only_the_owner_or_an_admin_sees_and_deletes_a_webhook(
    local_hub: LiveServer, local_settings: Settings, receiver: Receiver
) -> None:
    owner = await make_account(local_settings)
    other = await make_account(local_settings)
    admin = await make_account(local_settings, admin=True)
    async with httpx.AsyncClient(base_url=local_hub.url, timeout=30) as http:
        mine = await register(http, owner, receiver.url("/a"), ["backtest.completed"], "x" * 12)
        kept = await register(http, owner, receiver.url("/b"), ["sweep.completed"], "y" * 12)
        path = f"/api/v1/webhooks/{mine['webhook_id']}"

        assert (await http.get("/api/v1/webhooks")).status_code == 401
        theirs = await http.get("/api/v1/webhooks", headers=other.headers)
        assert theirs.json() == {"items": [], "total": 0, "limit": 100, "offset": 0}
        for response in (
            await http.delete(path, headers=other.headers),
            await http.get(f"{path}/deliveries", headers=other.headers),
        ):
            assert response.status_code == 403
            assert response.json()["error"]["code"] == "FORBIDDEN"
            assert response.json()["request_id"]
        for missing in ("wh_0000000000000000", "not-an-id"):
            gone = await http.delete(f"/api/v1/webhooks/{missing}", headers=owner.headers)
            assert gone.status_code == 404 and gone.json()["error"]["code"] == "NOT_FOUND"

        assert (await http.delete(path, headers=owner.headers)).status_code == 204
        assert (await http.delete(path, headers=owner.headers)).status_code == 404
        page = await http.get("/api/v1/webhooks?limit=1", headers=owner.headers)
        assert page.json() == {"items": [kept], "total": 1, "limit": 1, "offset": 0}
        bad = await http.get("/api/v1/webhooks?limit=0", headers=owner.headers)
        assert bad.status_code == 400 and bad.json()["error"]["details"]["field"] == "limit"
        removed = await http.delete(f"/api/v1/webhooks/{kept['webhook_id']}", headers=admin.headers)
        assert removed.status_code == 204
        left = await http.get("/api/v1/webhooks", headers=owner.headers)
        assert left.json()["total"] == 0


def self_signed(directory: Path, name: str) -> tuple[Path, Path]:
    """A certificate for ``name`` signed by its own key (it is its own authority)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def test_https_deliveries_connect_to_the_checked_address_and_verify_the_name(
    tmp_path: Path,
) -> None:
    """Pinned to the address just checked, the TLS handshake still names the URL's host (SNI)
    and the certificate is checked against it; a certificate for another name is refused."""
    app = Receiver()
    cert, key = self_signed(tmp_path, "localhost")
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=app.port,
            lifespan="off",
            log_level="warning",
            ssl_certfile=str(cert),
            ssl_keyfile=str(key),
        )
    )
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(30):
        while not server.started:
            assert not task.done()
            await asyncio.sleep(0.01)
    try:
        trusted = ssl.create_default_context(cafile=str(cert))
        sender = Sender(allow_private=True, timeout=10, verify=trusted)
        other_cert, _ = self_signed(tmp_path, "elsewhere.example")
        stranger = Sender(
            allow_private=True, timeout=10, verify=ssl.create_default_context(cafile=other_cert)
        )
        try:
            url = f"https://localhost:{app.port}/tls"
            outcome = await sender.post(url, b'{"event":"x"}', {"X-Signature-256": "sha256=0"})
            assert outcome.delivered and outcome.status_code == 200, outcome
            hit = await app.next()
            assert hit.path == "/tls" and hit.headers["host"] == f"localhost:{app.port}"
            assert hit.body == b'{"event":"x"}'
            refused = await stranger.post(url, b"{}", {})
            assert not refused.delivered and refused.status_code is None
            assert "certificate" in (refused.error or "").lower(), refused
            assert app.hits.empty()
        finally:
            await sender.close()
            await stranger.close()
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 15)


async def test_graphql_registers_lists_and_deletes_webhooks(
    local_hub: LiveServer, local_settings: Settings, receiver: Receiver
) -> None:
    owner = await make_account(local_settings)
    other = await make_account(local_settings)
    secret = f"gql-{secrets.token_hex(8)}"
    async with httpx.AsyncClient(base_url=local_hub.url, timeout=30) as http:
        created = await graphql(
            http,
            operation("CreateWebhook"),
            {"url": receiver.url("/gql"), "events": ["sweep.completed"], "secret": secret},
            token=owner.token,
        )
        hook = created["data"]["createWebhook"]
        assert hook["url"] == receiver.url("/gql") and hook["events"] == ["sweep.completed"]
        listed = await graphql(http, operation("Webhooks"), token=owner.token)
        assert listed["data"]["webhooks"] == [hook]
        assert secret not in str(created) + str(listed)
        assert (await graphql(http, operation("Webhooks"), token=other.token))["data"] == {
            "webhooks": []
        }

        bad = await graphql(
            http,
            operation("CreateWebhook"),
            {"url": receiver.url("/gql"), "events": ["trade.done"], "secret": secret},
            token=owner.token,
        )
        assert bad["data"] is None and "unknown event 'trade.done'" in bad["errors"][0]["message"]
        assert bad["errors"][0]["extensions"]["code"] == "INVALID_PARAMETER"
        variables = {"webhookId": hook["webhookId"]}
        refused = await graphql(http, operation("DeleteWebhook"), variables, token=other.token)
        assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        deleted = await graphql(http, operation("DeleteWebhook"), variables, token=owner.token)
        assert deleted["data"] == {"deleteWebhook": True}
        again = await graphql(http, operation("DeleteWebhook"), variables, token=owner.token)
        assert again["errors"][0]["extensions"]["code"] == "NOT_FOUND"
