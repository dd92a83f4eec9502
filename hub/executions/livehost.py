"""Where live runs run: every worker process hosts a :class:`LiveHost`, and each active live
execution is held by exactly one of them through a lease in Redis.

Every ``BEAT`` the host renews its leases (the runs' heartbeat), reads the stop flags of the runs
it holds in one query, and looks for active live runs nobody holds, up to its capacity. A worker
that dies stops renewing; its leases expire after ``LEASE_SECONDS`` and another worker's host
takes the runs over, each resuming from its last checkpoint (:mod:`hub.executions.live`).

A live run is not an arq job: a job holds one of a worker's few job slots for its whole life,
and a run lives for days, so a worker could hold only ``max_jobs`` of them and its backtests
would wait behind them. A host holds hundreds, each an asyncio task reading the bus.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import asyncpg
from redis.exceptions import RedisError

from hub import leases
from hub.errors import HubError
from hub.executions import repository as repo
from hub.executions.live import LiveRun
from hub.executions.livetick import TICK_STRATEGIES, TickLiveRun
from hub.executions.livewriter import LiveWriter
from hub.executions.model import ExecutionStatus
from hub.executions.streams import repository as streams_repo
from hub.jobs.context import TRANSIENT
from hub.subscription import SubscriptionClosed
from hub.times import ns_of

if TYPE_CHECKING:
    from hub.broker.service import BrokerService
    from hub.domains import Resources
    from hub.executions.service import ExecutionService

log = logging.getLogger("tradehub.live")

LEASE_SECONDS = 3.0
BEAT = 0.5
# Between closed bars, a run persists its events and tick position at most this often.
FLUSH_SECONDS = 2.0
# A run whose attempts keep failing is failed after this many in a row.
MAX_FAILURES = 5
WANT_BARS_EVERY = 5.0  # seconds; a wish lasts 15 s (hub.marketdata.barstate)


class LiveHost:
    def __init__(self, resources: Resources, executions: ExecutionService) -> None:
        self.resources = resources
        self.executions = executions
        self.broker: BrokerService = resources.service("broker")
        self.pool: asyncpg.Pool = resources.pool
        self.redis = resources.redis
        self.keys = resources.keys
        self.bus = resources.bus
        settings = resources.settings
        self.capacity = int(getattr(settings, "live_runs_per_worker", 500))
        self.delay_ns = int(float(getattr(settings, "bar_close_delay", 2.0)) * 1e9)
        self.token = uuid.uuid4().hex
        self.tasks: dict[int, asyncio.Task[None]] = {}
        self.stops: dict[int, bool] = {}  # execution id: stop requested
        self.failures: dict[int, int] = {}
        self.writer = LiveWriter(executions.runs)  # the runs' group commit
        self.pairs: dict[int, tuple[str, str]] = {}  # execution id: (symbol, timeframe)
        self._wanted_at = 0.0
        self._loops: list[asyncio.Task[None]] = []
        self._renew = self.redis.register_script(leases.RENEW_MANY)
        self._release = self.redis.register_script(leases.RELEASE)

    async def start(self) -> None:
        self._loops = [
            asyncio.create_task(self._every(self._renew_leases), name="live-host-leases"),
            asyncio.create_task(self._every(self._beat), name="live-host"),
        ]

    async def stop(self) -> None:
        """Let go of every run (another worker resumes them from their checkpoints)."""
        for task in self._loops:
            task.cancel()
        for task in self._loops:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for execution_id in list(self.tasks):
            await self._drop(execution_id)
        await self.writer.close()

    # -- the beats --------------------------------------------------------------------

    async def _every(self, beat: Callable[[], Awaitable[None]]) -> None:
        while True:
            try:
                await beat()
            except (OSError, RedisError, asyncpg.PostgresError, asyncpg.InterfaceError):
                log.exception("live host beat failed")
            await asyncio.sleep(BEAT)

    async def _renew_leases(self) -> None:
        """The runs' heartbeat: Redis only, apart from the database work of :meth:`_beat`, so
        a busy pool never lets a lease lapse."""
        held = list(self.tasks)
        if not held:
            return
        keys = [self.keys.live_lease(e) for e in held]
        kept = await self._renew(keys=keys, args=[self.token, int(LEASE_SECONDS * 1000)])
        for execution_id, ok in zip(held, kept, strict=True):
            if not ok and execution_id in self.tasks:
                log.warning("lost the lease of live run %d", execution_id)
                await self._drop(execution_id, release=False)

    async def _beat(self) -> None:
        await self._want_bars()
        held = list(self.tasks)
        if held:
            for row in await repo.live_flags(self.pool, held):
                if row["stop_requested"] or row["status"] not in ("created", "running"):
                    self.stops[row["execution_id"]] = True
        room = self.capacity - len(self.tasks)
        if room <= 0:
            return
        for execution_id in await repo.active_live(self.pool):
            if room <= 0:
                break
            if execution_id in self.tasks:
                continue
            took = await self.redis.set(
                self.keys.live_lease(execution_id),
                self.token,
                nx=True,
                px=int(LEASE_SECONDS * 1000),
            )
            if took:
                self.stops[execution_id] = False
                self.tasks[execution_id] = asyncio.create_task(
                    self._guarded(execution_id), name=f"live-{execution_id}"
                )
                room -= 1

    async def _want_bars(self) -> None:
        """Keep the runs' bars built on ``bars:{symbol}:{timeframe}`` for dashboards (a run
        builds its own from the ticks; these are what people watch beside it)."""
        now = asyncio.get_running_loop().time()
        if now - self._wanted_at < WANT_BARS_EVERY:
            return
        self._wanted_at = now
        marketdata = self.resources.service("marketdata")
        for symbol, timeframe in set(self.pairs.values()):
            try:
                await marketdata.want_bars(symbol, timeframe)
            except HubError as exc:  # over the cap of built pairs: the run trades all the same
                log.info("bars of %s %s not built: %s", symbol, timeframe, exc)

    async def _drop(self, execution_id: int, *, release: bool = True) -> None:
        task = self.tasks.pop(execution_id, None)
        self.stops.pop(execution_id, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if release:
            with contextlib.suppress(OSError, RedisError):
                await self._release(keys=[self.keys.live_lease(execution_id)], args=[self.token])

    async def _guarded(self, execution_id: int) -> None:
        """One attempt at a run; a failure lets go of it (to be taken again and resumed)."""
        try:
            await self._run(execution_id)
            self.failures.pop(execution_id, None)
        except asyncio.CancelledError:
            raise
        except TRANSIENT:  # the database or Redis went away a moment: take it again, uncounted
            log.warning("live run %d lost its connection; resuming it", execution_id, exc_info=True)
        except Exception as exc:
            count = self.failures.get(execution_id, 0) + 1
            self.failures[execution_id] = count
            log.exception("live run %d failed (attempt %d)", execution_id, count)
            if count >= MAX_FAILURES:
                with contextlib.suppress(Exception):
                    await self._fail(execution_id, f"live run failed {count} times: {exc}")
        finally:
            self.tasks.pop(execution_id, None)
            self.stops.pop(execution_id, None)
            self.pairs.pop(execution_id, None)
            with contextlib.suppress(OSError, RedisError):
                await self._release(keys=[self.keys.live_lease(execution_id)], args=[self.token])

    async def _fail(self, execution_id: int, message: str) -> None:
        row = await repo.get(self.pool, execution_id)
        if row is None:
            return
        streams = await self.executions.runs.streams_at_end(row)
        await self.executions.runs.set_status(
            streams, ExecutionStatus.FAILED, ns_of(datetime.now(UTC)), error=message
        )

    # -- one run ----------------------------------------------------------------------

    async def _run(self, execution_id: int) -> None:
        writer = self.executions.runs
        row = await repo.get(self.pool, execution_id)
        if row is None or ExecutionStatus(row["status"]).terminal:
            return
        checkpoint = await streams_repo.latest_checkpoint(self.pool, execution_id)
        if checkpoint is not None and not checkpoint["state"]:
            checkpoint = None
        terms = await self.broker.account_terms(row["account_id"])
        streams = await writer.streams_from(row, checkpoint)
        self.pairs[execution_id] = (row["symbols"][0], row["timeframe"])
        self._wanted_at = 0.0  # at the next beat
        kind = TickLiveRun if row["strategy"] in TICK_STRATEGIES else LiveRun
        run = kind(row, checkpoint, streams, self.writer, self.broker, terms)
        equity_seq = int(checkpoint["processed"]) if checkpoint is not None else 0
        if checkpoint is None:
            # The run starts at the symbol's newest tick; its first checkpoint says so, so an
            # attempt that dies before its first bar resumes from the same place.
            run.tick_seq, run.epoch = await self._newest_tick(run.symbol)
            if row["status"] == ExecutionStatus.CREATED:
                moved = await writer.set_status(
                    streams,
                    ExecutionStatus.RUNNING,
                    ns_of(datetime.now(UTC)),
                    when_in=frozenset({ExecutionStatus.CREATED}),
                )
                if moved is None:  # stopped before it began
                    return
            equity_seq, _ = await run.persist(equity_seq)
        while True:
            try:
                equity_seq = await self._follow(run, equity_seq)
                break
            except SubscriptionClosed as closed:  # cut off as a slow consumer: resume by seq
                log.warning("live run %d resubscribes: %s", execution_id, closed)
        await self._finish(run, equity_seq)

    async def _follow(self, run: LiveRun, equity_seq: int) -> int:
        """Feed ticks (and clock beats) until a stop is requested; returns the equity seq."""
        execution_id = run.execution_id
        loop = asyncio.get_running_loop()
        subscription = self.bus.subscribe(f"ticks:{run.symbol}", run.tick_seq, epoch=run.epoch)
        try:
            await subscription.open()
            if not subscription.recovered and run.tick_seq is not None:
                first, last = subscription.missed or (run.tick_seq + 1, None)
                run.streams.event(
                    "error_occurred",
                    run.last_ts(),
                    {
                        "message": f"ticks {first} to {last if last is not None else 'now'} of "
                        f"{run.symbol} were lost before this run read them; it goes on from the "
                        "next tick"
                    },
                )
            flushed = loop.time()
            beat = loop.time() + BEAT
            iterator = subscription.__aiter__()
            while not self.stops.get(execution_id, True):
                event = None
                try:
                    async with asyncio.timeout_at(beat):
                        event = await iterator.__anext__()
                except TimeoutError:
                    pass
                if event is not None:
                    await run.on_tick(event)
                now = loop.time()
                if now >= beat:
                    beat = now + BEAT
                    await run.on_clock(self.delay_ns)
                if run.pending_equity or (run.dirty and now - flushed >= FLUSH_SECONDS):
                    equity_seq, stop = await run.persist(equity_seq)
                    flushed = now
                    if stop:
                        self.stops[execution_id] = True
        finally:
            await subscription.aclose()
        return equity_seq

    async def _finish(self, run: LiveRun, equity_seq: int) -> None:
        """Stop: cancel the run's working orders, close its position unless kept, end it."""
        row = await repo.get(self.pool, run.execution_id)
        if row is None or ExecutionStatus(row["status"]).terminal:
            return
        if not row["stop_requested"]:
            return  # the host let go of it (shutdown, lost lease): another resumes it
        await self.broker.cancel_client_orders(
            run.identity, run.account_id, f"L{run.execution_id}-"
        )
        keep = row["stop_keeps_position"]
        if not (keep if keep is not None else not run.close_on_stop):
            await run.close_position()
        equity_seq, _ = await run.persist(equity_seq)
        await self.executions.runs.set_status(
            run.streams,
            ExecutionStatus.STOPPED,
            run.last_ts() or ns_of(datetime.now(UTC)),
            final_value=run.equity,
        )

    async def _newest_tick(self, symbol: str) -> tuple[int, str | None]:
        return await self.bus.recent_position(f"ticks:{symbol}")
