"""A minimal Redis pub/sub connection: RESP over asyncio streams, parsed by hiredis.

redis-py's PubSub reconnects and resubscribes silently, which hides exactly the moment the bus
must know about (events published while the connection was down were lost and every subscriber
has to backfill). This connection fails loudly instead; :class:`hub.bus.Bus` supervises it.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterable
from typing import Any

import hiredis
from redis.asyncio.connection import ConnectKwargs, parse_url


class PubSubClosed(ConnectionError):
    pass


def _command(*parts: bytes | str) -> bytes:
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


class PubSubConnection:
    """One subscriber connection. ``read()`` returns raw replies as lists of bytes."""

    def __init__(self, url: str, *, connect_timeout: float = 5.0) -> None:
        self._options: ConnectKwargs = parse_url(url)
        self._connect_timeout = connect_timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._parser = hiredis.Reader()
        self._pending: list[Any] = []

    async def connect(self) -> None:
        opts = self._options
        async with asyncio.timeout(self._connect_timeout):
            if "path" in opts:
                reader, writer = await asyncio.open_unix_connection(opts["path"])
            else:
                context = None
                if (
                    opts.get("connection_class") is not None
                    and "SSL" in opts["connection_class"].__name__
                ):
                    context = ssl.create_default_context()
                reader, writer = await asyncio.open_connection(
                    opts.get("host", "localhost"), int(opts.get("port", 6379)), ssl=context
                )
            self._reader, self._writer = reader, writer
            password = opts.get("password")
            if password:
                username = opts.get("username")
                args = ["AUTH", username, password] if username else ["AUTH", password]
                await self._call(*args)
            # SELECT does not matter for pub/sub (channels are global) but keeps errors honest.
            await self._call("PING")

    async def _call(self, *args: str) -> Any:
        self._write(_command(*args))
        reply = await self.read()
        if isinstance(reply, hiredis.ReplyError):
            raise ConnectionError(f"redis refused {args[0]}: {reply}")
        return reply

    def _write(self, data: bytes) -> None:
        if self._writer is None or self._writer.is_closing():
            raise PubSubClosed("pub/sub connection is closed")
        self._writer.write(data)

    def subscribe(self, channels: Iterable[str]) -> None:
        names = list(channels)
        if names:
            self._write(_command("SUBSCRIBE", *names))

    def unsubscribe(self, channels: Iterable[str]) -> None:
        names = list(channels)
        if names:
            self._write(_command("UNSUBSCRIBE", *names))

    def ping(self) -> None:
        self._write(_command("PING"))

    async def read(self) -> Any:
        """The next reply; raises PubSubClosed when the server goes away."""
        while True:
            if self._pending:
                return self._pending.pop(0)
            reply = self._parser.gets()
            if reply is not False:
                return reply
            assert self._reader is not None
            data = await self._reader.read(1 << 16)
            if not data:
                raise PubSubClosed("redis closed the pub/sub connection")
            self._parser.feed(data)

    def read_ready(self) -> list[Any]:
        """Every complete reply already buffered, without waiting (for batch dispatch)."""
        out: list[Any] = []
        while True:
            reply = self._parser.gets()
            if reply is False:
                return out
            out.append(reply)

    async def close(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
            try:
                async with asyncio.timeout(1.0):
                    await writer.wait_closed()
            except (OSError, TimeoutError):
                pass
