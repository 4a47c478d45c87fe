"""Every table of the hub, as SQLModel classes (one file, so the data model reads in one go).

Enumerated columns are text holding the names from ``hub.core.enums``. Timestamps are timestamptz.
Interactions carry their channel code beside the touchpoint (a touchpoint never changes channel)
so that channel filters and analytics do not need a join on the largest table.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlmodel import Field, SQLModel

NOW = sa.text("now()")


def _ts(*, nullable: bool = False, default_now: bool = True) -> Any:
    return Field(
        default=None,
        sa_column_kwargs={"server_default": NOW} if default_now else {},
        sa_type=sa.DateTime(timezone=True),
        nullable=nullable,
    )


class Channel(SQLModel, table=True):
    __tablename__ = "channels"

    code: str = Field(primary_key=True)
    name: str
    description: str
    position: int


class JourneyStage(SQLModel, table=True):
    __tablename__ = "journey_stages"

    code: str = Field(primary_key=True)
    name: str
    description: str
    position: int = Field(unique=True)


class Touchpoint(SQLModel, table=True):
    __tablename__ = "touchpoints"

    id: uuid.UUID = Field(sa_type=UUID(as_uuid=True), primary_key=True)
    channel_code: str = Field(foreign_key="channels.code", index=True)
    name: str
    kind: str
    address: str | None = None
    business_line: str | None = Field(default=None, index=True)
    active: bool = Field(default=True, sa_column_kwargs={"server_default": sa.true()})
    created_at: datetime | None = _ts()


class Customer(SQLModel, table=True):
    __tablename__ = "customers"
    __table_args__ = (
        sa.Index("ix_customers_last_seen_at", "last_seen_at", "id"),
        sa.Index("ix_customers_created_at", "created_at", "id"),
        sa.Index("ix_customers_current_stage", "current_stage"),
        sa.Index("ix_customers_traits", "traits", postgresql_using="gin"),
        sa.Index(
            "ix_customers_merged_into",
            "merged_into_id",
            postgresql_where=sa.text("merged_into_id IS NOT NULL"),
        ),
        # The list's sort expressions (hub.reads.ordering.customer_sort_keys); migration 0007.
        sa.Index("ix_customers_display_name_order", sa.text("coalesce(display_name, '')"), "id"),
        sa.Index(
            "ix_customers_last_seen_order",
            sa.text("coalesce(last_seen_at, '-infinity'::timestamptz)"),
            "id",
        ),
    )

    id: uuid.UUID = Field(sa_type=UUID(as_uuid=True), primary_key=True)
    display_name: str | None = None
    traits: dict[str, Any] = Field(
        default_factory=dict,
        sa_type=JSONB,
        sa_column_kwargs={"server_default": sa.text("'{}'::jsonb")},
    )
    # When each trait was last set: drives per-trait survivorship on updates and merges.
    trait_updated_at: dict[str, Any] = Field(
        default_factory=dict,
        sa_type=JSONB,
        sa_column_kwargs={"server_default": sa.text("'{}'::jsonb")},
    )
    current_stage: str | None = Field(default=None, foreign_key="journey_stages.code")
    stage_entered_at: datetime | None = _ts(nullable=True, default_now=False)
    # Channel of the interaction that last confirmed the stage: a later same-stage interaction on
    # another channel is a LOOPING transition.
    stage_channel_code: str | None = None
    # When the newest interaction that signalled a stage happened (entered, confirmed or LOOPING):
    # an interaction older than it does not move the stage (hub.journeys.engine; migration 0016).
    stage_signal_at: datetime | None = _ts(nullable=True, default_now=False)
    first_seen_at: datetime | None = _ts(nullable=True, default_now=False)
    last_seen_at: datetime | None = _ts(nullable=True, default_now=False)
    merged_into_id: uuid.UUID | None = Field(
        default=None, sa_type=UUID(as_uuid=True), foreign_key="customers.id"
    )
    erased_at: datetime | None = _ts(nullable=True, default_now=False)
    created_at: datetime | None = _ts()
    updated_at: datetime | None = _ts()


class Identity(SQLModel, table=True):
    __tablename__ = "identities"
    __table_args__ = (sa.UniqueConstraint("kind", "value", name="uq_identities_kind_value"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=sa.BigInteger)
    customer_id: uuid.UUID = Field(
        sa_type=UUID(as_uuid=True), foreign_key="customers.id", index=True
    )
    kind: str
    value: str
    created_at: datetime | None = _ts()
    last_seen_at: datetime | None = _ts()


class Conversation(SQLModel, table=True):
    __tablename__ = "conversations"
    __table_args__ = (
        sa.Index("ix_conversations_customer", "customer_id", "last_activity_at"),
        sa.Index(
            "ix_conversations_open",
            "customer_id",
            postgresql_where=sa.text("status = 'OPEN'"),
        ),
    )

    id: uuid.UUID = Field(sa_type=UUID(as_uuid=True), primary_key=True)
    customer_id: uuid.UUID = Field(sa_type=UUID(as_uuid=True), foreign_key="customers.id")
    key: str = Field(unique=True)
    status: str = Field(default="OPEN", sa_column_kwargs={"server_default": "OPEN"})
    started_at: datetime | None = _ts()
    last_activity_at: datetime | None = _ts()
    resolved_at: datetime | None = _ts(nullable=True, default_now=False)


class Interaction(SQLModel, table=True):
    __tablename__ = "interactions"
    __table_args__ = (
        sa.Index(
            "ix_interactions_customer_time",
            "customer_id",
            sa.text("occurred_at DESC"),
            sa.text("id DESC"),
        ),
        sa.Index(
            "ix_interactions_touchpoint_time",
            "touchpoint_id",
            sa.text("occurred_at DESC"),
            sa.text("id DESC"),
        ),
        sa.Index("ix_interactions_time", sa.text("occurred_at DESC"), sa.text("id DESC")),
        sa.Index(
            "ix_interactions_conversation",
            "conversation_id",
            "occurred_at",
            postgresql_where=sa.text("conversation_id IS NOT NULL"),
        ),
        # Analytics (hub/analytics/reports.py) walk each customer's interactions in time order; with
        # these columns included that walk is an index-only scan, with no sort.
        sa.Index(
            "ix_interactions_customer_path",
            "customer_id",
            "occurred_at",
            "id",
            postgresql_include=["channel_code", "touchpoint_id", "direction"],
        ),
        # Idempotency: one interaction per key and touchpoint, enforced by PostgreSQL so that
        # concurrent retries on different connections cannot both insert.
        sa.Index(
            "uq_interactions_idempotency",
            "touchpoint_id",
            "idempotency_key",
            unique=True,
            postgresql_where=sa.text("idempotency_key IS NOT NULL"),
        ),
    )

    id: uuid.UUID = Field(sa_type=UUID(as_uuid=True), primary_key=True)
    customer_id: uuid.UUID = Field(sa_type=UUID(as_uuid=True), foreign_key="customers.id")
    touchpoint_id: uuid.UUID = Field(sa_type=UUID(as_uuid=True), foreign_key="touchpoints.id")
    channel_code: str = Field(foreign_key="channels.code")
    occurred_at: datetime = Field(sa_type=sa.DateTime(timezone=True))
    recorded_at: datetime | None = _ts()
    type: str
    direction: str
    conversation_id: uuid.UUID | None = Field(
        default=None, sa_type=UUID(as_uuid=True), foreign_key="conversations.id"
    )
    summary: str | None = None
    sentiment: float | None = Field(default=None, sa_type=sa.Float)
    outcome: str | None = None
    agent: str | None = None
    attributes: dict[str, Any] = Field(
        default_factory=dict,
        sa_type=JSONB,
        sa_column_kwargs={"server_default": sa.text("'{}'::jsonb")},
    )
    idempotency_key: str | None = None
    # The identity that brought the interaction (the first identifier of the input): an unmerge
    # sends the interaction back with that identity. No foreign key: identities can be removed.
    matched_identity_id: int | None = Field(default=None, sa_type=sa.BigInteger)


class StageRule(SQLModel, table=True):
    """Maps an interaction type (optionally on one channel) to the journey stage it signals."""

    __tablename__ = "stage_rules"
    __table_args__ = (
        sa.UniqueConstraint(
            "interaction_type",
            "channel_code",
            name="uq_stage_rules_type_channel",
            postgresql_nulls_not_distinct=True,
        ),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=sa.BigInteger)
    interaction_type: str
    channel_code: str | None = Field(default=None, foreign_key="channels.code")
    stage: str = Field(foreign_key="journey_stages.code")
    created_at: datetime | None = _ts()
    updated_at: datetime | None = _ts()


class StageHistory(SQLModel, table=True):
    """Each change of a customer's journey stage, with what caused it."""

    __tablename__ = "stage_history"
    __table_args__ = (sa.Index("ix_stage_history_customer", "customer_id", "entered_at", "id"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=sa.BigInteger)
    customer_id: uuid.UUID = Field(sa_type=UUID(as_uuid=True), foreign_key="customers.id")
    stage: str = Field(foreign_key="journey_stages.code")
    previous_stage: str | None = None
    transition: str
    entered_at: datetime = Field(sa_type=sa.DateTime(timezone=True))
    interaction_id: uuid.UUID | None = Field(default=None, sa_type=UUID(as_uuid=True))
    channel_code: str | None = None
    reason: str | None = None


def table(model: type[SQLModel]) -> sa.Table:
    """The Core ``Table`` of a model, for SQLAlchemy Core queries in loaders and resolvers."""
    result = model.__table__  # type: ignore[attr-defined]
    assert isinstance(result, sa.Table)
    return result


CHANNELS = table(Channel)
JOURNEY_STAGES = table(JourneyStage)
TOUCHPOINTS = table(Touchpoint)
CUSTOMERS = table(Customer)
IDENTITIES = table(Identity)
CONVERSATIONS = table(Conversation)
INTERACTIONS = table(Interaction)
STAGE_RULES = table(StageRule)
STAGE_HISTORY = table(StageHistory)


class Event(SQLModel, table=True):
    """The transactional outbox: one row per domain event, written in the same transaction as the
    change it describes, read by each process's notifier after commit.

    Ordering is by (xid, id): a reader only takes events whose transaction id is below the oldest
    still-running transaction (``pg_snapshot_xmin``), so every event that appears later sorts
    after every event already delivered, and a cursor never skips a late committer.
    """

    __tablename__ = "events"
    __table_args__ = (
        sa.Index("ix_events_order", "xid", "id"),
        sa.Index("ix_events_created_at", "created_at"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=sa.BigInteger)
    xid: int | None = Field(
        default=None,
        sa_type=sa.BigInteger,
        sa_column_kwargs={"server_default": sa.text("pg_current_xact_id()::text::bigint")},
        nullable=False,
    )
    kind: str
    customer_id: uuid.UUID | None = Field(default=None, sa_type=UUID(as_uuid=True))
    subject_id: uuid.UUID | None = Field(default=None, sa_type=UUID(as_uuid=True))
    channel_code: str | None = None
    touchpoint_id: uuid.UUID | None = Field(default=None, sa_type=UUID(as_uuid=True))
    payload: dict[str, Any] = Field(
        default_factory=dict,
        sa_type=JSONB,
        sa_column_kwargs={"server_default": sa.text("'{}'::jsonb")},
    )
    created_at: datetime | None = _ts()


EVENTS = table(Event)


# ---- access control and privacy (docs/security.md) ----


class ApiKey(SQLModel, table=True):
    """An API key: only a prefix (to find it) and a SHA-256 of the whole key are stored."""

    __tablename__ = "api_keys"

    id: int | None = Field(default=None, primary_key=True, sa_type=sa.BigInteger)
    name: str = Field(unique=True)
    role: str
    # Scopes: "pii"; for partners also "channel:WEB" and "touchpoint:<uuid>".
    scopes: list[str] = Field(
        default_factory=list,
        sa_type=ARRAY(sa.Text),
        sa_column_kwargs={"server_default": sa.text("'{}'::text[]")},
    )
    prefix: str = Field(unique=True)
    key_hash: str
    created_at: datetime | None = _ts()
    revoked_at: datetime | None = _ts(nullable=True, default_now=False)
    last_used_at: datetime | None = _ts(nullable=True, default_now=False)
    # Which documents it may run (hub.access.documents.DocumentPolicy): REGISTERED_ONLY, ANY, or
    # NULL: the default of its role and HUB_ENV.
    documents: str | None = Field(default=None, nullable=True)


class TrustedDocument(SQLModel, table=True):
    """A registered GraphQL document (trusted document, persisted operation), called by its id:
    the SHA-256 hex of its text, or the id a client's manifest gave it."""

    __tablename__ = "trusted_documents"

    id: str = Field(primary_key=True)
    document: str
    # The operations it defines ("name:type", type query/mutation/subscription; name "" if none).
    operations: list[str] = Field(
        default_factory=list,
        sa_type=ARRAY(sa.Text),
        sa_column_kwargs={"server_default": sa.text("'{}'::text[]")},
    )
    created_by: str
    created_at: datetime | None = _ts()


class AuditEntry(SQLModel, table=True):
    """Who did what, when, to which ids: every mutation and key operation."""

    __tablename__ = "audit_log"
    __table_args__ = (sa.Index("ix_audit_log_at", sa.text("at DESC"), sa.text("id DESC")),)

    id: int | None = Field(default=None, primary_key=True, sa_type=sa.BigInteger)
    at: datetime | None = _ts()
    key_id: int | None = Field(default=None, sa_type=sa.BigInteger)
    actor: str
    role: str
    action: str
    target_ids: list[str] = Field(
        default_factory=list,
        sa_type=ARRAY(sa.Text),
        sa_column_kwargs={"server_default": sa.text("'{}'::text[]")},
    )
    success: bool = True
    details: dict[str, Any] = Field(
        default_factory=dict,
        sa_type=JSONB,
        sa_column_kwargs={"server_default": sa.text("'{}'::jsonb")},
    )


class Consent(SQLModel, table=True):
    """The current consent of a customer for one purpose on one channel ('' = every channel)."""

    __tablename__ = "consents"
    __table_args__ = (
        sa.UniqueConstraint("customer_id", "purpose", "channel", name="uq_consents_key"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=sa.BigInteger)
    customer_id: uuid.UUID = Field(
        sa_type=UUID(as_uuid=True), foreign_key="customers.id", index=True
    )
    purpose: str
    channel: str = Field(default="", sa_column_kwargs={"server_default": ""})
    status: str
    source: str | None = None
    granted_at: datetime | None = _ts(nullable=True, default_now=False)
    expires_at: datetime | None = _ts(nullable=True, default_now=False)
    updated_at: datetime | None = _ts()


class ConsentChange(SQLModel, table=True):
    """Every change of a consent, oldest first: the proof of what was agreed when."""

    __tablename__ = "consent_history"
    __table_args__ = (sa.Index("ix_consent_history_customer", "customer_id", "changed_at", "id"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=sa.BigInteger)
    customer_id: uuid.UUID = Field(sa_type=UUID(as_uuid=True), foreign_key="customers.id")
    purpose: str
    channel: str
    status: str
    source: str | None = None
    expires_at: datetime | None = _ts(nullable=True, default_now=False)
    changed_at: datetime | None = _ts()
    changed_by: str | None = None


class Erasure(SQLModel, table=True):
    """A customer's personal data was erased; ``identity_hashes`` keep them from being re-linked."""

    __tablename__ = "erasures"
    __table_args__ = (
        sa.Index("ix_erasures_identity_hashes", "identity_hashes", postgresql_using="gin"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=sa.BigInteger)
    customer_id: uuid.UUID = Field(sa_type=UUID(as_uuid=True), index=True)
    identity_hashes: list[str] = Field(
        default_factory=list,
        sa_type=ARRAY(sa.Text),
        sa_column_kwargs={"server_default": sa.text("'{}'::text[]")},
    )
    erased_at: datetime | None = _ts()
    erased_by: str


API_KEYS = table(ApiKey)
TRUSTED_DOCUMENTS = table(TrustedDocument)
AUDIT_LOG = table(AuditEntry)
CONSENTS = table(Consent)
CONSENT_HISTORY = table(ConsentChange)
ERASURES = table(Erasure)


class Merge(SQLModel, table=True):
    """The merge ledger: who was merged into whom, why, and a snapshot sufficient to undo it.

    ``snapshot`` holds, per merged customer, its row as it was and the ids of the identities,
    interactions, conversations and stage history rows that moved, plus the survivor's row before.
    """

    __tablename__ = "merges"
    __table_args__ = (
        sa.Index("ix_merges_survivor", "survivor_id", "created_at"),
        sa.Index("ix_merges_merged_ids", "merged_ids", postgresql_using="gin"),
        sa.Index("ix_merges_created_at", "created_at", "id"),
    )

    id: uuid.UUID = Field(sa_type=UUID(as_uuid=True), primary_key=True)
    survivor_id: uuid.UUID = Field(sa_type=UUID(as_uuid=True), foreign_key="customers.id")
    merged_ids: list[uuid.UUID] = Field(sa_type=ARRAY(UUID(as_uuid=True)))
    rule: str
    identity_kind: str | None = None
    identity_value: str | None = None
    actor: str
    created_at: datetime | None = _ts()
    reversed_at: datetime | None = _ts(nullable=True, default_now=False)
    reversed_by: str | None = None
    snapshot: dict[str, Any] = Field(default_factory=dict, sa_type=JSONB)


MERGES = table(Merge)


# ---- tracking sources (docs/sources.md; migration 0017) ----


class SourceEventMapping(SQLModel, table=True):
    """A tracked event name (Segment ``track``) and the interaction type it is stored as."""

    __tablename__ = "source_event_mappings"

    event: str = Field(primary_key=True)
    interaction_type: str
    direction: str = Field(default="INBOUND", sa_column_kwargs={"server_default": "INBOUND"})
    updated_at: datetime | None = _ts()
    updated_by: str | None = None


class SourceUnmappedEvent(SQLModel, table=True):
    """A tracked event name with no mapping: how often it was stored as TRACKED_EVENT."""

    __tablename__ = "source_unmapped_events"

    event: str = Field(primary_key=True)
    count: int = Field(sa_type=sa.BigInteger)
    first_seen_at: datetime | None = _ts()
    last_seen_at: datetime | None = _ts()


class SourceRejection(SQLModel, table=True):
    """A tracking message that could not be stored, and why (never the message's content)."""

    __tablename__ = "source_rejections"
    __table_args__ = (sa.Index("ix_source_rejections_at", sa.text("at DESC"), sa.text("id DESC")),)

    id: int | None = Field(default=None, primary_key=True, sa_type=sa.BigInteger)
    at: datetime | None = _ts()
    key_id: int | None = Field(default=None, sa_type=sa.BigInteger)
    source: str
    touchpoint_id: uuid.UUID | None = Field(default=None, sa_type=UUID(as_uuid=True))
    message_id: str | None = None
    message_type: str | None = None
    event: str | None = None
    code: str
    reason: str


SOURCE_EVENT_MAPPINGS = table(SourceEventMapping)
SOURCE_UNMAPPED_EVENTS = table(SourceUnmappedEvent)
SOURCE_REJECTIONS = table(SourceRejection)
# ---- webhooks (docs/webhooks.md) ----


class Webhook(SQLModel, table=True):
    """A stored subscription delivered by HTTP POST (Standard Webhooks). The signing secret is
    kept because signing needs it; it is never returned after creation. ``cursor_*`` is the
    last event handled; ``lease_*`` says which process delivers it (one at a time)."""

    __tablename__ = "webhooks"

    id: uuid.UUID = Field(sa_type=UUID(as_uuid=True), primary_key=True)
    key_id: int | None = Field(default=None, sa_type=sa.BigInteger, index=True)
    owner: str
    role: str
    url: str
    query: str
    variables: dict[str, Any] = Field(default_factory=dict, sa_type=JSONB)
    description: str = ""
    status: str = "ACTIVE"
    status_reason: str | None = None
    secret: str
    previous_secret: str | None = None
    previous_secret_until: datetime | None = _ts(nullable=True, default_now=False)
    cursor_xid: int = Field(default=0, sa_type=sa.BigInteger)
    cursor_id: int = Field(default=0, sa_type=sa.BigInteger)
    failure_streak: int = 0
    revision: int = 0
    lease_owner: str | None = None
    lease_until: datetime | None = _ts(nullable=True, default_now=False)
    created_at: datetime | None = _ts()
    updated_at: datetime | None = _ts()


class WebhookDelivery(SQLModel, table=True):
    """One delivery attempt. ``event_cursor`` is the ``webhook-id`` header (stable across
    retries); status DEAD_LETTER marks the last attempt of an event that was given up on."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (sa.Index("ix_webhook_deliveries_webhook", "webhook_id", "id"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=sa.BigInteger)
    webhook_id: uuid.UUID = Field(
        sa_type=UUID(as_uuid=True), foreign_key="webhooks.id", ondelete="CASCADE"
    )
    event_cursor: str
    attempt: int
    status: str
    status_code: int | None = None
    latency_ms: float | None = None
    error: str | None = None
    body: str
    created_at: datetime | None = _ts()


WEBHOOKS = table(Webhook)
WEBHOOK_DELIVERIES = table(WebhookDelivery)


# ---- segments (docs/audiences.md; migration 0019) ----


class Segment(SQLModel, table=True):
    """A segment's definition (ADMIN-written): a customer filter, activity windows and computed
    trait conditions, stored as given (``hub.audiences.segments`` validates and compiles it)."""

    __tablename__ = "segments"

    key: str = Field(primary_key=True)
    name: str
    description: str = Field(default="", sa_column_kwargs={"server_default": ""})
    definition: dict[str, Any] = Field(default_factory=dict, sa_type=JSONB)
    # From the sequence segment_revisions on every create and update: unique, so a cache keyed
    # by (key, revision) never takes a segment created again under its key for the old one.
    revision: int | None = Field(
        default=None,
        sa_type=sa.BigInteger,
        sa_column_kwargs={"server_default": sa.text("nextval('segment_revisions')")},
    )
    created_by: str
    created_at: datetime | None = _ts()
    updated_at: datetime | None = _ts()


# ---- audiences: computed traits (hub/audiences/traits.py, docs/audiences.md) ----


DERIVED_ROWS_NOTE = """Memberships, re-check instants and computed values are derived rows,
written for every customer an ingest touches; their customer ids come from customer rows in the
same statement, and customers are never deleted (merges and erasure keep the row). A foreign key
to customers guarded nothing and cost an index lookup and a key-share lock per row (11 % of an
ingested event's blocks with 20 segments and 10 traits): migration 0022 dropped it."""


class ComputedTrait(SQLModel, table=True):
    """A computed trait's definition: an aggregate over each customer's matching interactions."""

    __tablename__ = "computed_traits"

    key: str = Field(primary_key=True)
    name: str | None = None
    description: str | None = None
    aggregate: str  # hub.audiences.traits.Aggregate
    # The interaction filter (hub.reads.interactions.InteractionFilterSpec as JSON).
    filter: dict[str, Any] = Field(
        default_factory=dict,
        sa_type=JSONB,
        sa_column_kwargs={"server_default": sa.text("'{}'::jsonb")},
    )
    attribute: str | None = None  # e.g. "attributes.amount", "channel"
    within_days: int | None = None
    created_at: datetime | None = _ts()
    updated_at: datetime | None = _ts()


class SegmentMember(SQLModel, table=True):
    """A customer who is in a segment now, and since when (materialised, kept exact)."""

    __tablename__ = "segment_members"
    __table_args__ = (sa.Index("ix_segment_members_customer", "customer_id"),)

    segment_key: str = Field(primary_key=True, foreign_key="segments.key", ondelete="CASCADE")
    # No foreign key to customers (migration 0022): see ``DERIVED_ROWS_NOTE``.
    customer_id: uuid.UUID = Field(sa_type=UUID(as_uuid=True), primary_key=True)
    entered_at: datetime = Field(sa_type=sa.DateTime(timezone=True))


class SegmentCheck(SQLModel, table=True):
    """When a customer's membership of a segment can next change because time passes."""

    __tablename__ = "segment_checks"
    __table_args__ = (
        sa.Index("ix_segment_checks_due", "due_at"),
        sa.Index("ix_segment_checks_customer", "customer_id"),
    )

    segment_key: str = Field(primary_key=True, foreign_key="segments.key", ondelete="CASCADE")
    # No foreign key to customers (migration 0022): see ``DERIVED_ROWS_NOTE``.
    customer_id: uuid.UUID = Field(sa_type=UUID(as_uuid=True), primary_key=True)
    due_at: datetime = Field(sa_type=sa.DateTime(timezone=True))


class AudienceQueueEntry(SQLModel, table=True):
    """A customer an ingest changed whose computed traits and segments the audiences drainer
    has not evaluated yet (migration 0025, ``hub.audiences.queue``)."""

    __tablename__ = "audience_queue"
    __table_args__ = (sa.Index("ix_audience_queue_queued", "queued_at"),)

    # No foreign key to customers: see ``DERIVED_ROWS_NOTE``.
    customer_id: uuid.UUID = Field(sa_type=UUID(as_uuid=True), primary_key=True)
    queued_at: datetime = Field(sa_type=sa.DateTime(timezone=True))
    created: bool  # an ingest created the customer: its only interactions are in ``touched``
    everything: bool  # a merge touched it: every definition is evaluated
    # What the ingests stored for it since its last evaluation (hub.audiences.relevance facts).
    touched: list[Any] = Field(sa_type=JSONB)
    version: int = Field(default=1, sa_type=sa.BigInteger, sa_column_kwargs={"server_default": "1"})
    # The drain round that holds the row (hub.audiences.queue), and since when.
    claim: uuid.UUID | None = Field(default=None, sa_type=UUID(as_uuid=True))
    claimed_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))


class SegmentSizeChange(SQLModel, table=True):
    """Customers who entered and exited a segment in one membership statement, filed under the
    UTC hour of its evaluation instant (append-only; migration 0021): a segment's size at an
    instant is the sum of ``entered - exited`` of its rows before it."""

    __tablename__ = "segment_size_changes"
    __table_args__ = (sa.Index("ix_segment_size_changes_segment_hour", "segment_key", "hour"),)

    id: int | None = Field(default=None, sa_type=sa.BigInteger, primary_key=True)
    segment_key: str = Field(foreign_key="segments.key", ondelete="CASCADE")
    hour: datetime = Field(sa_type=sa.DateTime(timezone=True))
    entered: int = Field(sa_type=sa.BigInteger)
    exited: int = Field(sa_type=sa.BigInteger)


SEGMENTS = table(Segment)
SEGMENT_MEMBERS = table(SegmentMember)
SEGMENT_CHECKS = table(SegmentCheck)
SEGMENT_SIZE_CHANGES = table(SegmentSizeChange)


class CustomerTraitComputed(SQLModel, table=True):
    """A computed trait's value for one customer; no row = no matching interaction (the
    aggregate's empty value: 0 for the counts, null otherwise)."""

    __tablename__ = "customer_traits_computed"
    __table_args__ = (
        sa.Index("ix_customer_traits_computed_key_number", "trait_key", "number"),
        sa.Index(
            "ix_customer_traits_computed_due",
            "next_change_at",
            postgresql_where=sa.text("next_change_at IS NOT NULL"),
        ),
    )

    # No foreign key to customers (migration 0022): see ``DERIVED_ROWS_NOTE``.
    customer_id: uuid.UUID = Field(sa_type=UUID(as_uuid=True), primary_key=True)
    # No foreign key to computed_traits (migration 0023): the writers hold the definitions
    # lock, and deleting a trait deletes its rows (``hub.audiences.traits.delete``).
    trait_key: str = Field(primary_key=True, sa_type=sa.Text)
    value: Any = Field(default=None, sa_type=JSONB)
    number: float | None = Field(default=None, sa_type=sa.Float)
    updated_at: datetime | None = _ts()
    # When time alone can change the value next (the oldest in-window interaction leaves the
    # window); the sweeper recomputes due rows.
    next_change_at: datetime | None = _ts(nullable=True, default_now=False)


COMPUTED_TRAITS = table(ComputedTrait)
CUSTOMER_TRAITS_COMPUTED = table(CustomerTraitComputed)


# ---- the vocabulary kept as data (migration 0020, docs/sources.md#vocabulary) ----


class InteractionTypeRow(SQLModel, table=True):
    """A registered interaction type: its code, what it means, an optional JSON Schema for its
    attributes and the attributes that are personal data (masked without ``pii``)."""

    __tablename__ = "interaction_types"

    code: str = Field(primary_key=True)
    name: str
    description: str
    attributes_schema: dict[str, Any] | None = Field(default=None, sa_type=JSONB)
    personal_attributes: list[str] = Field(
        default_factory=list,
        sa_type=ARRAY(sa.Text),
        sa_column_kwargs={"server_default": "{}"},
    )
    built_in: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})
    updated_at: datetime | None = _ts()
    updated_by: str | None = None


class IdentityKindRow(SQLModel, table=True):
    """A registered identity kind and the normaliser its values go through."""

    __tablename__ = "identity_kinds"

    code: str = Field(primary_key=True)
    name: str
    description: str
    normaliser: str
    built_in: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})
    updated_at: datetime | None = _ts()
    updated_by: str | None = None


class _CodeRow(SQLModel):
    """The columns of a vocabulary of codes with a name and a description."""

    code: str = Field(primary_key=True)
    name: str
    description: str
    built_in: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})
    updated_at: datetime | None = _ts()
    updated_by: str | None = None


class TouchpointKindRow(_CodeRow, table=True):
    """A registered touchpoint kind."""

    __tablename__ = "touchpoint_kinds"


class ConsentPurposeRow(_CodeRow, table=True):
    """A registered consent purpose."""

    __tablename__ = "consent_purposes"


class VocabularyVersion(SQLModel, table=True):
    """One row: bumped in the transaction of every vocabulary change; ``epoch`` is random per
    database, so a cache keyed by (epoch, version) never mixes two databases."""

    __tablename__ = "vocabulary_version"
    __table_args__ = (sa.CheckConstraint("id = 1", name="ck_vocabulary_version_one_row"),)

    id: int = Field(default=1, primary_key=True)
    epoch: uuid.UUID = Field(
        sa_type=UUID(as_uuid=True),
        sa_column_kwargs={"server_default": sa.text("gen_random_uuid()")},
    )
    version: int = Field(default=1, sa_type=sa.BigInteger, sa_column_kwargs={"server_default": "1"})


INTERACTION_TYPES = table(InteractionTypeRow)
IDENTITY_KINDS = table(IdentityKindRow)
TOUCHPOINT_KINDS = table(TouchpointKindRow)
CONSENT_PURPOSES = table(ConsentPurposeRow)
VOCABULARY_VERSION = table(VocabularyVersion)
