"""What a job handler receives, and the exceptions by which it talks to the runner."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import asyncpg

if TYPE_CHECKING:
    from hub.domains import Resources
    from hub.jobs.service import JobService


# Failures worth a retry with backoff: the database or the network went away for a moment.
TRANSIENT = (
    OSError,
    ConnectionError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.TooManyConnectionsError,
)


class JobCancelled(Exception):
    """Raised at a progress point when the job's owner asked to cancel it."""


class ClaimLost(Exception):
    """This attempt no longer holds the job (the reaper gave it to another): stop, write nothing."""


class TransientJobError(Exception):
    """A failure worth retrying (with backoff) rather than failing the job."""


@dataclass
class JobContext:
    """A running job: its id and attempt, the process's services, and progress/log/cancel points."""

    job_id: str
    attempt: int  # the claim: every write of this job holds it
    resources: Resources

    @property
    def jobs(self) -> JobService:
        return self.resources.jobs

    def service(self, name: str) -> Any:
        """Another domain's service (``ctx.service("executions")``)."""
        return self.resources.service(name)

    async def progress(self, done: int, total: int | None = None) -> None:
        """Report progress; raises JobCancelled if a cancel was requested meanwhile."""
        row = await self.jobs.progress(self.job_id, done, total, attempt=self.attempt)
        if row is None:
            if await self.jobs.cancel_requested(self.job_id):
                raise JobCancelled(self.job_id)
            raise ClaimLost(self.job_id)
        if row["cancel_requested"]:
            raise JobCancelled(self.job_id)

    async def log(self, message: str, **fields: Any) -> None:
        await self.jobs.append_log(self.job_id, [{"message": message, **fields}])
