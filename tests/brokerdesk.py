"""A trader's desk for the broker tests: accounts, orders and ticks through the real interfaces
(GraphQL for accounts and orders, the ingest route for ticks)."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

import httpx

from tests.conftest import Account, operation
from tests.helpers import eventually, graphql


def new_symbol() -> str:
    return f"T{secrets.token_hex(4).upper()}"


@dataclass
class Desk:
    http: httpx.AsyncClient
    trader: Account
    admin: Account

    async def ticks(self, symbol: str, *ticks: dict[str, Any] | float) -> None:
        batch = [
            {
                "symbol": symbol,
                "ts": time.time_ns(),
                **({"price": t} if isinstance(t, int | float) else t),
            }
            for t in ticks
        ]
        response = await self.http.post(
            "/api/v1/marketdata/ticks", json={"ticks": batch}, headers=self.admin.headers
        )
        assert response.status_code == 200, response.text

    async def gql(
        self, name: str, variables: dict[str, Any] | None = None, *, as_: Account | None = None
    ) -> dict[str, Any]:
        return await graphql(
            self.http, operation(name), variables, token=(as_ or self.trader).token
        )

    async def account(self, **settings: Any) -> str:
        body = await self.gql(
            "CreatePaperAccount",
            {
                "input": {
                    "name": f"paper-{secrets.token_hex(4)}",
                    "initialBalance": 100_000,
                    **settings,
                }
            },
        )
        assert "errors" not in body, body
        return str(body["data"]["createPaperAccount"]["id"])

    async def place(self, account_id: str, symbol: str, **order: Any) -> dict[str, Any]:
        body = await self.try_place(account_id, symbol, **order)
        assert "errors" not in body, body
        return body["data"]["placeOrder"]  # type: ignore[no-any-return]

    async def try_place(self, account_id: str, symbol: str, **order: Any) -> dict[str, Any]:
        fields = {"side": "BUY", "type": "MARKET", "quantity": 1, **order}
        return await self.gql(
            "PlaceOrder", {"input": {"accountId": account_id, "symbol": symbol, **fields}}
        )

    async def orders(self, account_id: str) -> list[dict[str, Any]]:
        body = await self.gql("Orders", {"accountId": account_id, "limit": 1000})
        assert "errors" not in body, body
        return body["data"]["orders"]  # type: ignore[no-any-return]

    async def order(self, account_id: str, order_id: str) -> dict[str, Any]:
        return next(o for o in await self.orders(account_id) if o["id"] == order_id)

    async def settled(self, account_id: str, order_id: str, *statuses: str) -> dict[str, Any]:
        """The order once its status is one of ``statuses`` (default: any final one)."""
        wanted = statuses or ("FILLED", "CANCELLED", "REJECTED", "EXPIRED")

        async def check() -> dict[str, Any] | None:
            found = await self.order(account_id, order_id)
            return found if found["status"] in wanted else None

        return await eventually(check, timeout=15)

    async def positions(self, account_id: str) -> dict[str, Any]:
        body = await self.gql("Positions", {"accountId": account_id})
        assert "errors" not in body, body
        return body["data"]["positions"]  # type: ignore[no-any-return]

    async def balances(self, account_id: str) -> dict[str, Any]:
        body = await self.gql("Balances", {"accountId": account_id})
        assert "errors" not in body, body
        return body["data"]["balances"]  # type: ignore[no-any-return]
