"""Recording interactions: validation, idempotency, identity resolution, writes, events.

One engine serves ``recordInteraction`` (a batch of one; errors raise) and
``recordInteractions`` (up to ``max_batch_size``; invalid items are rejected one by one).

Batch semantics (documented in docs/ingest.md): every item is validated on its own and invalid
ones are reported as rejected (index, code, message); all valid items are then stored in ONE
transaction, so a batch that reports success has stored every item it lists as stored, and a
database failure stores none of them.

Concurrency: the transaction first takes PostgreSQL advisory locks on every identifier and every
(touchpoint, idempotency key) of the batch, in sorted order (no deadlocks between batches). Two
calls sharing an identifier or a key therefore run one after the other: the second sees the
first's customer and interaction, so one person never becomes two customers and a retried key
returns the original interaction. The unique index ``uq_interactions_idempotency`` stays the last
word: the insert uses ``ON CONFLICT DO NOTHING`` and a lost race re-reads the winner.
"""

from __future__ import annotations

import hashlib
import math
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.enums import IdentityKind
from hub.errors import BadUserInput, Conflict, HubError, NotFound
from hub.events import EventKind, NewEvent, emit_many
from hub.identifiers import normalize_identifier
from hub.identity_resolution import (
    BatchPlan,
    CustomerState,
    Draft,
    Guards,
    IdentifierKey,
    plan_batch,
)
from hub.journey import load_rules
from hub.merges import merge_customers
from hub.settings import Settings

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
MAX_KEY_LENGTH = 200
MAX_TEXT_LENGTH = 10_000
MAX_RESOLUTION_ROUNDS = 5


@dataclass(frozen=True)
class InteractionInput:
    """One interaction as a caller gives it (identifiers not yet normalised)."""

    identities: Sequence[tuple[IdentityKind, str]]
    touchpoint_id: uuid.UUID
    type: str
    direction: str
    occurred_at: datetime | None = None
    conversation_key: str | None = None
    summary: str | None = None
    sentiment: float | None = None
    outcome: str | None = None
    agent: str | None = None
    attributes: Any = None  # must be a JSON object; checked by validate()
    idempotency_key: str | None = None


@dataclass
class ItemResult:
    """What happened to one input: stored (or an idempotent replay), or rejected."""

    index: int
    interaction: Any = None  # the interactions row
    customer_id: uuid.UUID | None = None
    created: bool = False
    duplicate: bool = False
    merges: list[Any] = field(default_factory=list)  # merges ledger rows it caused
    warnings: list[str] = field(default_factory=list)
    error: HubError | None = None


def _blocked(settings: Settings) -> set[str]:
    """The blocked list as ``KIND:value`` strings (kind upper-cased, value trimmed)."""
    blocked = set()
    for entry in settings.blocked_identifiers:
        kind, sep, value = entry.partition(":")
        if sep:
            blocked.add(f"{kind.strip().upper()}:{value.strip()}")
    return blocked


def _is_blocked(blocked: set[str], kind: str, value: str) -> bool:
    return f"{kind}:{value}" in blocked or f"{kind}:{value.lower()}" in blocked


def normalize_identities(
    identities: Sequence[tuple[IdentityKind, str]], settings: Settings
) -> tuple[IdentifierKey, ...]:
    """Normalised, de-duplicated identifiers (input order kept), blocked values dropped."""
    if not identities:
        raise BadUserInput("an interaction needs at least one identity")
    blocked = _blocked(settings)
    keys: list[IdentifierKey] = []
    for kind, raw in identities:
        if _is_blocked(blocked, kind.value, raw.strip()):
            continue
        value = normalize_identifier(kind, raw, settings.default_phone_region)
        if _is_blocked(blocked, kind.value, value):
            continue
        if (kind.value, value) not in keys:
            keys.append((kind.value, value))
    if not keys:
        raise BadUserInput(
            "every identity given is on the blocked list (shared or test values): "
            "the interaction cannot be attributed to a person"
        )
    return tuple(keys)


def _optional_text(name: str, value: str | None, limit: int) -> str | None:
    if value is None:
        return None
    if not value.strip():
        raise BadUserInput(f"`{name}` must not be empty when given")
    if len(value) > limit:
        raise BadUserInput(f"`{name}` is at most {limit} characters")
    return value


def validate(
    item: InteractionInput, index: int, channel_code: str, settings: Settings, now: datetime
) -> Draft:
    """Check one input and normalise it; raises ``BadUserInput`` with a clear message."""
    keys = normalize_identities(item.identities, settings)
    if item.sentiment is not None and (
        math.isnan(item.sentiment) or not -1.0 <= item.sentiment <= 1.0
    ):
        raise BadUserInput(f"`sentiment` must be between -1 and 1, got {item.sentiment}")
    occurred_at = item.occurred_at or now
    if occurred_at.tzinfo is None:
        occurred_at = occurred_at.replace(tzinfo=UTC)
    if occurred_at > now + timedelta(seconds=settings.max_future_seconds):
        raise BadUserInput(
            f"`occurredAt` {occurred_at.isoformat()} is in the future "
            f"(more than {settings.max_future_seconds} s ahead of the server clock)"
        )
    if occurred_at < EARLIEST:
        raise BadUserInput(f"`occurredAt` {occurred_at.isoformat()} is before 1970")
    if item.summary is not None and len(item.summary) > MAX_TEXT_LENGTH:
        raise BadUserInput(f"`summary` is at most {MAX_TEXT_LENGTH} characters")
    attributes = item.attributes if item.attributes is not None else {}
    if not isinstance(attributes, dict):
        raise BadUserInput("`attributes` must be a JSON object")
    size = len(orjson.dumps(attributes))
    if size > settings.max_attributes_bytes:
        raise BadUserInput(
            f"`attributes` is {size} bytes as JSON; at most {settings.max_attributes_bytes}"
        )
    return Draft(
        index=index,
        identities=keys,
        touchpoint_id=item.touchpoint_id,
        channel_code=channel_code,
        type=item.type,
        direction=item.direction,
        occurred_at=occurred_at.astimezone(UTC),
        conversation_key=_optional_text("conversationKey", item.conversation_key, MAX_KEY_LENGTH),
        summary=item.summary,
        sentiment=item.sentiment,
        outcome=_optional_text("outcome", item.outcome, MAX_KEY_LENGTH),
        agent=_optional_text("agent", item.agent, MAX_KEY_LENGTH),
        attributes=attributes,
        idempotency_key=_optional_text("idempotencyKey", item.idempotency_key, MAX_KEY_LENGTH),
    )


def lock_key(*parts: str) -> int:
    """A signed 64-bit advisory-lock key for a namespaced string."""
    digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


async def take_locks(connection: AsyncConnection, keys: set[int]) -> None:
    """Advisory locks held to the end of the transaction, taken in sorted order."""
    await connection.execute(
        sa.text("SELECT count(pg_advisory_xact_lock(k)) FROM unnest(CAST(:keys AS bigint[])) AS k"),
        {"keys": sorted(keys)},
    )


async def _touchpoint_channels(
    connection: AsyncConnection, ids: set[uuid.UUID]
) -> dict[uuid.UUID, str]:
    result = await connection.execute(
        sa.text("SELECT id, channel_code FROM touchpoints WHERE id = ANY(CAST(:ids AS uuid[]))"),
        {"ids": list(ids)},
    )
    return {row.id: row.channel_code for row in result}


async def record(
    connection: AsyncConnection,
    items: Sequence[InteractionInput],
    settings: Settings,
    *,
    actor: str = "ingest",
    prefailed: dict[int, HubError] | None = None,
) -> list[ItemResult]:
    """Record ``items`` in the caller's transaction; one result per item, in input order.

    ``prefailed`` carries items the caller already rejected (e.g. a malformed id), by index.
    """
    now = datetime.now(UTC)
    results = [ItemResult(index=i) for i in range(len(items))]
    for index, error in (prefailed or {}).items():
        results[index].error = error
    pending = [i for i in range(len(items)) if results[i].error is None]
    channels = await _touchpoint_channels(connection, {items[i].touchpoint_id for i in pending})
    drafts: list[Draft] = []
    for i in pending:
        channel = channels.get(items[i].touchpoint_id)
        try:
            if channel is None:
                raise NotFound(f"no touchpoint with id {str(items[i].touchpoint_id)!r}")
            drafts.append(validate(items[i], i, channel, settings, now))
        except HubError as error:
            results[i].error = error
    if not drafts:
        return results
    await take_locks(
        connection,
        {lock_key("identity", *key) for d in drafts for key in d.identities}
        | {
            lock_key("idempotency", str(d.touchpoint_id), d.idempotency_key)
            for d in drafts
            if d.idempotency_key is not None
        },
    )
    drafts = await _skip_duplicates(connection, drafts, results)
    if not drafts:
        return results
    plan = await _plan(connection, drafts, settings, now, results, actor)
    await _write(connection, plan, results, now)
    return results


async def _skip_duplicates(
    connection: AsyncConnection, drafts: list[Draft], results: list[ItemResult]
) -> list[Draft]:
    """Drop drafts whose (touchpoint, key) was stored before or earlier in this batch."""
    keyed = [d for d in drafts if d.idempotency_key is not None]
    existing: dict[tuple[uuid.UUID, str], Any] = {}
    if keyed:
        rows = await connection.execute(
            sa.text(
                "SELECT i.* FROM interactions i JOIN unnest(CAST(:tps AS uuid[]),"
                " CAST(:keys AS text[])) AS k(tp, key)"
                " ON i.touchpoint_id = k.tp AND i.idempotency_key = k.key"
            ),
            {"tps": [d.touchpoint_id for d in keyed], "keys": [d.idempotency_key for d in keyed]},
        )
        existing = {(row.touchpoint_id, row.idempotency_key): row for row in rows.mappings()}
    first_in_batch: dict[tuple[uuid.UUID, str], int] = {}
    kept: list[Draft] = []
    for draft in drafts:
        if draft.idempotency_key is None:
            kept.append(draft)
            continue
        key = (draft.touchpoint_id, draft.idempotency_key)
        if key in existing:
            row = existing[key]
            results[draft.index].interaction = row
            results[draft.index].customer_id = row["customer_id"]
            results[draft.index].duplicate = True
        elif key in first_in_batch:
            results[draft.index].duplicate = True
            results[draft.index].interaction = first_in_batch[key]  # resolved after the write
        else:
            first_in_batch[key] = draft.index
            kept.append(draft)
    return kept


async def _load_state(
    connection: AsyncConnection, keys: set[IdentifierKey]
) -> tuple[dict[IdentifierKey, uuid.UUID], dict[uuid.UUID, CustomerState], bool]:
    """Who holds each identifier, and the holders locked FOR UPDATE; False if one was merged
    away meanwhile (a concurrent manual merge) and resolution must start again."""
    ordered = sorted(keys)
    rows = await connection.execute(
        sa.text(
            "SELECT i.kind, i.value, i.customer_id FROM identities i"
            " JOIN unnest(CAST(:kinds AS text[]), CAST(:vals AS text[])) AS k(kind, value)"
            " ON i.kind = k.kind AND i.value = k.value"
        ),
        {"kinds": [k for k, _ in ordered], "vals": [v for _, v in ordered]},
    )
    owners = {(row.kind, row.value): row.customer_id for row in rows}
    customers: dict[uuid.UUID, CustomerState] = {}
    if not owners:
        return owners, customers, True
    ids = sorted(set(owners.values()))
    locked = await connection.execute(
        sa.text(
            "SELECT c.*, (SELECT coalesce(jsonb_object_agg(kind, n), '{}') FROM"
            " (SELECT kind, count(*) AS n FROM identities WHERE customer_id = c.id GROUP BY kind)"
            " AS counts) AS kind_counts"
            " FROM customers c WHERE c.id = ANY(CAST(:ids AS uuid[])) ORDER BY c.id FOR UPDATE"
        ),
        {"ids": ids},
    )
    for row in locked.mappings():
        if row["merged_into_id"] is not None:
            return owners, customers, False
        customers[row["id"]] = CustomerState(
            id=row["id"],
            created_at=row["created_at"],
            is_new=False,
            current_stage=row["current_stage"],
            stage_entered_at=row["stage_entered_at"],
            stage_channel_code=row["stage_channel_code"],
            first_seen_at=row["first_seen_at"],
            last_seen_at=row["last_seen_at"],
            kind_counts=Counter(row["kind_counts"]),
        )
    return owners, customers, True


async def _plan(
    connection: AsyncConnection,
    drafts: list[Draft],
    settings: Settings,
    now: datetime,
    results: list[ItemResult],
    actor: str,
) -> BatchPlan:
    """Plan; when the plan merges existing customers, merge them first and plan again."""
    guards = Guards(frozenset(settings.weak_identity_kinds), settings.max_identities_per_kind)
    rules = await load_rules(connection)
    keys = {key for d in drafts for key in d.identities}
    for _ in range(MAX_RESOLUTION_ROUNDS):
        owners, customers, stable = await _load_state(connection, keys)
        if not stable:
            continue
        plan = plan_batch(drafts, owners, customers, rules, guards, now)
        if not plan.merges:
            return plan
        for merge in plan.merges:
            survivor = merge.survivor_id
            merged_row = await merge_customers(
                connection,
                survivor,
                list(merge.merged_ids),
                settings,
                rule="IDENTITY_MATCH",
                identity=merge.identity,
                actor=actor,
            )
            results[merge.index].merges.append(merged_row)
    raise Conflict("identity resolution did not settle (too many concurrent merges); retry")


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


async def _write(
    connection: AsyncConnection, plan: BatchPlan, results: list[ItemResult], now: datetime
) -> None:
    find = plan.find
    new_customers = [c for c in plan.customers.values() if c.is_new and c.id not in plan.alias]
    if new_customers:
        await connection.execute(
            sa.text(
                "INSERT INTO customers (id, current_stage, stage_entered_at, stage_channel_code,"
                " first_seen_at, last_seen_at, created_at, updated_at)"
                " SELECT *, :now, :now FROM unnest(CAST(:ids AS uuid[]), CAST(:stages AS text[]),"
                " CAST(:entered AS timestamptz[]), CAST(:sch AS text[]),"
                " CAST(:first AS timestamptz[]), CAST(:last AS timestamptz[]))"
            ),
            {
                "now": now,
                "ids": [c.id for c in new_customers],
                "stages": [c.current_stage for c in new_customers],
                "entered": [c.stage_entered_at for c in new_customers],
                "sch": [c.stage_channel_code for c in new_customers],
                "first": [c.first_seen_at for c in new_customers],
                "last": [c.last_seen_at for c in new_customers],
            },
        )
    identity_ids: dict[IdentifierKey, int] = {}
    if plan.new_identities:
        new = list(plan.new_identities.items())
        rows = await connection.execute(
            sa.text(
                "INSERT INTO identities (customer_id, kind, value, created_at, last_seen_at)"
                " SELECT k.cid, k.kind, k.value, :now, k.seen FROM unnest(CAST(:cids AS uuid[]),"
                " CAST(:kinds AS text[]), CAST(:vals AS text[]), CAST(:seen AS timestamptz[]))"
                " AS k(cid, kind, value, seen) RETURNING id, kind, value"
            ),
            {
                "now": now,
                "cids": [find(cid) for _, cid in new],
                "kinds": [k for (k, _), _ in new],
                "vals": [v for (_, v), _ in new],
                "seen": [plan.seen_identities.get(key, now) for key, _ in new],
            },
        )
        identity_ids.update({(row.kind, row.value): row.id for row in rows})
    touched_old = [k for k in plan.seen_identities if k not in plan.new_identities]
    if touched_old:
        rows = await connection.execute(
            sa.text(
                "UPDATE identities i SET last_seen_at = GREATEST(i.last_seen_at, k.seen)"
                " FROM unnest(CAST(:kinds AS text[]), CAST(:vals AS text[]),"
                " CAST(:seen AS timestamptz[])) AS k(kind, value, seen)"
                " WHERE i.kind = k.kind AND i.value = k.value RETURNING i.id, i.kind, i.value"
            ),
            {
                "kinds": [k for k, _ in touched_old],
                "vals": [v for _, v in touched_old],
                "seen": [plan.seen_identities[key] for key in touched_old],
            },
        )
        identity_ids.update({(row.kind, row.value): row.id for row in rows})
    conversation_ids: dict[str, uuid.UUID] = {}
    events: list[NewEvent] = []
    if plan.conversations:
        conversations = list(plan.conversations.values())
        rows = await connection.execute(
            sa.text(
                "INSERT INTO conversations AS c (id, customer_id, key, status, started_at,"
                " last_activity_at) SELECT k.id, k.cid, k.key, 'OPEN', k.started, k.last"
                " FROM unnest(CAST(:ids AS uuid[]), CAST(:cids AS uuid[]), CAST(:keys AS text[]),"
                " CAST(:started AS timestamptz[]), CAST(:last AS timestamptz[]))"
                " AS k(id, cid, key, started, last)"
                " ON CONFLICT (key) DO UPDATE SET"
                " started_at = LEAST(c.started_at, EXCLUDED.started_at),"
                " last_activity_at = GREATEST(c.last_activity_at, EXCLUDED.last_activity_at),"
                # New activity after the resolution reopens the conversation.
                " status = CASE WHEN c.status = 'RESOLVED' AND EXCLUDED.last_activity_at >"
                " c.resolved_at THEN 'OPEN' ELSE c.status END,"
                " resolved_at = CASE WHEN c.status = 'RESOLVED' AND EXCLUDED.last_activity_at >"
                " c.resolved_at THEN NULL ELSE c.resolved_at END"
                " RETURNING c.id, c.key, c.customer_id, c.status"
            ),
            {
                "ids": [uuid.uuid4() for _ in conversations],
                "cids": [find(c.customer_id) for c in conversations],
                "keys": [c.key for c in conversations],
                "started": [c.started_at for c in conversations],
                "last": [c.last_activity_at for c in conversations],
            },
        )
        for row in rows:
            conversation_ids[row.key] = row.id
            events.append(
                NewEvent(
                    EventKind.CONVERSATION_UPDATED,
                    customer_id=row.customer_id,
                    subject_id=row.id,
                    payload={"key": row.key, "status": row.status},
                )
            )
    planned = plan.interactions
    inserted = await connection.execute(
        sa.text(
            "INSERT INTO interactions (id, customer_id, touchpoint_id, channel_code, occurred_at,"
            " recorded_at, type, direction, conversation_id, summary, sentiment, outcome, agent,"
            " attributes, idempotency_key, matched_identity_id)"
            " SELECT k.id, k.cid, k.tp, k.ch, k.at, :now, k.type, k.dir, k.conv, k.summary,"
            " k.sentiment, k.outcome, k.agent, k.attrs, k.ikey, k.matched"
            " FROM unnest(CAST(:ids AS uuid[]), CAST(:cids AS uuid[]), CAST(:tps AS uuid[]),"
            " CAST(:chs AS text[]), CAST(:ats AS timestamptz[]), CAST(:types AS text[]),"
            " CAST(:dirs AS text[]), CAST(:convs AS uuid[]), CAST(:summaries AS text[]),"
            " CAST(:sentiments AS float8[]), CAST(:outcomes AS text[]), CAST(:agents AS text[]),"
            " CAST(:attrs AS jsonb[]), CAST(:ikeys AS text[]), CAST(:matched AS bigint[]))"
            " AS k(id, cid, tp, ch, at, type, dir, conv, summary, sentiment, outcome, agent,"
            " attrs, ikey, matched)"
            " ON CONFLICT (touchpoint_id, idempotency_key) WHERE idempotency_key IS NOT NULL"
            " DO NOTHING RETURNING *"
        ),
        {
            "now": now,
            "ids": [p.id for p in planned],
            "cids": [find(p.customer_id) for p in planned],
            "tps": [p.draft.touchpoint_id for p in planned],
            "chs": [p.draft.channel_code for p in planned],
            "ats": [p.draft.occurred_at for p in planned],
            "types": [p.draft.type for p in planned],
            "dirs": [p.draft.direction for p in planned],
            "convs": [
                conversation_ids[p.draft.conversation_key] if p.draft.conversation_key else None
                for p in planned
            ],
            "summaries": [p.draft.summary for p in planned],
            "sentiments": [p.draft.sentiment for p in planned],
            "outcomes": [p.draft.outcome for p in planned],
            "agents": [p.draft.agent for p in planned],
            "attrs": [_json(p.draft.attributes) for p in planned],
            "ikeys": [p.draft.idempotency_key for p in planned],
            "matched": [
                identity_ids.get(p.matched_identity) if p.matched_identity else None
                for p in planned
            ],
        },
    )
    rows_by_id = {row["id"]: row for row in inserted.mappings()}
    if len(rows_by_id) != len(planned):
        # Another writer stored one of our idempotency keys despite the advisory lock (e.g. a
        # writer that does not take it): give up this transaction; the retry returns the original.
        raise Conflict(
            "an interaction with the same idempotency key was stored concurrently; retry"
        )
    if plan.stage_changes:
        changes = plan.stage_changes
        await connection.execute(
            sa.text(
                "INSERT INTO stage_history (customer_id, stage, previous_stage, transition,"
                " entered_at, interaction_id, channel_code, reason)"
                " SELECT * FROM unnest(CAST(:cids AS uuid[]), CAST(:stages AS text[]),"
                " CAST(:prev AS text[]), CAST(:trans AS text[]), CAST(:at AS timestamptz[]),"
                " CAST(:iids AS uuid[]), CAST(:chs AS text[]), CAST(:reasons AS text[]))"
            ),
            {
                "cids": [find(c.customer_id) for c in changes],
                "stages": [c.stage for c in changes],
                "prev": [c.previous_stage for c in changes],
                "trans": [c.transition.value for c in changes],
                "at": [c.entered_at for c in changes],
                "iids": [c.interaction_id for c in changes],
                "chs": [c.channel_code for c in changes],
                "reasons": [c.reason for c in changes],
            },
        )
        for change in changes:
            events.append(
                NewEvent(
                    EventKind.JOURNEY_STAGE_CHANGED,
                    customer_id=find(change.customer_id),
                    subject_id=change.interaction_id,
                    channel_code=change.channel_code,
                    payload={
                        "stage": change.stage,
                        "previousStage": change.previous_stage,
                        "transition": change.transition.value,
                        "enteredAt": change.entered_at.isoformat(),
                    },
                )
            )
    existing = [
        c for c in plan.customers.values() if not c.is_new and c.touched and c.id not in plan.alias
    ]
    if existing:
        await connection.execute(
            sa.text(
                "UPDATE customers c SET current_stage = k.stage, stage_entered_at = k.entered,"
                " stage_channel_code = k.sch, first_seen_at = k.first, last_seen_at = k.last,"
                " updated_at = :now FROM unnest(CAST(:ids AS uuid[]), CAST(:stages AS text[]),"
                " CAST(:entered AS timestamptz[]), CAST(:sch AS text[]),"
                " CAST(:first AS timestamptz[]), CAST(:last AS timestamptz[]))"
                " AS k(id, stage, entered, sch, first, last) WHERE c.id = k.id"
            ),
            {
                "now": now,
                "ids": [c.id for c in existing],
                "stages": [c.current_stage for c in existing],
                "entered": [c.stage_entered_at for c in existing],
                "sch": [c.stage_channel_code for c in existing],
                "first": [c.first_seen_at for c in existing],
                "last": [c.last_seen_at for c in existing],
            },
        )
    for p in planned:
        stored = rows_by_id[p.id]
        result = results[p.draft.index]
        result.interaction = stored
        result.customer_id = stored["customer_id"]
        result.created = p.created_customer and p.customer_id not in plan.alias
        result.warnings.extend(p.warnings)
        events.append(
            NewEvent(
                EventKind.INTERACTION_RECORDED,
                customer_id=stored["customer_id"],
                subject_id=stored["id"],
                channel_code=stored["channel_code"],
                touchpoint_id=stored["touchpoint_id"],
                payload={
                    "type": stored["type"],
                    "direction": stored["direction"],
                    "occurredAt": stored["occurred_at"].isoformat(),
                    "createdCustomer": result.created,
                },
            )
        )
    for result in results:
        if result.duplicate and isinstance(result.interaction, int):
            original = results[result.interaction]
            result.interaction = original.interaction
            result.customer_id = original.customer_id
    await emit_many(connection, events)
