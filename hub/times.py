"""Time on the wire: one ISO 8601 form for every document, and datetime <-> nanoseconds.

Every document the hub builds writes times as UTC with a ``Z`` (``2026-01-12T10:00:00Z``,
microseconds when there are any). Interfaces whose seed shows another form (Stage1's
seconds without a zone, ORCA's health stamp) convert at their edge.
"""

from __future__ import annotations

from datetime import UTC, datetime

from hub.errors import BadRequest

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Market times are int64 nanoseconds since the epoch: what they can hold, and what a series
# before the epoch would need (no data source the hub serves starts before 1970).
EARLIEST = EPOCH
LATEST = datetime(2262, 4, 11, tzinfo=UTC)


def aware(value: datetime) -> datetime:
    """A naive datetime is UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def ns_of(value: datetime) -> int:
    """A datetime as nanoseconds since the epoch, exact to the microsecond (no float rounding)."""
    delta = aware(value) - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


def checked_ns(value: datetime | None, field: str) -> int | None:
    """``ns_of(value)`` for a time a client sent, or a 400 naming ``field`` when it is outside
    what a market time can be (1970-01-01 to 2262-04-11)."""
    if value is None:
        return None
    value = aware(value)
    if not EARLIEST <= value < LATEST:
        raise BadRequest(
            f"{field} must be between {EARLIEST.date()} and {LATEST.date()}, "
            f"got {value.isoformat()}",
            field=field,
        )
    return ns_of(value)


def datetime_of_ns(ns: int) -> datetime:
    """Nanoseconds since the epoch as an aware UTC datetime (microsecond precision)."""
    seconds, rest = divmod(int(ns), 1_000_000_000)
    return datetime.fromtimestamp(seconds, tz=UTC).replace(microsecond=rest // 1000)


def iso(value: datetime | None) -> str | None:
    """The hub's one time format: ISO 8601 in UTC with ``Z``."""
    if value is None:
        return None
    return aware(value).astimezone(UTC).isoformat().replace("+00:00", "Z")


def iso_ns(ns: int) -> str:
    return datetime_of_ns(ns).isoformat().replace("+00:00", "Z")


def parse_iso(value: str | None) -> datetime | None:
    """A time from a document (``Z`` included), or None."""
    return None if value is None else datetime.fromisoformat(value)
