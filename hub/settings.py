"""Configuration: environment variables prefixed ``TRADEHUB_``, optionally from ``.env``."""

from __future__ import annotations

import os
import re
import secrets
from functools import cached_property
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from hub.topics import SYMBOL

_INSTRUMENT = re.compile(SYMBOL)


class Settings(BaseSettings):
    """Everything a hub, worker or CLI process needs to know about its world.

    No ``database_url`` / ``redis_url`` means embedded: ``tradehub up`` starts Postgres and
    Valkey under ``data_dir`` and every other command finds them there.
    """

    model_config = SettingsConfigDict(
        env_prefix="TRADEHUB_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    database_url: str | None = None
    redis_url: str | None = None
    data_dir: Path = Path(".tradehub")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    secret: SecretStr | None = None
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    workers: int = Field(default=1, ge=1, le=64)
    log_json: bool = False
    log_level: str = "info"
    # Every Redis key and channel starts with this, so several hubs (or test runs) can share
    # one Redis without seeing each other.
    redis_prefix: str = "th:"
    jwt_ttl_seconds: int = Field(default=3600, ge=60)
    db_pool_min: int = Field(default=1, ge=0)
    db_pool_max: int = Field(default=10, ge=1)
    max_body_bytes: int = Field(default=1 << 20, ge=1024)
    # Extra domains (comma-separated import paths of packages or modules exposing ``domain``),
    # served after the built-in ones: your own topics, job types and GraphQL fields.
    domains: Annotated[list[str], NoDecode] = Field(default_factory=list)
    ws_init_timeout: float = Field(default=5.0, gt=0)
    # A WebSocket send blocked this long (the client stopped reading) closes the connection.
    ws_send_timeout: float = Field(default=10.0, gt=0)
    # Events buffered per subscriber before it is cut off as a slow consumer.
    bus_queue_size: int = Field(default=2048, ge=8)
    # Freeze start-up objects and collect young ones less often: full collections at fan-out
    # rates otherwise pause every connection for hundreds of milliseconds.
    gc_tuning: bool = True
    # Bars per backtest chunk (each chunk: one transaction, a checkpoint, progress); unset
    # means a tenth of the run, between 20,000 and 250,000 bars.
    backtest_chunk_bars: int | None = Field(default=None, ge=100)
    # Live runs one worker process hosts at most (TRADEHUB_LIVE_RUNS_PER_WORKER).
    live_runs_per_worker: int = Field(default=500, ge=0)
    # Workers judge research models' new bars and emit signals (TRADEHUB_SIGNALS_ENABLED).
    signals_enabled: bool = True

    # -- limits: what one caller may ask of the hub ------------------------------------
    # Rows one GraphQL operation may return (aliases and nesting multiply), and its answer's size.
    graphql_max_rows: int = Field(default=250_000, ge=1)
    graphql_max_response_bytes: int = Field(default=64 << 20, ge=1024)
    # A connection whose request headers are incomplete after this long is closed; one whose
    # body stops arriving for this long is answered 408 and closed.
    header_timeout: float = Field(default=10.0, gt=0)
    body_timeout: float = Field(default=30.0, gt=0)
    # Open connections (HTTP and WebSocket) one client address may hold at once.
    max_connections_per_client: int = Field(default=2048, ge=1)
    # Failed logins allowed per username and per address within login_window_seconds; after
    # that, 429 with Retry-After until the window has passed.
    login_failures_per_user: int = Field(default=5, ge=1)
    login_failures_per_address: int = Field(default=20, ge=1)
    login_window_seconds: int = Field(default=300, ge=1)
    # Jobs one user may have pending or running at once, and the bars they may cover together.
    max_active_jobs_per_user: int = Field(default=4, ge=1)
    max_active_bars_per_user: int = Field(default=25_000_000, ge=1)

    # -- bars from ticks (hub/marketdata/aggregator.py) --------------------------------
    # Pairs whose bars are built whether or not anybody asks ("BTC/USD:1m,ETH/USD:5m"),
    # besides those subscribers and live runs want.
    bars: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Seconds of market time past a bar's end after which it closes when no tick closes it.
    bar_close_delay: float = Field(default=2.0, ge=0, le=3600)
    # (symbol, timeframe) pairs built at once, across every hub process.
    bars_max_pairs: int = Field(default=256, ge=1, le=100_000)

    # -- ORCA's tick upload (hub/marketdata/upload.py) ---------------------------------
    # Instruments POST /api/upload-tick-data accepts ("ES,NQ"), each the symbol its ticks
    # are stored under.
    tick_instruments: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["ES", "NQ"])

    # -- time-series SQL and CSV imports (hub/timeseries/) ------------------------------
    # Largest body POST /api/questdb/import/async accepts (streamed to the uploads folder).
    import_max_bytes: int = Field(default=256 << 20, ge=1024)
    # Seconds one statement of POST /api/questdb/query (and GraphQL `sql`) may run, rows it
    # may answer, and seconds an export (POST /api/questdb/export) may take to stream.
    sql_timeout: float = Field(default=30.0, gt=0, le=3600)
    sql_max_rows: int = Field(default=100_000, ge=1, le=10_000_000)
    sql_export_timeout: float = Field(default=600.0, gt=0, le=86_400)

    # -- line-protocol ingest (POST /write, POST /api/v2/write) -------------------------
    # Largest body one write takes, counted as sent and again after gzip decompression: a
    # batch is parsed whole before anything is written (413 beyond).
    line_protocol_max_bytes: int = Field(default=32 << 20, ge=1024)

    # -- rate limits (hub/ratelimits/) --------------------------------------------------
    # Off: no request is counted and no backtest slot taken (a test suite sharing its users).
    rate_limits: bool = True
    # Cracktrader's requests per API key a minute (seed 004; 0: unlimited).
    cracktrader_requests_per_minute: int = Field(default=100, ge=0)
    # ORCA's planned per-address limits (seed 002), applied only when orca_rate_limits is on
    # (ORCA documents them as planned, not enforced); each 0 is unlimited.
    orca_rate_limits: bool = False
    orca_hft_per_minute: int = Field(default=1000, ge=0)
    orca_batch_per_minute: int = Field(default=100, ge=0)
    orca_upload_per_hour: int = Field(default=10, ge=0)
    # How long a concurrent-backtest slot is held unless renewed (a holder that died frees it).
    backtest_slot_seconds: float = Field(default=6 * 3600, gt=0)

    # -- webhooks (hub/webhooks/) -----------------------------------------------------
    # Let webhooks reach private, loopback and link-local addresses (tests, local use).
    webhook_allow_private: bool = False
    # Attempts per delivery, the first retry's delay (doubled each time, up to the cap), and
    # how long one attempt may take.
    webhook_max_attempts: int = Field(default=6, ge=1, le=50)
    webhook_backoff_seconds: float = Field(default=2.0, ge=0)
    webhook_backoff_max_seconds: float = Field(default=3600.0, ge=0)
    webhook_timeout: float = Field(default=10.0, gt=0, le=300)

    @field_validator("cors_origins", "domains", "bars", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("tick_instruments", mode="before")
    @classmethod
    def _split_instruments(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list):
            for name in value:
                if not isinstance(name, str) or not _INSTRUMENT.fullmatch(name):
                    raise ValueError(
                        f"each instrument is 1-32 letters, digits and / _ . : -, got {name!r}"
                    )
        return value

    @field_validator("data_dir", mode="after")
    @classmethod
    def _absolute_data_dir(cls, value: Path) -> Path:
        return value.expanduser().absolute()

    @property
    def embedded(self) -> bool:
        return self.database_url is None or self.redis_url is None

    @cached_property
    def jwt_secret(self) -> str:
        """The JWT signing key: ``TRADEHUB_SECRET`` or one generated once into the data folder."""
        if self.secret is not None:
            return self.secret.get_secret_value()
        return load_or_create_secret(self.data_dir / "secret")


def load_or_create_secret(path: Path) -> str:
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    # Written whole to a private temporary file, then linked into place: a process racing us
    # either finds no file or the complete one, and exactly one value wins.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    try:
        os.link(tmp, path)
    except FileExistsError:
        value = path.read_text().strip()
    finally:
        tmp.unlink()
    return value
