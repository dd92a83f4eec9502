"""Schemathesis over the live hub: every operation of /openapi.json, and the GraphQL schema.

The hub runs under uvicorn in a thread with its own event loop (schemathesis's pytest
integration is synchronous, so the session loop's ``server`` would not answer while a test
runs), on the suite's Postgres and Redis under a Redis prefix of its own, and is fuzzed with
real API keys of users of its own. REST, as an admin that owns a finished backtest (so reads
answer 200 with real documents, not only 404): no 5xx, every status documented, the documented
content type, answers and their headers matching their schemas, and data the schema forbids
refused with a 4xx. GraphQL, as a plain user: no 5xx. Examples are few and the seed fixed, so a
run is short and repeatable.

The admin is kept from other tests' rows: the ids in paths are pinned to the fuzzer's own (a
victim user for the user-admin route), and values seen in answers are not fed back into
requests (GET /api/admin/users would otherwise hand it every user's id to PATCH).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi import checks as openapi

from hub.auth import Identity, Role
from hub.settings import Settings
from tests.conftest import Account, LiveServer, make_account
from tests.helpers import eventually, generate_dataset, running_worker

T = TypeVar("T")

REST_CHECKS = [
    schemathesis.checks.not_a_server_error,
    openapi.status_code_conformance,
    openapi.content_type_conformance,
    openapi.response_headers_conformance,
    openapi.response_schema_conformance,
    openapi.negative_data_rejection,
]
# 501 is what Cracktrader's live trading answers, by design: not a failure of the server.
NOT_IMPLEMENTED = {
    "include-operation-id": "run_live",
    "checks": {"not_a_server_error": {"expected-statuses": ["2xx", "3xx", "4xx", "501"]}},
}
# And Stage1's direct import, as seed 000 documents it (its async import is the one that works).
DIRECT_IMPORT = {
    "include-operation-id": "questdb_import_direct",
    "checks": {"not_a_server_error": {"expected-statuses": ["2xx", "3xx", "4xx", "501"]}},
}


def fuzz_config(
    account: Account, max_examples: int, parameters: dict[str, Any] | None = None
) -> SchemathesisConfig:
    return SchemathesisConfig.from_dict(
        {
            "headers": account.headers,
            "parameters": parameters or {},
            "seed": 20260112,
            "generation": {"mode": "all", "max-examples": max_examples},
            "phases": {
                "fuzzing": {"extra-data-sources": {"responses": False}},
                "stateful": {"enabled": False},
            },
            "request-timeout": 30,
            "operations": [NOT_IMPLEMENTED, DIRECT_IMPORT],
        }
    )


def no_graphql_server_error(ctx: Any, response: Any, case: Any) -> bool | None:
    """GraphQL's "no 5xx": the HTTP status, and every error's code and status. (schemathesis's
    own check counts every resolver error as the server's; the hub labels them: a domain error
    carries its HTTP status, a failure of the hub's own is ``INTERNAL_ERROR``.)"""
    assert response.status_code < 500, f"{response.status_code}: {response.text[:500]}"
    for error in response.json().get("errors") or []:
        extensions = error.get("extensions") or {}
        assert extensions.get("code") != "INTERNAL_ERROR", error
        assert extensions.get("status", 400) < 500, error
    return None


class ThreadedHub:
    """The real app under uvicorn, serving from a thread of its own."""

    def __init__(self, settings: Settings) -> None:
        self.live = LiveServer(settings)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._started = threading.Event()
        self._failure: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, name="fuzzed-hub", daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # noqa: BLE001 - reported to the starting thread
            self._failure.append(exc)
        finally:
            self._started.set()

    async def _serve(self) -> None:
        self.loop = asyncio.get_running_loop()
        await self.live.start()
        self._started.set()
        assert self.live.task is not None
        await self.live.task

    def start(self) -> None:
        self._thread.start()
        if not self._started.wait(60) or self._failure:
            raise RuntimeError(f"the hub did not start: {self._failure}")

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        """Await ``coro`` on the hub's loop (its pool and services live there)."""
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.live.server.should_exit = True
        self._thread.join(30)


@dataclass(frozen=True)
class Fuzzed:
    url: str
    execution_id: int  # the admin's finished backtest
    job_id: str  # the job that generated the dataset


async def finished_backtest(settings: Settings, url: str, account: Account) -> tuple[int, str]:
    """A small synthetic dataset and a backtest on it, run to the end by a worker."""
    async with running_worker(settings), httpx.AsyncClient(base_url=url, timeout=30) as http:
        await generate_dataset(url, account, "FUZZ/USD", bars=2000, seed=11)
        jobs = (await http.get("/api/jobs", headers=account.headers)).json()["jobs"]
        started = await http.post(
            "/api/v1/run/backtest",
            headers=account.headers,
            json={
                "strategy_name": "sma_crossover",
                "strategy_params": {"fast": 5, "slow": 20},
                "symbols": ["FUZZ/USD"],
                "timeframe": "1h",
            },
        )
        assert started.status_code == 200, started.text
        execution_id = int(started.json()["run_id"])

        async def finished() -> bool:
            url = f"/api/trading/executions/{execution_id}/status/"
            status = (await http.get(url, headers=account.headers)).json()["status"]
            return bool(status == "completed")

        await eventually(finished, timeout=120)
        return execution_id, jobs[0]["job_id"]


async def cancel_active_jobs(state: Any, accounts: list[Account]) -> None:
    """No worker runs while fuzzing: cancel what the fuzzers started, so that a later test's
    worker (whose reaper re-enqueues stale pending jobs) never picks it up."""
    for account in accounts:
        identity = Identity(account.user_id, account.username, Role.USER)  # its own jobs only
        for status in ("PENDING", "RUNNING"):
            rows, _ = await state.jobs.list(identity, status=status, limit=1000)
            for row in rows:
                await state.jobs.cancel(identity, str(row["job_id"]))


@pytest.fixture(scope="module")
def accounts(settings: Settings) -> dict[str, Account]:
    async def make() -> dict[str, Account]:
        return {
            "admin": await make_account(settings, admin=True),
            "user": await make_account(settings),
            "victim": await make_account(settings),
        }

    return asyncio.run(make())


@pytest.fixture(scope="module")
def fuzzed(settings: Settings, accounts: dict[str, Account]) -> Iterator[Fuzzed]:
    own = settings.model_copy(update={"redis_prefix": f"{settings.redis_prefix}fz:"})
    hub = ThreadedHub(own)
    hub.start()
    try:
        seeded = finished_backtest(own, hub.live.url, accounts["admin"])
        execution_id, job_id = hub.run(seeded, timeout=300)
        yield Fuzzed(hub.live.url, execution_id, job_id)
        fuzzers = [accounts["admin"], accounts["user"]]
        hub.run(cancel_active_jobs(hub.live.lifespan_state, fuzzers))
    finally:
        hub.stop()


@pytest.fixture(scope="module")
def rest_schema(fuzzed: Fuzzed, accounts: dict[str, Account]) -> Any:
    pinned = {
        "execution_id": fuzzed.execution_id,
        "job_id": fuzzed.job_id,
        "user_id": accounts["victim"].user_id,
    }
    config = fuzz_config(accounts["admin"], 25, pinned)
    return schemathesis.openapi.from_url(f"{fuzzed.url}/openapi.json", config=config)


@pytest.fixture(scope="module")
def graphql_schema(fuzzed: Fuzzed, accounts: dict[str, Account]) -> Any:
    config = fuzz_config(accounts["user"], 30)
    return schemathesis.graphql.from_url(f"{fuzzed.url}/graphql", config=config)


@pytest.fixture(autouse=True)
def _node_id_for_schemathesis(request: pytest.FixtureRequest) -> None:
    """schemathesis 4.32's ``from_fixture`` reads and renames ``Node._nodeid``, which pytest 9.2
    renamed ``_id``; without it every lazily loaded test fails before sending a request."""
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


rest_api = schemathesis.pytest.from_fixture("rest_schema")
graphql_api = schemathesis.pytest.from_fixture("graphql_schema")


@rest_api.parametrize()
def test_rest_conforms(case: Any) -> None:
    case.call_and_validate(checks=REST_CHECKS)


@graphql_api.parametrize()
def test_graphql_has_no_server_errors(case: Any) -> None:
    case.call_and_validate(checks=[no_graphql_server_error])


def test_graphql_notes_of_an_empty_board(fuzzed: Fuzzed, accounts: dict[str, Account]) -> None:
    """What schemathesis found in Query.notes, the suite's own plug-in domain (tests/notes):
    an empty board was an internal error; it is a 400 naming the field."""
    query = '{ notes(board: "", limit: 0) { author } }'
    with httpx.Client(base_url=fuzzed.url, headers=accounts["user"].headers) as http:
        errors = http.post("/graphql", json={"query": query}).json()["errors"]
    assert errors[0]["extensions"]["code"] == "INVALID_PARAMETER", errors
    assert errors[0]["extensions"]["field"] == "board"
