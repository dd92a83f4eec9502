"""Signals end to end: a model made from a template through Sigma Lab's REST, trained by a
worker, then judging the new bars of its ticker (appended to its dataset, or built from live
ticks) into signals that REST, GraphQL and ``/ws`` serve.

The oracle: the signals expected are recomputed here from the trained booster on the whole bar
history (not the evaluator's window) with the rules written out again below.
"""

from __future__ import annotations

import asyncio
import itertools
import math
from typing import Any

import asyncpg
import httpx
import numpy as np
import orjson
import pytest
import websockets

from hub.datasets.timeframes import timeframe_ns
from hub.settings import Settings
from hub.signals.decide import live_metrics, quantity
from hub.times import ns_of
from tests.conftest import Account, LiveServer
from tests.helpers import eventually, gql_session, running_worker
from tests.test_webhooks import (  # noqa: F401 - fixtures: a hub whose webhooks may reach here
    Receiver,
    local_hub,
    local_settings,
    receiver,
    register,
    verify,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")

DAY = timeframe_ns("1d")
T0 = 1_600_041_600 * 10**9  # 2020-09-14 00:00 UTC, a day boundary
ENTRY, EXIT = 0.5, 0.499  # opened up (an admin's PATCH): nearly every bar has a view


def walk(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
    open_ = np.concatenate([[close[0]], close[:-1]])
    spread = np.abs(rng.normal(0, 0.01, n)) * close
    return {
        "ts": T0 + np.arange(n, dtype=np.int64) * DAY,
        "open": open_,
        "high": np.maximum(open_, close) + spread,
        "low": np.minimum(open_, close) - spread,
        "close": close,
        "volume": rng.uniform(1e5, 2e5, n),
    }


def part(bars: dict[str, np.ndarray], start: int, stop: int) -> dict[str, np.ndarray]:
    return {k: v[start:stop] for k, v in bars.items()}


async def write_bars(
    server: LiveServer, admin: Account, symbol: str, bars: dict[str, np.ndarray]
) -> None:
    """Bars into the symbol's daily dataset, as an import writes them (one transaction)."""
    datasets = server.lifespan_state.datasets
    first, end = int(bars["ts"][0]), int(bars["ts"][-1]) + DAY
    dataset = await datasets.find(symbol, "1d")
    if dataset is None:
        dataset = await datasets.prepare_series(
            symbol, "1d", first, end, source="test", created_by=admin.user_id
        )
    await datasets.append_bars(dataset, bars)
    await datasets.refresh_stats(dataset)


async def job_done(http: httpx.AsyncClient, account: Account, job_id: str) -> None:
    async def done() -> bool:
        job = (await http.get(f"/api/jobs/{job_id}", headers=account.headers)).json()
        assert job["status"] not in ("FAILED", "CANCELLED"), job
        return bool(job["status"] == "COMPLETED")

    await eventually(done, timeout=120)


async def trained_model(
    http: httpx.AsyncClient, alice: Account, admin: Account, symbol: str, bars: int
) -> str:
    """Template -> model -> matrix -> trained version, through REST; thresholds opened up
    (an admin's PATCH) so that every bar has a view and signals come often."""
    made = await http.post(
        "/api/v1/models",
        json={
            "template_id": "swingsigma_default",
            "name": f"{symbol} swing",
            "risk_profile": "Aggressive",
            "config": {"ticker": symbol},
        },
        headers=alice.headers,
    )
    assert made.status_code == 201, made.text
    model_id = made.json()["model_id"]
    end = np.datetime64(T0 + (bars - 1) * DAY, "ns").astype("datetime64[D]")
    matrix = await http.post(
        "/api/v1/build_matrix",
        json={"model_id": model_id, "start_date": "2020-09-14", "end_date": str(end)},
        headers=alice.headers,
    )
    assert matrix.status_code == 200, matrix.text
    trained = await http.post(
        "/api/v1/train",
        json={
            "model_id": model_id,
            "matrix_sha": matrix.json()["matrix_sha"],
            "config": {"epochs": 30, "learning_rate": 0.1},
        },
        headers=alice.headers,
    )
    assert trained.status_code == 200, trained.text
    await job_done(http, alice, trained.json()["job_id"])
    patched = await http.patch(
        f"/api/v1/admin/models/{model_id}",
        json={"config": {"thresholds": {"entry": ENTRY, "exit": EXIT}}},
        headers=admin.headers,
    )
    assert patched.status_code == 200, patched.text
    return str(model_id)


async def expected_signals(
    pool: asyncpg.Pool, model_id: str, bars: dict[str, np.ndarray], first: int
) -> list[tuple[str, int]]:
    """(action, bar start) of every signal the bars from ``first`` on should give, from the
    model's booster on the whole history."""
    from engine.features import feature_matrix, parse_features
    from hub.research.training import design, load_booster

    row = await pool.fetchrow(
        """select v.file_sha, v.feature_columns, mx.features, mx.horizon
           from research.model_versions v
           join research.matrices mx on mx.model_id = v.model_id and mx.matrix_sha = v.matrix_sha
           where v.model_id = $1 and v.status = 'completed' order by v.version desc limit 1""",
        model_id,
    )
    content = await pool.fetchval(
        "select content from research.artifacts where sha = $1", row["file_sha"]
    )
    booster = load_booster(bytes(content))
    matrix = feature_matrix(bars, parse_features(list(row["features"])), row["horizon"])
    p = booster.predict(design(matrix, list(row["feature_columns"])))
    out, held, age = [], None, 0
    for i in range(first, bars["ts"].size):
        if held is not None:
            age += 1
            if age >= row["horizon"]:
                held = None
        action = "BUY" if p[i] >= ENTRY else "SELL" if p[i] <= EXIT else None
        if action is not None and action != held:
            out.append((action, int(bars["ts"][i])))
            held, age = action, 0
    return out


async def stored_signals(
    http: httpx.AsyncClient, account: Account, model_id: str
) -> list[dict[str, Any]]:
    page = await http.get(
        "/api/v1/signals", params={"model_id": model_id, "limit": 500}, headers=account.headers
    )
    assert page.status_code == 200, page.text
    return list(reversed(page.json()["items"]))  # oldest first


def bar_start_ns(doc: dict[str, Any]) -> int:
    return int(np.datetime64(doc["bar_start"].removesuffix("Z"), "ns").astype(np.int64))


async def test_a_trained_model_signals_on_new_bars_end_to_end(
    server: LiveServer,
    settings: Settings,
    pool: asyncpg.Pool,
    alice: Account,
    bob: Account,
    admin: Account,
) -> None:
    symbol, n, more = "SIGA", 400, 40
    bars = walk(n + more, seed=11)
    await write_bars(server, admin, symbol, part(bars, 0, n))
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=30) as http,
        running_worker(settings),
    ):
        model_id = await trained_model(http, alice, admin, symbol, n)
        # The model starts at its ticker's newest bar: nothing judged yet.
        await eventually(
            lambda: pool.fetchval(
                "select last_bar_ts from research.signal_cursors where model_id = $1", model_id
            )
        )
        assert await stored_signals(http, alice, model_id) == []

        # A GraphQL subscriber and a /ws bot follow the topic from the start.
        async with gql_session(server.ws_url, bob.token) as session:
            received: list[dict[str, Any]] = []

            async def follow() -> None:
                from gql import gql

                document = gql(
                    """subscription ($m: String!) { signals(modelId: $m, sinceSequence: 0) {
                         sequence event signal { signalId action status price timestamp } } }"""
                )
                async for item in session.subscribe(document, variable_values={"m": model_id}):
                    received.append(item["signals"])

            follower = asyncio.create_task(follow())
            try:
                await write_bars(server, admin, symbol, part(bars, n, n + more))
                want = await expected_signals(pool, model_id, bars, n)
                assert want, "the oracle expects signals on these bars"

                async def all_judged() -> list[dict[str, Any]] | None:
                    got = await stored_signals(http, bob, model_id)
                    cursor = await pool.fetchval(
                        "select last_bar_ts from research.signal_cursors where model_id = $1",
                        model_id,
                    )
                    last = int(bars["ts"][-1])
                    return got if cursor is not None and cursor.timestamp() * 1e9 >= last else None

                got = await eventually(all_judged, timeout=60)
                assert [(s["action"], bar_start_ns(s)) for s in got] == want
                # Sequence order: generated, and each ending before what replaced it.
                events = await pool.fetch(
                    "select seq, data from topic_events where topic = $1 order by seq",
                    f"signals:{model_id}",
                )
                assert [e["seq"] for e in events] == list(range(1, len(events) + 1))

                async def all_received() -> bool:
                    return len(received) >= len(events)

                await eventually(all_received, timeout=30)
            finally:
                follower.cancel()
        assert [r["sequence"] for r in received[: len(events)]] == [e["seq"] for e in events]
        kinds = [orjson.loads(e["data"])["event"] for e in events]
        assert kinds.count("signal.generated") == len(want)

        # Every signal but the newest ended: filled after the horizon or cancelled by the next.
        statuses = [s["status"] for s in got]
        assert statuses[-1] == "active"
        assert set(statuses[:-1]) <= {"filled", "cancelled"}
        for earlier, later in itertools.pairwise(got):
            if earlier["status"] == "cancelled":
                assert later["action"] != earlier["action"]
                sign = 1 if earlier["action"] == "BUY" else -1
                assert math.isclose(
                    earlier["realized_return"], sign * (later["price"] / earlier["price"] - 1)
                )
        first = got[0]
        assert first["ticker"] == symbol and first["model_id"] == model_id
        assert first["quantity"] == quantity(first["price"], "Aggressive")
        assert first["confidence"] >= EXIT
        # timestamp: when the bar closed.
        assert bar_start_ns(first) + DAY == int(
            np.datetime64(first["timestamp"].removesuffix("Z"), "ns").astype(np.int64)
        )

        # A /ws bot resumes from a sequence and reads the rest in order.
        async with websockets.connect(
            f"{server.ws_url}/ws", additional_headers={"Authorization": f"Bearer {bob.token}"}
        ) as ws:
            await ws.send(
                orjson.dumps({"op": "subscribe", "channel": f"signals:{model_id}", "since": 1})
            )
            frames: list[dict[str, Any]] = []
            async with asyncio.timeout(15):
                while len(frames) < len(events) - 1:
                    frame = orjson.loads(await ws.recv())
                    if "op" not in frame and frame.get("channel") == f"signals:{model_id}":
                        frames.append(frame)
            assert [f["seq"] for f in frames] == [e["seq"] for e in events[1:]]

        # Filters, paging and the leaderboard.
        active = await http.get(
            "/api/v1/signals",
            params={"model_id": model_id, "status": "active"},
            headers=alice.headers,
        )
        assert [s["signal_id"] for s in active.json()["items"]] == [got[-1]["signal_id"]]
        paged = await http.get(
            "/api/v1/signals",
            params={"model_id": model_id, "limit": 2, "offset": 1},
            headers=alice.headers,
        )
        assert paged.json()["total"] == len(got) and len(paged.json()["items"]) == min(
            2, len(got) - 1
        )
        board = await http.get(
            "/api/v1/signals/leaderboard",
            params={
                "pack": "swingsigma",
                "risk_profile": "Aggressive",
                "start": "2020-01-01",
                "end": "2030-01-01",
            },
            headers=alice.headers,
        )
        assert board.status_code == 200, board.text
        mine = [i for i in board.json()["items"] if i["model_id"] == model_id]
        assert len(mine) == 1
        ended = [s["realized_return"] for s in got if s["status"] != "active"]
        expected = live_metrics(
            len(got),
            len(ended),
            sum(r > 0 for r in ended),
            float(np.mean(ended)),
            float(np.std(ended, ddof=1)),
            5 * DAY,
        )
        for key, value in expected.items():
            assert mine[0]["metrics"][key] == pytest.approx(value), key
        assert mine[0]["period"] == {"start": "2020-01-01", "end": "2030-01-01"}

        # Switched off, the model forgets where it was; the bars that close meanwhile are never
        # judged, and switched on again it starts at the newest bar.
        async def cursor() -> Any:
            return await pool.fetchval(
                "select last_bar_ts from research.signal_cursors where model_id = $1", model_id
            )

        async def patch_active(active: bool) -> None:
            patched = await http.patch(
                f"/api/v1/admin/models/{model_id}", json={"active": active}, headers=admin.headers
            )
            assert patched.status_code == 200, patched.text

        async def no_cursor() -> bool:
            return await cursor() is None

        await patch_active(False)
        await eventually(no_cursor, timeout=30)
        later = walk(n + more + 10, seed=11)  # the same walk, ten bars further
        await write_bars(server, admin, symbol, part(later, n + more, n + more + 10))
        await patch_active(True)
        restarted = await eventually(cursor, timeout=30)
        assert restarted.timestamp() * 1e9 == later["ts"][-1]
        assert len(await stored_signals(http, alice, model_id)) == len(got)


async def test_live_ticks_close_bars_that_a_model_judges(
    local_hub: LiveServer,  # noqa: F811 - the fixture imported above
    local_settings: Settings,  # noqa: F811
    receiver: Receiver,  # noqa: F811
    pool: asyncpg.Pool,
    alice: Account,
    admin: Account,
) -> None:
    """No import: ticks posted for the ticker close daily bars (the aggregator), the model
    judges each of them, and its owner's webhook receives each new signal, signed. On a hub
    whose webhooks may reach this machine (tests/test_webhooks.py's)."""
    server, symbol, n = local_hub, "SIGB", 300
    bars = walk(n, seed=12)
    await write_bars(server, admin, symbol, bars)
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=30) as http,
        running_worker(local_settings),
    ):
        secret = "signals-" + "s" * 16
        await register(http, alice, receiver.url("/signals"), ["signal.generated"], secret)
        model_id = await trained_model(http, alice, admin, symbol, n)
        await eventually(
            lambda: pool.fetchval(
                "select 1 from research.signal_cursors where model_id = $1", model_id
            )
        )
        last_close = float(bars["close"][-1])
        ticks = []
        for day in range(1, 5):  # a tick a day: each closes the day before
            t = int(bars["ts"][-1]) + day * DAY + 9 * 3600 * 10**9
            ticks.append(
                {"symbol": symbol, "ts": t, "price": last_close * (1 + 0.01 * day), "size": 1}
            )

        async def bars_built() -> int:
            return int(
                await pool.fetchval(
                    "select count(*) from ts.live_bars where symbol = $1 and timeframe = '1d'",
                    symbol,
                )
            )

        # Posted once: the bars are built from the symbol's tick history when the model's
        # evaluator asks for them (within its first passes), whenever that is.
        posted = await http.post(
            "/api/v1/marketdata/ticks", json={"ticks": ticks}, headers=admin.headers
        )
        assert posted.status_code == 200, posted.text

        async def three_closed() -> bool:
            return await bars_built() >= 3

        await eventually(three_closed, timeout=60, pause=0.2)

        async def judged() -> bool:
            cursor = await pool.fetchval(
                "select last_bar_ts from research.signal_cursors where model_id = $1", model_id
            )
            newest = await pool.fetchval(
                "select max(ts) from ts.live_bars where symbol = $1 and timeframe = '1d'", symbol
            )
            return bool(cursor >= newest)

        await eventually(judged, timeout=60)
        got = await stored_signals(http, alice, model_id)
        # What the live bars should give, by the oracle on the dataset's bars and them.
        live = await pool.fetch(
            "select ts, open, high, low, close, volume from ts.live_bars "
            "where symbol = $1 and timeframe = '1d' order by ts",
            symbol,
        )
        assert len(live) >= 3
        joined = {
            "ts": np.concatenate(
                [bars["ts"], np.array([ns_of(r["ts"]) for r in live], dtype=np.int64)]
            ),
            **{
                c: np.concatenate([bars[c], np.array([r[c] for r in live], dtype=np.float64)])
                for c in ("open", "high", "low", "close", "volume")
            },
        }
        want = await expected_signals(pool, model_id, joined, n)
        assert [(s["action"], bar_start_ns(s)) for s in got] == want
        assert {s["price"] for s in got} <= {r["close"] for r in live}

        # One signed delivery per signal, each carrying the signal as REST shows it.
        delivered = {}
        for _ in got:
            hit = await receiver.next()
            payload = verify(hit.body, hit.headers["x-signature-256"], secret)
            assert payload["event"] == "signal.generated"
            delivered[payload["data"]["signal_id"]] = payload["data"]
        for signal in got:
            sent = delivered[signal["signal_id"]]
            assert {k: sent[k] for k in ("action", "price", "timestamp", "model_id")} == {
                k: signal[k] for k in ("action", "price", "timestamp", "model_id")
            }
