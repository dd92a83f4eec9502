"""``AsyncClient``: the hub's REST families, its GraphQL operations and its ``/ws`` feed from
one object, authenticated by an API key or by a username and password (a JWT refreshed before
it expires)."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from types import TracebackType
from typing import Any, Self

import httpx

from tradehub_client.auth import TokenSource
from tradehub_client.backoff import Backoff
from tradehub_client.feed import Feed
from tradehub_client.gql import GraphQLApi
from tradehub_client.http import AsyncHttp
from tradehub_client.models import FeedEvent, OrderAck
from tradehub_client.orders import OrderDesk
from tradehub_client.rest import ExecutionsApi, TradingApi

DEFAULT_URL = "http://127.0.0.1:8000"


class AsyncClient:
    """``AsyncClient(url, api_key=...)`` or ``AsyncClient(url, username=..., password=...)``.

    - ``executions``: seed 003's REST routes (status, events, trades, equity, metrics);
    - ``trading``: seed 002's ORCA reads (accounts, positions, pending orders, balances);
    - ``gql``: every document of ``graphql/operations/`` by name (``execute``) and typed
      helpers for the main ones;
    - ``subscribe(channel, since)``: a ``/ws`` channel that resumes by itself;
    - ``place_order`` / ``cancel_order``: order entry on ``/ws``.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        api_key: str | None = None,
        token: str | None = None,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 30.0,
        backoff: Backoff | None = None,
        refresh_margin: float | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.AsyncClient(base_url=self.url, timeout=timeout)
        self.tokens = TokenSource(
            self._http,
            api_key=api_key,
            token=token,
            username=username,
            password=password,
            refresh_margin=refresh_margin,
        )
        api = AsyncHttp(self._http, self.tokens)
        self.executions = ExecutionsApi(api)
        self.trading = TradingApi(api)
        self.gql = GraphQLApi(api)
        scheme, _, rest = self.url.partition("://")
        ws_scheme = "wss" if scheme == "https" else "ws"
        self.feed = Feed(f"{ws_scheme}://{rest}/ws", self.tokens, backoff or Backoff(), timeout)
        self._desk: OrderDesk | None = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._desk is not None:
            await self._desk.close()
        await self._http.aclose()

    async def login(self) -> str:
        """A current token (logging in when the client holds a username and password)."""
        return await self.tokens.token()

    async def execute(
        self, operation_name: str, variables: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """The ``data`` of a query or mutation of ``graphql/operations/`` by name."""
        return await self.gql.execute(operation_name, variables)

    def subscribe(
        self, channel: str, since: int | None = None, *, epoch: str | None = None
    ) -> AsyncGenerator[FeedEvent, None]:
        """Every event of ``channel`` after ``since`` (None: from now), in order, each once,
        across dropped sockets and hub restarts. Raises :class:`HistoryGone` when the hub no
        longer holds events it would owe (``recovered: false``)."""
        return self.feed.subscribe(channel, since, epoch=epoch)

    @property
    def orders_desk(self) -> OrderDesk:
        if self._desk is None:
            self._desk = OrderDesk(self.feed)
        return self._desk

    async def place_order(
        self,
        account: str,
        symbol: str,
        side: str,
        quantity: float,
        *,
        type: str = "market",
        price: float | None = None,
        stop_price: float | None = None,
        tif: str | None = None,
        client_order_id: str | None = None,
    ) -> OrderAck:
        """Place an order on ``/ws``; resent with the same id after a drop (never twice).
        Raises :class:`OrderRejected`, :class:`BadOrder`, :class:`OrderRateLimited`..."""
        return await self.orders_desk.place(
            account,
            symbol,
            side,
            quantity,
            type=type,
            price=price,
            stop_price=stop_price,
            tif=tif,
            client_order_id=client_order_id,
        )

    async def cancel_order(self, order_id: str) -> OrderAck:
        return await self.orders_desk.cancel(order_id)
