"""One attempt of one delivery over HTTP: the URL's host resolved and checked again (DNS
rebinding), the connection made to an address just checked (never to a second lookup's answer),
redirects not followed, no proxy from the environment, the answer's body never read."""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
import time
from dataclasses import dataclass

import httpx

from hub.errors import BadRequest
from hub.webhooks.addresses import AddressRefused, parse_url, resolve

USER_AGENT = "tradehub-webhooks/1"


@dataclass(frozen=True)
class Outcome:
    status_code: int | None  # the endpoint's answer, None when none came
    error: str | None  # None: delivered (a 2xx)
    duration_ms: float

    @property
    def delivered(self) -> bool:
        return self.error is None


class Sender:
    """Posts deliveries; one per process, its HTTP client opened on first use."""

    def __init__(
        self, *, allow_private: bool, timeout: float, verify: ssl.SSLContext | bool = True
    ) -> None:
        self.allow_private = allow_private
        self.timeout = timeout
        self.verify = verify  # the certificates trusted (certifi's by default)
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                # Each request is pinned to an address: a pooled connection is keyed by that
                # address alone, so it could carry another host's TLS session. None are kept.
                limits=httpx.Limits(max_keepalive_connections=0),
                follow_redirects=False,
                trust_env=False,
                timeout=self.timeout,
                verify=self.verify,
            )
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> Outcome:
        started = time.perf_counter()

        def outcome(status: int | None, error: str | None) -> Outcome:
            return Outcome(status, error, round((time.perf_counter() - started) * 1000, 3))

        try:
            target = parse_url(url)
            addresses = await resolve(target, self.allow_private)
        except (BadRequest, AddressRefused) as exc:
            return outcome(None, str(exc)[:500])
        try:
            literal = ipaddress.ip_address(target.host) is not None
        except ValueError:
            literal = False
        extensions = (
            {"sni_hostname": target.host} if target.scheme == "https" and not literal else {}
        )
        sent = {
            **headers,
            "Host": target.host_header,
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
        }
        error = "no address answered"
        try:
            async with asyncio.timeout(self.timeout):
                for address in addresses:
                    try:
                        async with self._http().stream(
                            "POST",
                            target.url_for(address),
                            content=body,
                            headers=sent,
                            extensions=extensions,
                        ) as response:
                            status = response.status_code
                    except httpx.ConnectError as exc:
                        error = f"could not connect to {address}: {exc}"
                        continue  # the name's next address
                    if 200 <= status < 300:
                        return outcome(status, None)
                    return outcome(status, f"the endpoint answered {status}")
        except TimeoutError:
            return outcome(None, f"no answer within {self.timeout:g} s")
        except httpx.HTTPError as exc:
            return outcome(None, f"{type(exc).__name__}: {exc}"[:500])
        return outcome(None, error[:500])
