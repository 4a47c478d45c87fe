"""Identity resolution, decided in memory for a whole batch of interactions.

``plan_batch`` takes the validated interactions and what the database knows about their
identifiers (who holds them, the customers' journey state) and decides, interaction by
interaction in time order, which customer each belongs to, which identifiers get linked, which
customers must be merged, which stage changes happen and which conversations are touched. The
caller (``hub.ingest.record``) then writes the plan with a few set-based statements. Keeping the
decision pure makes the single and the bulk path the same code.

Rules:
- Identifiers held by no one → a new customer holds them all.
- Identifiers held by one customer → the interaction attaches to it; the new identifiers are linked.
- Held by several customers → those matched through a *strong* identifier (any kind not in
  ``Settings.weak_identity_kinds``) are merged; a customer matched only through a weak identifier
  (a cookie, a device id) is left alone, and the weak identifier stays where it is.
- **Survivor rule**: the customer the hub has known longest survives (oldest ``created_at``, then
  the smallest id); the others are merged into it.
- A customer holds at most ``max_identities_per_kind`` identifiers of one kind: beyond it a new
  identifier is not linked, and a merge that would exceed it is refused (the interaction then goes
  to the survivor candidate and a warning says why).
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hub.core.ids import uuid7
from hub.journeys.engine import StageChangePlan, StageRules, next_stage, stage_signal_time

IdentifierKey = tuple[str, str]  # (kind, normalised value)


@dataclass
class CustomerState:
    """What resolution and the journey engine need to know about one customer."""

    id: uuid.UUID
    created_at: datetime
    is_new: bool
    current_stage: str | None = None
    stage_entered_at: datetime | None = None
    stage_channel_code: str | None = None
    stage_signal_at: datetime | None = None
    first_seen_at: datetime | None = None
    last_seen_at: datetime | None = None
    kind_counts: Counter[str] = field(default_factory=Counter)
    touched: bool = False
    sequence: int = 0  # creation order of customers new in this batch: the first one survives

    def survivor_order(self) -> tuple[bool, datetime, int, str]:
        return (self.is_new, self.created_at, self.sequence, str(self.id))


@dataclass(frozen=True)
class Draft:
    """A validated interaction, identifiers normalised (first one = the one that brought it)."""

    index: int
    identities: tuple[IdentifierKey, ...]
    touchpoint_id: uuid.UUID
    channel_code: str
    type: str
    direction: str
    occurred_at: datetime
    conversation_key: str | None
    summary: str | None
    sentiment: float | None
    outcome: str | None
    agent: str | None
    attributes: Mapping[str, Any]
    idempotency_key: str | None


@dataclass(frozen=True)
class MergePlan:
    """Existing customers one interaction proves to be one person."""

    index: int
    survivor_id: uuid.UUID
    merged_ids: tuple[uuid.UUID, ...]
    identity: IdentifierKey


@dataclass
class PlannedInteraction:
    draft: Draft
    id: uuid.UUID
    customer_id: uuid.UUID
    matched_identity: IdentifierKey | None
    created_customer: bool
    warnings: list[str] = field(default_factory=list)


@dataclass
class PlannedConversation:
    key: str
    customer_id: uuid.UUID
    started_at: datetime
    last_activity_at: datetime


@dataclass
class BatchPlan:
    interactions: list[PlannedInteraction]
    merges: list[MergePlan]
    new_identities: dict[IdentifierKey, uuid.UUID]
    seen_identities: dict[IdentifierKey, datetime]
    stage_changes: list[StageChangePlan]
    conversations: dict[str, PlannedConversation]
    customers: dict[uuid.UUID, CustomerState]
    alias: dict[uuid.UUID, uuid.UUID]

    def find(self, customer_id: uuid.UUID) -> uuid.UUID:
        while customer_id in self.alias:
            customer_id = self.alias[customer_id]
        return customer_id


@dataclass(frozen=True)
class Guards:
    weak_kinds: frozenset[str]
    max_per_kind: int


def plan_batch(
    drafts: Sequence[Draft],
    owners: Mapping[IdentifierKey, uuid.UUID],
    customers: Mapping[uuid.UUID, CustomerState],
    rules: StageRules,
    guards: Guards,
    now: datetime,
    new_id: Callable[[], uuid.UUID] = uuid7,
) -> BatchPlan:
    """Decide everything the batch does; drafts are taken in (occurredAt, input order)."""
    owner = dict(owners)
    plan = BatchPlan([], [], {}, {}, [], {}, dict(customers), {})
    for draft in sorted(drafts, key=lambda d: (d.occurred_at, d.index)):
        planned = _resolve(plan, owner, draft, guards, now, new_id)
        customer = plan.customers[planned.customer_id]
        customer.touched = True
        _link_identities(plan, owner, draft, customer, guards, planned)
        customer.first_seen_at = min(filter(None, [customer.first_seen_at, draft.occurred_at]))
        customer.last_seen_at = max(filter(None, [customer.last_seen_at, draft.occurred_at]))
        change = next_stage(customer, draft, planned.id, rules)
        if change is not None:
            plan.stage_changes.append(change)
        if draft.conversation_key is not None:
            conversation = plan.conversations.get(draft.conversation_key)
            if conversation is None:
                plan.conversations[draft.conversation_key] = PlannedConversation(
                    draft.conversation_key, customer.id, draft.occurred_at, draft.occurred_at
                )
            else:
                conversation.started_at = min(conversation.started_at, draft.occurred_at)
                conversation.last_activity_at = max(
                    conversation.last_activity_at, draft.occurred_at
                )
        plan.interactions.append(planned)
    plan.interactions.sort(key=lambda p: p.draft.index)
    return plan


def _resolve(
    plan: BatchPlan,
    owner: dict[IdentifierKey, uuid.UUID],
    draft: Draft,
    guards: Guards,
    now: datetime,
    new_id: Callable[[], uuid.UUID],
) -> PlannedInteraction:
    matched: dict[uuid.UUID, IdentifierKey] = {}
    strong: dict[uuid.UUID, IdentifierKey] = {}
    for key in draft.identities:
        if key in owner:
            holder = plan.find(owner[key])
            matched.setdefault(holder, key)
            if key[0] not in guards.weak_kinds:
                strong.setdefault(holder, key)
    planned = PlannedInteraction(draft, new_id(), uuid.UUID(int=0), None, False)
    if not matched:
        customer = CustomerState(
            id=new_id(), created_at=now, is_new=True, sequence=len(plan.customers)
        )
        plan.customers[customer.id] = customer
        planned.customer_id = customer.id
        planned.created_customer = True
        return planned
    candidates = strong if len(strong) >= 2 else (strong or matched)
    ordered = sorted(candidates, key=lambda cid: plan.customers[cid].survivor_order())
    survivor = ordered[0]
    planned.customer_id = survivor
    # A customer matched only through a weak identifier is never merged, whether or not strongly
    # matched ones are (docs/ingest.md): the interaction says so in its warnings.
    joined = set(strong) if len(strong) >= 2 else {survivor}
    if any(cid not in joined for cid in matched):
        planned.warnings.append(
            "identifiers of other customers matched only through weak kinds "
            f"({', '.join(sorted(guards.weak_kinds))}): not merged"
        )
    if len(strong) < 2:
        return planned
    others = ordered[1:]
    combined: Counter[str] = Counter()
    for cid in ordered:
        combined.update(plan.customers[cid].kind_counts)
    too_many = sorted(kind for kind, n in combined.items() if n > guards.max_per_kind)
    if too_many:
        planned.warnings.append(
            f"not merged: the merged customer would hold more than {guards.max_per_kind} "
            f"identifiers of kind {', '.join(too_many)}"
        )
        return planned
    existing = tuple(cid for cid in others if not plan.customers[cid].is_new)
    if existing:
        plan.merges.append(MergePlan(draft.index, survivor, existing, strong[existing[0]]))
    # Customers created earlier in this batch (and, for planning, existing ones) fold in memory.
    target = plan.customers[survivor]
    for cid in others:
        folded = plan.customers[cid]
        plan.alias[cid] = survivor
        target.kind_counts.update(folded.kind_counts)
        target.first_seen_at = min(
            filter(None, [target.first_seen_at, folded.first_seen_at]), default=None
        )
        target.last_seen_at = max(
            filter(None, [target.last_seen_at, folded.last_seen_at]), default=None
        )
        # As a merge does (docs/ingest.md): the stage of whichever had the newest stage signal.
        folded_at = stage_signal_time(folded)
        if folded_at is not None and (
            (target_at := stage_signal_time(target)) is None or folded_at > target_at
        ):
            target.current_stage = folded.current_stage
            target.stage_entered_at = folded.stage_entered_at
            target.stage_channel_code = folded.stage_channel_code
            target.stage_signal_at = folded.stage_signal_at
        folded.touched = False
    return planned


def _link_identities(
    plan: BatchPlan,
    owner: dict[IdentifierKey, uuid.UUID],
    draft: Draft,
    customer: CustomerState,
    guards: Guards,
    planned: PlannedInteraction,
) -> None:
    for key in draft.identities:
        holder = owner.get(key)
        if holder is None:
            if customer.kind_counts[key[0]] >= guards.max_per_kind:
                planned.warnings.append(
                    f"{key[0]} {key[1]!r} not linked: the customer already holds "
                    f"{guards.max_per_kind} identifiers of that kind"
                )
                continue
            owner[key] = customer.id
            plan.new_identities[key] = customer.id
            customer.kind_counts[key[0]] += 1
        if plan.find(owner[key]) == customer.id:
            if planned.matched_identity is None:
                planned.matched_identity = key
            previous = plan.seen_identities.get(key)
            if previous is None or draft.occurred_at > previous:
                plan.seen_identities[key] = draft.occurred_at
