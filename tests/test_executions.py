"""Backtest executions end to end: start through Cracktrader, follow live over GraphQL and /ws,
read back through the Executions family, and compare with the engine on the same bars."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import numpy as np
import orjson
import pytest
import websockets
from gql import GraphQLRequest, gql

from hub.settings import Settings
from tests.conftest import Account, LiveServer, operation
from tests.helpers import eventually, generate_dataset, gql_session, graphql, running_worker

SYMBOL = "EXE/USD"
BARS = 30_000
CHUNK = 2_000
SMA = {"fast": 10, "slow": 40}


@pytest.fixture(scope="module")
async def worker(settings: Settings) -> AsyncIterator[None]:
    async with running_worker(settings.model_copy(update={"backtest_chunk_bars": CHUNK})):
        yield


@pytest.fixture(scope="module")
async def dataset(server: LiveServer, worker: None, admin: Account) -> dict[str, np.ndarray]:
    await generate_dataset(server.url, admin, SYMBOL, BARS, seed=99)
    return await server.lifespan_state.datasets.candles(  # type: ignore[no-any-return]
        SYMBOL, "1h", start_ns=None, end_ns=None, limit=100_000
    )


async def start(client: httpx.AsyncClient, who: Account, **overrides: Any) -> httpx.Response:
    body = {
        "strategy_name": "sma_crossover",
        "strategy_params": SMA,
        "symbols": [SYMBOL],
        "timeframe": "1h",
        "initial_cash": 10_000.0,
        "exchange": "binance",
        **overrides,
    }
    return await client.post("/api/v1/run/backtest", json=body, headers=who.headers)


async def finished(
    client: httpx.AsyncClient, who: Account, run_id: int, timeout: float = 120
) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        status = (
            await client.get(f"/api/trading/executions/{run_id}/status/", headers=who.headers)
        ).json()
        return status if status["status"] in ("completed", "stopped", "failed") else None

    return await eventually(check, timeout=timeout)


async def all_pages(
    client: httpx.AsyncClient, who: Account, url: str, key: str
) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    next_url: str | None = url
    while next_url is not None:
        body = (await client.get(next_url, headers=who.headers)).json()
        items.extend(body[key])
        next_url = body["next"]
    return items


async def reset(client: httpx.AsyncClient, who: Account) -> None:
    response = await client.delete("/api/v1/run/reset", headers=who.headers)
    assert response.status_code == 200, response.text


async def ws_collect(
    server: LiveServer, who: Account, channel: str, count: int, since: int = 0
) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    async with websockets.connect(f"{server.ws_url}/ws", max_queue=None) as ws:
        await ws.send(orjson.dumps({"op": "auth", "token": who.token}).decode())
        assert orjson.loads(await ws.recv())["op"] == "authenticated"
        await ws.send(
            orjson.dumps({"op": "subscribe", "channel": channel, "since": since}).decode()
        )
        async with asyncio.timeout(120):
            while len(got) < count:
                message = orjson.loads(await ws.recv())
                if "seq" in message and "data" in message:
                    got.append(message)
                elif message.get("op") == "error":
                    raise AssertionError(message)
    return got


async def test_backtest_streams_and_reads_back_what_the_engine_computes(
    server: LiveServer, client: httpx.AsyncClient, dataset: dict[str, np.ndarray], alice: Account
) -> None:
    from engine import run_backtest

    expected = run_backtest(dataset, "sma_crossover", SMA, initial_capital=10_000.0)
    n_trades = len(expected.trades)
    assert n_trades > 20

    await reset(client, alice)
    response = await start(client, alice)
    assert response.status_code == 200, response.text
    run_id = response.json()["run_id"]
    live_gql: list[dict[str, Any]] = []

    async def follow_gql() -> None:
        async with gql_session(server.ws_url, alice.token) as session:
            request = GraphQLRequest(
                gql(operation("ExecutionTrades")),
                variable_values={"executionId": str(run_id), "sinceSequence": 0},
            )
            async with asyncio.timeout(120):
                async for item in session.subscribe(request):
                    live_gql.append(item["executionTrades"])
                    if len(live_gql) == n_trades:
                        return

    followers = asyncio.gather(
        follow_gql(), ws_collect(server, alice, f"execution:{run_id}:trades", n_trades)
    )
    status = await finished(client, alice, run_id)
    _, live_ws = await followers
    assert status["status"] == "completed" and status["progress"] == 100.0

    rest = await all_pages(
        client, alice, f"/api/trading/executions/{run_id}/trades/?page_size=37", "trades"
    )
    assert [t["sequence"] for t in rest] == list(range(1, n_trades + 1))
    assert [m["seq"] for m in live_ws] == list(range(1, n_trades + 1))
    assert [t["sequence"] for t in live_gql] == list(range(1, n_trades + 1))
    for engine_trade, served, streamed, gql_trade in zip(
        expected.trades, rest, live_ws, live_gql, strict=True
    ):
        trade = served["trade"]
        assert streamed["data"] == trade
        assert trade["entry_index"] == engine_trade["entry_index"]
        assert float(trade["entry_price"]) == engine_trade["entry_price"]
        assert float(trade["exit_price"]) == engine_trade["exit_price"]
        assert trade["units"] == engine_trade["units"]
        assert float(trade["pnl"]) == engine_trade["pnl"]
        assert (
            gql_trade["pnl"] == engine_trade["pnl"]
            and gql_trade["entryIndex"] == engine_trade["entry_index"]
        )
    last = expected.trades[-1]
    assert rest[-1]["trade"]["status"] == ("open" if last["exit_index"] < 0 else "closed")

    metrics = (
        await client.get(f"/api/trading/executions/{run_id}/metrics/latest/", headers=alice.headers)
    ).json()
    assert metrics["has_checkpoint"] and metrics["checkpoint"]["processed"] == BARS
    assert metrics["checkpoint"]["total_trades"] == int(expected.metrics["total_trades"])
    assert metrics["checkpoint"]["total_pnl"] == f"{expected.metrics['total_pnl']:.2f}"

    equity = await all_pages(
        client, alice, f"/api/trading/executions/{run_id}/equity/?page_size=1000", "equity_curve"
    )
    assert [p["sequence"] for p in equity] == list(range(1, BARS + 1))
    assert np.array_equal(np.array([p["balance"] for p in equity]), expected.equity)
    small = (
        await client.get(
            f"/api/trading/executions/{run_id}/equity/?max_points=100&page_size=1000",
            headers=alice.headers,
        )
    ).json()
    assert small["count"] == 100 and small["granularity_seconds"] > 3600
    assert (
        small["equity_curve"][0]["sequence"] == 1 and small["equity_curve"][-1]["sequence"] == BARS
    )

    results = (await client.get("/api/v1/results", headers=alice.headers)).json()
    assert results["run_id"] == run_id and len(results["trades"]) == n_trades
    assert results["final_value"] == pytest.approx(expected.equity[-1], rel=1e-12)


@pytest.mark.parametrize(
    "options",
    [
        {"fees": 0.001},
        {"fill": "next_open"},
        {"stop_loss": 0.01, "take_profit": 0.02, "direction": "both"},
    ],
)
async def test_a_run_reads_the_columns_its_options_use_and_equals_the_engine(
    client: httpx.AsyncClient,
    dataset: dict[str, np.ndarray],
    alice: Account,
    pool: asyncpg.Pool,
    options: dict[str, Any],
) -> None:
    """A run reads only the bar columns it uses (the close, and the open, high and low its
    fills and stops need), with trades and equity those of the engine on every column."""
    from engine import run_backtest

    expected = run_backtest(dataset, "sma_crossover", SMA, initial_capital=10_000.0, **options)
    await reset(client, alice)
    response = await start(client, alice, options=options)
    assert response.status_code == 200, response.text
    run_id = response.json()["run_id"]
    assert (await finished(client, alice, run_id))["status"] == "completed"
    trades = await pool.fetch(
        "select entry_index, exit_index, entry_price, exit_price, units, pnl "
        "from execution_trades where execution_id = $1 order by sequence",
        run_id,
    )
    assert len(trades) == len(expected.trades)
    for row, engine_trade in zip(trades, expected.trades, strict=True):
        assert row["entry_index"] == engine_trade["entry_index"]
        assert row["exit_price"] == engine_trade["exit_price"]
        assert row["units"] == engine_trade["units"] and row["pnl"] == engine_trade["pnl"]
    chunks = await pool.fetch(
        "select balance from execution_equity where execution_id = $1 order by first_seq", run_id
    )
    balance = np.concatenate([np.frombuffer(c["balance"], dtype="<f8") for c in chunks])
    assert np.array_equal(balance, expected.equity)


async def test_paging_by_since_sequence_returns_every_item_once(
    client: httpx.AsyncClient, dataset: dict[str, np.ndarray], alice: Account
) -> None:
    await reset(client, alice)
    run_id = (await start(client, alice)).json()["run_id"]
    await finished(client, alice, run_id)
    seen: list[int] = []
    since = 0
    while True:
        body = (
            await client.get(
                f"/api/trading/executions/{run_id}/events/",
                params={"since_sequence": since, "page_size": 250},
                headers=alice.headers,
            )
        ).json()
        if not body["events"]:
            break
        seen.extend(e["sequence"] for e in body["events"])
        since = body["events"][-1]["sequence"]
    assert seen == list(range(1, len(seen) + 1))
    kinds = (
        await client.get(
            f"/api/trading/executions/{run_id}/events/",
            params={"event_type": "status_changed"},
            headers=alice.headers,
        )
    ).json()
    assert [e["event"]["status"] for e in kinds["events"]] == ["running", "completed"]
    assert kinds["count"] == 2
    trades = (
        await client.get(
            f"/api/trading/executions/{run_id}/trades/",
            params={"direction": "short"},
            headers=alice.headers,
        )
    ).json()
    assert trades["count"] == 0  # a long-only run
    other = (
        await client.get(
            f"/api/trading/executions/{run_id}/trades/",
            params={"instrument": "NOPE"},
            headers=alice.headers,
        )
    ).json()
    assert other["count"] == 0


async def test_ownership_and_bad_parameters(
    client: httpx.AsyncClient,
    dataset: dict[str, np.ndarray],
    alice: Account,
    bob: Account,
    admin: Account,
) -> None:
    await reset(client, alice)
    run_id = (await start(client, alice)).json()["run_id"]
    await finished(client, alice, run_id)
    for path in ("status/", "events/", "trades/", "equity/", "metrics/latest/"):
        url = f"/api/trading/executions/{run_id}/{path}"
        forbidden = await client.get(url, headers=bob.headers)
        assert forbidden.status_code == 403 and "error" in forbidden.json()
        assert (await client.get(url, headers=admin.headers)).status_code == 200
        missing = await client.get(
            f"/api/trading/executions/987654321/{path}", headers=alice.headers
        )
        assert missing.status_code == 404 and missing.json() == {
            "error": "execution 987654321 not found"
        }
        assert (await client.get(url)).status_code == 401
    for path, params in (
        ("events/", {"event_type": "party"}),
        ("events/", {"page_size": 5000}),
        ("events/", {"since_sequence": -1}),
        ("trades/", {"direction": "sideways"}),
        ("equity/", {"start_time": "yesterday"}),
        ("equity/", {"max_points": 1}),
        ("equity/", {"page": 0}),
    ):
        bad = await client.get(
            f"/api/trading/executions/{run_id}/{path}", params=params, headers=alice.headers
        )
        assert bad.status_code == 400 and isinstance(bad.json()["error"], str), (path, params)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"strategy_name": "astrology"}, "strategy_name"),
        ({"strategy_params": {"fast": 10, "slow": 40, "moon": 1}}, "strategy_params"),
        ({"strategy_params": {"fast": 50, "slow": 20}}, "strategy_params"),
        ({"start_date": "2021-01-01T00:00:00Z", "end_date": "2020-01-01T00:00:00Z"}, "end_date"),
        ({"start_date": "2030-01-01T00:00:00Z", "end_date": "2030-02-01T00:00:00Z"}, "start_date"),
        ({"symbols": ["NODATA/USD"]}, "symbols"),
        ({"initial_cash": -5}, "initial_cash"),
        ({"timeframe": "1fortnight"}, "timeframe"),
        ({"options": {"warp": 9}}, "warp"),
    ],
)
async def test_bad_backtest_requests_are_400_and_write_nothing(
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    dataset: dict[str, np.ndarray],
    alice: Account,
    overrides: dict[str, Any],
    field: str,
) -> None:
    await reset(client, alice)
    before = await pool.fetchval(
        "select count(*) from executions where owner_id = $1", alice.user_id
    )
    response = await start(client, alice, **overrides)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert set(error) == {"code", "message", "details"} and error["details"]["field"] == field
    assert (
        await pool.fetchval("select count(*) from executions where owner_id = $1", alice.user_id)
        == before
    )


async def test_malformed_body_and_live_mode(client: httpx.AsyncClient, alice: Account) -> None:
    malformed = await client.post("/api/v1/run/backtest", content=b"{nope", headers=alice.headers)
    assert malformed.status_code == 400 and malformed.json()["error"]["code"] == "INVALID_PARAMETER"
    paper = await client.post(
        "/api/v1/run/live",
        headers=alice.headers,
        json={
            "strategy_name": "sma_crossover",
            "symbols": ["BTC/USDT"],
            "timeframe": "5m",
            "exchange": "binance",
            "exchange_config": {"apiKey": "k", "secret": "s"},
            "mode": "paper",
        },
    )
    # Paper trading on a symbol without market data: a 400 naming it, secrets never echoed.
    assert paper.status_code == 400 and paper.json()["error"]["details"]["field"] == "symbols"
    assert "secret" not in paper.text and '"s"' not in paper.text
    unauthenticated = await client.get("/api/v1/status")
    assert (
        unauthenticated.status_code == 401
        and unauthenticated.json()["error"]["code"] == "UNAUTHORIZED"
    )


async def test_strategies_exchanges_health(client: httpx.AsyncClient, alice: Account) -> None:
    strategies = (await client.get("/api/v1/strategies", headers=alice.headers)).json()[
        "strategies"
    ]
    names = {s["name"] for s in strategies}
    assert {
        "sma_crossover",
        "ema_crossover",
        "threshold",
        "rsi_reversion",
        "bollinger_breakout",
        "floor",
        "max_points",
    } <= names
    sma = next(s for s in strategies if s["name"] == "sma_crossover")
    assert {p["name"]: p["default"] for p in sma["params"]}.keys() >= {"fast", "slow"}
    assert (await client.get("/api/v1/exchanges", headers=alice.headers)).json()["exchanges"]
    health = (await client.get("/api/v1/health")).json()
    assert health["status"] == "healthy" and set(health) == {
        "status",
        "checks",
        "metrics",
        "timestamp",
    }


async def test_stop_mid_run_ends_stopped_with_a_consistent_checkpoint(
    server: LiveServer,
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    dataset: dict[str, np.ndarray],
    alice: Account,
) -> None:
    await reset(client, alice)
    run_id = (await start(client, alice)).json()["run_id"]
    statuses = []
    async with gql_session(server.ws_url, alice.token) as session:
        request = GraphQLRequest(
            gql(operation("ExecutionStatus")), variable_values={"executionId": str(run_id)}
        )
        stop_sent = False
        async with asyncio.timeout(120):
            async for item in session.subscribe(request):
                update = item["executionStatus"]
                statuses.append(update["status"])
                if update["status"] == "RUNNING" and update["progress"] > 0 and not stop_sent:
                    stopped = await client.post("/api/v1/run/stop", headers=alice.headers)
                    assert stopped.json()["status"] in ("stopping", "stopped")
                    stop_sent = True
    assert statuses[-1] == "STOPPED"
    status = (
        await client.get(f"/api/trading/executions/{run_id}/status/", headers=alice.headers)
    ).json()
    checkpoint = status["checkpoint"]
    assert 0 < checkpoint["processed"] < BARS and checkpoint["processed"] % CHUNK == 0
    points = await pool.fetchval(
        "select sum(count) from execution_equity where execution_id = $1", run_id
    )
    assert points == checkpoint["processed"]
    closed = await pool.fetchval(
        "select count(*) from execution_trades where execution_id = $1 and status = 'closed'",
        run_id,
    )
    assert closed == checkpoint["total_trades"]
    from engine import run_backtest

    partial = run_backtest(
        {k: v[: checkpoint["processed"]] for k, v in dataset.items()}, "sma_crossover", SMA
    )
    assert checkpoint["total_pnl"] == f"{partial.metrics['total_pnl']:.2f}"


async def test_a_client_reconnecting_mid_run_misses_nothing(
    server: LiveServer, client: httpx.AsyncClient, dataset: dict[str, np.ndarray], alice: Account
) -> None:
    await reset(client, alice)
    run_id = (await start(client, alice)).json()["run_id"]
    channel = f"execution:{run_id}:events"
    first = await ws_collect(server, alice, channel, 40)
    second = await ws_collect(server, alice, channel, 60, since=first[-1]["seq"])
    status = await finished(client, alice, run_id)
    assert status["status"] == "completed"
    rest = await all_pages(
        client, alice, f"/api/trading/executions/{run_id}/events/?page_size=1000", "events"
    )
    third = await ws_collect(server, alice, channel, len(rest) - 100, since=second[-1]["seq"])
    received = first + second + third
    assert [m["seq"] for m in received] == list(range(1, len(rest) + 1))
    assert [m["data"]["event"] for m in received] == [e["event"] for e in rest]


async def test_graphql_reads_start_and_stop(
    client: httpx.AsyncClient, dataset: dict[str, np.ndarray], alice: Account, bob: Account
) -> None:
    started = await graphql(
        client,
        operation("StartBacktest"),
        {
            "input": {
                "strategy": "ema_crossover",
                "params": {"fast": 12, "slow": 26},
                "symbol": SYMBOL,
                "timeframe": "1h",
                "options": {"fees": 0.001},
            }
        },
        token=alice.token,
    )
    assert "errors" not in started, started
    execution_id = started["data"]["startBacktest"]["executionId"]
    await finished(client, alice, int(execution_id))
    body = await graphql(
        client, operation("Execution"), {"id": execution_id, "maxPoints": 50}, token=alice.token
    )
    execution = body["data"]["execution"]
    assert execution["status"] == "COMPLETED" and execution["strategy"] == "ema_crossover"
    assert len(execution["equity"]) == 50 and execution["latestCheckpoint"]["processed"] == BARS
    assert [e["sequence"] for e in execution["events"]][:3] == [1, 2, 3]
    assert execution["trades"] and all(t["fees"] > 0 for t in execution["trades"])
    listed = await graphql(
        client, "{ executions(limit: 5) { executionId } strategies { name } }", token=alice.token
    )
    assert execution_id in {e["executionId"] for e in listed["data"]["executions"]}
    other = await graphql(
        client, operation("Execution"), {"id": execution_id, "maxPoints": 50}, token=bob.token
    )
    assert other["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    stop = await graphql(
        client, operation("StopExecution"), {"id": execution_id}, token=alice.token
    )
    assert stop["data"]["stopExecution"]["status"] == "COMPLETED"  # already done: nothing to stop


async def test_a_failing_backtest_ends_failed_with_an_error_event(
    client: httpx.AsyncClient, dataset: dict[str, np.ndarray], alice: Account
) -> None:
    await reset(client, alice)
    # The threshold strategy needs a prediction column, which a synthetic OHLCV dataset lacks.
    response = await start(client, alice, strategy_name="threshold", strategy_params={})
    assert response.status_code == 200, response.text
    run_id = response.json()["run_id"]
    status = await finished(client, alice, run_id)
    assert status["status"] == "failed" and "prediction" in status["error_message"]
    errors = (
        await client.get(
            f"/api/trading/executions/{run_id}/events/",
            params={"event_type": "error_occurred"},
            headers=alice.headers,
        )
    ).json()
    assert errors["count"] == 1 and "prediction" in errors["events"][0]["event"]["message"]


async def test_a_chunk_failing_to_commit_ends_the_run_failed_with_gap_free_streams(
    client: httpx.AsyncClient, pool: asyncpg.Pool, dataset: dict[str, np.ndarray], alice: Account
) -> None:
    """Two chunks are written at once: when one fails to commit, the one after it (rows copied,
    waiting for it) rolls back too, and the failure's events follow what did commit."""
    failing = 4 * CHUNK
    await pool.execute(
        f"""
        create function fail_a_checkpoint() returns trigger language plpgsql as $$
        begin
            if new.processed = {failing} then raise exception 'checkpoint refused'; end if;
            return new;
        end $$;
        create trigger fail_a_checkpoint before insert on execution_checkpoints
            for each row execute function fail_a_checkpoint();
        """
    )
    try:
        await reset(client, alice)
        run_id = (await start(client, alice)).json()["run_id"]
        status = await finished(client, alice, run_id)
    finally:
        await pool.execute(
            "drop trigger fail_a_checkpoint on execution_checkpoints; "
            "drop function fail_a_checkpoint()"
        )
    assert status["status"] == "failed" and "checkpoint refused" in status["error_message"]
    assert status["checkpoint"]["processed"] == failing - CHUNK
    points = await pool.fetchval(
        "select sum(count) from execution_equity where execution_id = $1", run_id
    )
    assert points == failing - CHUNK
    events = await pool.fetch(
        "select sequence, event_type from execution_events where execution_id = $1 "
        "order by sequence",
        run_id,
    )
    trades = await pool.fetch(
        "select sequence, exit_index from execution_trades where execution_id = $1 "
        "order by sequence",
        run_id,
    )
    assert [e["sequence"] for e in events] == list(range(1, len(events) + 1))
    assert [t["sequence"] for t in trades] == list(range(1, len(trades) + 1))
    assert all(t["exit_index"] < failing - CHUNK for t in trades)
    assert [e["event_type"] for e in events[-2:]] == ["status_changed", "error_occurred"]
    from engine import run_backtest
    from engine.records import TradeStatus

    kept = run_backtest({k: v[: failing - CHUNK] for k, v in dataset.items()}, "sma_crossover", SMA)
    assert len(trades) == int(np.sum(kept.trades["status"] == TradeStatus.Closed))


async def test_cancelling_the_job_stops_the_execution_cleanly(
    client: httpx.AsyncClient, pool: asyncpg.Pool, dataset: dict[str, np.ndarray], alice: Account
) -> None:
    # The engine is faster than any poll: hold the execution's row so the run waits at its
    # next chunk write, cancel while it waits, then let it go on to see the cancel. A run
    # that finished before the row was held is tried again with a new one.
    async def waiting_or_done(run_id: int) -> str | None:
        waits = await pool.fetchval(
            """select count(*) from pg_stat_activity
               where wait_event_type = 'Lock' and query ilike '%update executions%'"""
        )
        if waits:
            return "waits"
        status = await pool.fetchval(
            "select status from executions where execution_id = $1", run_id
        )
        return "done" if status in ("completed", "stopped", "failed") else None

    async with pool.acquire() as holder:
        for _ in range(5):
            await reset(client, alice)
            run_id = (await start(client, alice)).json()["run_id"]
            job_id = await pool.fetchval(
                "select job_id::text from executions where execution_id = $1", run_id
            )
            hold = holder.transaction()
            await hold.start()
            await holder.execute(
                "select 1 from executions where execution_id = $1 for update", run_id
            )
            if await eventually(lambda run_id=run_id: waiting_or_done(run_id)) == "waits":
                break
            await hold.rollback()
        else:
            pytest.fail("every run finished before its row could be held")
        cancel = asyncio.create_task(
            graphql(client, operation("CancelJob"), {"id": job_id}, token=alice.token)
        )

        async def cancel_asked() -> bool:
            return cancel.done() or bool(
                await pool.fetchval(
                    "select cancel_requested from jobs where job_id = $1::uuid", job_id
                )
            )

        await eventually(cancel_asked)
        await hold.rollback()
    cancelled = await cancel
    assert "errors" not in cancelled, cancelled
    status = await finished(client, alice, run_id)
    assert status["status"] == "stopped"
    sequences = [
        r["sequence"]
        for r in await pool.fetch(
            "select sequence from execution_events where execution_id = $1 order by sequence",
            run_id,
        )
    ]
    assert sequences == list(range(1, len(sequences) + 1))  # no gap, no duplicate
    # The runner is free again: a new run starts.
    assert (await start(client, alice)).status_code == 200
    await finished(
        client, alice, (await client.get("/api/v1/status", headers=alice.headers)).json()["run_id"]
    )


async def test_a_job_ended_without_its_handler_closes_its_execution(
    server: LiveServer, client: httpx.AsyncClient, pool: asyncpg.Pool, bob: Account
) -> None:
    """A pending job cancelled, or a lost worker's job failed by the reaper, never ran the code
    that closes its execution: the job type's end hook does."""
    from hub.executions import repository as repo
    from hub.jobs import repository as jobs_repo

    state = server.lifespan_state
    for job_status, expected in (("CANCELLED", "stopped"), ("FAILED", "failed")):
        async with pool.acquire() as conn, conn.transaction():
            task_id = await repo.insert_task(
                conn,
                bob.user_id,
                {
                    "task_type": "backtest",
                    "strategy": "sma_crossover",
                    "params": SMA,
                    "symbols": [SYMBOL],
                    "timeframe": "1h",
                    "start_at": None,
                    "end_at": None,
                    "initial_capital": 10_000.0,
                    "options": {},
                },
            )
            job = await jobs_repo.insert(
                conn, bob.user_id, "execution.backtest", {"task_id": task_id}, 0
            )
            execution_id = await repo.insert_execution(
                conn, task_id, bob.user_id, str(job["job_id"])
            )
            await jobs_repo.add_to_payload(conn, str(job["job_id"]), {"execution_id": execution_id})
        ended = await jobs_repo.finish(pool, str(job["job_id"]), job_status, error="worker lost")
        assert ended is not None
        await state.executions.job_ended(ended)
        status = (
            await client.get(f"/api/trading/executions/{execution_id}/status/", headers=bob.headers)
        ).json()
        assert status["status"] == expected
        events = (
            await client.get(f"/api/trading/executions/{execution_id}/events/", headers=bob.headers)
        ).json()
        assert [
            e["event"]["status"] for e in events["events"] if e["event_type"] == "status_changed"
        ] == [expected]


async def test_a_layered_strategy_runs_through_the_hub(
    client: httpx.AsyncClient, dataset: dict[str, np.ndarray], alice: Account
) -> None:
    from engine import run_backtest

    expected = run_backtest(dataset, "floor", {}, initial_capital=10_000.0)
    await reset(client, alice)
    response = await start(client, alice, strategy_name="floor", strategy_params={})
    assert response.status_code == 200, response.text
    run_id = response.json()["run_id"]
    status = await finished(client, alice, run_id)
    assert status["status"] == "completed", status
    trades = await all_pages(client, alice, f"/api/trading/executions/{run_id}/trades/", "trades")
    assert len(trades) == len(expected.trades) > 0
    assert {"layer_number", "retracement_count"} <= set(trades[0]["trade"]["details"])
    assert sorted(float(t["trade"]["pnl"]) for t in trades) == sorted(
        expected.trades["pnl"].tolist()
    )
