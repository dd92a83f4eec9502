"""Page-number pagination as the Django REST Framework families show it (``count``, ``next``,
``previous`` as absolute URLs)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from starlette.requests import Request

from hub.errors import BadRequest
from hub.http import query_int
from hub.times import aware, checked_ns


@dataclass(frozen=True)
class Page:
    number: int
    size: int

    @property
    def offset(self) -> int:
        return (self.number - 1) * self.size

    def links(self, request: Request, count: int) -> tuple[str | None, str | None]:
        last = max(1, -(-count // self.size))
        next_url = (
            str(request.url.include_query_params(page=self.number + 1))
            if self.number < last
            else None
        )
        previous = None
        if self.number > 1:
            previous = str(request.url.include_query_params(page=min(self.number - 1, last)))
        return next_url, previous


def page_of(request: Request, *, default_size: int, max_size: int) -> Page:
    number = query_int(request, "page", 1, minimum=1, maximum=10_000_000)
    size = query_int(request, "page_size", default_size, minimum=1, maximum=max_size)
    return Page(number, size)


def query_datetime(request: Request, name: str) -> datetime | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise BadRequest(f"{name} must be an ISO 8601 datetime, got {raw!r}", field=name) from None
    checked_ns(value, name)
    return aware(value)
