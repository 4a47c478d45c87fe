"""Writing a batch plan: a handful of set-based statements, whatever the batch size.

Each statement turns a column of the plan into an array parameter and writes all rows with one
``INSERT … SELECT FROM unnest(…)`` (or ``UPDATE … FROM unnest(…)``); the domain events go to
the outbox with ``emit_many`` in the same transaction.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.errors import Conflict, HubError
from hub.events import EventKind, NewEvent, emit_many
from hub.identity_resolution import BatchPlan, IdentifierKey


@dataclass
class ItemResult:
    """What happened to one input: stored (or an idempotent replay), or rejected."""

    index: int
    interaction: Any = None  # the interactions row (or, transiently, the index of an original)
    customer_id: uuid.UUID | None = None
    created: bool = False
    duplicate: bool = False
    merges: list[Any] = field(default_factory=list)  # merges ledger rows it caused
    warnings: list[str] = field(default_factory=list)
    error: HubError | None = None


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


async def _insert_customers(connection: AsyncConnection, plan: BatchPlan, now: datetime) -> None:
    new_customers = [c for c in plan.customers.values() if c.is_new and c.id not in plan.alias]
    if not new_customers:
        return
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


async def _write_identities(
    connection: AsyncConnection, plan: BatchPlan, now: datetime
) -> dict[IdentifierKey, int]:
    """Insert the new identities and touch the used ones; the id of each identifier used."""
    find = plan.find
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
    return identity_ids


async def _upsert_conversations(
    connection: AsyncConnection, plan: BatchPlan, events: list[NewEvent]
) -> dict[str, uuid.UUID]:
    """Create or extend the conversations; a later interaction reopens a resolved one."""
    find = plan.find
    conversation_ids: dict[str, uuid.UUID] = {}
    if not plan.conversations:
        return conversation_ids
    # In key order: two batches upserting the same conversations lock them in the same order.
    conversations = sorted(plan.conversations.values(), key=lambda c: c.key)
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
    return conversation_ids


async def _insert_interactions(
    connection: AsyncConnection,
    plan: BatchPlan,
    identity_ids: dict[IdentifierKey, int],
    conversation_ids: dict[str, uuid.UUID],
    now: datetime,
) -> dict[uuid.UUID, RowMapping]:
    find = plan.find
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
    return rows_by_id


async def _insert_stage_changes(
    connection: AsyncConnection, plan: BatchPlan, events: list[NewEvent]
) -> None:
    find = plan.find
    if not plan.stage_changes:
        return
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


async def _update_customers(connection: AsyncConnection, plan: BatchPlan, now: datetime) -> None:
    existing = [
        c for c in plan.customers.values() if not c.is_new and c.touched and c.id not in plan.alias
    ]
    if not existing:
        return
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


async def store_plan(
    connection: AsyncConnection, plan: BatchPlan, results: list[ItemResult], now: datetime
) -> None:
    """Write everything ``plan`` decided and fill in ``results``."""
    events: list[NewEvent] = []
    await _insert_customers(connection, plan, now)
    identity_ids = await _write_identities(connection, plan, now)
    conversation_ids = await _upsert_conversations(connection, plan, events)
    rows_by_id = await _insert_interactions(connection, plan, identity_ids, conversation_ids, now)
    await _insert_stage_changes(connection, plan, events)
    await _update_customers(connection, plan, now)
    planned = plan.interactions
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
