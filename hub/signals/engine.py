"""The evaluator: every active, trained model judges each new closed bar of its ticker.

One evaluator runs across every worker, held by a Redis lease (``lease:signals``); another
takes over within ``LEASE_SECONDS`` of its holder dying. Each ``POLL_SECONDS`` it reads, in one
round trip, the newest bar of every model's (ticker, timeframe): the dataset's bars (imports,
generated data) and the bars the aggregator builds from live or replayed ticks
(``ts.live_bars``), and for a model whose ticker has bars past its cursor it:

1. reads those bars (at most ``MAX_NEW`` a pass) with enough history before them to warm the
   model's indicators (``WARMUP`` times the longest look-back), computes the model's features
   with the engine's kernels, and predicts every new bar with one call of its booster;
2. walks them in order (:func:`hub.signals.decide.judge`): signals emitted, active ones filled
   or cancelled;
3. in one transaction moves the cursor (only from where it read it: a second evaluator that
   raced it writes nothing), stores the signals and their status changes, and appends each as
   an event of the durable topic ``signals:{model_id}``; publishes after commit, then tells
   the webhooks (``signal.generated``).

A model's first bars set its cursor at its ticker's newest bar: it judges what closes after it
was trained and activated, not the history it learned from; a model switched off loses its
cursor, so switched on again it starts afresh. Its pairs are also wanted from the
bar aggregator, so live ticks of its ticker are built into bars while it is active.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import uuid
from typing import TYPE_CHECKING, Any

import asyncpg
import numpy as np
from redis.exceptions import RedisError

from hub import leases
from hub.errors import HubError
from hub.eventlog import EventLog
from hub.research import repository as research_repo
from hub.signals import repository as repo
from hub.signals.decide import Active, Rules, judge, typical_move
from hub.signals.documents import document_of_row, event_of, signal_document
from hub.times import ns_of

if TYPE_CHECKING:
    from hub.domains import Resources

log = logging.getLogger("tradehub.signals")

POLL_SECONDS = 1.0
LEASE_SECONDS = 10.0
WANT_BARS_EVERY = 5.0
MAX_NEW = 1_000  # bars judged in one pass (a large import is judged over several)
WARMUP = 5  # history read before the new bars, in multiples of the longest look-back
MIN_HISTORY = 250


def signals_topic(model_id: str) -> str:
    return f"signals:{model_id}"


@dataclasses.dataclass(frozen=True)
class _Loaded:
    version_id: str
    predictor: Any
    specs: list[Any]
    history: int


class SignalEngine:
    def __init__(self, resources: Resources) -> None:
        self.resources = resources
        self.pool = resources.pool
        self.lease_key = f"{resources.keys.prefix}lease:signals"
        self.token = uuid.uuid4().hex
        self.loaded: dict[str, _Loaded] = {}  # by model
        self.actives: dict[str, Active | None] = {}  # by model, once read
        self.holding = False
        self._renew = resources.redis.register_script(leases.RENEW)
        self._release = resources.redis.register_script(leases.RELEASE)
        self._wanted_at = -WANT_BARS_EVERY
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._forever(), name="signals")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.holding:
            with contextlib.suppress(OSError, RedisError):
                await self._release(keys=[self.lease_key], args=[self.token])

    async def _forever(self) -> None:
        while True:
            try:
                if await self._hold():
                    await self.step()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("signals pass failed; trying again")
            await asyncio.sleep(POLL_SECONDS)

    async def _hold(self) -> bool:
        redis, ms = self.resources.redis, int(LEASE_SECONDS * 1000)
        try:
            if self.holding:
                self.holding = bool(await self._renew(keys=[self.lease_key], args=[self.token, ms]))
            if not self.holding:
                self.holding = bool(await redis.set(self.lease_key, self.token, nx=True, px=ms))
                if self.holding:  # another held it: what it knew may be newer than ours
                    self.actives.clear()
        except (OSError, RedisError):
            self.holding = False
        return self.holding

    async def step(self) -> int:
        """One pass over every emitting model; returns how many signals it emitted."""
        await repo.forget_inactive(self.pool)
        models = await repo.emitting_models(self.pool)
        current = {m["model_id"] for m in models}
        for gone in [k for k in self.loaded if k not in current]:
            del self.loaded[gone]
        for gone in [k for k in self.actives if k not in current]:
            del self.actives[gone]
        await self._want_bars(models)
        newest = await repo.newest_bars(
            self.pool, [(m["ohlcv_measurement"], m["ticker"], m["timeframe"]) for m in models]
        )
        emitted = 0
        for model, newest_ns in zip(models, newest, strict=True):
            if newest_ns is None:
                continue
            if model["last_bar_ts"] is None:
                await repo.start_cursor(
                    self.pool, model["model_id"], model["version_id"], newest_ns
                )
                continue
            if newest_ns <= ns_of(model["last_bar_ts"]):
                continue
            try:
                emitted += await self.judge(model)
            except (asyncpg.UndefinedTableError, ValueError) as exc:
                log.warning("model %s cannot judge its bars: %s", model["model_id"], exc)
        return emitted

    async def _want_bars(self, models: list[asyncpg.Record]) -> None:
        now = asyncio.get_running_loop().time()
        marketdata = self.resources.services.get("marketdata")
        if marketdata is None or now - self._wanted_at < WANT_BARS_EVERY:
            return
        self._wanted_at = now
        for pair in sorted({(m["ticker"], m["timeframe"]) for m in models}):
            try:
                await marketdata.want_bars(*pair)
            except HubError as exc:  # an unbuildable timeframe, or over the cap of pairs
                log.info("bars of %s %s not built for signals: %s", *pair, exc)

    async def _load(self, model: asyncpg.Record) -> _Loaded:
        loaded = self.loaded.get(model["model_id"])
        if loaded is not None and loaded.version_id == model["version_id"]:
            return loaded
        from engine.features import parse_features
        from hub.research.training import Predictor, load_booster

        content = await research_repo.artifact(self.pool, model["file_sha"])
        if content is None:
            raise ValueError(f"trained file {model['file_sha']} of {model['version_id']} is gone")
        features = list(model["matrix_features"] or model["config"].get("features") or [])
        specs = parse_features(features)
        horizon = self._horizon(model)
        booster = await asyncio.to_thread(load_booster, content)
        predictor = Predictor(
            model["model_id"],
            model["version_id"],
            features,
            list(model["feature_columns"]),
            horizon,
            booster,
        )
        longest = max((spec.lookback for spec in specs), default=1)
        history = max(MIN_HISTORY, WARMUP * longest, horizon + 1)
        loaded = _Loaded(model["version_id"], predictor, specs, history)
        self.loaded[model["model_id"]] = loaded
        return loaded

    @staticmethod
    def _horizon(model: asyncpg.Record) -> int:
        return int(model["matrix_horizon"] or model["config"].get("horizon") or 1)

    @staticmethod
    def _rules(model: asyncpg.Record) -> Rules:
        config = model["config"]
        thresholds = config.get("thresholds") or {}
        hours = config.get("allowed_hours")
        return Rules(
            entry=float(thresholds.get("entry", 0.6)),
            exit=float(thresholds.get("exit", 0.4)),
            horizon=SignalEngine._horizon(model),
            allowed_hours=None if hours is None else frozenset(int(h) for h in hours),
            risk_profile=model["risk_profile"],
        )

    async def _active(self, model_id: str, ts: np.ndarray, cursor_ns: int) -> Active | None:
        if model_id not in self.actives:
            row = await repo.active_signal(self.pool, model_id)
            self.actives[model_id] = None
            if row is not None:
                bar_ns = ns_of(row["bar_ts"])
                age = int(np.count_nonzero((ts > bar_ns) & (ts <= cursor_ns)))
                self.actives[model_id] = Active(document_of_row(row), bar_ns, age)
        active = self.actives[model_id]
        return dataclasses.replace(active) if active is not None else None

    async def judge(self, model: asyncpg.Record) -> int:
        """Judge the bars after the model's cursor (up to ``MAX_NEW``); returns signals emitted."""
        from engine.features import feature_matrix
        from hub.research.training import design

        model_id, cursor_ns = model["model_id"], ns_of(model["last_bar_ts"])
        loaded = await self._load(model)
        bars = await repo.bars_around(
            self.pool,
            model["ohlcv_measurement"],
            model["ticker"],
            model["timeframe"],
            cursor_ns,
            loaded.history,
            MAX_NEW,
        )
        ts, close = bars["ts"], bars["close"]
        first = int(np.searchsorted(ts, cursor_ns, side="right"))
        if first >= ts.size:
            return 0
        rules = self._rules(model)
        matrix = await asyncio.to_thread(feature_matrix, bars, loaded.specs, rules.horizon)
        p = np.full(ts.size, np.nan)
        rows = design(matrix, loaded.predictor.columns)[first:]
        p[first:] = await asyncio.to_thread(loaded.predictor.predict, rows)
        move = typical_move(close[: first + 1], rules.horizon)
        active = await self._active(model_id, ts, cursor_ns)

        def make(fields: dict[str, Any]) -> dict[str, Any]:
            return signal_document(
                signal_id=f"sig_{uuid.uuid4().hex[:20]}",
                model_id=model_id,
                ticker=model["ticker"],
                timeframe=model["timeframe"],
                status="active",
                version_id=model["version_id"],
                **fields,
            )

        outcome = judge(rules, ts, close, matrix["hour"], p, first, active, move, make)
        stored = await self._write(model, cursor_ns, int(ts[-1]), outcome.steps)
        if stored is None:  # another evaluator judged these bars first
            self.actives.pop(model_id, None)
            return 0
        self.actives[model_id] = outcome.active
        topic = signals_topic(model_id)
        await self.resources.bus.publish_many([(topic, seq, data) for seq, data in stored])
        await self._tell_webhooks(model, outcome.emitted)
        return len(outcome.emitted)

    async def _write(
        self, model: asyncpg.Record, was_ns: int, now_ns: int, steps: list[tuple[Any, ...]]
    ) -> list[tuple[int, bytes]] | None:
        model_id = model["model_id"]
        events, inserts, ends = [], [], []
        for step in steps:
            if step[0] == "emitted":
                events.append(event_of("signal.generated", step[1]))
            else:
                _, doc, status, realized = step
                ended = {**doc, "status": status, "realized_return": realized}
                events.append(event_of(f"signal.{status}", ended))
                ends.append((doc["signal_id"], status, realized))
        async with self.pool.acquire() as conn, conn.transaction():
            if not await repo.move_cursor(conn, model_id, model["version_id"], was_ns, now_ns):
                return None
            stored = await EventLog.append(conn, signals_topic(model_id), events)
            for event, (seq, _) in zip(events, stored, strict=True):
                if event["event"] == "signal.generated":
                    inserts.append(
                        (
                            event["signal_id"],
                            model_id,
                            seq,
                            event["ticker"],
                            event["action"],
                            event["quantity"],
                            event["price"],
                            _bar_start(event),
                            event["confidence"],
                            event["expected_return"],
                            event["version_id"],
                        )
                    )
            if inserts:
                await repo.insert_signals(conn, inserts)
            if ends:
                await repo.end_signals(conn, ends)
        return stored

    async def _tell_webhooks(self, model: asyncpg.Record, emitted: list[dict[str, Any]]) -> None:
        webhooks = self.resources.services.get("webhooks")
        if webhooks is None or model["created_by"] is None:
            return
        for doc in emitted:
            try:
                await webhooks.emit(str(model["created_by"]), "signal.generated", doc)
            except Exception:  # a webhook is told best effort: the signal stands
                log.exception("signal.generated webhook of %s not queued", doc["signal_id"])


def _bar_start(doc: dict[str, Any]) -> Any:
    from hub.times import parse_iso

    return parse_iso(doc["bar_start"])
