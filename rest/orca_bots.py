"""ORCA's Max trading bot API (seed 002) under ``/api/v1/run-bot/``: ``max-backtest`` reads
its multipart form, hands the backtest to :mod:`hub.marketdata.maxbot`, and answers in ORCA's
words; every validation failure is ORCA's 422, ``{"detail", "status_code"}``.

A request is bounded as it streams in: past :data:`MAX_UPLOAD_BYTES` (file and fields
together) it is a 413, before the rest is read. The file is spooled to a temporary file (in
memory up to 1 MiB), never held whole, and closed with the form.
"""

from __future__ import annotations

from datetime import date
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Message

from engine.records import Direction
from hub.errors import BadRequest, PayloadTooLarge
from hub.executions.model import LiveRequest
from hub.http import JSONResponse, require_identity
from hub.marketdata.maxbot import MaxBacktest, MaxBacktestRun, run_max_backtest
from hub.openapi import describe
from hub.times import datetime_of_ns
from rest.errors import ORCA
from rest.orca import Unprocessable
from rest.orca_models import MaxBacktestAnswer, MaxBacktestForm, MaxLiveAnswer, MaxLiveForm

BASE = "/api/v1/run-bot"
MAX_UPLOAD_BYTES = 256 << 20  # a request's body, file and fields together: 413 beyond
_MAX_FIELD_BYTES = 64 << 10  # each field that is not a file (the form's longest is notes)
_MAX_FIELDS = 32
MAX_BOT_ACCOUNTS = 20
BOT_BALANCE = 1_000_000.0  # a bot's paper account on first use: futures notionals are large
Form = TypeVar("Form", bound=BaseModel)


def bounded(request: Request, limit: int) -> Request:
    """``request`` whose body may not pass ``limit`` bytes: a declared length past it is a 413
    at once, and so is the byte past it as the body streams in."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body is {declared} bytes, more than the limit of {limit}")
    received = 0

    async def receive() -> Message:
        nonlocal received
        message = await request.receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise PayloadTooLarge(f"request body is more than the limit of {limit} bytes")
        return message

    return Request(request.scope, receive)


def _validated(model_type: type[Form], form: FormData) -> Form:
    """The form's fields validated as the OpenAPI document
    describes them; 422 naming the first bad field."""
    fields = {k: v for k, v in form.multi_items() if k != "file" and isinstance(v, str)}
    try:
        return model_type.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        field = ".".join(str(p) for p in first["loc"]) or "form"
        if first["type"] == "missing":
            raise Unprocessable(f"{field} is required", field=field) from None
        message = str(first["msg"]).removeprefix("Value error, ")
        got = str(first["input"])[:64]
        raise Unprocessable(f"{field}: {message}, got {got!r}", field=field) from None


def _form(form: FormData) -> tuple[MaxBacktestForm, UploadFile | None]:
    """The form's fields, validated, and its file (an empty part without a file name, as a
    browser sends for no file, is no file)."""
    model = _validated(MaxBacktestForm, form)
    upload = form.get("file")
    if isinstance(upload, str):
        if upload:
            raise Unprocessable("file must be a file upload (a part with a filename)", field="file")
        return model, None
    if upload is not None and not upload.filename and not upload.size:
        return model, None
    return model, upload


def _day(text: str, field: str) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise Unprocessable(
            f"{field} must be a date (YYYY-MM-DD), got {text!r}", field=field
        ) from None


def orca_time(ns: int) -> str:
    """Seed 002's trade times: UTC without a zone, microseconds only when there are any."""
    return datetime_of_ns(ns).replace(tzinfo=None).isoformat()


def _answer(run: MaxBacktestRun, form: MaxBacktestForm, upload: UploadFile | None) -> Any:
    trades = run.trades
    meta: dict[str, Any] = {
        "source": "date_range" if upload is None else "file",
        "dateFrom": form.dateFrom or None,
        "dateTo": form.dateTo or None,
        "accountName": form.accountName,
        "mode": form.mode,
        "notes": form.notes or None,
    }
    if upload is not None:
        meta["file"] = upload.filename or ""
    return {
        "result": {
            "total_trades": run.total_trades,
            "winning_trades": run.winning_trades,
            "losing_trades": run.losing_trades,
            "win_rate": run.win_rate,
            "total_profit": run.total_profit,
            "max_drawdown": run.max_drawdown,
        },
        "trades": [
            {
                "entry_time": orca_time(entry_ts),
                "entry_price": entry_price,
                "exit_time": orca_time(exit_ts),
                "exit_price": exit_price,
                "profit": pnl,
                "side": "long" if direction == Direction.Long else "short",
            }
            for entry_ts, entry_price, exit_ts, exit_price, pnl, direction in zip(
                trades["entry_ts"].tolist(),
                trades["entry_price"].tolist(),
                trades["exit_ts"].tolist(),
                trades["exit_price"].tolist(),
                trades["pnl"].tolist(),
                trades["direction"].tolist(),
                strict=True,
            )
        ],
        "meta": meta,
    }


@describe(ORCA, answers={200: MaxBacktestAnswer}, errors=[422], form=MaxBacktestForm)
async def max_backtest(request: Request) -> Response:
    """Run the Max bot's point rules over ticks: a CSV file, or the stored ticks of a contract.

    Either file or both dateFrom and dateTo (whole UTC days, dateTo included); with both, the
    dates pick the file's ticks. Closed trades only, oldest first; profits in points for one
    contract. 422 names the field (a malformed CSV: its row and column); 413 past 256 MiB or
    5,000,000 ticks in a file."""
    require_identity(request)
    async with bounded(request, MAX_UPLOAD_BYTES).form(
        max_files=1, max_fields=_MAX_FIELDS, max_part_size=_MAX_FIELD_BYTES
    ) as form:
        fields, upload = _form(form)
        ask = MaxBacktest(
            contract=fields.contract,
            direction=fields.maxMode,
            point_key=fields.point_key,
            exit_strategy_key=fields.exit_strategy_key,
            date_from=_day(fields.dateFrom, "dateFrom"),
            date_to=_day(fields.dateTo, "dateTo"),
            file=None if upload is None else upload.file,
        )
        try:
            run = await run_max_backtest(request.state.marketdata, ask)
        except BadRequest as exc:  # ORCA answers every validation failure with a 422
            raise Unprocessable(exc.message, field=exc.field) from None
        return JSONResponse(_answer(run, fields, upload))


def _bot_accounts(form: MaxLiveForm) -> list[str]:
    """The paper accounts (by name) the bot trades: ``accountName``, then ``accounts_ids``."""
    names = [form.accountName]
    if form.accounts_ids:
        try:
            listed = orjson.loads(form.accounts_ids)
        except orjson.JSONDecodeError:
            raise Unprocessable("accounts_ids must be a JSON array", field="accounts_ids") from None
        if not isinstance(listed, list) or len(listed) > MAX_BOT_ACCOUNTS:
            raise Unprocessable(
                f"accounts_ids must be a JSON array of at most {MAX_BOT_ACCOUNTS} accounts",
                field="accounts_ids",
            )
        for item in listed:
            name = item.get("ta_id") or item.get("tv_id") if isinstance(item, dict) else item
            if not isinstance(name, str) or not 1 <= len(name) <= 64:
                raise Unprocessable(
                    f"accounts_ids: each account is a name or an object with ta_id or tv_id, "
                    f"got {str(item)[:64]!r}",
                    field="accounts_ids",
                )
            names.append(name)
    return list(dict.fromkeys(names))


@describe(ORCA, answers={200: MaxLiveAnswer}, errors=[422], form=MaxLiveForm)
async def max_live(request: Request) -> Response:
    """Run the Max bot live. ``DEMO``: one live paper run of ``max_points`` per account (each
    opened on first use with 1,000,000), on every tick of ``contract``; ``bot_id`` is the first
    run's execution id. ``LIVE``: 400, no live broker adapter is configured."""
    identity = require_identity(request)
    async with bounded(request, _MAX_FIELDS * _MAX_FIELD_BYTES).form(
        max_files=0, max_fields=_MAX_FIELDS, max_part_size=_MAX_FIELD_BYTES
    ) as raw:
        form = _validated(MaxLiveForm, raw)
    if form.environment == "LIVE":
        raise BadRequest(
            "no live broker adapter is configured on this hub: environment LIVE cannot trade; "
            "use DEMO (paper)",
            field="environment",
        )
    names = _bot_accounts(form)
    state = request.state
    if not await state.marketdata.has_market_data(form.contract):  # before any account opens
        raise Unprocessable(
            f"unknown contract {form.contract!r}: the hub has no ticks of it", field="contract"
        )
    params = {
        "point_key": form.point_strategy_key,
        "exit_strategy_key": form.exit_strategy_key,
        "units": float(form.quantity),
    }
    runs = []
    for name in names:
        account = await state.broker.runner_account(identity, name, BOT_BALANCE)
        try:
            row = await state.executions.start_live(
                identity,
                LiveRequest(
                    strategy="max_points",
                    params=params,
                    symbol=form.contract,
                    timeframe="1m",
                    account_id=account["account_id"],
                    options={"direction": form.trading_mode, "sizing": "units"},
                ),
            )
        except BadRequest as exc:  # ORCA answers every validation failure with a 422
            raise Unprocessable(exc.message, field=exc.field) from None
        runs.append(
            {
                "account": name,
                "account_id": account["account_id"],
                "bot_id": str(row["execution_id"]),
            }
        )
    config = {
        "contract": form.contract,
        "maxMode": form.maxMode or None,
        "trading_mode": form.trading_mode,
        "trading_side": form.trading_side,
        "point_strategy_key": form.point_strategy_key,
        "exit_strategy_key": form.exit_strategy_key,
        "quantity": form.quantity,
        "environment": form.environment,
        "accounts": runs,
        "notes": form.notes or None,
    }
    return JSONResponse(
        {
            "status": "running",
            "bot_id": runs[0]["bot_id"],
            "config": config,
            "message": f"Max bot started successfully on {len(runs)} paper account(s)",
        }
    )


def routes() -> list[BaseRoute]:
    return [
        Route(f"{BASE}/max-backtest", ORCA.endpoint(max_backtest), methods=["POST"]),
        Route(f"{BASE}/max", ORCA.endpoint(max_live), methods=["POST"]),
    ]
