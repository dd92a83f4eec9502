"""The client on a backtest: started and read through GraphQL, read back typed through seed
003's Executions routes, and its durable topics replayed over ``/ws`` to the same sequences."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import pytest
from tradehub_client import ApiError, AsyncClient

from hub.settings import Settings
from tests.conftest import Account, LiveServer
from tests.helpers import eventually, generate_dataset, running_worker
from tests.test_client import Collector

BARS = 3_000


@pytest.fixture(scope="module")
async def symbol(server: LiveServer, settings: Settings, admin: Account) -> AsyncIterator[str]:
    name = f"CX{secrets.token_hex(3).upper()}/USD"
    async with running_worker(settings.model_copy(update={"backtest_chunk_bars": 500})):
        await generate_dataset(server.url, admin, name, BARS, seed=7)
        yield name


async def test_a_backtest_read_back_typed(
    server: LiveServer, symbol: str, alice: Account, bob: Account
) -> None:
    async with AsyncClient(server.url, api_key=alice.token) as client:
        started = await client.gql.start_backtest(
            "sma_crossover", symbol, timeframe="1h", params={"fast": 5, "slow": 20}
        )
        execution_id = started.execution_id

        async def done() -> bool:
            status = await client.executions.status(execution_id)
            assert status.status not in ("failed", "stopped"), status
            return bool(status.status == "completed")

        await eventually(done, timeout=120)
        status = await client.executions.status(execution_id)
        assert status.execution_id == int(execution_id) and status.task_type == "backtest"
        assert status.progress == 100 and status.checkpoint is not None
        assert status.checkpoint.processed == BARS
        metrics = await client.executions.latest_metrics(execution_id)
        assert metrics.has_checkpoint and metrics.checkpoint == status.checkpoint

        equity = []
        since = 0
        while True:
            page = await client.executions.equity(
                execution_id, since_sequence=since, page_size=1000
            )
            equity.extend(page.equity_curve)
            if page.next is None:
                break
            since = equity[-1].sequence
        assert [p.sequence for p in equity] == list(range(1, len(equity) + 1))
        sampled = await client.executions.equity(execution_id, max_points=100)
        assert len(sampled.equity_curve) <= 100
        trades = await client.executions.trades(execution_id)
        assert trades.count == len(trades.trades) > 0
        assert {t.trade.direction for t in trades.trades} <= {"long", "short"}
        events = await client.executions.events(execution_id, event_type="trade_executed")
        assert events.events and {e.event_type for e in events.events} == {"trade_executed"}

        # The durable topic replays to exactly the REST curve.
        replay = Collector(client.subscribe(f"execution:{execution_id}:equity", since=0))
        replayed = await replay.count(len(equity))
        assert [e.seq for e in replayed] == [p.sequence for p in equity]
        assert [e.data["balance"] for e in replayed] == pytest.approx([p.balance for p in equity])
        await replay.stop()

        detail = await client.gql.execution(execution_id, max_points=50)
        assert detail.status == "COMPLETED" and len(detail.equity) == 50
        assert detail.latest_checkpoint is not None

    async with AsyncClient(server.url, api_key=bob.token) as other:
        with pytest.raises(ApiError) as refused:
            await other.executions.status(execution_id)
        assert refused.value.status == 403 and refused.value.message
