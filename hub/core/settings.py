"""Runtime configuration, read from ``HUB_*`` environment variables (or a ``.env`` file)."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# Traits and attributes that hold personal data unless configured otherwise.
DEFAULT_PERSONAL_TRAITS = ("email", "phone", "birthdate", "address", "first_name", "last_name")
DEFAULT_PERSONAL_ATTRIBUTES = ("email", "phone", "address", "ip", "message")


# An identity kind's code (hub.vocabulary.registry.CODE); whether it is registered is checked
# where a message is stored (the vocabulary is data, settings are read before the database).
_KIND_CODE = re.compile(r"[A-Z][A-Z0-9_]{0,63}")


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
    partner_pools: int = Field(
        default=4,
        ge=1,
        description=(
            "Row scopes (PARTNER keys' channels and touchpoints) whose compiled-read pool is "
            "kept per process; each holds up to HUB_POOL_SIZE / 2 connections, closed when idle."
        ),
    )
    pool_max_overflow: int = Field(default=10, ge=0, description="Extra connections under load.")
    statement_timeout_ms: int = Field(
        default=15_000, ge=100, description="PostgreSQL statement_timeout for every connection."
    )
    db_jit: bool = Field(
        default=False,
        description=(
            "PostgreSQL's JIT compilation on the hub's connections (off by default: compiling "
            "a large statement, such as the audiences' evaluation of a batch, costs more than "
            "it saves)."
        ),
    )
    db_connect_timeout_s: float = Field(
        default=5.0,
        gt=0,
        description=(
            "How long opening a database connection may take before the request fails with "
            "SERVICE_UNAVAILABLE (every pool: requests, control, compiled reads, LISTEN)."
        ),
    )
    db_pool_timeout_s: float = Field(
        default=5.0,
        gt=0,
        description=(
            "How long a request waits for a free pooled connection before it fails with "
            "SERVICE_UNAVAILABLE."
        ),
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
    blocked_identifiers: list[str] = Field(
        default=[
            "EMAIL:test@example.com",
            "EMAIL:noreply@example.com",
            "EMAIL:no-reply@example.com",
            "EMAIL:unknown@unknown.com",
            "PHONE:0000000000",
            "PHONE:+10000000000",
            "DEVICE_ID:00000000-0000-0000-0000-000000000000",
            "COOKIE:undefined",
            "COOKIE:null",
        ],
        description=(
            "KIND:value identifiers never used to match or link (shared, test or placeholder "
            "values); compared before and after normalisation."
        ),
    )
    max_identities_per_kind: int = Field(
        default=10,
        ge=1,
        description=(
            "Most identifiers of one kind a customer may hold; beyond it new ones are not linked "
            "and merges that would exceed it are refused."
        ),
    )
    weak_identity_kinds: list[str] = Field(
        default=["COOKIE", "DEVICE_ID"],
        description="Identifier kinds that never merge two known customers by themselves.",
    )
    trait_survivorship: dict[str, str] = Field(
        default={"first_order_at": "FIRST", "signup_source": "FIRST"},
        description=(
            "Per-trait rule when two values meet: LATEST (default: most recent non-empty wins) "
            "or FIRST (the oldest non-empty value is kept)."
        ),
    )
    max_attributes_bytes: int = Field(
        default=32 * 1024, ge=1, description="Largest `attributes` JSON of an interaction."
    )
    source_identity_map: dict[str, str] = Field(
        default={
            "userId": "CRM_ID",
            "anonymousId": "COOKIE",
            "traits.email": "EMAIL",
            "traits.phone": "PHONE",
        },
        description=(
            "Tracking API (/v1/*, docs/sources.md): which message field holds an identifier of "
            "which kind. `traits.x` is read from the message's traits, else context.traits."
        ),
    )
    source_max_body_bytes: int = Field(
        default=4_000_000,
        ge=1_000,
        description=(
            "Tracking API: largest body after gzip decompression (413 beyond; the compressed "
            "body is capped by max_body_bytes)."
        ),
    )
    max_future_seconds: int = Field(
        default=300,
        ge=0,
        description="How far in the future `occurredAt` may lie (clock skew allowance).",
    )
    max_batch_size: int = Field(
        default=1000, ge=1, description="Most interactions one recordInteractions call takes."
    )

    # ---- access control and hardening (docs/security.md) ----
    dev_mode: bool = Field(
        default=False,
        description=(
            "Development mode: requests without a key act as ADMIN with the pii scope. "
            "Never switch it on where anyone else can reach the port."
        ),
    )
    personal_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description=(
            "Key patterns of personal JSON values, added to the built-in list (comma-separated; "
            "case and separators ignored, `=key` matches the whole key only; docs/security.md)."
        ),
    )
    personal_traits: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_PERSONAL_TRAITS),
        description=(
            "Deprecated for masking (use HUB_PERSONAL_KEYS): trait keys that are personal data, "
            "masked as whole keys at any depth (comma-separated)."
        ),
    )
    personal_attributes: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_PERSONAL_ATTRIBUTES),
        description=(
            "Interaction attributes that erasure removes; for masking deprecated (use "
            "HUB_PERSONAL_KEYS), still masked as whole keys at any depth (comma-separated)."
        ),
    )
    max_query_depth: int = Field(default=15, ge=1, description="Deepest field nesting accepted.")
    max_aliases: int = Field(default=30, ge=0, description="Most aliases in one operation.")
    max_tokens: int = Field(default=5_000, ge=10, description="Most lexical tokens in a document.")
    max_query_cost: int = Field(
        default=50_000,
        ge=1,
        description=(
            "Largest estimated cost: each field costs 1 times the page sizes (`first`/`last`, "
            "else the default page size for lists) of the lists around it."
        ),
    )
    max_body_bytes: int = Field(
        default=1_000_000, ge=1_000, description="Largest HTTP request body (413 beyond)."
    )
    max_list_length: int = Field(
        default=1_000,
        ge=1,
        description=(
            "Most items in any list argument or list input field, variables included "
            "(LIST_TOO_LONG beyond). At least max_batch_size, or batches are refused whole."
        ),
    )
    max_filter_clauses: int = Field(
        default=100,
        ge=1,
        description=(
            "Most filter objects in one customer filter, nested and/or/not included "
            "(FILTER_TOO_WIDE beyond)."
        ),
    )
    operation_timeout_seconds: float = Field(
        default=10.0, gt=0, description="An HTTP operation running longer fails with TIMEOUT."
    )
    rate_limit_per_second: float = Field(
        default=50.0, gt=0, description="Requests per second and key (token bucket refill rate)."
    )
    rate_limit_burst: int = Field(
        default=100, ge=1, description="Requests a key may make at once (token bucket size)."
    )
    key_recheck_seconds: float = Field(
        default=1.0,
        gt=0,
        description="How often open websockets re-check that their key is still valid.",
    )
    key_cache_size: int = Field(
        default=1000,
        ge=0,
        description=(
            "Verified API keys each process keeps in memory (by their SHA-256), so that a "
            "request with a known key costs no database round trip; 0 turns the cache off."
        ),
    )
    key_cache_check_seconds: float = Field(
        default=0.5,
        gt=0,
        le=0.5,
        description=(
            "How often each process re-checks its cached keys against the database (one "
            "statement for all of them). A cached key unconfirmed for 0.9 s is looked up "
            "again, so a revocation reaches every process within a second."
        ),
    )
    allow_get_queries: bool = Field(
        default=True,
        description=(
            "Queries by GET (they must carry the X-Hub-Request header, which a browser cannot "
            "send cross-site). False: GET serves only GraphiQL."
        ),
    )
    # ---- trusted documents (docs/trusted-documents.md) ----
    env: Literal["development", "staging", "production"] = Field(
        default="development",
        description=(
            "Where the hub runs (HUB_ENV). In production FRONTEND and PARTNER keys run only "
            "registered (trusted) documents unless their key says otherwise."
        ),
    )
    trusted_documents_cache_size: int = Field(
        default=1024, ge=1, description="Trusted documents each process keeps parsed, by id."
    )
    trusted_documents_ttl_s: float = Field(
        default=5.0,
        ge=0,
        description=(
            "How long a process trusts its cached copy of a registered document: a removed "
            "document stops running in every process within this time."
        ),
    )
    apq_cache_size: int = Field(
        default=1024,
        ge=0,
        description=(
            "Automatic persisted queries (Apollo) each process remembers, for keys allowed "
            "arbitrary documents (0: none)."
        ),
    )
    document_cache_control: str = Field(
        default="private, max-age=0, must-revalidate",
        description="Cache-Control of a GET that runs a trusted query (it also gets an ETag).",
    )
    # ---- the wire and throttling (docs/security.md, "Wire and throttling") ----
    max_json_depth: int = Field(
        default=64,
        ge=2,
        le=1000,
        description=(
            "Deepest nesting of arrays and objects in a request body or a GET's variables "
            "(400 JSON_TOO_DEEP beyond)."
        ),
    )
    failed_key_per_second: float = Field(
        default=0.2,
        gt=0,
        description=(
            "Failed API key attempts per second and client address (token bucket refill rate); "
            "over the budget, 429 TOO_MANY_FAILED_KEYS before any database lookup."
        ),
    )
    failed_key_burst: int = Field(
        default=10,
        ge=1,
        description="Failed API key attempts a client address may make at once (bucket size).",
    )
    ws_subscribe_per_second: float = Field(
        default=5.0,
        gt=0,
        description=(
            "`subscribe` messages per second on one websocket (token bucket refill rate); over "
            "the budget, the operation gets an `error` message with code RATE_LIMITED."
        ),
    )
    ws_subscribe_burst: int = Field(
        default=20,
        ge=1,
        description="`subscribe` messages one websocket may send at once (token bucket size).",
    )
    metrics_token: SecretStr | None = Field(
        default=None,
        description=(
            "Bearer token that opens GET /metrics from any address (Authorization: Bearer ...)."
        ),
    )
    metrics_allowed_networks: Annotated[list[str], NoDecode] = Field(
        default=["127.0.0.0/8", "::1/128"],
        description=(
            "Client networks that may scrape GET /metrics without the token (comma-separated "
            "CIDRs; empty: the token only). Others get 403."
        ),
    )
    metrics_max_operation_names: int = Field(
        default=200,
        ge=0,
        description=(
            "Distinct operation names that get their own metrics label; later names are "
            'counted as "other".'
        ),
    )

    @field_validator(
        "personal_keys",
        "personal_traits",
        "personal_attributes",
        "metrics_allowed_networks",
        mode="before",
    )
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("source_identity_map")
    @classmethod
    def _identity_map(cls, value: dict[str, str]) -> dict[str, str]:
        for path, kind in value.items():
            if not _KIND_CODE.fullmatch(kind):
                raise ValueError(f"{kind!r} (for {path!r}) is not an identity kind code")
            if not path or not all(path.split(".")):
                raise ValueError(f"{path!r} is not a message field path")
        return value

    @field_validator("metrics_allowed_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for network in value:
            ipaddress.ip_network(network, strict=False)  # a ValueError names the bad one
        return value

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
    ws_max_message_bytes: int = Field(
        default=1_000_000,
        ge=1_000,
        description=(
            "Largest websocket message, refused before it is parsed: the connection closes "
            "with 1009 (message too big). The server's frame limit is set to it too."
        ),
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
    broker: Literal["postgres", "redis"] = Field(
        default="postgres",
        description=(
            "How live events reach every process: `postgres` (each process polls the outbox) or "
            "`redis` (one elected process polls and fans out through a Redis stream; the outbox "
            "stays the source of truth, and every process polls it itself while Redis is down)."
        ),
    )
    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0",
        description="Redis server of the `redis` broker (redis:// or rediss://, db in the path).",
    )
    redis_key_prefix: str = Field(
        default="hub:",
        description=(
            "Prefix of the `redis` broker's keys (`<prefix>events` stream, `<prefix>leader` "
            "lock): hubs sharing one Redis on different databases need different prefixes."
        ),
    )
    compiled_reads: bool = Field(
        default=True,
        description=(
            "Answer covered queries from one compiled SQL statement (hub/compiled/); "
            "everything else goes through the resolvers."
        ),
    )
    compiled_ingest: bool = Field(
        default=True,
        description=(
            "Serve covered recordInteraction(s) calls without the resolvers, on a bare asyncpg "
            "connection (hub/compiled/ingest.py); everything else goes through the resolvers."
        ),
    )

    # ---- operations (docs/operations.md) ----
    read_database_url: str | None = Field(
        default=None,
        description=(
            "A streaming replica of the database for queries (resolvers, loaders, compiled "
            "reads); mutations, key checks and subscriptions stay on the primary. A caller reads "
            "the primary after its own writes until the replica has replayed them."
        ),
    )
    read_replica_check_interval_ms: int = Field(
        default=100,
        ge=10,
        description=(
            "How often each process reads the replica's replay position; routing decisions use "
            "the last value read (the primary's WAL position, for the lag, is read once a second)."
        ),
    )
    read_replica_max_lag_s: float = Field(
        default=10.0,
        gt=0,
        description=(
            "A replica this far behind the primary (or unreachable) is skipped: every query reads "
            "the primary until it catches up."
        ),
    )
    metrics: bool = Field(
        default=True,
        description=(
            "Serve Prometheus metrics at GET /metrics (to HUB_METRICS_ALLOWED_NETWORKS, or with "
            "HUB_METRICS_TOKEN)."
        ),
    )
    log_format: Literal["json", "text"] = Field(
        default="json",
        description=(
            "`hub serve`/`hub demo` log lines: one JSON object per line, or plain text (`text`)."
        ),
    )
    vocabulary_refresh_s: float = Field(
        default=1.0,
        ge=0,
        description=(
            "Every this many seconds, re-check the vocabulary's version (one small statement) "
            "so that a process that only reads learns of personal attributes another process "
            "defined (hub.vocabulary); every ingest call checks it anyway. 0: no background "
            "check."
        ),
    )
    analytics_catch_up_s: float = Field(
        default=0.0,
        ge=0,
        description=(
            "Every this many seconds, bring the analytics tables up to date with recent writes "
            "in the background; 0 (default): only when an analytics query runs (it always "
            "catches up first, so answers are exact either way). A catch-up is a writing "
            "transaction and holds back live event delivery while it runs."
        ),
    )
    analytics_parts: int = Field(
        default=2,
        ge=1,
        le=16,
        description=(
            "How many connections one windowed `channelTransitions` (a channel or business-line "
            "filter, or a gap with `until`) may use at once: its window runs over that many "
            "ranges of customers in parallel (PostgreSQL cannot parallelize it itself), on one "
            "snapshot; extra connections are capped at half the pool. About the number of "
            "cores the database can spare for one analytics query; 1: a single statement."
        ),
    )
    otel_enabled: bool = Field(
        default=False,
        description=(
            "Trace HTTP requests, GraphQL operations and SQL statements with OpenTelemetry "
            "(needs `pip install 'hub[otel]'`); exporter, endpoint and service name come from "
            "the standard OTEL_* variables. Off: the SDK is not even imported."
        ),
    )
    shutdown_deadline_s: float = Field(
        default=25.0,
        gt=0,
        description=(
            "On SIGTERM/SIGINT the process exits within this many seconds: drain, close "
            "websockets with 1012, finish in-flight requests, release the database."
        ),
    )
    shutdown_drain_s: float = Field(
        default=0.0,
        ge=0,
        description=(
            "After SIGTERM, keep serving this long with /readyz at 503 (so a load balancer "
            "stops routing here) before refusing new work."
        ),
    )

    # ---- audiences (docs/audiences.md) ----
    audiences_sweep_s: float = Field(
        default=5.0,
        ge=0,
        description=(
            "Every this many seconds, recompute the computed traits and re-evaluate the segment "
            "memberships whose sliding window moved (the sweeper, in its own small pool); "
            "0: no sweeper in this process."
        ),
    )

    audiences_drain_ms: float = Field(
        default=20.0,
        ge=0,
        description=(
            "How often, in milliseconds, this process looks for customers an ingest queued "
            "for the evaluation of their computed traits and segments (the drainer, in its own "
            "small pool; it drains while rounds are full). 0: no drainer in this process (at "
            "least one hub process must run one, or memberships stop following ingest)."
        ),
    )

    # ---- webhooks (docs/webhooks.md) ----
    webhooks_enabled: bool = Field(
        default=True, description="Run the webhook delivery worker in this process."
    )
    webhook_allow_private: bool = Field(
        default=False,
        description=(
            "Allow `http://` webhook URLs and private, loopback and link-local addresses "
            "(development and tests only: a webhook could otherwise reach internal services)."
        ),
    )
    webhook_timeout_s: float = Field(
        default=10.0, gt=0, description="Timeout of one webhook delivery attempt."
    )
    webhook_max_response_bytes: int = Field(
        default=4096, ge=0, description="A receiver's response body is read up to this size."
    )
    webhook_retry_seconds: float = Field(
        default=3 * 86400.0,
        gt=0,
        description=(
            "How long an event is retried (exponential backoff with jitter) before it goes to "
            "the dead-letter list and the webhook is marked FAILING."
        ),
    )
    webhook_backoff_initial_s: float = Field(
        default=5.0, gt=0, description="The first retry's delay (doubled each attempt)."
    )
    webhook_backoff_max_s: float = Field(
        default=3600.0, gt=0, description="The longest delay between two attempts."
    )
    webhook_pause_after: int = Field(
        default=5,
        ge=1,
        description="Dead-lettered events in a row after which a webhook is PAUSED.",
    )
    webhook_lease_s: float = Field(
        default=30.0,
        gt=0,
        description=(
            "A process's lease on the webhooks it delivers (renewed every third of it); when a "
            "process dies, another takes its webhooks over after at most this long."
        ),
    )
    webhook_max_concurrency: int = Field(
        default=64, ge=1, description="Most webhook requests in flight at once per process."
    )
    webhook_secret_grace_s: float = Field(
        default=86400.0,
        ge=0,
        description="After `rotateWebhookSecret`, the old secret signs too for this long.",
    )
