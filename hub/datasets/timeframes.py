"""Timeframe names ("1m", "4h", "1d"...) and their length in nanoseconds."""

from __future__ import annotations

import re

_UNITS = {
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
    "d": 86_400_000_000_000,
    "w": 7 * 86_400_000_000_000,
}
_TIMEFRAME = re.compile(r"^([1-9][0-9]{0,3})([smhdw])$")


def timeframe_ns(name: str) -> int:
    match = _TIMEFRAME.match(name or "")
    if match is None:
        raise ValueError(
            f"timeframe must be a number and a unit among s, m, h, d, w (like 1m, 4h, 1d), got {name!r}"
        )
    return int(match[1]) * _UNITS[match[2]]
