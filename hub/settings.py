"""Runtime configuration, read from ``HUB_*`` environment variables (or a ``.env`` file)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob of the hub. Defaults suit a laptop; production sets the database URL."""

    model_config = SettingsConfigDict(env_prefix="HUB_", env_file=".env", extra="ignore")

    database_url: str | None = Field(
        default=None,
        description=(
            "postgresql://user:password@host:port/db (a Unix socket via ?host=/path). "
            "Unset: an embedded PostgreSQL is started in data_dir."
        ),
    )
    data_dir: Path = Field(
        default=Path(".hub-data"),
        description="Folder of the embedded PostgreSQL when database_url is unset.",
    )
    database_name: str = Field(
        default="hub", description="Database created and used inside the embedded PostgreSQL."
    )
    pool_size: int = Field(default=10, ge=1, description="Connections kept open per process.")
    pool_max_overflow: int = Field(default=10, ge=0, description="Extra connections under load.")
    statement_timeout_ms: int = Field(
        default=15_000, ge=100, description="PostgreSQL statement_timeout for every connection."
    )
    max_page_size: int = Field(
        default=100, ge=1, description="Largest `first`/`last` a connection field accepts."
    )
    default_page_size: int = Field(
        default=20, ge=1, description="Page size when neither `first` nor `last` is given."
    )
    migrate_on_start: bool = Field(
        default=True, description="`hub serve` applies pending migrations before serving."
    )
    graphiql: bool = Field(default=True, description="Serve the GraphiQL explorer on GET /graphql.")
    default_phone_region: str | None = Field(
        default=None,
        description=(
            "ISO country code for phone numbers written without +country (e.g. GB). "
            "Unset: numbers must be international."
        ),
    )

    # ---- live subscriptions (docs/subscriptions.md) ----
    events_poll_interval_ms: int = Field(
        default=75,
        ge=5,
        description="How often each process's notifier reads new events from the outbox.",
    )
    events_listen_wakeup: bool = Field(
        default=True,
        description=(
            "The notifier also LISTENs on channel `hub_events` and reads at once when woken; a "
            "NOTIFY is only ever sent outside ingest transactions (by `hub notify-events`, ops)."
        ),
    )
    events_batch_size: int = Field(
        default=1000, ge=1, description="Events read per outbox query (notifier and replay)."
    )
    events_retention_days: float = Field(
        default=7.0,
        gt=0,
        description="Events are kept this long for replay; older cursors get CURSOR_EXPIRED.",
    )
    events_prune_interval_s: float = Field(
        default=3600.0, gt=0, description="How often each process deletes expired events."
    )
    subscriber_queue_size: int = Field(
        default=1000,
        ge=1,
        description=(
            "Messages buffered per websocket connection (and events per live subscription); "
            "beyond it the consumer is cut off with SUBSCRIBER_TOO_SLOW."
        ),
    )
    subscriber_cutoff_grace_s: float = Field(
        default=10.0,
        gt=0,
        description="How long a cut-off consumer gets to read its error before the socket drops.",
    )
    ws_connection_init_timeout_s: float = Field(
        default=10.0, gt=0, description="Close with 4408 when connection_init is not sent in time."
    )
    ws_max_subscriptions: int = Field(
        default=20, ge=1, description="Active subscriptions allowed per websocket connection."
    )
    ws_allowed_origins: list[str] = Field(
        default_factory=list,
        description=(
            "Browser origins allowed to open websockets (e.g. https://app.example.com; '*' = "
            "any). Clients without an Origin header and same-origin pages are always allowed."
        ),
    )
    ws_keepalive_s: float = Field(
        default=15.0, ge=0, description="Send a graphql-transport-ws ping this often (0 = never)."
    )
    ws_legacy_protocol: bool = Field(
        default=False,
        description="Also accept the legacy `graphql-ws` subprotocol (off: it has a bug history).",
    )
    ws_per_message_deflate: bool = Field(
        default=False,
        description=(
            "Compress websocket messages (permessage-deflate). Off: compression runs per "
            "connection, so shared payload bytes would be compressed once per subscriber."
        ),
    )
    ws_shared_execution: bool = Field(
        default=True,
        description=(
            "Subscribers with the same query, variables and access share one execution per "
            "event and receive the same serialized bytes."
        ),
    )
