"""What ships beside the client: ``tradehub tail`` as a process, the example SMA bot trading a
paper account, and ``pip install ./client`` into a fresh venv without the server's
dependencies."""

from __future__ import annotations

import asyncio
import json
import math
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tradehub_client import AsyncClient

from tests.conftest import ROOT, Account, LiveServer
from tests.helpers import eventually
from tests.test_client import new_symbol, tick

SERVER_ONLY = {"numba", "asyncpg", "numpy", "redis", "arq", "starlette", "uvicorn", "pyarrow"}
OFFLINE = (
    "Failed to establish a new connection",
    "Temporary failure in name resolution",
    "No matching distribution found",
    "Could not find a version",
    "Network is unreachable",
)


def client_env(**extra: str) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("TRADEHUB_")},
        **extra,
    }


async def lines_of(stream: asyncio.StreamReader, n: int, timeout: float = 30) -> list[Any]:
    out: list[Any] = []
    async with asyncio.timeout(timeout):
        for _ in range(n):
            line = await stream.readline()
            assert line, f"the stream ended after {len(out)} lines"
            out.append(json.loads(line))
    return out


@pytest.fixture
async def desk(server: LiveServer, alice: Account) -> Any:
    async with AsyncClient(server.url, api_key=alice.token) as client:
        yield client


async def test_tail_prints_a_channels_events_as_json_lines(
    server: LiveServer, alice: Account, desk: AsyncClient
) -> None:
    symbol = new_symbol()
    await tick(server, symbol, 100.0)
    account = (await desk.gql.create_paper_account(f"tl-{secrets.token_hex(3)}")).id
    await desk.place_order(account, symbol, "buy", 2)
    await tick(server, symbol, 101.0)
    channel = f"account:{account}:orders"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hub",
        "tail",
        channel,
        "--since",
        "0",
        "--limit",
        "4",
        "--url",
        server.url,
        cwd=ROOT,
        env=client_env(TRADEHUB_TOKEN=alice.token),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        history = await lines_of(process.stdout, 2)  # from history
        await desk.place_order(account, symbol, "sell", 1)
        await tick(server, symbol, 102.0)
        live = await lines_of(process.stdout, 2)  # then live
        async with asyncio.timeout(30):
            assert await process.wait() == 0  # --limit reached
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    events = history + live
    assert [e["seq"] for e in events] == [1, 2, 3, 4]
    assert {e["channel"] for e in events} == {channel}
    assert [e["data"]["event"] for e in events] == ["created", "filled", "created", "filled"]


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        (["nonsense:topic"], "unknown_channel"),
        (["ticks:TLGONE", "--since", "1", "--epoch", "0000000000000000"], "no longer in"),
    ],
    ids=["refused", "history-gone"],
)
async def test_tail_says_why_it_stops(
    server: LiveServer, alice: Account, arguments: list[str], says: str
) -> None:
    await tick(server, "TLGONE", 1.0)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hub",
        "tail",
        *arguments,
        "--url",
        server.url,
        cwd=ROOT,
        env=client_env(TRADEHUB_TOKEN=alice.token),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(30):
        out, err = await process.communicate()
    assert process.returncode == 1 and out == b""
    assert says in err.decode() and err.decode().startswith("tradehub: ")


async def test_tail_needs_a_credential() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hub",
        "tail",
        "ticks:X",
        cwd=ROOT,
        env=client_env(),
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(30):
        _, err = await process.communicate()
    assert process.returncode == 1 and b"TRADEHUB_TOKEN" in err


async def test_the_example_bot_trades_a_paper_account(
    server: LiveServer, alice: Account, desk: AsyncClient
) -> None:
    symbol = new_symbol()
    await tick(server, symbol, 100.0)
    account = (await desk.gql.create_paper_account(f"bot-{secrets.token_hex(3)}")).id
    bot = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "client" / "examples" / "sma_bot.py"),
        "--url",
        server.url,
        "--symbol",
        symbol,
        "--account",
        account,
        "--fast",
        "2",
        "--slow",
        "5",
        "--quantity",
        "1",
        "--max-orders",
        "2",
        env=client_env(TRADEHUB_TOKEN=alice.token),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        # A market that swings (a sine wave): the averages cross every half period.
        step = 0
        async with asyncio.timeout(90):
            while bot.returncode is None:
                await tick(server, symbol, 100.0 + 5 * math.sin(step / 4))
                step += 1
                try:
                    await asyncio.wait_for(bot.wait(), timeout=0.02)
                except TimeoutError:
                    pass
        out, err = await bot.communicate()
    finally:
        if bot.returncode is None:
            bot.kill()
            await bot.wait()
    assert bot.returncode == 0, err.decode()
    orders = [json.loads(line) for line in out.decode().splitlines()]
    assert [o["side"] for o in orders] == ["buy", "sell"]
    assert all(o["op"] == "order_accepted" for o in orders)
    await tick(server, symbol, 100.0)  # fills the last one

    async def filled() -> bool:
        found = await desk.gql.orders(account)
        return len(found) == 2 and all(o.status == "FILLED" for o in found)

    await eventually(filled)
    positions = await desk.gql.positions(account)
    assert positions.positions == [] or positions.positions[0].quantity == 0


def test_the_client_installs_without_the_servers_dependencies(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    installed = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", str(ROOT / "client")],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if installed.returncode != 0 and any(sign in installed.stderr for sign in OFFLINE):
        pytest.skip(f"no package index reachable: {installed.stderr.strip()[-200:]}")
    assert installed.returncode == 0, installed.stderr
    listed = subprocess.run(
        [str(python), "-m", "pip", "list", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    names = {p["name"].lower() for p in json.loads(listed.stdout)}
    assert "tradehub-client" in names
    assert not names & SERVER_ONLY
    script = (
        "import json, tradehub_client; from tradehub_client.operations import load;"
        " print(json.dumps(sorted(load())))"
    )
    probe = subprocess.run(
        [str(python), "-c", script],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,  # not the checkout: the installed package, with its documents
    )
    assert probe.returncode == 0, probe.stderr
    shipped = json.loads(probe.stdout)
    assert shipped == sorted(p.stem for p in (ROOT / "graphql" / "operations").glob("*.graphql"))
