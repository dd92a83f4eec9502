"""Jobs: long work written as a row first, run by exactly one worker, followed on ``job:{id}``."""

from __future__ import annotations

from hub.domains import Domain
from hub.jobs import gql
from hub.jobs.service import JobService
from hub.jobs.topics import TOPICS

domain = Domain(
    name="jobs",
    service=JobService,
    topics=TOPICS,
    query=gql.Query,
    mutation=gql.Mutation,
    subscription=gql.Subscription,
)
