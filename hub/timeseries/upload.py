"""Stage1's import body, ``{"measurement", "data", "filename"}``, read as it arrives.

The ``data`` string (the CSV) is decoded from JSON piece by piece and written to a file, so a
body of any allowed size costs the hub a few chunks of memory: never the whole body, never the
whole CSV. The other members must be small (64 KiB); they are parsed whole. While ``data``
passes, its first line (the header) is kept and its lines are counted.

How a piece of ``data`` is decoded: up to the string's closing quote (the first one no
backslash escapes) or the chunk's end, orjson decodes it as a JSON string (``"`` + piece +
``"``), which also checks its escapes, UTF-8 and control characters; what a chunk boundary cut
(half an escape, half a UTF-8 character, the first half of a surrogate pair) waits for the
next chunk.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from hub.errors import BadRequest, PayloadTooLarge

SMALL_VALUE_BYTES = 64 << 10
HEADER_BYTES = 64 << 10
FLUSH_BYTES = 1 << 20
_SPACE = b" \t\r\n"
_QUOTE, _BACKSLASH = 0x22, 0x5C
_EMPTY = np.zeros(0, np.uint8)


@dataclass
class ImportBody:
    """The members read, and what ``data`` held: its bytes, its line count, its header."""

    values: dict[str, Any] = field(default_factory=dict)
    has_data: bool = False
    data_bytes: int = 0
    lines: int = 0  # newline characters in data
    ends_with_newline: bool = False
    header: str | None = None

    @property
    def rows(self) -> int:
        """Lines after the header (a last line without its newline counts)."""
        lines = self.lines + (0 if self.ends_with_newline or not self.data_bytes else 1)
        return max(0, lines - 1)


class _Reader:
    """A JSON object's members, fed in chunks; ``data`` goes to ``write``."""

    def __init__(self, write: Callable[[bytes], None]) -> None:
        self.write = write
        self.body = ImportBody()
        self.state = "start"
        self.key = b""
        self.value = bytearray()
        self.head: list[str] = []
        self.head_size = 0
        self.rest = b""
        self.offset = 0  # of the body, for error messages

    def fail(self, what: str) -> BadRequest:
        return BadRequest(f"malformed JSON body near byte {self.offset}: {what}")

    def feed(self, chunk: bytes) -> None:
        buffer = self.rest + chunk if self.rest else chunk
        self.rest = b""
        i = 0
        n = len(buffer)
        while i < n:
            state = self.state
            if state == "data":
                i = self._data(buffer, i)
                continue
            if state in ("key", "value"):
                i = self._small(buffer, i)
                continue
            byte = buffer[i : i + 1]
            i += 1
            if byte in (b" ", b"\t", b"\r", b"\n"):
                self.offset += 1
                continue
            if state == "start":
                if byte != b"{":
                    raise BadRequest("request body must be a JSON object")
                self.state = "first"
            elif state in ("first", "next") and byte == b'"':
                self.state, self.value = "key", bytearray(b'"')
            elif state == "first" and byte == b"}":
                self.state = "done"
            elif state == "colon" and byte == b":":
                self.state = "before"
            elif state == "before":
                if self.key == b"data" and byte == b'"':
                    if self.body.has_data:
                        raise BadRequest("the body names data twice")
                    self.body.has_data = True
                    self.state = "data"
                else:
                    self.state, self.value = "value", bytearray(byte)
            elif state == "after" and byte == b",":
                self.state = "next"
            elif state == "after" and byte == b"}":
                self.state = "done"
            else:
                raise self.fail(f"unexpected {byte!r}")
            self.offset += 1

    def _small(self, buffer: bytes, i: int) -> int:
        """Collect a key or a non-data value until it is complete, then parse it."""
        end = _value_end(self.value, buffer, i)
        self.value += buffer[i : len(buffer) if end is None else end]
        if len(self.value) > SMALL_VALUE_BYTES:
            raise BadRequest(
                f"a member of the body other than data is over {SMALL_VALUE_BYTES} bytes"
            )
        if end is None:
            self.offset += len(buffer) - i
            return len(buffer)
        self.offset += end - i
        try:
            parsed = orjson.loads(bytes(self.value))
        except orjson.JSONDecodeError as exc:
            raise self.fail(str(exc)) from None
        if self.state == "key":
            self.key = str(parsed).encode()
            if parsed in self.body.values or (parsed == "data" and self.body.has_data):
                raise BadRequest(f"the body names {parsed} twice")
            self.state = "colon"
        else:
            name = self.key.decode()
            if name == "data":
                self.body.has_data = True
            self.body.values[name] = parsed
            self.state = "after"
        return end

    def _data(self, buffer: bytes, i: int) -> int:
        quote = _closing_quote(buffer, i)
        closed = quote >= 0
        end = quote if closed else len(buffer)
        cut = end
        text = _decode(buffer[i:end])
        if text is None and not closed:
            # The chunk cut an escape, a UTF-8 character or a surrogate pair (at most 11 bytes
            # of one): decode up to the last whole one, the rest waits for the next chunk.
            for back in range(1, min(12, end - i + 1)):
                text = _decode(buffer[i : end - back])
                if text is not None:
                    cut = end - back
                    break
        if text is None:
            raise self.fail("data is not a valid JSON string (UTF-8, escapes, no raw controls)")
        self._emit(text)
        self.offset += cut - i
        if closed:
            self.state = "after"
            self.offset += 1
            return end + 1
        self.rest = buffer[cut:]
        return len(buffer)

    def _emit(self, text: str) -> None:
        if not self.body.data_bytes and text.startswith("\ufeff"):
            text = text[1:]  # a byte order mark (Excel's CSVs) is not part of the header
        if not text:
            return
        if "\x00" in text:
            raise BadRequest("data contains a NUL character", field="data")
        data = text.encode()
        body = self.body
        body.data_bytes += len(data)
        body.lines += text.count("\n")
        body.ends_with_newline = text.endswith("\n")
        if body.header is None:
            line, newline, _ = text.partition("\n")
            self.head.append(line)
            self.head_size += len(line)
            if newline:
                body.header = "".join(self.head).rstrip("\r")
            elif self.head_size > HEADER_BYTES:
                raise BadRequest(f"the CSV header line is over {HEADER_BYTES} bytes", field="data")
        self.write(data)

    def finish(self) -> ImportBody:
        if self.state == "start":
            raise BadRequest("request body is empty; expected a JSON object")
        if self.state != "done":
            raise self.fail("the body ends before its object does")
        if self.body.header is None and self.head:
            self.body.header = "".join(self.head).rstrip("\r")
        return self.body


def _closing_quote(buffer: bytes, i: int) -> int:
    """The first quote from ``i`` that no backslash escapes (-1 if none): the string's end.
    Backslashes before ``i`` belong to escapes decoded already.

    A CSV in JSON holds an escaped quote (``\\"``) for every quoted CSV field, so the quotes
    are found and sorted out with numpy: one not preceded by a backslash ends the string; one
    preceded by two or more (rare: a backslash in the CSV, then a quote) by their parity."""
    seg = np.frombuffer(buffer, np.uint8, offset=i) if i < len(buffer) else _EMPTY
    quotes = np.flatnonzero(seg == _QUOTE)
    if not len(quotes):
        return -1
    escaped = (quotes > 0) & (seg[np.maximum(quotes - 1, 0)] == _BACKSLASH)
    first = int(np.argmin(escaped)) if not escaped.all() else len(quotes)
    doubled = escaped[:first] & (quotes[:first] > 1)
    doubled &= seg[np.maximum(quotes[:first] - 2, 0)] == _BACKSLASH
    for q in quotes[:first][doubled].tolist():  # \\\\" or longer: the run's parity decides
        k = q
        while k > 0 and seg[k - 1] == _BACKSLASH:
            k -= 1
        if (q - k) % 2 == 0:
            return i + int(q)
    return i + int(quotes[first]) if first < len(quotes) else -1


def _decode(run: bytes) -> str | None:
    try:
        return str(orjson.loads(b'"' + run + b'"'))
    except orjson.JSONDecodeError:
        return None


def _value_end(seen: bytearray, buffer: bytes, i: int) -> int | None:
    """Where the JSON value begun in ``seen`` (and continued in ``buffer`` from ``i``) ends,
    or None if it goes on past ``buffer``."""
    if bytes(seen[:1]) == b'"':  # a string: to its closing quote
        j = i
        escaped = seen.endswith(b"\\") and _odd_backslashes(seen)
        while j < len(buffer):
            c = buffer[j]
            if escaped:
                escaped = False
            elif c == 0x5C:
                escaped = True
            elif c == 0x22:
                return j + 1
            j += 1
        return None
    if bytes(seen[:1]) in (b"{", b"["):  # nested: to the bracket closing the first, strings skipped
        text = bytes(seen) + buffer[i:]
        depth, in_string, escaped = 0, False, False
        for k, c in enumerate(text):
            if in_string:
                if escaped:
                    escaped = False
                elif c == 0x5C:
                    escaped = True
                elif c == 0x22:
                    in_string = False
            elif c == 0x22:
                in_string = True
            elif c in (0x7B, 0x5B):
                depth += 1
            elif c in (0x7D, 0x5D):
                depth -= 1
                if depth == 0:
                    return i + k + 1 - len(seen)
        return None
    for j in range(i, len(buffer)):  # a number or a literal: to the next delimiter
        if buffer[j] in b",}]" or buffer[j] in _SPACE:
            return j
    return None


def _odd_backslashes(seen: bytearray) -> bool:
    count = len(seen) - len(seen.rstrip(b"\\"))
    return count % 2 == 1


async def read_import_body(
    chunks: AsyncIterator[bytes], write: Callable[[bytes], Any], *, limit: int
) -> ImportBody:
    """Read a body from ``chunks`` (413 past ``limit`` bytes, counted as they come), writing
    ``data`` through ``write`` (a blocking file write: called in a thread, a megabyte at a
    time) and keeping the rest."""
    pending = bytearray()
    reader = _Reader(pending.extend)
    size = 0

    async def flush() -> None:
        if pending:
            block = bytes(pending)
            pending.clear()
            await asyncio.to_thread(write, block)

    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(
                f"request body is more than the import limit of {limit} bytes "
                "(TRADEHUB_IMPORT_MAX_BYTES)"
            )
        if chunk:
            reader.feed(chunk)
            if len(pending) >= FLUSH_BYTES:
                await flush()
    body = reader.finish()
    await flush()
    return body
