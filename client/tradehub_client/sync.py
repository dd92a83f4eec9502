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


class _Blocking:
    """A namespace of the async client (``executions``, ``trading``, ``gql``) whose methods
    block until their answer: same names, same arguments, same typed results."""

    def __init__(self, portal: _Portal, target: object) -> None:
        self._portal = portal
        self._target = target

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._target, name)
        if not callable(method) or name.startswith("_"):
            return method

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._portal.call(method(*args, **kwargs))

        call.__name__ = name
        call.__doc__ = method.__doc__
        return call

    def __dir__(self) -> list[str]:
        return [n for n in dir(self._target) if not n.startswith("_")]


class Client:
    """``Client(url, api_key=...)`` or ``Client(url, username=..., password=...)``, with the
    arguments and namespaces of :class:`AsyncClient`; every call blocks for its answer and
    ``subscribe`` is a plain iterator."""

    def __init__(self, url: str = DEFAULT_URL, **options: Any) -> None:
        self._portal = _Portal()

        async def build() -> AsyncClient:
            return AsyncClient(url, **options)

        try:
            self.aio = self._portal.call(build())
        except BaseException:
            self._portal.stop()
            raise
        self.url = self.aio.url
        self.executions = _Blocking(self._portal, self.aio.executions)
        self.trading = _Blocking(self._portal, self.aio.trading)
        self.gql = _Blocking(self._portal, self.aio.gql)

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
        self, account: str, symbol: str, side: str, quantity: float, **order: Any
    ) -> OrderAck:
        return self._portal.call(self.aio.place_order(account, symbol, side, quantity, **order))

    def cancel_order(self, order_id: str) -> OrderAck:
        return self._portal.call(self.aio.cancel_order(order_id))
