"""ORCA's Max bot backtest (seed 002, ``POST /api/v1/run-bot/max-backtest``) through the real
server: a CSV file and a date range over stored ticks each answer exactly what
``engine.ticks.simulate_ticks`` gives on the same ticks, in the seed's shape; maxMode picks the
sides; every refusal is ORCA's ``{"detail", "status_code"}``."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import numpy as np
import pytest

import hub.marketdata.maxbot
import rest.orca_bots
from engine.records import Direction, TradeStatus
from engine.ticks import simulate_ticks
from hub.times import ns_of
from tests.conftest import Account

RUN = "/api/v1/run-bot/max-backtest"
TICKS = "/api/v1/marketdata/ticks"
POINT_KEY, EXIT_KEY = "6_3_2_1", "5_5"
T0 = ns_of(datetime(2025, 1, 1, 12, 0, tzinfo=UTC))
JAN2 = ns_of(datetime(2025, 1, 2, tzinfo=UTC))
JAN4 = ns_of(datetime(2025, 1, 4, tzinfo=UTC))
EPOCH = datetime(1970, 1, 1)


def walk(n: int = 3000, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """A random walk in quarter points, a tick every 90 s (and a fraction) from 2025-01-01
    12:00Z over three days, with ticks exactly on the edges of 2025-01-02..2025-01-03."""
    rng = np.random.default_rng(seed)
    price = 1000 + np.cumsum(rng.choice(np.arange(-4, 5) * 0.25, n))
    i = np.arange(n, dtype=np.int64)
    ts = T0 + i * 90 * 10**9 + (i % 7) * 123_456_789
    first = int(np.searchsorted(ts, JAN2))
    ts[first] = JAN2  # the first instant of dateFrom: in
    after = int(np.searchsorted(ts, JAN4))
    ts[after - 1], ts[after] = JAN4 - 1, JAN4  # dateTo's last nanosecond in, the next day out
    return ts, price


def orca_time(ns: int) -> str:
    return (EPOCH + timedelta(microseconds=ns // 1000)).isoformat()


def iso_ns(ns: int) -> str:
    seconds, rest = divmod(ns, 10**9)
    return f"{(EPOCH + timedelta(seconds=seconds)).isoformat()}.{rest:09d}Z"


def expected(ts: np.ndarray, price: np.ndarray, direction: str = "both") -> dict[str, Any]:
    """The engine's answer on these ticks, in the seed's shape."""
    run = simulate_ticks(
        ts, price, point_key=POINT_KEY, exit_strategy_key=EXIT_KEY, direction=direction
    )
    closed = run.trades[run.trades["status"] == TradeStatus.Closed]
    metrics = run.metrics
    assert len(closed) == metrics["total_trades"]
    assert int((closed["pnl"] > 0).sum()) == metrics["winning_trades"]
    return {
        "result": {
            "total_trades": len(closed),
            "winning_trades": int((closed["pnl"] > 0).sum()),
            "losing_trades": int((closed["pnl"] <= 0).sum()),
            "win_rate": metrics["win_rate"] / 100,
            "total_profit": float(closed["pnl"].sum()),
            "max_drawdown": -metrics["max_drawdown"],
        },
        "trades": [
            {
                "entry_time": orca_time(int(t["entry_ts"])),
                "entry_price": float(t["entry_price"]),
                "exit_time": orca_time(int(t["exit_ts"])),
                "exit_price": float(t["exit_price"]),
                "profit": float(t["pnl"]),
                "side": "long" if t["direction"] == Direction.Long else "short",
            }
            for t in closed
        ],
    }


def same(got: dict[str, Any], want: dict[str, Any]) -> None:
    assert got["trades"] == want["trades"]
    result, wanted = dict(got["result"]), dict(want["result"])
    assert result.pop("win_rate") == pytest.approx(wanted.pop("win_rate"), abs=1e-12)
    assert result.pop("total_profit") == pytest.approx(wanted.pop("total_profit"), abs=1e-9)
    assert result == wanted


def fields(**changes: str | None) -> dict[str, str]:
    base: dict[str, str | None] = {
        "accountName": "APEX_136189",
        "mode": "backtesting",
        "contract": "NQ",
        "maxMode": "both",
        "point_key": POINT_KEY,
        "exit_strategy_key": EXIT_KEY,
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


async def run(
    client: httpx.AsyncClient,
    who: Account | None,
    form: dict[str, str],
    csv: bytes | None = None,
    name: str = "ticks.csv",
) -> httpx.Response:
    """Always multipart/form-data, as seed 002's ``curl -F`` sends it (files or not)."""
    parts: list[tuple[str, Any]] = [(k, (None, v)) for k, v in form.items()]
    if csv is not None:
        parts.append(("file", (name, csv, "text/csv")))
    headers = who.headers if who is not None else {}
    return await client.post(RUN, files=parts, headers=headers)


def answer(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"result", "trades", "meta"}
    return body


def orca_error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"detail", "status_code"} and body["status_code"] == status, body
    detail: str = body["detail"]
    return detail


def csv_of(ts: np.ndarray, price: np.ndarray, form: str = "iso") -> bytes:
    if form == "iso":  # liberal header names, extra columns, ns fractions, a zone
        rows = [f"{iso_ns(int(t))},{p},1" for t, p in zip(ts, price, strict=True)]
        return ("Timestamp,Last,Volume\n" + "\n".join(rows) + "\n").encode()
    if form == "epoch_ms":  # ; separated, epoch milliseconds, a BOM and CRLF
        rows = [f"{int(t) // 10**6};{p}" for t, p in zip(ts, price, strict=True)]
        return ("\ufeffTime;Price\r\n" + "\r\n".join(rows) + "\r\n").encode()
    assert form == "headless_ns"  # no header: time then price
    return "".join(f"{int(t)},{p}\n" for t, p in zip(ts, price, strict=True)).encode()


@pytest.fixture(scope="module")
def ticks() -> tuple[np.ndarray, np.ndarray]:
    return walk()


@pytest.fixture
async def stored(
    client: httpx.AsyncClient, admin: Account, ticks: tuple[np.ndarray, np.ndarray]
) -> AsyncIterator[str]:
    """A fresh contract holding the walk's ticks, ingested as a feed does."""
    symbol = f"MAX{secrets.token_hex(3).upper()}"
    ts, price = ticks
    batch = [
        {"symbol": symbol, "ts": int(t), "price": float(p)} for t, p in zip(ts, price, strict=True)
    ]
    response = await client.post(TICKS, json={"ticks": batch}, headers=admin.headers)
    assert response.status_code == 200, response.text
    yield symbol


@pytest.fixture
def limits(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Small caps (the server runs in this process, and reads them per request)."""
    monkeypatch.setattr(rest.orca_bots, "MAX_UPLOAD_BYTES", 4096)
    monkeypatch.setattr(hub.marketdata.maxbot, "MAX_TICKS", 100)
    yield


# -- the engine's answer ----------------------------------------------------------------------


@pytest.mark.parametrize("form", ["iso", "epoch_ms", "headless_ns"])
async def test_a_csv_file_backtests_as_the_engine_does(
    client: httpx.AsyncClient, alice: Account, ticks: tuple[np.ndarray, np.ndarray], form: str
) -> None:
    ts, price = ticks
    if form == "epoch_ms":
        ts = ts // 10**6 * 10**6
    body = answer(await run(client, alice, fields(notes="from a file"), csv_of(ts, price, form)))
    want = expected(ts, price)
    same(body, want)
    assert body["result"]["total_trades"] >= 10
    assert {t["side"] for t in body["trades"]} == {"long", "short"}
    assert body["meta"] == {
        "source": "file",
        "dateFrom": None,
        "dateTo": None,
        "accountName": "APEX_136189",
        "mode": "backtesting",
        "notes": "from a file",
        "file": "ticks.csv",
    }
    if form != "epoch_ms":
        assert any("." in t["entry_time"] for t in body["trades"])  # microseconds, when any


@pytest.mark.parametrize("side", ["long", "short"])
async def test_max_mode_trades_only_its_side(
    client: httpx.AsyncClient, alice: Account, ticks: tuple[np.ndarray, np.ndarray], side: str
) -> None:
    ts, price = ticks
    body = answer(await run(client, alice, fields(maxMode=side), csv_of(ts, price)))
    same(body, expected(ts, price, side))
    assert body["trades"] and {t["side"] for t in body["trades"]} == {side}
    assert body["trades"] != expected(ts, price, "both")["trades"]


async def test_a_date_range_reads_the_contracts_stored_ticks_whole_days(
    client: httpx.AsyncClient, alice: Account, stored: str, ticks: tuple[np.ndarray, np.ndarray]
) -> None:
    ts, price = ticks
    days = fields(contract=stored, dateFrom="2025-01-02", dateTo="2025-01-03", notes="Test")
    body = answer(await run(client, alice, days))
    inside = (ts >= JAN2) & (ts < JAN4)
    want = expected(ts[inside], price[inside])
    same(body, want)
    assert want["trades"] != expected(ts, price)["trades"]  # the window matters
    assert body["meta"] == {
        "source": "date_range",
        "dateFrom": "2025-01-02",
        "dateTo": "2025-01-03",
        "accountName": "APEX_136189",
        "mode": "backtesting",
        "notes": "Test",
    }
    # One day, and days with no ticks (the contract is known): no trades, not an error.
    jan2 = (ts >= JAN2) & (ts < JAN2 + 86_400 * 10**9)
    one = answer(await run(client, alice, fields(contract=stored, dateFrom="2025-01-02",
                                                 dateTo="2025-01-02")))  # fmt: skip
    same(one, expected(ts[jan2], price[jan2]))
    empty = answer(
        await run(
            client, alice, fields(contract=stored, dateFrom="2024-06-01", dateTo="2024-06-30")
        )
    )
    assert empty["trades"] == []
    assert empty["result"] == {
        "total_trades": 0,
        "winning_trades": 0,
        "losing_trades": 0,
        "win_rate": 0.0,
        "total_profit": 0.0,
        "max_drawdown": 0.0,
    }


async def test_dates_with_a_file_pick_the_files_ticks(
    client: httpx.AsyncClient, alice: Account, ticks: tuple[np.ndarray, np.ndarray]
) -> None:
    ts, price = ticks
    days = fields(dateFrom="2025-01-02", dateTo="2025-01-03")
    body = answer(await run(client, alice, days, csv_of(ts, price), name="nq.csv"))
    inside = (ts >= JAN2) & (ts < JAN4)
    same(body, expected(ts[inside], price[inside]))
    assert body["meta"]["source"] == "file" and body["meta"]["file"] == "nq.csv"
    assert (body["meta"]["dateFrom"], body["meta"]["dateTo"]) == ("2025-01-02", "2025-01-03")


async def test_a_url_encoded_form_is_read_too(
    client: httpx.AsyncClient, alice: Account, stored: str
) -> None:
    days = fields(contract=stored, dateFrom="2025-01-02", dateTo="2025-01-03")
    response = await client.post(RUN, data=days, headers=alice.headers)
    assert answer(response)["meta"]["source"] == "date_range"


# -- refusals ---------------------------------------------------------------------------------

GOOD_CSV = b"timestamp,price\n2025-01-01T09:30:00,100\n2025-01-01T09:30:01,101\n"
FORM_ERRORS: list[tuple[dict[str, str | None], bytes | None, str]] = [
    ({}, None, "either a CSV file or both dateFrom and dateTo"),
    ({"dateFrom": "2025-01-02"}, None, "dateFrom needs dateTo too"),
    ({"dateTo": "2025-01-02"}, None, "dateTo needs dateFrom too"),
    ({"dateFrom": "2025-01-03", "dateTo": "2025-01-02"}, None, "dateTo must not be before"),
    ({"dateFrom": "2025-02-30", "dateTo": "2025-03-01"}, None, "dateFrom must be a date"),
    ({"dateFrom": "01/02/2025", "dateTo": "2025-03-01"}, None, "dateFrom: String should match"),
    ({"dateFrom": "2025-01-02", "dateTo": "2025-01-03"}, None, "no stored ticks of contract"),
    ({"point_key": "15_7_5"}, GOOD_CSV, "point_key: String should match"),
    ({"point_key": "15_0_5_2"}, GOOD_CSV, "point_key B must be > 0"),
    ({"exit_strategy_key": "15"}, GOOD_CSV, "exit_strategy_key: String should match"),
    ({"exit_strategy_key": "15_0"}, GOOD_CSV, "exit_strategy_key SL must be > 0"),
    ({"maxMode": "sideways"}, GOOD_CSV, "maxMode: Input should be 'long', 'short' or 'both'"),
    ({"mode": "live"}, GOOD_CSV, "mode: Input should be 'backtesting'"),
    ({"accountName": None}, GOOD_CSV, "accountName is required"),
    ({"contract": "N Q"}, GOOD_CSV, "contract: String should match"),
    ({"notes": "x" * 1001}, GOOD_CSV, "notes: String should have at most 1000 characters"),
    ({"file": "ticks.csv"}, None, "file must be a file upload"),
]
CSV_ERRORS: list[tuple[bytes, str]] = [
    (b"timestamp,price\n2025-01-01T09:30:00,100\n2025-01-01T09:30:01,n/a\n", "row 2, column 'price'"),
    (b"time,last\n2025-01-01T09:30:00,100\nyesterday,101\n", "row 2, column 'time'"),
    (b"time,price\n1735723800,100\n1735723801\n1735723802,101\n", "line 3 has 1 fields"),
    (b"when,what\n2025-01-01T09:30:00,100\n", "no time column"),
    (b"time,size\n2025-01-01T09:30:00,100\n", "no price column"),
    (b"ts,price\n1735723801,100\n1735723800,101\n", "row 2, column 'ts': the ticks must be in time"),
    (b"ts,price\n", "the file holds no ticks"),
    (b"", "the file is empty"),
    (b"ts,price\n1735723800,-1\n", "row 1, column 'price': must be a finite number above 0"),
]  # fmt: skip


@pytest.mark.parametrize(("changes", "csv", "detail"), FORM_ERRORS)
async def test_a_bad_form_is_a_422_naming_the_field(
    client: httpx.AsyncClient,
    alice: Account,
    changes: dict[str, str | None],
    csv: bytes | None,
    detail: str,
) -> None:
    contract = f"NONE{secrets.token_hex(3).upper()}"  # never stored
    response = await run(client, alice, fields(**{"contract": contract, **changes}), csv)
    assert detail in orca_error(response, 422)


@pytest.mark.parametrize(("csv", "detail"), CSV_ERRORS)
async def test_a_malformed_csv_is_a_422_naming_the_row_and_column(
    client: httpx.AsyncClient, alice: Account, csv: bytes, detail: str
) -> None:
    got = orca_error(await run(client, alice, fields(), csv), 422)
    assert got.startswith("file: ") and detail in got, got


async def test_without_credentials_it_is_a_401(client: httpx.AsyncClient) -> None:
    assert orca_error(await run(client, None, fields(), GOOD_CSV), 401)
    nobody = Account("0", "nobody", "th_not-a-key")
    assert orca_error(await run(client, nobody, fields(), GOOD_CSV), 401)


@pytest.mark.usefixtures("limits")
async def test_too_large_a_request_or_file_is_a_413_and_too_many_days_a_422(
    client: httpx.AsyncClient, alice: Account, stored: str, ticks: tuple[np.ndarray, np.ndarray]
) -> None:
    ts, price = ticks
    big = csv_of(ts[:500], price[:500])
    assert "limit of 4096" in orca_error(await run(client, alice, fields(), big), 413)

    async def streamed() -> AsyncIterator[bytes]:  # no Content-Length: counted as it comes
        boundary = b"--b0undary"
        for name, value in fields().items():
            yield boundary + f'\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            yield value.encode() + b"\r\n"
        yield (
            boundary + b'\r\nContent-Disposition: form-data; name="file"; filename="t.csv"\r\n\r\n'
        )
        yield big + b"\r\n" + boundary + b"--\r\n"

    headers = {**alice.headers, "Content-Type": "multipart/form-data; boundary=b0undary"}
    response = await client.post(RUN, content=streamed(), headers=headers)
    assert "more than the limit of 4096" in orca_error(response, 413)

    many = csv_of(ts[:101], price[:101], "headless_ns")
    assert len(many) < 4096
    assert "more than 100 ticks" in orca_error(await run(client, alice, fields(), many), 413)
    answer(await run(client, alice, fields(), csv_of(ts[:100], price[:100], "headless_ns")))

    days = fields(contract=stored, dateFrom="2025-01-02", dateTo="2025-01-03")
    assert "ask for fewer days" in orca_error(await run(client, alice, days), 422)
