"""WebSocket frames as a server writes them, built once and shared by every connection."""

from __future__ import annotations


def text_frame(payload: bytes) -> bytes:
    """A server's unmasked, unfragmented text frame (RFC 6455 section 5.2) of UTF-8 ``payload``:
    byte for byte what websockets writes for ``send_text`` when no extension is in use."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 65536:
        return b"\x81\x7e" + n.to_bytes(2, "big") + payload
    return b"\x81\x7f" + n.to_bytes(8, "big") + payload
