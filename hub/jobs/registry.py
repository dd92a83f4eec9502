"""Job types: the payload each accepts and the worker function that runs it.

Handlers are named by import path so the hub can validate and enqueue a job type without
importing the (numba-heavy) code that runs it.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

if TYPE_CHECKING:
    from hub.jobs.runner import JobContext

Handler = Callable[["JobContext", Any], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class JobType:
    name: str
    payload: type[BaseModel]
    handler: str  # "module:function"
    description: str = ""
    max_tries: int = 3
    # "module:function" called as ``hook(job_service, job_row)`` when a job of this type ends
    # FAILED or CANCELLED by any path (its own failure, a cancel while pending, the reaper), so
    # that what the job drives (an execution) never stays "running" after it.
    on_ended: str | None = None
    # "module:function" called as ``await check(pool, identity, payload)`` before the job is
    # written, for decisions the payload alone cannot make (who may overwrite what).
    check: str | None = None

    def load_handler(self) -> Handler:
        return load_path(self.handler)  # type: ignore[no-any-return]

    def load_on_ended(self) -> Any:
        return None if self.on_ended is None else load_path(self.on_ended)


def load_path(path: str) -> Any:
    """The object at "module:attribute"."""
    module, _, function = path.partition(":")
    return getattr(importlib.import_module(module), function)


JOB_TYPES: dict[str, JobType] = {}


def register(job_type: JobType) -> JobType:
    JOB_TYPES[job_type.name] = job_type
    return job_type


def get_job_type(name: str) -> JobType | None:
    _load_builtin()
    return JOB_TYPES.get(name)


def all_job_types() -> list[JobType]:
    _load_builtin()
    return sorted(JOB_TYPES.values(), key=lambda jt: jt.name)


def load_modules(names: list[str]) -> None:
    """Import modules that register job types of their own (``TRADEHUB_JOB_MODULES``)."""
    for name in names:
        importlib.import_module(name)


def _load_builtin() -> None:
    # Each domain registers its job types when imported.
    import hub.datasets.jobs
    import hub.executions.jobs  # noqa: F401
