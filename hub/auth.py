"""Credentials: password hashing, JWT access tokens, API keys, and the identity of a caller.

API keys look like ``th_<key id>_<secret>``; only the sha256 of the whole key is stored, and the
key id (public) finds the row. Passwords are hashed with argon2id.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from hub.errors import BadRequest

JWT_ALGORITHM = "HS256"
API_KEY_PREFIX = "th_"
_API_KEY = re.compile(r"^th_([a-z0-9]{12})_([A-Za-z0-9_-]{32,64})$")
_HASHER = PasswordHasher()


class Role(enum.StrEnum):
    USER = "user"
    ADMIN = "admin"


class Scope(enum.StrEnum):
    """A right an API key carries beyond its user's role; only an admin grants one."""

    MARKETDATA_WRITE = "marketdata:write"  # ingest ticks and replay them onto ticks:{symbol}


def parse_scopes(raw: object) -> tuple[Scope, ...]:
    """Scopes a client asked a key to carry (a list of names), or a 400 naming the bad one."""
    if not isinstance(raw, list) or not all(isinstance(name, str) for name in raw):
        raise BadRequest(
            f"scopes must be a list of scope names, got {str(raw)[:80]!r}", field="scopes"
        )
    names = ", ".join(repr(s.value) for s in Scope)
    scopes = []
    for name in raw:
        try:
            scopes.append(Scope(name))
        except ValueError:
            raise BadRequest(
                f"unknown scope {name[:80]!r}; the scopes are {names}", field="scopes"
            ) from None
    return tuple(dict.fromkeys(scopes))


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is calling: resolved once per request or WebSocket connection."""

    user_id: str
    username: str
    role: Role
    # Unix time after which this identity must be re-established (JWT expiry); None for API keys.
    expires_at: float | None = None
    # The API key it came from (None for a JWT): what a revocation invalidates.
    key_id: str | None = None
    # What that key was granted beyond the role (a JWT carries none).
    scopes: frozenset[Scope] = frozenset()

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    def may(self, scope: Scope) -> bool:
        """An admin may do everything a scope grants; anyone else needs a key granted it."""
        return self.is_admin or scope in self.scopes

    def expired(self, now: float | None = None) -> bool:
        return self.expires_at is not None and (now or time.time()) >= self.expires_at


class AuthError(Exception):
    """Credentials were presented but are not valid (401)."""


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    if not password_hash:
        return False
    try:
        return _HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def mint_jwt(identity: Identity, secret: str, ttl_seconds: int) -> tuple[str, int]:
    now = int(time.time())
    claims = {
        "sub": identity.user_id,
        "name": identity.username,
        "role": identity.role.value,
        "iat": now,
        "exp": now + ttl_seconds,
    }
    return jwt.encode(claims, secret, algorithm=JWT_ALGORITHM), ttl_seconds


def decode_jwt(token: str, secret: str) -> Identity:
    try:
        claims = jwt.decode(
            token, secret, algorithms=[JWT_ALGORITHM], options={"require": ["exp", "sub"]}
        )
        return Identity(
            user_id=str(claims["sub"]),
            username=str(claims.get("name", "")),
            role=Role(claims.get("role", "user")),
            expires_at=float(claims["exp"]),
        )
    except jwt.ExpiredSignatureError as exc:
        raise AuthError("token expired") from exc
    except (jwt.PyJWTError, ValueError, KeyError) as exc:
        raise AuthError("invalid token") from exc


@dataclass(frozen=True, slots=True)
class NewApiKey:
    key_id: str
    token: str  # shown once, never stored
    key_hash: bytes


def generate_api_key() -> NewApiKey:
    key_id = "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(12))
    token = f"{API_KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    return NewApiKey(key_id=key_id, token=token, key_hash=hash_api_key(token))


def hash_api_key(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def parse_api_key(token: str) -> str | None:
    """The key id of a well-formed API key, else None."""
    match = _API_KEY.match(token)
    return match[1] if match else None


def api_key_matches(token: str, stored_hash: bytes) -> bool:
    return hmac.compare_digest(hash_api_key(token), bytes(stored_hash))


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and token.startswith("eyJ")


def credentials_from_headers(headers: dict[str, str]) -> str | None:
    """The bearer token or Stage1 token a request carries, or None."""
    authorization = headers.get("authorization")
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    stage1 = headers.get("x-stage1-token")
    if stage1 and stage1.strip():
        return stage1.strip()
    return None
