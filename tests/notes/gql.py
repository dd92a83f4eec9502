"""GraphQL for notes: ``notes`` (a board), ``postNote`` (a job), ``noteAdded`` (live)."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry
from strawberry.types import Info

from hub.gql.context import Context
from hub.gql.streams import stream_topic
from hub.jobs.gql import Job


@strawberry.type
class Note:
    sequence: int
    text: str
    author: str | None


async def resolve_notes(info: Info[Context, None], board: str, limit: int = 100) -> list[Note]:
    info.context.require_identity()
    rows = await info.context.state.notes.board(board, limit)
    return [Note(sequence=seq, text=doc["text"], author=doc["author"]) for seq, doc in rows]


async def post_note(info: Info[Context, None], board: str, text: str) -> Job:
    ctx = info.context
    row = await ctx.state.jobs.create(
        ctx.require_identity(), "notes.post", {"board": board, "text": text}
    )
    return Job.from_row(row)


async def note_added(
    info: Info[Context, None], board: str, since_sequence: int | None = None
) -> AsyncGenerator[Note, None]:
    async for event in stream_topic(info, f"notes:{board}", since_sequence):
        doc = event.data()
        yield event.keyed(Note(sequence=event.seq, text=doc["text"], author=doc["author"]))


@strawberry.type
class Query:
    notes: list[Note] = strawberry.field(resolver=resolve_notes)


@strawberry.type
class Mutation:
    post_note: Job = strawberry.mutation(resolver=post_note)


@strawberry.type
class Subscription:
    note_added: Note = strawberry.subscription(resolver=note_added)  # type: ignore[assignment]
