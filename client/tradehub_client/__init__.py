"""tradehub's Python client: ``Client`` (blocking) and ``AsyncClient`` (asyncio)."""

from tradehub_client.aio import AsyncClient
from tradehub_client.backoff import Backoff
from tradehub_client.errors import (
    ApiError,
    AuthenticationError,
    BadOrder,
    FeedError,
    GraphQLError,
    HistoryGone,
    OrderConflict,
    OrderError,
    OrderRateLimited,
    OrderRejected,
    SubscriptionRefused,
    TradehubError,
)
from tradehub_client.feed import FeedUnavailable
from tradehub_client.models import FeedEvent, OrderAck
from tradehub_client.sync import Client

__all__ = [
    "ApiError",
    "AsyncClient",
    "AuthenticationError",
    "Backoff",
    "BadOrder",
    "Client",
    "FeedError",
    "FeedEvent",
    "FeedUnavailable",
    "GraphQLError",
    "HistoryGone",
    "OrderAck",
    "OrderConflict",
    "OrderError",
    "OrderRateLimited",
    "OrderRejected",
    "SubscriptionRefused",
    "TradehubError",
]
