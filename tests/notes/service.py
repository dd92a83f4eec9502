"""The notes service: post a note (durably, on the board's topic) and read a board back."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import orjson
from pydantic import BaseModel, Field

from hub.errors import BadRequest
from hub.eventlog import EventLog

if TYPE_CHECKING:
    from hub.domains import Resources
    from hub.jobs.context import JobContext
    from hub.topics import StoredEvent

BOARD = r"[a-z0-9-]{1,32}"


class PostPayload(BaseModel):
    board: str = Field(pattern=rf"^{BOARD}$")
    text: str = Field(min_length=1, max_length=280)


class NotesService:
    def __init__(self, resources: Resources) -> None:
        self.resources = resources

    async def post(self, board: str, text: str, author: str | None) -> int:
        """Append the note to ``notes:{board}`` in one transaction, publish after commit."""
        topic = f"notes:{board}"
        pool = self.resources.pool
        async with pool.acquire() as conn, conn.transaction():
            stored = await EventLog.append(conn, topic, [{"text": text, "author": author}])
        await self.resources.bus.publish_many([(topic, seq, data) for seq, data in stored])
        return stored[0][0]

    async def board(self, board: str, limit: int) -> list[tuple[int, dict[str, Any]]]:
        if not re.fullmatch(BOARD, board):
            raise BadRequest(
                f"a board is 1-32 of a-z, 0-9 and -, got {board[:40]!r}", field="board"
            )
        if not 1 <= limit <= 1000:
            raise BadRequest(f"limit must be between 1 and 1000, got {limit}", field="limit")
        topic = self.resources.topics.parse(f"notes:{board}")
        events: list[StoredEvent] = await EventLog(self.resources.pool).events_after(
            topic, 0, limit
        )
        return [(e.seq, orjson.loads(e.data_json)) for e in events]


async def run_post(ctx: JobContext, payload: PostPayload) -> dict[str, Any]:
    notes: NotesService = ctx.service("notes")
    seq = await notes.post(payload.board, payload.text, await ctx.jobs.owner(ctx.job_id))
    return {"board": payload.board, "sequence": seq}
