"""A domain is its folder plus one entry in the domain list: ``tests.notes`` (registered through
TRADEHUB_DOMAINS, nothing else edited) gets its topic, job, GraphQL fields and subscription
served end to end by the real hub and worker."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import orjson
import pytest
import websockets
from gql import GraphQLRequest, gql

from hub.domains import BUILTIN, load_domains
from hub.gql.schema import build_schema
from hub.settings import Settings
from tests.conftest import Account, LiveServer
from tests.helpers import eventually, gql_session, graphql, running_worker

POST = "mutation Post($board: String!, $text: String!) { postNote(board: $board, text: $text) { jobId } }"
BOARD = "query Board($board: String!) { notes(board: $board) { sequence text author } }"
FOLLOW = """subscription Follow($board: String!, $since: Int) {
  noteAdded(board: $board, sinceSequence: $since) { sequence text author }
}"""


def test_the_domain_list_is_the_only_registry() -> None:
    domains = load_domains(["tests.notes"])
    names = [d.name for d in domains]
    assert names[: len(BUILTIN)] == [
        "users", "ratelimits", "jobs", "datasets", "executions", "marketdata", "broker", "runs",
        "timeseries", "webhooks", "research", "signals",
    ]  # fmt: skip
    assert names[-1] == "notes"
    sdl = build_schema(domains).as_str()
    assert "noteAdded(board: String!" in sdl and "postNote(" in sdl and "notes(board:" in sdl
    assert "noteAdded" not in build_schema().as_str()  # only where it is listed
    with pytest.raises(ValueError, match="unique"):
        load_domains(["tests.notes", "tests.notes"])
    with pytest.raises(TypeError, match="no tradehub Domain"):
        load_domains(["tests.notes.service:BOARD"])


async def test_a_plugged_in_domain_is_served_end_to_end(
    server: LiveServer, client: httpx.AsyncClient, settings: Settings, alice: Account
) -> None:
    board = "pinboard"
    async with gql_session(server.ws_url, alice.token) as session, running_worker(settings):
        follow = session.subscribe(
            GraphQLRequest(gql(FOLLOW), variable_values={"board": board, "since": 0})
        )
        first = asyncio.ensure_future(follow.__anext__())
        for text in ("buy the dip", "sell the rip"):
            posted = await graphql(client, POST, {"board": board, "text": text}, token=alice.token)
            assert "errors" not in posted, posted
        note = (await asyncio.wait_for(first, 60))["noteAdded"]
        second = (await asyncio.wait_for(follow.__anext__(), 60))["noteAdded"]
        await follow.aclose()
    assert {note["text"], second["text"]} == {"buy the dip", "sell the rip"}
    assert [note["sequence"], second["sequence"]] == [1, 2]
    assert note["author"] == alice.user_id

    async def board_read() -> list[dict[str, Any]] | None:
        body = await graphql(client, BOARD, {"board": board}, token=alice.token)
        notes: list[dict[str, Any]] = body["data"]["notes"]
        return notes if len(notes) == 2 else None

    assert [n["sequence"] for n in await eventually(board_read)] == [1, 2]

    # The same topic is a /ws channel, resumable by sequence like any other.
    async with websockets.connect(f"{server.ws_url}/ws") as ws:
        await ws.send(orjson.dumps({"op": "auth", "token": alice.token}).decode())
        assert orjson.loads(await ws.recv())["op"] == "authenticated"
        await ws.send(orjson.dumps({"op": "subscribe", "channel": f"notes:{board}", "since": 1}))
        ack = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
        event = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
    assert ack["op"] == "subscribed" and ack["seq"] == 1
    assert event["seq"] == 2 and event["data"]["text"] == second["text"]


async def test_a_plugged_in_job_type_is_validated_like_a_builtin(
    client: httpx.AsyncClient, alice: Account
) -> None:
    refused = await graphql(client, POST, {"board": "Not A Board!", "text": "x"}, token=alice.token)
    error = refused["errors"][0]
    assert (
        error["extensions"]["code"] == "INVALID_PARAMETER"
        and error["extensions"]["field"] == "board"
    )
