"""Reading a dataset's bars for a backtest: two halves read at once, decoded as they arrive,
give exactly the bars one COPY gives; the count kept with the dataset equals counting."""

from __future__ import annotations

import numpy as np
import pytest

from hub.datasets import repository as repo
from hub.datasets import service as datasets
from hub.datasets.cache import BarsCache
from hub.settings import Settings
from tests.conftest import Account, LiveServer
from tests.helpers import generate_dataset, running_worker

SYMBOL = "READ/USD"
BARS = 5_000
HOUR = 3_600 * 10**9


@pytest.fixture(scope="module")
async def generated(server: LiveServer, settings: Settings, admin: Account) -> None:
    async with running_worker(settings):
        await generate_dataset(server.url, admin, SYMBOL, BARS, seed=3)


async def test_halves_read_at_once_equal_one_read(
    server: LiveServer, generated: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = server.lifespan_state.datasets
    dataset = await service.find(SYMBOL, "1h")
    assert dataset is not None and dataset["ohlcv_row_count"] == BARS
    first = dataset["ohlcv_first_ts"] * 1000
    async with service.pool.acquire() as conn:
        whole = await repo.read_bars(conn, dataset["ohlcv_measurement"], None, None, None)
    assert len(whole["ts"]) == BARS and np.all(np.diff(whole["ts"]) == HOUR)
    monkeypatch.setattr(datasets, "PARALLEL_READ_BARS", 100)
    windows = [
        (None, None),
        (first + 17 * HOUR, None),
        (None, first + 4_321 * HOUR),
        (first + 10 * HOUR + 1, first + 4_000 * HOUR - 1),
        (first - 10 * HOUR, first + 2 * HOUR),
        (first + 2_500 * HOUR, first + 2_501 * HOUR),
    ]
    pages = await repo.table_pages(service.pool, dataset["ohlcv_measurement"])
    assert pages > 2
    by_page = 0
    for start, end in windows:
        async with service.pool.acquire() as conn:
            one = await repo.read_bars(conn, dataset["ohlcv_measurement"], start, end, None)
        plan = datasets.read_windows(dataset, start, end, pages)
        assert (len(plan) == 2) == (len(one["ts"]) > 1_000)
        by_page += plan[0][3] is not None
        service.cache = BarsCache()
        got = await service.bars(dataset, start, end)
        for column in repo.OHLCV_COLUMNS:
            assert got[column].dtype == one[column].dtype
            assert np.array_equal(got[column], one[column]), (start, end, column)
        assert await service.count_bars(dataset, start, end) == len(one["ts"])
        counted = await repo.count_bars(service.pool, dataset["ohlcv_measurement"], start, end)
        assert counted == len(one["ts"])
    assert by_page >= 3
    # A dataset whose kept count is stale (more bars than it says): the halves outgrow the
    # regions sized for them and are joined the slow way, with the same result.
    stale = {**dict(dataset), "ohlcv_row_count": 2_400}
    service.cache = BarsCache()
    assert len(datasets.read_windows(stale, None, None, pages)) == 2
    grown = await service.bars(stale, None, None)
    for column in repo.OHLCV_COLUMNS:
        assert np.array_equal(grown[column], whole[column]), column
    # Rows stored out of time order (written again at the table's end) come back sorted.
    table = repo.table(dataset["ohlcv_measurement"])
    await service.pool.execute(
        f"with moved as (delete from {table} where ts < to_timestamp($1::float8 / 1e9) "
        f"returning *) insert into {table} select * from moved",
        first + 300 * HOUR,
    )
    async with service.pool.acquire() as conn:
        stored = await repo.read_bars(
            conn, dataset["ohlcv_measurement"], None, None, None, pages=(0, None)
        )
    assert not np.all(np.diff(stored["ts"]) > 0)
    service.cache = BarsCache()
    assert datasets.read_windows(dataset, None, None, pages)[0][3] is not None
    moved = await service.bars(dataset, None, None)
    for column in repo.OHLCV_COLUMNS:
        assert np.array_equal(moved[column], whole[column]), column
    # The reader gets the arrays it read; every later caller read-only views of them.
    service.cache = BarsCache()
    read = await service.bars(dataset, None, None)
    again = await service.bars(dataset, None, None)
    for column in repo.OHLCV_COLUMNS:
        assert read[column].flags.writeable and not again[column].flags.writeable
        assert np.shares_memory(read[column], again[column])
    # Some of the columns (a backtest leaves volume out), by halves and whole.
    for first_at in (None, first + 4_000 * HOUR):
        service.cache = BarsCache()
        some = await service.bars(dataset, first_at, None, ("ts", "open", "close"))
        keep = slice(0 if first_at is None else 4_000, None)
        assert sorted(some) == ["close", "open", "ts"]
        for column in some:
            assert np.array_equal(some[column], whole[column][keep]), column
    # limits and empty windows through the same decoder
    async with service.pool.acquire() as conn:
        few = await repo.read_bars(conn, dataset["ohlcv_measurement"], first + HOUR, None, 3)
        none = await repo.read_bars(conn, dataset["ohlcv_measurement"], 0, 1, None)
    assert np.array_equal(few["close"], whole["close"][1:4]) and len(none["ts"]) == 0


async def test_two_halves_read_in_one_snapshot(server: LiveServer, generated: None) -> None:
    """What commits between the halves' starts is in neither: they read as one COPY would."""
    service = server.lifespan_state.datasets
    dataset = await service.find(SYMBOL, "1h")
    assert dataset is not None
    table = repo.table(dataset["ohlcv_measurement"])
    later = dataset["ohlcv_last_ts"] * 1000 + 10 * HOUR
    async with (
        service.pool.acquire() as one,
        service.pool.acquire() as other,
        one.transaction(isolation="repeatable_read", readonly=True),
        other.transaction(isolation="repeatable_read", readonly=True),
    ):
        await repo.share_snapshot(one, other)
        await service.pool.execute(
            f"insert into {table} values (to_timestamp($1::float8 / 1e9), 1, 1, 1, 1, 1)", later
        )
        try:
            seen = await repo.read_bars(other, dataset["ohlcv_measurement"], later, None, None)
            assert len(seen["ts"]) == 0
        finally:
            await service.pool.execute(
                f"delete from {table} where ts = to_timestamp($1::float8 / 1e9)", later
            )
