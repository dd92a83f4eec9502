"""Structured logging: ``key=value`` lines for people, JSON lines when ``TRADEHUB_LOG_JSON=1``.

A redacting filter sits on the root handler as a last line of defence: anything shaped like an
API key, a JWT or a password in a URL is masked before a line is written.

Logged values carry what callers sent: a path arrives percent-decoded, so ``/x%0Aforged`` holds
a newline. Every value is escaped (control characters, lone surrogates, the Unicode line
separators and the bidi controls become ``\\n``, ``\\x1b``, ``\\u2028``), so one event is one line
that no caller can split, and a text-format value that could pass for another ``key=value`` is
quoted. A traceback keeps its lines: one JSON string, or in the text format lines indented under
the event's, so that none can pass for an event.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from typing import Any

import orjson

_SECRET_PATTERNS = [
    (re.compile(r"th_[a-z0-9]{12}_[A-Za-z0-9_-]{8,}"), "th_***"),
    (re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+"), "***jwt***"),
    (re.compile(r"(://[^:/@\s]+:)[^@\s]+@"), r"\1***@"),
]
_RESERVED = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "color_message",
}
# C0, DEL and C1 controls, the line and paragraph separators, the bidi embeddings, overrides
# and isolates (what ends a line, moves the cursor or reorders text in a terminal or a viewer),
# and lone surrogates (which no UTF-8 stream, orjson included, can write).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# A text-format value holding one of these is quoted, so it cannot read as another field.
_NEEDS_QUOTES = re.compile(r'[\s="\\]')
_CONTINUATION = "    "


def redact(text: str) -> str:
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _escape_char(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    return _SHORT.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def escape(text: str) -> str:
    """``text`` with every character that could end a line or steer a terminal escaped."""
    return _UNSAFE.sub(_escape_char, text) if _UNSAFE.search(text) else text


def _escaped(value: Any) -> Any:
    """A JSON value with every string in it escaped, keys included."""
    if isinstance(value, str):
        return escape(value)
    if isinstance(value, dict):
        return {escape(str(k)): _escaped(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_escaped(v) for v in value]
    return value


def _logfmt(value: Any) -> str:
    text = str(value)
    if text and not _NEEDS_QUOTES.search(text) and not _UNSAFE.search(text):
        return text
    return '"' + escape(text.replace("\\", "\\\\").replace('"', '\\"')) + '"'


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {
        k: v for k, v in record.__dict__.items() if k not in _RESERVED and not k.startswith("_")
    }


def _lines(block: str, indent: str = "") -> str:
    """A multi-line block (a traceback) with each line escaped and indented."""
    return "\n".join(indent + escape(line) for line in block.split("\n"))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": escape(record.name),
            "msg": escape(record.getMessage()),
        }
        entry.update(_escaped(_fields(record)))
        if record.exc_info:
            entry["exc"] = _lines(self.formatException(record.exc_info))
        if record.stack_info:
            entry["stack"] = _lines(self.formatStack(record.stack_info))
        return redact(orjson.dumps(entry, default=lambda v: escape(str(v))).decode())


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        extras = " ".join(f"{escape(k)}={_logfmt(v)}" for k, v in _fields(record).items())
        line = (
            f"{stamp} {record.levelname.lower():<7} {escape(record.name)}: "
            f"{escape(record.getMessage())}"
        )
        if extras:
            line = f"{line} {extras}"
        if record.exc_info:
            line = f"{line}\n{_lines(self.formatException(record.exc_info), _CONTINUATION)}"
        if record.stack_info:
            line = f"{line}\n{_lines(self.formatStack(record.stack_info), _CONTINUATION)}"
        return redact(line)


def configure_logging(*, json_lines: bool, level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # uvicorn's own access log would duplicate ours (and print query strings): silence it.
    logging.getLogger("uvicorn.access").disabled = True
    for name in ("uvicorn", "uvicorn.error", "arq"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # arq logs every cron tick at info; our runner logs each job's outcome itself.
    if level.lower() != "debug":
        logging.getLogger("arq.worker").setLevel(logging.WARNING)
