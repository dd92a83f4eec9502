"""``Client``: the same client for code without an event loop. An :class:`AsyncClient` runs on a
loop in a thread of the client's own; each call waits for its answer there."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncGenerator, Coroutine, Generator
from types import TracebackType
from typing import Any, Self, TypeVar

from tradehub_client.aio import DEFAULT_URL, AsyncClient
from tradehub_client.backoff import Backoff
from tradehub_client.blocking import BlockingExecutions, BlockingGraphQL, BlockingTrading
from tradehub_client.models import FeedEvent, OrderAck

T = TypeVar("T")


class _Portal:
    """An event loop in a daemon thread, and blocking calls into it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="tradehub-client", daemon=True
        )
        self.thread.start()

    def call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()  # an interrupt in this thread ends the work in the loop too
            raise

    def iterate(self, events: AsyncGenerator[T, None]) -> Generator[T, None, None]:
        try:
            while True:
                try:
                    yield self.call(events.__anext__())
                except StopAsyncIteration:
                    return
        finally:
            self.call(_close(events))

    def stop(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)
        if not self.loop.is_running():
            self.loop.close()


async def _close(events: AsyncGenerator[Any, None]) -> None:
    with contextlib.suppress(RuntimeError):  # still ending a cancelled step
        await events.aclose()


class Client:
    """``Client(url, api_key=...)`` or ``Client(url, username=..., password=...)``, with the
    arguments and namespaces of :class:`AsyncClient`; every call blocks for its answer and
    ``subscribe`` is a plain iterator."""

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
        self._portal = _Portal()

        async def build() -> AsyncClient:
            return AsyncClient(
                url,
                api_key=api_key,
                token=token,
                username=username,
                password=password,
                timeout=timeout,
                backoff=backoff,
                refresh_margin=refresh_margin,
            )

        try:
            self.aio = self._portal.call(build())
        except BaseException:
            self._portal.stop()
            raise
        self.url = self.aio.url
        call = self._portal.call
        self.executions = BlockingExecutions(call, self.aio.executions)
        self.trading = BlockingTrading(call, self.aio.trading)
        self.gql = BlockingGraphQL(call, self.aio.gql)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        try:
            self._portal.call(self.aio.aclose())
        finally:
            self._portal.stop()

    def login(self) -> str:
        return self._portal.call(self.aio.login())

    def execute(
        self, operation_name: str, variables: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        return self._portal.call(self.aio.execute(operation_name, variables))

    def subscribe(
        self, channel: str, since: int | None = None, *, epoch: str | None = None
    ) -> Generator[FeedEvent, None, None]:
        """Every event of ``channel`` after ``since``, in order, each once, across reconnects
        (see :meth:`AsyncClient.subscribe`). Close the iterator (or leave its ``for``) to end
        the subscription."""
        return self._portal.iterate(self.aio.subscribe(channel, since, epoch=epoch))

    def place_order(
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
        """See :meth:`AsyncClient.place_order`."""
        return self._portal.call(
            self.aio.place_order(
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
        )

    def cancel_order(self, order_id: str) -> OrderAck:
        return self._portal.call(self.aio.cancel_order(order_id))
