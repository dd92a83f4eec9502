"""Secrets a caller hands the hub to keep (Cracktrader's ``exchange_config``), encrypted at rest.

Fernet (AES-128-CBC with an HMAC-SHA256 tag) under a key derived from the hub's secret
(``TRADEHUB_SECRET`` or the generated one in the data folder): a database dump alone does not
reveal them. They are never returned by any interface and never logged.
"""

from __future__ import annotations

import base64
import hashlib
from typing import TYPE_CHECKING, Any

import orjson
from cryptography.fernet import Fernet

if TYPE_CHECKING:
    from hub.settings import Settings


def _fernet(settings: Settings) -> Fernet:
    digest = hashlib.sha256(b"tradehub secretbox v1\0" + settings.jwt_secret.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def seal(settings: Settings, value: dict[str, Any]) -> bytes | None:
    """``value`` encrypted (None for an empty one: nothing to keep)."""
    if not value:
        return None
    return _fernet(settings).encrypt(orjson.dumps(value))


def unseal(settings: Settings, token: bytes) -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads(_fernet(settings).decrypt(token))
    return data
