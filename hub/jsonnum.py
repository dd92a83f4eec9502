"""Numbers as the legacy documents write them in JSON."""

from __future__ import annotations

from typing import Any


def whole(value: Any) -> Any:
    """A whole float as a JSON integer (``1000``, not ``1000.0``), as the seeds show counts and
    amounts and a typed legacy client reads them; a fraction, or anything else, as it is."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value
