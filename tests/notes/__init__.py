"""A small domain registered the way every domain is, to prove that a domain is its folder plus
one entry in the domain list (here ``TRADEHUB_DOMAINS=tests.notes``): a durable topic, a job, a
GraphQL query, mutation and subscription, and nothing edited anywhere else.

Notes are short texts pinned to a board. Posting one runs the ``notes.post`` job, which appends
the note to the board's durable topic ``notes:{board}``; clients read a board by query, follow
it by the ``noteAdded`` subscription or on ``/ws``.
"""

from __future__ import annotations

from hub.domains import Domain
from hub.eventlog import EventLog
from hub.jobs.registry import JobType
from hub.topics import AnyUser, TopicFamily, TopicKind, TopicSpec
from tests.notes import gql
from tests.notes.service import BOARD, NotesService, PostPayload

domain = Domain(
    name="notes",
    service=NotesService,
    topics=(
        TopicSpec.of(
            "notes",
            TopicKind.DURABLE,
            rf"notes:(?P<key>{BOARD})",
            lambda r: TopicFamily(history=EventLog(r.pool), authorizer=AnyUser()),
        ),
    ),
    jobs=(JobType("notes.post", PostPayload, "tests.notes.service:run_post", max_tries=1),),
    query=gql.Query,
    mutation=gql.Mutation,
    subscription=gql.Subscription,
)
