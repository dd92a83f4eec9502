"""Log lines cannot be forged: what a caller sends is escaped in both formats, one event a line."""

from __future__ import annotations

import asyncio
import io
import logging
import re
import sys
from collections.abc import Iterator

import orjson
import pytest

from hub.logs import JsonFormatter, TextFormatter, escape
from tests.conftest import LiveServer

# Each character that could end a line, steer a terminal or reorder a viewer's text.
HOSTILE = ["\n", "\r", "\r\n", "\x00", "\x1b[2J", "\x7f", "\x85", "\u2028", "\u2029", "\u202e"]
EVENT_START = re.compile(r"^\d\d:\d\d:\d\d ")


def record(msg: str, *, exc: bool = False, **extra: object) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError(f"bad input {msg}")
        except ValueError:
            exc_info = sys.exc_info()
    rec = logging.LogRecord("tradehub.test", logging.INFO, __file__, 1, msg, None, exc_info)
    rec.__dict__.update(extra)
    return rec


@pytest.mark.parametrize("bad", HOSTILE)
def test_text_format_escapes_message_and_every_field(bad: str) -> None:
    line = TextFormatter().format(
        record(f"hello{bad}forged", path=f"/x{bad}forged line", nested={"k": [bad]}, n=3)
    )
    assert line.splitlines() == [line], line
    assert f"hello{escape(bad)}forged" in line
    assert f'path="/x{escape(bad)}forged line"' in line
    assert line.endswith(" n=3")


@pytest.mark.parametrize("bad", HOSTILE)
def test_json_format_escapes_message_and_every_field(bad: str) -> None:
    line = JsonFormatter().format(
        record(f"hello{bad}forged", path=f"/x{bad}forged line", nested={"k": [bad]}, n=3)
    )
    assert line.splitlines() == [line], line
    entry = orjson.loads(line)
    assert entry["msg"] == f"hello{escape(bad)}forged"
    assert entry["path"] == f"/x{escape(bad)}forged line"
    assert entry["nested"] == {"k": [escape(bad)]}
    assert entry["n"] == 3


def test_escapes_are_readable_and_leave_plain_text_alone() -> None:
    assert escape("/api/jobs?x=1 ünïcode €") == "/api/jobs?x=1 ünïcode €"
    assert escape("a\nb\r\tc\x1b\x85\u2028\ud800") == "a\\nb\\r\\tc\\x1b\\x85\\u2028\\ud800"


def test_a_text_value_cannot_pass_for_another_field() -> None:
    line = TextFormatter().format(record("request", path="/x status=200", quote='a"b\\c', empty=""))
    assert 'path="/x status=200"' in line
    assert 'quote="a\\"b\\\\c"' in line
    assert 'empty=""' in line


def test_a_traceback_cannot_start_an_event() -> None:
    forged = "\n12:00:00 info    tradehub.access: request status=200"
    text = TextFormatter().format(record(forged, exc=True))
    first, *rest = text.split("\n")
    assert EVENT_START.match(first) and rest
    assert all(line.startswith("    ") for line in rest), rest
    assert "\n    12:00:00 info    tradehub.access" in text  # the forged line, indented
    line = JsonFormatter().format(record(forged, exc=True))
    assert line.splitlines() == [line]
    assert "ValueError: bad input \n12:00:00" in orjson.loads(line)["exc"]


class Capture(logging.Handler):
    """Formats each record in both formats; ``seen`` is set once a record has arrived."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.text = io.StringIO()
        self.json = io.StringIO()
        self.seen = asyncio.Event()

    def emit(self, rec: logging.LogRecord) -> None:
        self.text.write(TextFormatter().format(rec) + "\n")
        self.json.write(JsonFormatter().format(rec) + "\n")
        self.seen.set()


@pytest.fixture
def access_log() -> Iterator[Capture]:
    logger = logging.getLogger("tradehub.access")
    capture = Capture()
    level = logger.level
    logger.addHandler(capture)
    logger.setLevel(logging.INFO)
    try:
        yield capture
    finally:
        logger.removeHandler(capture)
        logger.setLevel(level)


async def raw_get(server: LiveServer, target: str) -> bytes:
    """One request written as bytes, so nothing cleans the target up on the way."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        async with asyncio.timeout(10):
            return await reader.read()
    finally:
        writer.close()


@pytest.mark.parametrize(
    ("target", "decoded"),
    [
        ("/x%0Aforged%20line", "/x\nforged line"),
        ("/x%0D%0A12:00:00%20info%20forged", "/x\r\n12:00:00 info forged"),
        ("/x%1B%5B2J%00%7F", "/x\x1b[2J\x00\x7f"),
        ("/x%C2%85%E2%80%A8%E2%80%AEforged", "/x\x85\u2028\u202eforged"),
        ("/x%FF%FE%0Aforged", "/x\ufffd\ufffd\nforged"),  # invalid UTF-8, then a newline
    ],
)
async def test_an_unauthenticated_path_cannot_forge_access_log_lines(
    server: LiveServer, access_log: Capture, target: str, decoded: str
) -> None:
    response = await raw_get(server, target)
    assert response.startswith(b"HTTP/1.1 4"), response[:80]  # 404, or 400 for a bad path
    async with asyncio.timeout(10):
        await access_log.seen.wait()
    text = access_log.text.getvalue()
    assert text.splitlines() == [text.rstrip("\n")], text
    assert f'path="{escape(decoded)}"' in text or f"path={escape(decoded)} " in text
    lines = access_log.json.getvalue().splitlines()
    assert len(lines) == 1, lines
    assert orjson.loads(lines[0])["path"] == escape(decoded)
