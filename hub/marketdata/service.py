"""Market data: ticks published on ``ticks:{symbol}``, a recent topic any user may read.

Ticks come in through :meth:`MarketDataService.ingest` (a whole batch validated, stored in one
transaction, then published) and :meth:`MarketDataService.start_replay` (a job that publishes a
dataset's bars or a symbol's stored ticks again). Both publish onto the live topics that bots and
the paper broker trade on, so both need an admin or an API key granted ``marketdata:write``.

Bars built from those ticks go out on ``bars:{symbol}:{timeframe}`` (``hub.marketdata.aggregator``)
for the pairs somebody wants (:meth:`MarketDataService.want_bars`).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

import asyncpg
import numpy as np
import orjson
from pydantic import ValidationError
from redis.exceptions import RedisError

from hub import pgcopy
from hub.auth import Identity, Scope
from hub.errors import BadRequest, Forbidden, NotFound
from hub.marketdata import repository as repo
from hub.marketdata.barstate import Wishes, bars_topic
from hub.marketdata.replay import ReplayPayload, bar_ticks, pace
from hub.marketdata.ticks import MAX_TICKS, Ticks, parse_batch
from hub.topics import SYMBOL, AnyUser, TopicFamily, TopicKind, TopicSpec

if TYPE_CHECKING:
    from hub.bus import Bus
    from hub.datasets.service import DatasetService
    from hub.domains import Resources
    from hub.jobs.context import JobContext
    from hub.marketdata.aggregator import BarAggregators

log = logging.getLogger("tradehub.marketdata")

_SYMBOL = re.compile(SYMBOL)
REPLAY_JOB = "marketdata.replay"
# Bars read from a dataset at a time during a replay (four ticks each), and stored ticks.
REPLAY_PAGE_BARS = 10_000
REPLAY_PAGE_TICKS = 20_000

TOPICS = (
    TopicSpec.of(
        "ticks",
        TopicKind.RECENT,
        rf"ticks:(?P<key>{SYMBOL})",
        lambda r: TopicFamily(authorizer=AnyUser()),
    ),
)


def tick_topic(symbol: str) -> str:
    if not isinstance(symbol, str) or _SYMBOL.fullmatch(symbol) is None:
        raise BadRequest(
            f"invalid symbol {symbol!r}: 1-32 letters, digits and / _ . : -", field="symbol"
        )
    return f"ticks:{symbol}"


async def publish_tick(bus: Bus, symbol: str, tick: dict[str, Any]) -> tuple[int, str]:
    """Publish one tick (``ts`` in ns, ``price``, ``size``...); returns (seq, epoch)."""
    return await bus.publish_recent(tick_topic(symbol), {"symbol": symbol, **tick})


def partition_for(symbol: str) -> str:
    """The name of a symbol's table of ticks in the ``ts`` schema: readable, and apart for
    symbols differing only in punctuation or case (a hash of the exact symbol)."""
    base = re.sub(r"[^a-z0-9]+", "_", symbol.lower()).strip("_")[:40] or "symbol"
    return f"ticks_{base}_{hashlib.sha1(symbol.encode()).hexdigest()[:8]}"


def require_write(identity: Identity) -> None:
    if not identity.may(Scope.MARKETDATA_WRITE):
        raise Forbidden(
            f"publishing market data needs an admin or an API key with the "
            f"{Scope.MARKETDATA_WRITE.value!r} scope"
        )


class MarketDataService:
    def __init__(self, resources: Resources) -> None:
        self.resources = resources
        self.bus = resources.bus
        self.pool: asyncpg.Pool = resources.pool
        # Symbols whose partition exists (committed): their batches skip the catalogue.
        self._partitioned: set[str] = set()
        self.wishes = Wishes(resources.redis, resources.keys, resources.settings.bars_max_pairs)
        self.bars: BarAggregators | None = None  # a hub's bar builders (hub/marketdata/__init__)

    async def publish_tick(self, symbol: str, tick: dict[str, Any]) -> tuple[int, str]:
        return await publish_tick(self.bus, symbol, tick)

    async def last_tick(self, symbol: str) -> dict[str, Any] | None:
        """The newest tick Redis still holds for ``symbol`` (None: none since its history began)."""
        entries = await self.bus.redis.xrevrange(
            self.bus.keys.topic_history(tick_topic(symbol)), count=1
        )
        if not entries:
            return None
        tick: dict[str, Any] = orjson.loads(entries[0][1][b"d"])
        return tick

    # -- bars -------------------------------------------------------------------------

    async def want_bars(self, symbol: str, timeframe: str) -> None:
        """Have ``symbol``'s ``timeframe`` bars built onto ``bars:{symbol}:{timeframe}`` for the
        next 15 s (``barstate.WANT_SECONDS``): a live run calls this every 5 s while it runs
        (subscriptions want their pair by themselves). BadRequest for a bad symbol or
        timeframe, LimitReached when ``TRADEHUB_BARS_MAX_PAIRS`` other pairs are wanted."""
        bars_topic(symbol, timeframe)
        await self.wishes.want_one(symbol, timeframe)
        if self.bars is not None:
            self.bars.poke()

    # -- ingest -----------------------------------------------------------------------

    def authorize_write(self, identity: Identity) -> None:
        """403 unless ``identity`` may publish market data (an admin, or a key granted
        ``marketdata:write``): checked before a body is even read."""
        require_write(identity)

    async def ingest(self, identity: Identity, body: bytes | dict[str, Any]) -> int:
        """Validate a whole batch (``{"ticks": [...]}``, JSON or parsed), store it in one
        transaction (one COPY into ``ts.ticks``, each symbol's partition made on first use),
        then publish each tick on ``ticks:{symbol}``, in the batch's order per symbol. Nothing
        is written when any tick is invalid. Returns how many ticks were accepted."""
        require_write(identity)
        ticks = parse_batch(body)
        recv_ns = time.time_ns()
        symbols = sorted(set(ticks.symbols))
        async with self.pool.acquire() as conn, conn.transaction():
            first = await repo.reserve_numbers(conn)
            await self._partition(conn, symbols)
            await repo.copy_ticks(conn, ticks.copy_payload(first, recv_ns))
        self._partitioned.update(symbols)
        await self._publish(ticks, recv_ns)
        return len(ticks)

    async def _partition(self, conn: asyncpg.Connection, symbols: list[str]) -> None:
        new = [s for s in symbols if s not in self._partitioned]
        if not new:
            return
        added = await repo.add_symbols(conn, new, [partition_for(s) for s in new])
        for row in added:
            await repo.create_partition(conn, row["symbol"], row["measurement"])

    async def _publish(self, ticks: Ticks, recv_ns: int) -> None:
        items = [
            (f"ticks:{symbol}", payload)
            for symbol, payload in zip(ticks.symbols, ticks.payloads(recv_ns), strict=True)
        ]
        try:
            await self.bus.publish_recent_batch(items)
        except (OSError, RedisError) as exc:
            # Stored all the same: a recent topic promises live delivery only while Redis is up.
            log.warning(
                "ticks stored but not published", extra={"ticks": len(items), "error": str(exc)}
            )

    async def has_market_data(self, symbol: str) -> bool:
        """Whether the hub knows ``symbol``: ticks in Redis now, or ever stored."""
        seq, _ = await self.bus.recent_position(tick_topic(symbol))
        if seq > 0:
            return True
        return await repo.has_symbol(self.pool, symbol)

    # -- replay -----------------------------------------------------------------------

    async def start_replay(
        self, identity: Identity, payload: ReplayPayload | Mapping[str, Any]
    ) -> asyncpg.Record:
        """Validate a replay and create its ``marketdata.replay`` job (the job row; enqueued
        once committed). 403 before anything else for a caller who may not publish market
        data; 400 for a bad payload; 404 for a dataset or symbol with nothing stored."""
        require_write(identity)
        model = payload if isinstance(payload, ReplayPayload) else replay_payload(payload)
        return await self.resources.jobs.create(identity, REPLAY_JOB, model.model_dump(mode="json"))

    async def check_replay(self, identity: Identity, payload: ReplayPayload) -> None:
        """The job type's check: who may replay, and that there is something to replay."""
        require_write(identity)
        if payload.dataset_id is not None:
            await self._datasets().get(str(payload.dataset_id))
        elif payload.symbol is not None and not await repo.has_symbol(self.pool, payload.symbol):
            raise NotFound(f"no stored ticks of {payload.symbol!r}", field="symbol")

    async def replay(self, ctx: JobContext, payload: ReplayPayload) -> dict[str, Any]:
        """Run a replay job: publish, paced, until done or cancelled (JobCancelled)."""
        start_ns, end_ns = payload.start_ns, payload.end_ns
        if payload.dataset_id is not None:
            datasets = self._datasets()
            dataset = await datasets.get(str(payload.dataset_id))
            symbol = str(dataset["symbol"])
            total = 4 * await datasets.count_bars(dataset, start_ns, end_ns)
            chunks = self._dataset_ticks(dataset, start_ns, end_ns)
        else:
            assert payload.symbol is not None
            symbol = payload.symbol
            total = await repo.count_ticks(self.pool, symbol, start_ns, end_ns)
            chunks = self._stored_ticks(symbol, start_ns, end_ns)
        published = await pace(ctx, self.bus, symbol, chunks, total, payload.speed)
        return {"symbol": symbol, "ticks": published, "speed": payload.speed or None}

    def _datasets(self) -> DatasetService:
        return self.resources.service("datasets")  # type: ignore[no-any-return]

    async def _dataset_ticks(
        self, dataset: asyncpg.Record, start_ns: int | None, end_ns: int | None
    ) -> AsyncIterator[Ticks]:
        from hub.datasets.timeframes import timeframe_ns

        datasets = self._datasets()
        symbol, timeframe = str(dataset["symbol"]), str(dataset["granularity"])
        step = timeframe_ns(timeframe)
        cursor = start_ns
        while end_ns is None or cursor is None or cursor < end_ns:
            bars = await datasets.candles(
                symbol, timeframe, start_ns=cursor, end_ns=end_ns, limit=REPLAY_PAGE_BARS
            )
            if len(bars["ts"]):
                yield bar_ticks(symbol, bars, step)
            if len(bars["ts"]) < REPLAY_PAGE_BARS:
                return
            cursor = int(bars["ts"][-1]) + 1

    async def _stored_ticks(
        self, symbol: str, start_ns: int | None, end_ns: int | None
    ) -> AsyncIterator[Ticks]:
        after: tuple[int, int] | None = None
        while True:
            rows = await repo.read_ticks(
                self.pool, symbol, start_ns, end_ns, after, REPLAY_PAGE_TICKS
            )
            if rows:
                yield _ticks_of(symbol, rows)
            if len(rows) < REPLAY_PAGE_TICKS:
                return
            after = (int(rows[-1]["ts_ns"]), int(rows[-1]["n"]))

    # -- reads for backtests ----------------------------------------------------------

    async def stored_prices(
        self, symbol: str, start_ns: int | None, end_ns: int | None, *, limit: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """The times (int64 ns) and prices of the first ``limit`` of ``symbol``'s stored ticks
        in ``[start_ns, end_ns)``, in time order (equal times as they came), read from one
        snapshot. NotFound when no tick of ``symbol`` was ever stored."""
        times: list[np.ndarray] = []
        prices: list[np.ndarray] = []
        after: tuple[int, int] | None = None
        left = limit
        async with (
            self.pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            if not await repo.has_symbol(conn, symbol):
                raise NotFound(f"no stored ticks of {symbol!r}", field="symbol")
            while left > 0:
                page = min(left, REPLAY_PAGE_TICKS)
                rows = await repo.read_ticks(conn, symbol, start_ns, end_ns, after, page)
                count = len(rows)
                times.append(np.fromiter((r["ts_ns"] for r in rows), np.int64, count))
                prices.append(np.fromiter((r["price"] for r in rows), np.float64, count))
                if count < page:
                    break
                left -= count
                after = (int(rows[-1]["ts_ns"]), int(rows[-1]["n"]))
        return np.concatenate(times), np.concatenate(prices)

    # -- past ticks from a file (hub/marketdata/upload.py) -------------------------------

    async def store_history(
        self, identity: Identity, ticks: Ticks, *, skip_duplicates: bool
    ) -> tuple[int, int]:
        """Store a batch of one symbol's past ticks (a part of an uploaded file) in one
        transaction, in the same partition as :meth:`ingest`, without publishing them: live
        subscribers and the paper broker see live ticks only. With ``skip_duplicates`` a tick
        with the time, price and size of one already stored, or of an earlier one in the batch,
        is left out. Returns (stored, skipped). The numpy work runs in a thread."""
        require_write(identity)
        symbols = set(ticks.symbols)
        if len(symbols) != 1:
            raise ValueError(f"a batch of past ticks holds one symbol, got {len(symbols)}")
        (symbol,) = symbols
        if skip_duplicates:
            keep = await asyncio.to_thread(_first_of_each, ticks)
        else:
            keep = np.ones(len(ticks), dtype=bool)
        recv_ns = time.time_ns()
        async with self.pool.acquire() as conn, conn.transaction():
            await repo.lock_symbol(conn, symbol)
            await self._partition(conn, [symbol])
            if skip_duplicates:
                at = np.flatnonzero(keep)
                stored = await repo.stored_duplicates(
                    conn, symbol, ticks.ts_ns[at], ticks.price[at], ticks.size[at]
                )
                keep[at[stored]] = False
            fresh = _kept(ticks, keep)
            if len(fresh):
                numbers = await repo.reserve_many(conn, -(-len(fresh) // MAX_TICKS))
                payload = await asyncio.to_thread(_copy_payload, fresh, numbers, recv_ns)
                await repo.copy_ticks(conn, payload)
        self._partitioned.add(symbol)
        return len(fresh), len(ticks) - len(fresh)


def _first_of_each(ticks: Ticks) -> np.ndarray:
    """True for each tick whose (time, price, size) no earlier tick of the batch has."""
    size = np.where(np.isnan(ticks.size), np.nan, ticks.size + 0.0)  # one NaN, and 0.0 for -0.0
    keys = np.stack(
        [
            ticks.ts_ns,
            np.ascontiguousarray(ticks.price).view(np.int64),
            np.ascontiguousarray(size).view(np.int64),
        ],
        axis=1,
    )
    _, first = np.unique(keys, axis=0, return_index=True)
    keep = np.zeros(len(ticks), dtype=bool)
    keep[first] = True
    return keep


def _copy_payload(ticks: Ticks, numbers: list[int], recv_ns: int) -> bytes:
    """One binary COPY of ticks of any count: each ``MAX_TICKS`` of them numbered from one of
    ``numbers`` (a batch's numbering, see ``repository.reserve_numbers``)."""
    head, tail = len(pgcopy.SIGNATURE), len(pgcopy.TRAILER)
    parts = [
        ticks.part(i * MAX_TICKS, (i + 1) * MAX_TICKS).copy_payload(first, recv_ns)[head:-tail]
        for i, first in enumerate(numbers)
    ]
    return pgcopy.SIGNATURE + b"".join(parts) + pgcopy.TRAILER


def _kept(ticks: Ticks, keep: np.ndarray) -> Ticks:
    if keep.all():
        return ticks
    count = int(keep.sum())
    return Ticks(
        ticks.symbols[:1] * count,
        ticks.ts_ns[keep],
        ticks.price[keep],
        ticks.size[keep],
        ticks.bid[keep],
        ticks.ask[keep],
    )


def _ticks_of(symbol: str, rows: list[asyncpg.Record]) -> Ticks:
    def column(name: str) -> np.ndarray:
        return np.array([np.nan if r[name] is None else r[name] for r in rows], dtype=np.float64)

    return Ticks(
        [symbol] * len(rows),
        np.fromiter((r["ts_ns"] for r in rows), dtype=np.int64, count=len(rows)),
        column("price"),
        column("size"),
        column("bid"),
        column("ask"),
    )


def replay_payload(document: Mapping[str, Any]) -> ReplayPayload:
    """A replay's payload from a document, or a 400 naming the first bad field."""
    try:
        return ReplayPayload.model_validate(dict(document))
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        field = ".".join(str(p) for p in first["loc"]) or "payload"
        message = str(first["msg"]).removeprefix("Value error, ")
        raise BadRequest(f"{field}: {message}", field=field) from None
