"""A delivery's bytes and signatures.

The body a webhook receives is a compact JSON object whose last member is its signature:

    {"event":"backtest.completed","timestamp":"2024-01-15T10:30:00Z","data":{...},"signature":"sha256=<hex>"}

* ``signature`` is ``sha256=`` and the hex HMAC-SHA256, under the webhook's secret (UTF-8), of
  the payload without that member: the received body with its final
  ``,"signature":"sha256=<64 hex digits>"`` removed (``body[:body.rindex(b',"signature":')] + b"}"``).
* The ``X-Signature-256`` header is ``sha256=`` and the hex HMAC-SHA256 of the whole body exactly
  as received (as GitHub's ``X-Hub-Signature-256``): the one to check first.

Both are recomputed on every attempt from the stored unsigned payload; a retry sends the same
bytes.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from typing import Any

import orjson

SIGNATURE_MEMBER = b',"signature":'


def unsigned_payload(event: str, data: dict[str, Any], at: datetime | None = None) -> bytes:
    """The payload before signing: event, timestamp (UTC, seconds, ``Z``) and data."""
    stamp = (at or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return orjson.dumps({"event": event, "timestamp": stamp, "data": data}, default=str)


def sign(secret: str, message: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def signed_body(secret: str, unsigned: bytes) -> tuple[bytes, str]:
    """The body to send (the payload with its ``signature`` member last) and the value of its
    ``X-Signature-256`` header."""
    if not (unsigned.startswith(b"{") and unsigned.endswith(b"}")) or unsigned == b"{}":
        raise ValueError("a webhook payload is a non-empty JSON object")
    signature = sign(secret, unsigned)
    body = unsigned[:-1] + SIGNATURE_MEMBER + b'"' + signature.encode("ascii") + b'"}'
    return body, sign(secret, body)


def verify(secret: str, body: bytes, header: str) -> dict[str, Any]:
    """What a receiver does (and the tests): check the header, then the payload's own
    signature; the payload, or ValueError."""
    if not hmac.compare_digest(sign(secret, body), header):
        raise ValueError("X-Signature-256 does not match the body")
    payload: dict[str, Any] = orjson.loads(body)
    unsigned = body[: body.rindex(SIGNATURE_MEMBER)] + b"}"
    if not hmac.compare_digest(sign(secret, unsigned), str(payload.get("signature"))):
        raise ValueError("the payload's signature does not match it")
    return payload
