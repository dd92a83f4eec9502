"""An SMA-crossover bot on a paper account, through tradehub's Python client.

It follows a symbol's ticks on ``/ws`` (or its bars, with ``--bars 1m``), keeps a fast and a
slow simple moving average of the prices, and goes long with a market order when the fast one
crosses above the slow one, flat when it crosses below. The subscription resumes by itself
across dropped sockets and hub restarts; orders are resent with the same client order id after
a drop, so a resend never buys twice.

Against ``tradehub up --demo`` (BTC/USD replayed fast), with the admin token it printed:

    TRADEHUB_TOKEN=th_... python client/examples/sma_bot.py --symbol BTC/USD

Each order is printed as a JSON line. ``--account`` trades an existing paper account; without
it the bot creates one named ``sma-bot`` (or reuses it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections import deque
from dataclasses import dataclass, field

from tradehub_client import AsyncClient, FeedEvent, HistoryGone, OrderError
from tradehub_client.payloads import Bar, Tick


@dataclass
class Crossover:
    """Two simple moving averages of the last ``fast`` and ``slow`` prices, and which side of
    the slow one the fast one is on."""

    fast: int
    slow: int
    prices: deque[float] = field(default_factory=deque)
    above: bool | None = None

    def update(self, price: float) -> str | None:
        """``"buy"`` when the fast average just crossed above the slow one, ``"sell"`` when it
        just crossed below, else None."""
        self.prices.append(price)
        if len(self.prices) > self.slow:
            self.prices.popleft()
        if len(self.prices) < self.slow:
            return None
        window = list(self.prices)
        fast = sum(window[-self.fast :]) / self.fast
        slow = sum(window) / self.slow
        if fast == slow:
            return None
        above, before = fast > slow, self.above
        self.above = above
        if before is None or above == before:
            return None
        return "buy" if above else "sell"


async def paper_account(client: AsyncClient, name: str) -> str:
    for account in await client.gql.accounts():
        if account.name == name and account.broker == "paper" and account.active:
            return account.id
    return (await client.gql.create_paper_account(name, initialBalance=100_000)).id


def price_of(event: FeedEvent) -> float | None:
    """A tick's price, or a closed bar's close (None for a bar still forming)."""
    if event.channel.startswith("bars:"):
        bar = event.parse(Bar)
        return bar.close if bar.closed else None
    return event.parse(Tick).price


async def run(args: argparse.Namespace) -> int:
    credentials = (
        {"username": args.user, "password": os.environ.get("TRADEHUB_PASSWORD", "")}
        if args.user
        else {"api_key": os.environ["TRADEHUB_TOKEN"]}
    )
    async with AsyncClient(args.url, **credentials) as client:
        account = args.account or await paper_account(client, "sma-bot")
        channel = f"bars:{args.symbol}:{args.bars}" if args.bars else f"ticks:{args.symbol}"
        signal = Crossover(args.fast, args.slow)
        long = False
        placed = 0
        print(json.dumps({"account": account, "channel": channel}), file=sys.stderr)
        try:
            async for event in client.subscribe(channel):
                price = price_of(event)
                if price is None:
                    continue
                side = signal.update(price)
                if side is None or (side == "buy") == long:
                    continue
                try:
                    ack = await client.place_order(
                        account, args.symbol, side, args.quantity, type="market"
                    )
                except OrderError as exc:  # rejected, rate limited...: keep trading
                    print(json.dumps({"error": exc.code, "message": exc.message}), file=sys.stderr)
                    continue
                long = side == "buy"
                placed += 1
                print(
                    json.dumps(
                        {"seq": event.seq, "price": price, "side": side, **ack.model_dump()}
                    ),
                    flush=True,
                )
                if args.max_orders and placed >= args.max_orders:
                    return 0
        except HistoryGone as exc:  # the hub lost ticks we would have traded on: say so
            print(json.dumps({"error": "history_gone", "message": str(exc)}), file=sys.stderr)
            return 1
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=os.environ.get("TRADEHUB_URL", "http://127.0.0.1:8000"))
    parser.add_argument(
        "--user", help="log in as this user (TRADEHUB_PASSWORD); default: TRADEHUB_TOKEN"
    )
    parser.add_argument("--symbol", default="BTC/USD")
    parser.add_argument(
        "--bars", metavar="TIMEFRAME", help="trade closed bars (1m, 1h) instead of ticks"
    )
    parser.add_argument("--account", help="a paper account's id (default: the bot's own)")
    parser.add_argument("--fast", type=int, default=10)
    parser.add_argument("--slow", type=int, default=30)
    parser.add_argument("--quantity", type=float, default=0.01)
    parser.add_argument("--max-orders", type=int, default=0, help="stop after this many (0: never)")
    args = parser.parse_args()
    if not 0 < args.fast < args.slow:
        parser.error(f"need 0 < --fast < --slow, got {args.fast} and {args.slow}")
    if not args.user and not os.environ.get("TRADEHUB_TOKEN"):
        parser.error("set TRADEHUB_TOKEN to an API key, or pass --user")
    try:
        return asyncio.run(run(args))
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
