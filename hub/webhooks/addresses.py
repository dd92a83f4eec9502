"""Where a webhook may point: an ``http``/``https`` URL whose host resolves only to public
addresses, checked when it is registered and again before every attempt (a name that resolved
to a public address at registration may resolve to ``127.0.0.1`` later: DNS rebinding).

Private (RFC 1918, unique local), loopback, link-local (cloud metadata at 169.254.169.254),
shared (100.64/10), reserved and other non-global addresses are refused, as are IPv6 forms that
embed one (IPv4-mapped, 6to4, Teredo), unless ``TRADEHUB_WEBHOOK_ALLOW_PRIVATE`` allows them
(tests, local use). Unspecified and multicast addresses are always refused. Every address a
name resolves to must pass, and the attempt then connects to one of those very addresses.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import urllib.parse
from dataclasses import dataclass

from hub.errors import BadRequest

MAX_URL_LENGTH = 2048
RESOLVE_TIMEOUT = 5.0

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class AddressRefused(Exception):
    """The URL's host is, or resolves to, an address webhooks may not reach."""


@dataclass(frozen=True)
class Target:
    """A parsed webhook URL."""

    url: str
    scheme: str
    host: str  # the hostname or address, without brackets
    port: int
    path: str  # path and query string, as sent

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        shown = f"[{self.host}]" if ":" in self.host else self.host
        return shown if self.port == default else f"{shown}:{self.port}"

    def url_for(self, address: IPAddress) -> str:
        """The URL with its host replaced by ``address``: the connection goes exactly there."""
        shown = f"[{address}]" if address.version == 6 else str(address)
        return f"{self.scheme}://{shown}:{self.port}{self.path}"


def parse_url(raw: object) -> Target:
    """A webhook URL, or a 400 naming what is wrong with it."""
    if not isinstance(raw, str) or not raw:
        raise BadRequest(
            "url is required: the https:// address deliveries are posted to", field="url"
        )
    if len(raw) > MAX_URL_LENGTH:
        raise BadRequest(f"url is longer than {MAX_URL_LENGTH} characters", field="url")
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in raw):
        raise BadRequest("url contains whitespace or a control character", field="url")
    try:
        parts = urllib.parse.urlsplit(raw)
        port = parts.port
    except ValueError as exc:
        raise BadRequest(f"url is not a valid URL: {exc}", field="url") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise BadRequest(f"url must be http or https, got {parts.scheme or 'none'!r}", field="url")
    if port == 0:
        raise BadRequest("url's port must be between 1 and 65535, got 0", field="url")
    host = parts.hostname
    if not host:
        raise BadRequest("url has no host", field="url")
    if parts.username is not None or parts.password is not None:
        raise BadRequest(
            "url must not carry credentials; use the secret to authenticate", field="url"
        )
    if parts.fragment:
        raise BadRequest("url must not have a fragment", field="url")
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return Target(raw, scheme, host, port or (443 if scheme == "https" else 80), path)


def refusal(address: IPAddress, allow_private: bool) -> str | None:
    """Why ``address`` may not be reached, or None when it may."""
    candidates: list[IPAddress] = []
    if isinstance(address, ipaddress.IPv6Address):  # the IPv4 address it carries, first
        candidates += [a for a in (address.ipv4_mapped, address.sixtofour) if a is not None]
        if address.teredo is not None:
            candidates += list(address.teredo)
    candidates.append(address)
    for each in candidates:
        name = str(each) if each == address else f"{each} (in {address})"
        if each.is_unspecified or each.is_multicast:
            return f"{name} is {'unspecified' if each.is_unspecified else 'multicast'}"
        if allow_private:
            continue
        if each.is_loopback:
            return f"{name} is a loopback address"
        if each.is_link_local:
            return f"{name} is a link-local address"
        if each.is_private:
            return f"{name} is a private address"
        if not each.is_global:
            return f"{name} is not a public address"
    return None


async def resolve(target: Target, allow_private: bool) -> list[IPAddress]:
    """Every address the target's host resolves to, each allowed; :class:`AddressRefused`
    when one is not, or when the host does not resolve."""
    try:
        literal: IPAddress | None = ipaddress.ip_address(target.host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [literal]
    else:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(RESOLVE_TIMEOUT):
                infos = await loop.getaddrinfo(
                    target.host, target.port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
                )
        except (OSError, TimeoutError, UnicodeError) as exc:
            raise AddressRefused(f"the host {target.host!r} does not resolve: {exc}") from None
        addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))
        if not addresses:
            raise AddressRefused(f"the host {target.host!r} resolves to no address")
    for address in addresses:
        reason = refusal(address, allow_private)
        if reason is not None:
            raise AddressRefused(
                f"webhooks may not reach {target.host!r}: {reason} "
                "(TRADEHUB_WEBHOOK_ALLOW_PRIVATE=1 allows private addresses)"
            )
    return addresses
