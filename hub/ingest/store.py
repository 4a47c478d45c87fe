"""Writing a batch plan in ONE statement, whatever the batch size.

Every table the plan touches gets a data-modifying CTE fed by ``unnest`` of array parameters
(one array per column): new customers, new identities, identities seen again, conversations
(``INSERT … ON CONFLICT``), interactions, stage history, customer updates, and the domain
events for the outbox. PostgreSQL runs all of them in one round trip and checks the foreign keys
between them at the end of the statement.

``store_plan`` is the one place where a stored batch is known (the plan and the rows the
statement returned): whatever else ingest must maintain per stored batch hooks in there.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from hub.audiences.traits import TRAITS_VERSION
from hub.core.errors import Conflict, HubError
from hub.db.statements import IngestSql, Row, Statement
from hub.events.emit import EventKind, NewEvent
from hub.identity.resolution import BatchPlan


@dataclass(frozen=True)
class AuditRow:
    """The audit row of the call (``hub.access.audit.audit_targets``), when the caller writes it
    here: the compiled ingest path, whose transaction commits only on success."""

    key_id: int | None
    actor: str
    role: str
    action: str
    target_ids: list[str]
    details: str  # JSON text

    def params(self) -> dict[str, Any]:
        return {
            "a_key": self.key_id,
            "a_actor": self.actor,
            "a_role": self.role,
            "a_action": self.action,
            "a_targets": self.target_ids,
            "a_details": self.details,
        }


NO_AUDIT = {"a_key": None, "a_actor": None, "a_role": None, "a_action": None, "a_targets": None}


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


def _unnest(columns: dict[str, str]) -> str:
    """``unnest(CAST(:p AS t[]), …) AS k(p, …)`` for parameters named like their columns."""
    casts = ", ".join(f"CAST(:{name} AS {kind}[])" for name, kind in columns.items())
    return f"unnest({casts}) AS k({', '.join(columns)})"


CUSTOMERS_CTE = (
    "new_customers AS (INSERT INTO customers (id, current_stage, stage_entered_at,"
    " stage_channel_code, stage_signal_at, first_seen_at, last_seen_at, created_at, updated_at)"
    " SELECT k.c_id, k.c_stage, k.c_entered, k.c_sch, k.c_signal, k.c_first, k.c_last, :now,"
    " :now FROM "
    + _unnest(
        {
            "c_id": "uuid",
            "c_stage": "text",
            "c_entered": "timestamptz",
            "c_sch": "text",
            "c_signal": "timestamptz",
            "c_first": "timestamptz",
            "c_last": "timestamptz",
        }
    )
    + " RETURNING id)"
)
NEW_IDENTITIES_CTE = (
    "new_identities AS (INSERT INTO identities (customer_id, kind, value, created_at,"
    " last_seen_at) SELECT k.ni_cid, k.ni_kind, k.ni_value, :now, k.ni_seen FROM "
    + _unnest({"ni_cid": "uuid", "ni_kind": "text", "ni_value": "text", "ni_seen": "timestamptz"})
    + " RETURNING id, kind, value)"
)
SEEN_IDENTITIES_CTE = (
    "seen_identities AS (UPDATE identities i SET last_seen_at = GREATEST(i.last_seen_at,"
    " k.si_seen) FROM "
    + _unnest({"si_kind": "text", "si_value": "text", "si_seen": "timestamptz"})
    + " WHERE i.kind = k.si_kind AND i.value = k.si_value RETURNING i.id, i.kind, i.value)"
)
IDENTITIES_CTE = (
    "used_identities AS (SELECT * FROM new_identities UNION ALL SELECT * FROM seen_identities)"
)
# New activity after a resolution reopens the conversation.
CONVERSATIONS_CTE = (
    "conversations_upserted AS (INSERT INTO conversations AS c (id, customer_id, key, status,"
    " started_at, last_activity_at) SELECT k.cv_id, k.cv_cid, k.cv_key, 'OPEN', k.cv_started,"
    " k.cv_last FROM "
    + _unnest(
        {
            "cv_id": "uuid",
            "cv_cid": "uuid",
            "cv_key": "text",
            "cv_started": "timestamptz",
            "cv_last": "timestamptz",
        }
    )
    + " ON CONFLICT (key) DO UPDATE SET"
    " started_at = LEAST(c.started_at, EXCLUDED.started_at),"
    " last_activity_at = GREATEST(c.last_activity_at, EXCLUDED.last_activity_at),"
    " status = CASE WHEN c.status = 'RESOLVED' AND EXCLUDED.last_activity_at > c.resolved_at"
    " THEN 'OPEN' ELSE c.status END,"
    " resolved_at = CASE WHEN c.status = 'RESOLVED' AND EXCLUDED.last_activity_at >"
    " c.resolved_at THEN NULL ELSE c.resolved_at END"
    " RETURNING c.id, c.key, c.customer_id, c.status)"
)
INTERACTIONS_CTE = (
    "inserted AS (INSERT INTO interactions (id, customer_id, touchpoint_id, channel_code,"
    " occurred_at, recorded_at, type, direction, conversation_id, summary, sentiment, outcome,"
    " agent, attributes, idempotency_key, matched_identity_id)"
    " SELECT k.x_id, k.x_cid, k.x_tp, k.x_ch, k.x_at, :now, k.x_type, k.x_dir, cu.id,"
    " k.x_summary, k.x_sentiment, k.x_outcome, k.x_agent, k.x_attrs, k.x_ikey, u.id"
    " FROM "
    + _unnest(
        {
            "x_id": "uuid",
            "x_cid": "uuid",
            "x_tp": "uuid",
            "x_ch": "text",
            "x_at": "timestamptz",
            "x_type": "text",
            "x_dir": "text",
            "x_conv": "text",
            "x_summary": "text",
            "x_sentiment": "float8",
            "x_outcome": "text",
            "x_agent": "text",
            "x_attrs": "jsonb",
            "x_ikey": "text",
            "x_mkind": "text",
            "x_mvalue": "text",
        }
    )
    # Joins, not correlated subqueries: a batch of 1,000 would otherwise scan the CTEs 1,000
    # times. Keys are unique in both (one row per identifier, one per conversation key).
    + " LEFT JOIN used_identities u ON u.kind = k.x_mkind AND u.value = k.x_mvalue"
    " LEFT JOIN conversations_upserted cu ON cu.key = k.x_conv"
    " ON CONFLICT (touchpoint_id, idempotency_key) WHERE idempotency_key IS NOT NULL"
    " DO NOTHING RETURNING *)"
)
STAGE_HISTORY_CTE = (
    "stage_changes AS (INSERT INTO stage_history (customer_id, stage, previous_stage,"
    " transition, entered_at, interaction_id, channel_code, reason)"
    " SELECT k.sh_cid, k.sh_stage, k.sh_prev, k.sh_trans, k.sh_at, k.sh_iid, k.sh_ch,"
    " k.sh_reason FROM "
    + _unnest(
        {
            "sh_cid": "uuid",
            "sh_stage": "text",
            "sh_prev": "text",
            "sh_trans": "text",
            "sh_at": "timestamptz",
            "sh_iid": "uuid",
            "sh_ch": "text",
            "sh_reason": "text",
        }
    )
    + " RETURNING 1)"
)
CUSTOMER_UPDATES_CTE = (
    "customer_updates AS (UPDATE customers c SET current_stage = k.cu_stage,"
    " stage_entered_at = k.cu_entered, stage_channel_code = k.cu_sch,"
    " stage_signal_at = k.cu_signal,"
    " first_seen_at = k.cu_first, last_seen_at = k.cu_last, updated_at = :now FROM "
    + _unnest(
        {
            "cu_id": "uuid",
            "cu_stage": "text",
            "cu_entered": "timestamptz",
            "cu_sch": "text",
            "cu_signal": "timestamptz",
            "cu_first": "timestamptz",
            "cu_last": "timestamptz",
        }
    )
    + " WHERE c.id = k.cu_id RETURNING 1)"
)
# The outbox rows, in the order the events were always written: each touched conversation (in
# order of its first interaction), then the stage changes, then the interactions. The stage and
# interaction events are computed from the plan (``_events``); a conversation's event needs the
# upsert's result (its id, owner and status after reopening), so it is built here.
EVENTS_CTE = (
    "events_written AS (INSERT INTO events (kind, customer_id, subject_id, channel_code,"
    " touchpoint_id, payload) SELECT e.kind, e.cid, e.sid, e.ch, e.tp, e.payload FROM ("
    "SELECT 0 AS part, min(k.ord) AS ord, 'CONVERSATION_UPDATED' AS kind,"
    " cu.customer_id AS cid, cu.id AS sid, NULL::text AS ch, NULL::uuid AS tp,"
    " jsonb_build_object('key', cu.key, 'status', cu.status) AS payload"
    " FROM conversations_upserted cu JOIN unnest(CAST(:x_conv AS text[])) WITH ORDINALITY"
    " AS k(key, ord) ON k.key = cu.key GROUP BY cu.id, cu.customer_id, cu.key, cu.status"
    " UNION ALL SELECT 1, k.ord, k.ev_kind, k.ev_cid, k.ev_sid, k.ev_ch, k.ev_tp, k.ev_payload"
    " FROM unnest(CAST(:ev_kind AS text[]), CAST(:ev_cid AS uuid[]), CAST(:ev_sid AS uuid[]),"
    " CAST(:ev_ch AS text[]), CAST(:ev_tp AS uuid[]), CAST(:ev_payload AS jsonb[]))"
    " WITH ORDINALITY AS k(ev_kind, ev_cid, ev_sid, ev_ch, ev_tp, ev_payload, ord)"
    ") AS e ORDER BY e.part, e.ord RETURNING 1)"
)
# The caller's audit row, if it passed one (``a_action`` is null otherwise).
AUDIT_CTE = (
    "audit_written AS (INSERT INTO audit_log (key_id, actor, role, action, target_ids, success,"
    " details) SELECT CAST(:a_key AS bigint), CAST(:a_actor AS text), CAST(:a_role AS text),"
    " CAST(:a_action AS text), CAST(:a_targets AS text[]), true, CAST(:a_details AS jsonb)"
    " WHERE CAST(:a_action AS text) IS NOT NULL RETURNING 1)"
)
# The parts of the store statement, each with what stands in for it when the plan has nothing
# for it: a data-modifying CTE that writes no row still opens its table and every index of it at
# each execution, so a single new person would pay for conversations, customer updates and
# identities seen again too. ``None``: nothing refers to the part, it is left out.
_PARTS: list[tuple[str | None, str, str | None]] = [
    ("customers", CUSTOMERS_CTE, None),
    (
        "new_identities",
        NEW_IDENTITIES_CTE,
        "new_identities AS (SELECT NULL::bigint AS id, NULL::text AS kind, NULL::text AS value"
        " WHERE false)",
    ),
    (
        "seen_identities",
        SEEN_IDENTITIES_CTE,
        "seen_identities AS (SELECT NULL::bigint AS id, NULL::text AS kind, NULL::text AS value"
        " WHERE false)",
    ),
    (None, IDENTITIES_CTE, None),
    (
        "conversations",
        CONVERSATIONS_CTE,
        "conversations_upserted AS (SELECT NULL::uuid AS id, NULL::text AS key,"
        " NULL::uuid AS customer_id, NULL::text AS status WHERE false)",
    ),
    (None, INTERACTIONS_CTE, None),
    ("stage_changes", STAGE_HISTORY_CTE, None),
    ("customer_updates", CUSTOMER_UPDATES_CTE, None),
    (None, EVENTS_CTE, None),
    ("audit", AUDIT_CTE, None),
]


@functools.lru_cache(maxsize=128)
def store_statement(present: frozenset[str]) -> Statement:
    """The store statement for a plan that writes the ``present`` parts (at most 2⁷ variants,
    each prepared once per connection)."""
    ctes = [
        cte if part is None or part in present else stand_in
        for part, cte, stand_in in _PARTS
        if part is None or part in present or stand_in is not None
    ]
    return Statement.named(
        "WITH "
        + ", ".join(c for c in ctes if c is not None)
        + " SELECT inserted.*, cu.key AS conversation_key, cu.status AS conversation_status,"
        " cu.customer_id AS conversation_customer_id, " + TRAITS_VERSION + " AS traits_version"
        " FROM inserted LEFT JOIN conversations_upserted cu ON cu.id = inserted.conversation_id"
    )


# Which parameter array tells whether a part writes anything.
_PRESENCE = {
    "customers": "c_id",
    "new_identities": "ni_kind",
    "seen_identities": "si_kind",
    "conversations": "cv_key",
    "stage_changes": "sh_cid",
    "customer_updates": "cu_id",
}


def _params(plan: BatchPlan, now: datetime) -> dict[str, Any]:
    find: Callable[[uuid.UUID], uuid.UUID] = plan.find
    new_customers = [c for c in plan.customers.values() if c.is_new and c.id not in plan.alias]
    existing = [
        c for c in plan.customers.values() if not c.is_new and c.touched and c.id not in plan.alias
    ]
    new_identities = list(plan.new_identities.items())
    seen = [k for k in plan.seen_identities if k not in plan.new_identities]
    # In key order: two batches upserting the same conversations lock them in the same order.
    conversations = sorted(plan.conversations.values(), key=lambda c: c.key)
    planned = plan.interactions
    changes = plan.stage_changes
    return {
        "now": now,
        "c_id": [c.id for c in new_customers],
        "c_stage": [c.current_stage for c in new_customers],
        "c_entered": [c.stage_entered_at for c in new_customers],
        "c_sch": [c.stage_channel_code for c in new_customers],
        "c_signal": [c.stage_signal_at for c in new_customers],
        "c_first": [c.first_seen_at for c in new_customers],
        "c_last": [c.last_seen_at for c in new_customers],
        "ni_cid": [find(cid) for _, cid in new_identities],
        "ni_kind": [kind for (kind, _), _ in new_identities],
        "ni_value": [value for (_, value), _ in new_identities],
        "ni_seen": [plan.seen_identities.get(key, now) for key, _ in new_identities],
        "si_kind": [kind for kind, _ in seen],
        "si_value": [value for _, value in seen],
        "si_seen": [plan.seen_identities[key] for key in seen],
        "cv_id": [uuid.uuid4() for _ in conversations],
        "cv_cid": [find(c.customer_id) for c in conversations],
        "cv_key": [c.key for c in conversations],
        "cv_started": [c.started_at for c in conversations],
        "cv_last": [c.last_activity_at for c in conversations],
        "x_id": [p.id for p in planned],
        "x_cid": [find(p.customer_id) for p in planned],
        "x_tp": [p.draft.touchpoint_id for p in planned],
        "x_ch": [p.draft.channel_code for p in planned],
        "x_at": [p.draft.occurred_at for p in planned],
        "x_type": [p.draft.type for p in planned],
        "x_dir": [p.draft.direction for p in planned],
        "x_conv": [p.draft.conversation_key for p in planned],
        "x_summary": [p.draft.summary for p in planned],
        "x_sentiment": [p.draft.sentiment for p in planned],
        "x_outcome": [p.draft.outcome for p in planned],
        "x_agent": [p.draft.agent for p in planned],
        "x_attrs": [_json(p.draft.attributes) for p in planned],
        "x_ikey": [p.draft.idempotency_key for p in planned],
        "x_mkind": [p.matched_identity[0] if p.matched_identity else None for p in planned],
        "x_mvalue": [p.matched_identity[1] if p.matched_identity else None for p in planned],
        "sh_cid": [find(c.customer_id) for c in changes],
        "sh_stage": [c.stage for c in changes],
        "sh_prev": [c.previous_stage for c in changes],
        "sh_trans": [c.transition.value for c in changes],
        "sh_at": [c.entered_at for c in changes],
        "sh_iid": [c.interaction_id for c in changes],
        "sh_ch": [c.channel_code for c in changes],
        "sh_reason": [c.reason for c in changes],
        "cu_id": [c.id for c in existing],
        "cu_stage": [c.current_stage for c in existing],
        "cu_entered": [c.stage_entered_at for c in existing],
        "cu_sch": [c.stage_channel_code for c in existing],
        "cu_signal": [c.stage_signal_at for c in existing],
        "cu_first": [c.first_seen_at for c in existing],
        "cu_last": [c.last_seen_at for c in existing],
    }


def _events(plan: BatchPlan) -> list[NewEvent]:
    """The outbox events the plan decides: stage changes, then interactions (the conversations'
    events come from the statement itself, see ``EVENTS_CTE``)."""
    events: list[NewEvent] = []
    for change in plan.stage_changes:
        events.append(
            NewEvent(
                EventKind.JOURNEY_STAGE_CHANGED,
                customer_id=plan.find(change.customer_id),
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
    for p in plan.interactions:
        events.append(
            NewEvent(
                EventKind.INTERACTION_RECORDED,
                customer_id=plan.find(p.customer_id),
                subject_id=p.id,
                channel_code=p.draft.channel_code,
                touchpoint_id=p.draft.touchpoint_id,
                payload={
                    "type": p.draft.type,
                    "direction": p.draft.direction,
                    "occurredAt": p.draft.occurred_at.isoformat(),
                    "createdCustomer": p.created_customer and p.customer_id not in plan.alias,
                },
            )
        )
    return events


def _event_params(events: list[NewEvent]) -> dict[str, Any]:
    return {
        "ev_kind": [e.kind.value for e in events],
        "ev_cid": [e.customer_id for e in events],
        "ev_sid": [e.subject_id for e in events],
        "ev_ch": [e.channel_code for e in events],
        "ev_tp": [e.touchpoint_id for e in events],
        "ev_payload": [_json(e.payload) for e in events],
    }


def stored_any(results: list[ItemResult]) -> bool:
    """Whether ``store_plan`` ran for these results (something new was stored), i.e. whether
    the audit row passed to ``hub.ingest.record.record`` has been written."""
    return any(r.error is None and not r.duplicate for r in results)


async def store_plan(
    sql: IngestSql,
    plan: BatchPlan,
    results: list[ItemResult],
    now: datetime,
    audit: AuditRow | None = None,
) -> list[Row]:
    """Write everything ``plan`` decided, events (and the caller's audit row) included, in one
    statement; fill in ``results`` and return the stored interaction rows (with their
    conversation's key and status).

    The caller (``hub.ingest.record.record``, every ingest path) then refreshes the computed
    traits and segment memberships of the customers the batch touched, in the same transaction.
    """
    params = {
        **_params(plan, now),
        **_event_params(_events(plan)),
        **(audit.params() if audit is not None else {**NO_AUDIT, "a_details": None}),
    }
    present = {part for part, name in _PRESENCE.items() if params[name]}
    if audit is not None:
        present.add("audit")
    rows = list(await sql.fetch(store_statement(frozenset(present)), params))
    rows_by_id = {row["id"]: row for row in rows}
    if len(rows_by_id) != len(plan.interactions):
        # Another writer stored one of our idempotency keys despite the advisory lock (e.g. a
        # writer that does not take it): give up this transaction; the retry returns the original.
        raise Conflict(
            "an interaction with the same idempotency key was stored concurrently; retry"
        )
    for p in plan.interactions:
        stored = rows_by_id[p.id]
        item = results[p.draft.index]
        item.interaction = stored
        item.customer_id = stored["customer_id"]
        item.created = p.created_customer and p.customer_id not in plan.alias
        item.warnings.extend(p.warnings)
    for item in results:
        if item.duplicate and isinstance(item.interaction, int):
            original = results[item.interaction]
            item.interaction = original.interaction
            item.customer_id = original.customer_id
    return rows
