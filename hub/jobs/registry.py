"""Job types: the payload each accepts, the worker function that runs it, and its hooks.

Domains declare their job types (``Domain.jobs``); the registry built from the domain list is
what the hub validates against and what workers run. Handlers are named by import path so the
hub can validate and enqueue a job type without importing the (numba-heavy) code that runs it.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

if TYPE_CHECKING:
    import asyncpg

    from hub.auth import Identity
    from hub.jobs.context import JobContext

Handler = Callable[["JobContext", Any], Awaitable[dict[str, Any]]]
# ``check(resources, identity, payload)``: decisions the payload alone cannot make (who may
# overwrite what), before the job is written; raises a HubError to refuse.
Check = Callable[[Any, "Identity", Any], Awaitable[None]]
# ``on_ended(resources, job_row)``: the job ended FAILED or CANCELLED by any path (its own
# failure, a cancel while pending, the reaper), so that what it drives (an execution) never
# stays "running" after it.
EndHook = Callable[[Any, "asyncpg.Record"], Awaitable[None]]


@dataclass(frozen=True)
class JobType:
    name: str
    payload: type[BaseModel]
    handler: str  # "module:function", imported by workers only
    description: str = ""
    max_tries: int = 3
    on_ended: EndHook | None = None
    check: Check | None = None

    def load_handler(self) -> Handler:
        return load_path(self.handler)  # type: ignore[no-any-return]


def load_path(path: str) -> Any:
    """The object at "module:attribute"."""
    module, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module), attribute)


class JobTypes:
    """Every job type the domains of this process declare, by name."""

    def __init__(self, types: Iterable[JobType] = ()) -> None:
        self._types: dict[str, JobType] = {}
        for job_type in types:
            self.add(job_type)

    def add(self, job_type: JobType) -> None:
        if job_type.name in self._types:
            raise ValueError(f"two domains declare the job type {job_type.name!r}")
        self._types[job_type.name] = job_type

    def get(self, name: str) -> JobType | None:
        return self._types.get(name)

    def all(self) -> list[JobType]:
        return sorted(self._types.values(), key=lambda jt: jt.name)
