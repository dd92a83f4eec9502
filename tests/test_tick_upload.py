"""ORCA's tick upload (seed 002, ``POST /api/upload-tick-data``) through the real server: the
Server-Sent Events frame by frame as the seed shows them, the stored rows equal to the file's,
duplicates skipped (in the file and against what is stored), each timestamp format, files from
the uploads folder and paths out of it refused, a failure mid-file, a client that leaves, and a
1 GB body refused without the process's memory growing."""

from __future__ import annotations

import gc
import os
import re
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import numpy as np
import orjson
import psutil
import pytest

import hub.marketdata.upload
import rest.orca_upload
from hub.settings import Settings
from hub.times import ns_of
from tests.conftest import Account, LiveServer
from tests.helpers import eventually

URL = "/api/upload-tick-data"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
Frame = tuple[str, dict[str, Any]]  # (event name, data)


def base_ns() -> int:
    """A time of its own for each test's ticks (whole seconds), so tests sharing ES and NQ never
    see each other's ticks."""
    return ns_of(datetime(2001, 1, 1, tzinfo=UTC)) + secrets.randbelow(10**8) * 10**9


def orca_error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"detail", "status_code"} and body["status_code"] == status, body
    detail: str = body["detail"]
    return detail


def form(instrument: str | None = "ES", **fields: str) -> dict[str, str]:
    return {**({"instrument": instrument} if instrument is not None else {}), **fields}


async def post(
    client: httpx.AsyncClient,
    account: Account | None,
    csv: bytes | None = None,
    **fields: Any,
) -> httpx.Response:
    files = None if csv is None else {"file": ("ticks.csv", csv, "text/csv")}
    headers = {} if account is None else account.headers
    return await client.post(URL, data=form(**fields), files=files, headers=headers, timeout=120)


def parse_sse(lines: list[str]) -> list[Frame]:
    """Frames of a text/event-stream: ``event:`` and ``data:`` lines up to a blank line."""
    frames: list[Frame] = []
    event = "message"
    data: list[str] = []
    for line in lines:
        if line == "":
            if data:
                frames.append((event, orjson.loads("\n".join(data))))
            event, data = "message", []
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
        else:
            raise AssertionError(f"not an SSE line: {line!r}")
    assert not data, "the stream ended inside a frame"
    return frames


async def upload(
    client: httpx.AsyncClient,
    account: Account,
    csv: bytes | None = None,
    *,
    each: Callable[[Frame], Any] | None = None,
    **fields: Any,
) -> list[dict[str, Any]]:
    """Upload, read the answer as a stream line by line, and return each frame's data; ``each``
    is awaited on every frame as it arrives. Every frame is a plain ``data:`` frame."""
    files = None if csv is None else {"file": ("ticks.csv", csv, "text/csv")}
    lines: list[str] = []
    frames: list[Frame] = []
    async with client.stream(
        "POST", URL, data=form(**fields), files=files, headers=account.headers, timeout=300
    ) as response:
        assert response.status_code == 200, (await response.aread()).decode()
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        async for line in response.aiter_lines():
            lines.append(line)
            if line == "":
                new = parse_sse(lines)[len(frames) :]
                frames.extend(new)
                for frame in new:
                    if each is not None:
                        await each(frame)
    assert [event for event, _ in frames] == ["message"] * len(frames)  # no event: lines
    return [data for _, data in frames]


async def stored(pool: asyncpg.Pool, symbol: str, start: int, end: int) -> list[tuple[Any, ...]]:
    rows = await pool.fetch(
        """
        select ts_ns, price, size, bid, ask from ts.ticks
        where symbol = $1 and ts_ns between $2 and $3 order by ts_ns, n
        """,
        symbol,
        start,
        end,
    )
    return [tuple(r) for r in rows]


def completed(frame: dict[str, Any], total: int, uploaded: int, skipped: int) -> None:
    assert re.fullmatch(r"[0-9]+\.[0-9]s", frame.pop("duration")), frame
    assert frame == {
        "status": "completed",
        "success": True,
        "total_rows": total,
        "uploaded_rows": uploaded,
        "skipped_rows": skipped,
    }


# -- the stream, and duplicates ----------------------------------------------------------------


async def test_the_stream_frame_by_frame_then_a_second_upload_skips_every_row(
    client: httpx.AsyncClient, admin: Account, pool: asyncpg.Pool
) -> None:
    """230,000 distinct ticks in 230,005 rows: three copies of batch 1's ticks in batch 2 (they
    are stored by then) and two ticks twice within batch 3. Batches of 100,000 rows."""
    assert hub.marketdata.upload.BATCH_ROWS == 100_000
    t0 = base_ns()
    n = 230_000
    ts = t0 + np.arange(n, dtype=np.int64) * 1_000_000 + 7  # 1 ms apart, ns precision
    price = 4700 + (np.arange(n) % 97) * 0.25
    size = (np.arange(n) % 9 + 1).astype(np.float64)
    lines = [f"{t},{p},{int(s)}\n" for t, p, s in zip(ts.tolist(), price.tolist(), size.tolist())]
    rows = lines[:150_000] + [lines[10], lines[20], lines[30]] + lines[150_000:]
    rows = rows[:220_000] + [lines[209_998], lines[209_999]] + rows[220_000:]
    csv = ("timestamp,price,volume\n" + "".join(rows)).encode()
    span = (int(ts[0]), int(ts[-1]))

    async def committed_before_said(frame: Frame) -> None:
        _, data = frame
        if data["status"] == "progress":  # a batch is said once it is stored
            count = await pool.fetchval(
                "select count(*) from ts.ticks where symbol = 'ES' and ts_ns between $1 and $2",
                *span,
            )
            assert count >= data["uploaded"]

    frames = await upload(client, admin, csv, each=committed_before_said)
    assert frames[:4] == [
        {"status": "started", "message": "Upload started"},
        {"status": "progress", "batch": 1, "uploaded": 100_000, "skipped": 0},
        {"status": "progress", "batch": 2, "uploaded": 199_997, "skipped": 3},
        {"status": "progress", "batch": 3, "uploaded": 230_000, "skipped": 5},
    ]
    assert len(frames) == 5
    completed(frames[4], 230_005, 230_000, 5)
    expected = [
        (t, p, s, None, None) for t, p, s in zip(ts.tolist(), price.tolist(), size.tolist())
    ]
    assert await stored(pool, "ES", *span) == expected

    again = await upload(client, admin, csv)
    assert again[1:4] == [
        {"status": "progress", "batch": 1, "uploaded": 0, "skipped": 100_000},
        {"status": "progress", "batch": 2, "uploaded": 0, "skipped": 200_000},
        {"status": "progress", "batch": 3, "uploaded": 0, "skipped": 230_005},
    ]
    completed(again[4], 230_005, 0, 230_005)
    assert await stored(pool, "ES", *span) == expected


async def test_the_raw_stream_is_the_seeds_data_lines(
    client: httpx.AsyncClient, admin: Account
) -> None:
    t0 = base_ns()
    csv = f"timestamp,price,volume\n{t0},4750.25,3\n{t0 + 1},4750.5,1\n".encode()
    response = await post(client, admin, csv, instrument="nq")  # any case: stored as NQ
    assert response.status_code == 200
    text = response.text
    assert text.startswith('data: {"status":"started","message":"Upload started"}\n\n'), text
    assert '\n\ndata: {"status":"progress","batch":1,"uploaded":2,"skipped":0}\n\n' in text
    last = re.fullmatch(r"(?s).*\n\ndata: (\{[^\n]*\})\n\n", text)
    assert last is not None, text
    assert last[1].startswith('{"status":"completed","success":true,"total_rows":2,')


async def test_without_skip_duplicates_every_row_is_stored(
    client: httpx.AsyncClient, admin: Account, pool: asyncpg.Pool
) -> None:
    t0 = base_ns()
    csv = f"ts;last;size\n{t0};100.5;2\n{t0};100.5;2\n{t0};100.5;3\n".encode()
    frames = await upload(client, admin, csv, instrument="NQ", skip_duplicates="false")
    completed(frames[-1], 3, 3, 0)
    frames = await upload(client, admin, csv, instrument="NQ", skip_duplicates="0")
    completed(frames[-1], 3, 3, 0)
    assert len(await stored(pool, "NQ", t0, t0)) == 6
    frames = await upload(client, admin, csv, instrument="NQ")  # all three are stored already
    completed(frames[-1], 3, 0, 3)
    # A tick without a volume equals a stored one without a volume, not one with a volume.
    bare = f"timestamp,price\n{t0},100.5\n{t0},100.5\n".encode()
    completed((await upload(client, admin, bare, instrument="NQ"))[-1], 2, 1, 1)
    completed((await upload(client, admin, bare, instrument="NQ"))[-1], 2, 0, 2)


# -- formats -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Format:
    name: str
    header: str | None  # None: no header row
    separator: str
    columns: tuple[str, ...]  # of time, price, volume, bid, ask
    time: Callable[[int], str]
    step_ns: int  # the times' precision

    def csv(self, ticks: list[dict[str, Any]]) -> bytes:
        head = [] if self.header is None else [self.header]
        body = [
            self.separator.join(
                self.time(t["ts"]) if c == "time" else str(t[c]) for c in self.columns
            )
            for t in ticks
        ]
        return ("\n".join(head + body) + "\n").encode()


def iso(ns: int, sep: str = "T", digits: int = 9, zone: str = "") -> str:
    seconds, rest = divmod(ns, 10**9)
    moment = (EPOCH + timedelta(seconds=seconds)).replace(tzinfo=None)
    fraction = f".{rest:09d}"[: digits + 1] if digits else ""
    return moment.isoformat(sep) + fraction + zone


def ninja(ns: int) -> str:
    seconds, rest = divmod(ns, 10**9)
    moment = EPOCH + timedelta(seconds=seconds)
    return f"{moment:%Y%m%d %H%M%S} {rest // 100:07d}"


FORMATS = [
    Format("iso_ns_zulu", "timestamp,price,volume", ",", ("time", "price", "volume"),
           lambda ns: iso(ns, zone="Z"), 1),
    Format("iso_space_ms_semicolon", "Time;Last;Size", ";", ("time", "price", "volume"),
           lambda ns: iso(ns, " ", 3), 10**6),
    Format("iso_offset", "DateTime,Volume,Price", ",", ("time", "volume", "price"),
           lambda ns: iso(ns, digits=6, zone="+00:00"), 10**3),
    Format("epoch_s", "timestamp,price,volume", ",", ("time", "price", "volume"),
           lambda ns: str(ns // 10**9), 10**9),
    Format("epoch_ms", "TIMESTAMP,PRICE,VOLUME", ",", ("time", "price", "volume"),
           lambda ns: str(ns // 10**6), 10**6),
    Format("epoch_us", "timestamp;price;volume", ";", ("time", "price", "volume"),
           lambda ns: str(ns // 10**3), 10**3),
    Format("epoch_ns", "timestamp,last,size,bid,ask", ",",
           ("time", "price", "volume", "bid", "ask"), str, 1),
    Format("epoch_s_fraction", "timestamp,price,volume", ",", ("time", "price", "volume"),
           lambda ns: f"{ns // 10**9}.{ns % 10**9 // 10**6:03d}", 10**6),
    Format("ninjatrader", None, ";", ("time", "price", "bid", "ask", "volume"), ninja, 100),
    Format("headless_3", None, ",", ("time", "price", "volume"),
           lambda ns: str(ns // 10**6), 10**6),
    Format("headless_2_ninjatrader", None, ";", ("time", "price"), ninja, 100),
]  # fmt: skip


@pytest.mark.parametrize("fmt", FORMATS, ids=[f.name for f in FORMATS])
async def test_each_timestamp_format_stores_the_files_ticks(
    client: httpx.AsyncClient, admin: Account, pool: asyncpg.Pool, fmt: Format
) -> None:
    t0 = base_ns()
    ticks = []
    for i in range(60):
        ns = t0 + i * 1_234_567_891
        price = 4700 + i * 0.25
        ticks.append(
            {
                "ts": ns - ns % fmt.step_ns,
                "price": price,
                "volume": i % 7,
                "bid": price - 0.25,
                "ask": price + 0.25,
            }
        )
    frames = await upload(
        client, admin, fmt.csv(ticks), has_header="true" if fmt.header else "false"
    )
    completed(frames[-1], 60, 60, 0)
    got = await stored(pool, "ES", int(ticks[0]["ts"]), int(ticks[-1]["ts"]))
    assert got == [
        (
            t["ts"],
            t["price"],
            float(t["volume"]) if "volume" in fmt.columns else None,
            t["bid"] if "bid" in fmt.columns else None,
            t["ask"] if "ask" in fmt.columns else None,
        )
        for t in ticks
    ]


# -- file_path -----------------------------------------------------------------------------


async def test_a_file_in_the_uploads_folder_is_read_and_paths_out_of_it_are_refused(
    client: httpx.AsyncClient, admin: Account, pool: asyncpg.Pool, settings: Settings
) -> None:
    t0 = base_ns()
    uploads = settings.data_dir / "uploads"
    (uploads / "nested").mkdir(parents=True, exist_ok=True)
    name = f"ticks-{secrets.token_hex(4)}.csv"
    (uploads / "nested" / name).write_bytes(f"timestamp,price,volume\n{t0},10.5,1\n".encode())
    frames = await upload(client, admin, file_path=f"nested/../nested/{name}")
    completed(frames[-1], 1, 1, 0)
    assert await stored(pool, "ES", t0, t0) == [(t0, 10.5, 1.0, None, None)]
    assert (uploads / "nested" / name).exists()  # the hub leaves the folder's files alone

    outside = settings.data_dir / f"outside-{secrets.token_hex(4)}.csv"
    outside.write_bytes(f"timestamp,price,volume\n{t0 + 1},11.5,1\n".encode())
    link = uploads / f"link-{secrets.token_hex(4)}.csv"
    link.symlink_to(outside)
    refused = [
        f"../{outside.name}",
        f"nested/../../{outside.name}",
        str(outside),  # absolute, outside
        link.name,  # inside, but a link out
        ".",
        "",
    ]
    for path in refused:
        detail = orca_error(await post(client, admin, file_path=path), 422)
        assert "file_path must name a file inside the uploads folder" in detail or (
            path == "" and "either file or file_path is required" in detail
        ), (path, detail)
    missing = orca_error(await post(client, admin, file_path="no-such.csv"), 422)
    assert "no readable file 'no-such.csv' in the uploads folder" in missing
    assert await stored(pool, "ES", t0 + 1, t0 + 1) == []


# -- refusals before the stream --------------------------------------------------------------


async def test_refusals_answer_in_orcas_format_and_store_nothing(
    client: httpx.AsyncClient, admin: Account, alice: Account, pool: asyncpg.Pool
) -> None:
    t0 = base_ns()
    good = f"timestamp,price,volume\n{t0},10,1\n{t0 + 1},11,1\n".encode()
    assert "authentication" in orca_error(await post(client, None, good), 401).lower()
    assert "marketdata:write" in orca_error(await post(client, alice, good), 403)
    cases: list[tuple[bytes | None, dict[str, Any], str]] = [
        (good, {"instrument": "XX"}, "instrument must be one of ES, NQ, got 'XX'"),
        (good, {"instrument": None}, "instrument must be one of ES, NQ, got ''"),
        (None, {}, "either file or file_path is required"),
        (good, {"file_path": "x.csv"}, "send either file or file_path, not both"),
        (good, {"has_header": "maybe"}, "has_header must be true or false, got 'maybe'"),
        (good, {"skip_duplicates": "yes please"}, "skip_duplicates must be true or false"),
        (good, {"supabase_target": "x" * 65}, "supabase_target must be at most 64 characters"),
        (
            f"timestamp,price,volume\n{t0},10,1\n{t0 + 1},n/a,1\n".encode(),
            {},
            "file: row 2, column 'price': must be a finite number above 0, got 'n/a'",
        ),
        (
            f"timestamp,price,volume\n{t0},10,1\n{t0 + 1},10,-1\n".encode(),
            {},
            "file: row 2, column 'volume': must be a finite number at least 0 or empty",
        ),
        (
            f"time,price\n{t0},10\nyesterday,11\n".encode(),
            {},
            "file: row 2, column 'time': must be an ISO 8601 string",
        ),
        (f"{t0},10,1\n".encode(), {}, "no time column: the header row must name one of"),
        (f"{t0},10,1\n".encode(), {}, "(the first row looks like a tick: send has_header=false)"),
        (
            f"{t0},10,1,2\n".encode(),
            {"has_header": "false"},
            "a file without a header row has 2 (time, price), 3 (time, price, volume) or 5",
        ),
        (b"timestamp,price,volume\n", {}, "file: the file holds no ticks"),
        (f"timestamp,price\n{t0},10\n{t0 + 1}\n".encode(), {}, "line 3 has 1 fields"),
    ]
    for csv, fields, detail in cases:
        got = orca_error(await post(client, admin, csv, **fields), 422)
        assert detail in got, (fields, got)
    assert await stored(pool, "ES", t0, t0 + 1) == []


# -- a failure mid-file ----------------------------------------------------------------------


async def test_a_failure_mid_file_ends_with_success_false_and_keeps_the_batches_before(
    client: httpx.AsyncClient,
    admin: Account,
    pool: asyncpg.Pool,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The file (in the uploads folder) is checked whole, then changes under the upload: its
    row 290,001 turns bad while batch 1 waits on the instrument's lock (held here), so the
    batches of 50,000 rows before it are stored and the stream says why it stopped."""
    monkeypatch.setattr(hub.marketdata.upload, "BATCH_ROWS", 50_000)
    t0 = base_ns()
    n = 300_000
    header = b"timestamp,price,volume\n"
    width = 36  # each row: 19 digits of ns, 10 characters of price, 4 of volume, 2 separators
    rows = "".join(
        f"{t0 + i * 1000:019d},{4700 + i % 40 * 0.25:010.2f},{i % 9 + 1:04d}\n" for i in range(n)
    )
    assert len(rows) == n * width
    path = settings.data_dir / "uploads" / f"changing-{secrets.token_hex(4)}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + rows.encode())

    lock = await pool.acquire()
    transaction = lock.transaction()
    await transaction.start()
    await lock.execute(
        "select pg_advisory_xact_lock(hashtextextended('tradehub.ticks:' || $1, 0))", "NQ"
    )

    async def release() -> None:
        if not released:
            released.append(True)
            await transaction.rollback()
            await pool.release(lock)

    released: list[bool] = []

    counted = rest.orca_upload.count_ticks

    async def count_then_change(file: Any, *, has_header: bool) -> int:
        """The file turns bad once checked whole, before the hub reads it again: in the hub's
        own process, so no read-ahead of the second pass can see the row before it changes."""
        total = await counted(file, has_header=has_header)
        with path.open("r+b") as changed:
            changed.seek(len(header) + 290_000 * width + 20)
            changed.write(b"xxxxxxxxxx")
        return total

    monkeypatch.setattr(rest.orca_upload, "count_ticks", count_then_change)

    async def on_frame(frame: Frame) -> None:
        if frame[1]["status"] == "started":  # checked whole; batch 1 waits for the lock
            await release()

    try:
        frames = await upload(client, admin, file_path=path.name, instrument="NQ", each=on_frame)
    finally:
        await release()
    assert [f["batch"] for f in frames[1:-1]] == [1, 2, 3, 4, 5]
    last = frames[-1]
    assert re.fullmatch(r"[0-9]+\.[0-9]s", last.pop("duration"))
    assert last == {
        "status": "completed",
        "success": False,
        "total_rows": n,
        "uploaded_rows": 250_000,
        "skipped_rows": 0,
        "error": "file: row 290001, column 'price': must be a finite number above 0, "
        "got 'xxxxxxxxxx'",
    }
    assert len(await stored(pool, "NQ", t0, t0 + n * 1000)) == 250_000


async def test_a_client_that_goes_away_stops_the_upload_after_the_batch_being_stored(
    server: LiveServer,
    admin: Account,
    pool: asyncpg.Pool,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The client leaves while batch 1 waits on the instrument's lock (held here): batch 1 is
    committed whole once the lock is free, nothing after it is read, the file is closed, and
    no connection is left inside a transaction."""
    monkeypatch.setattr(hub.marketdata.upload, "BATCH_ROWS", 50_000)
    t0 = base_ns()
    path = settings.data_dir / "uploads" / f"left-{secrets.token_hex(4)}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = "".join(f"{t0 + i * 1000},{4700 + i % 40 * 0.25},1\n" for i in range(200_000))
    path.write_bytes(b"timestamp,price,volume\n" + rows.encode())
    process = psutil.Process()
    connections = server.server.server_state.connections
    before = set(connections)

    def file_open() -> bool:
        return any(f.path == str(path) for f in process.open_files())

    async with pool.acquire() as lock, lock.transaction():
        await lock.execute(
            "select pg_advisory_xact_lock(hashtextextended('tradehub.ticks:' || $1, 0))", "ES"
        )
        async with (
            httpx.AsyncClient(base_url=server.url, timeout=60) as http,
            http.stream(
                "POST", URL, data=form(file_path=path.name), headers=admin.headers
            ) as response,
        ):
            lines = response.aiter_lines()
            assert await anext(lines) == 'data: {"status":"started","message":"Upload started"}'
            mine = set(connections) - before
            assert len(mine) == 1 and file_open()

        async def seen_gone() -> bool:
            return not mine & set(connections)

        await eventually(seen_gone)

    async def file_closed() -> bool:
        return not file_open()

    await eventually(file_closed)
    assert len(await stored(pool, "ES", t0, t0 + 200_000 * 1000)) == 50_000
    idle = await pool.fetchval(
        "select count(*) from pg_stat_activity "
        "where datname = current_database() and state like 'idle in transaction%'"
    )
    assert idle == 0


# -- size ----------------------------------------------------------------------------------


def multipart(boundary: bytes, total: int, chunk: bytes) -> AsyncIterator[bytes]:
    """A form with ``total`` bytes of file, generated a chunk at a time (never held)."""

    async def body() -> AsyncIterator[bytes]:
        yield b"--" + boundary + b'\r\nContent-Disposition: form-data; name="instrument"\r\n\r\n'
        yield b"ES\r\n--" + boundary + b"\r\n"
        yield b'Content-Disposition: form-data; name="file"; filename="big.csv"\r\n\r\n'
        yield b"timestamp,price,volume\n"
        sent = 0
        while sent < total:
            yield chunk
            sent += len(chunk)
        yield b"\r\n--" + boundary + b"--\r\n"

    return body()


async def test_a_1_gb_upload_is_a_413_and_the_process_memory_stays_flat(
    server: LiveServer, admin: Account
) -> None:
    """1 GiB, declared (refused at once) and undeclared (refused at the 301st MiB, the first
    300 spooled to disk): the process (server and client) grows by less than 64 MiB."""
    process = psutil.Process(os.getpid())
    chunk = b"1735723800000000000,4750.25,1\n" * 34_953  # 1 MiB, sent again and again
    total = 1 << 30
    boundary = b"b0undary" + secrets.token_hex(4).encode()
    media = {"Content-Type": f"multipart/form-data; boundary={boundary.decode()}"}
    gc.collect()
    before = process.memory_info().rss
    peak = before

    async def watched(body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        nonlocal peak
        async for part in body:
            yield part
            peak = max(peak, process.memory_info().rss)

    async with httpx.AsyncClient(base_url=server.url, timeout=120) as http:
        length = 0
        async for part in multipart(boundary, total, chunk):
            length += len(part)
        declared = {**admin.headers, **media, "Content-Length": str(length)}
        body = watched(multipart(boundary, total, chunk))
        response = await http.post(URL, content=body, headers=declared)
        assert "more than the limit" in orca_error(response, 413)

        chunked = {**admin.headers, **media}
        response = await http.post(
            URL, content=watched(multipart(boundary, total, chunk)), headers=chunked
        )
        assert "more than the limit" in orca_error(response, 413)
    peak = max(peak, process.memory_info().rss)
    assert peak - before < 64 << 20, f"grew by {(peak - before) >> 20} MiB"
