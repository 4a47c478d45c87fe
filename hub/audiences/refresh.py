"""The one entry point a change calls: computed traits first, then segment membership.

Order matters: a segment may test a computed trait (``computed`` conditions), so the traits of
the touched customers are recomputed before their memberships are evaluated, in the caller's
transaction. Callers that lock customer rows before calling (merges, erasure) take
``hold_definitions`` first (see ``hub.audiences.traits``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from hub.audiences import membership, traits
from hub.audiences.membership import Outcome
from hub.audiences.reasons import ChangeReason
from hub.audiences.relevance import Touched
from hub.db.statements import IngestSql, Statement, ingest_sql

__all__ = ["ChangeReason", "hold_definitions", "on_customers_changed", "on_trait_changed", "sweep"]

hold_definitions = traits.hold_definitions

_LOCK_CUSTOMERS = Statement.named(
    "SELECT FROM customers WHERE id = ANY(CAST(:ids AS uuid[])) ORDER BY id FOR UPDATE"
)
# After the customer locks, never before: an ingest holds its customers, then their queue rows.
_NOT_CREATED = Statement.named(
    "UPDATE audience_queue SET created = false"
    " WHERE customer_id = ANY(CAST(:ids AS uuid[])) AND created"
)


async def on_customers_changed(
    conn: IngestSql | AsyncConnection,
    customer_ids: Iterable[uuid.UUID],
    *,
    reason: ChangeReason,
    now: datetime | None = None,
    locked: bool = False,
    traits_version: str | None = None,
    segments: Sequence[tuple[str, int]] | None = None,
    touched: Touched | None = None,
) -> Outcome:
    """Recompute the computed traits, then re-evaluate the segments, of ``customer_ids``.
    ``locked``/``traits_version``: see ``traits.on_customers_changed``; ``segments``: the
    (key, revision) list when ingest read it already; ``touched``: what an ingest stored, to
    skip the definitions it cannot have changed (``hub.audiences.relevance``)."""
    ids = sorted(set(customer_ids))
    at = now or datetime.now(UTC)
    if reason is not ChangeReason.INGEST and ids:
        # Every change but ingest evaluates in its own transaction: the customers locked FOR
        # UPDATE (a no-op where the caller holds them), so no drain round of the audiences queue
        # evaluates them at the same time (its FOR KEY SHARE; hub.audiences.queue). The
        # definitions lock before it, the order every writer of values takes them in — only for
        # changes that write values (stage, consent and profile changes write none).
        if not locked and reason not in traits.NO_EFFECT:
            await hold_definitions(conn)
            locked = True
        sql = ingest_sql(conn)
        await sql.fetch(_LOCK_CUSTOMERS, {"ids": ids})
        # Evaluated in full now: a queued row's "created" (its facts are all the customer's
        # interactions) no longer holds for a customer a merge has just given more.
        await sql.fetch(_NOT_CREATED, {"ids": ids})
    recomputed = await traits.on_customers_changed(
        conn, ids, reason=reason, now=at, locked=locked, version=traits_version, touched=touched
    )
    return await membership.on_customers_changed(
        conn,
        ids,
        reason=reason,
        now=at,
        segments=segments,
        touched=touched,
        recomputed=recomputed,
    )


async def sweep(conn: IngestSql | AsyncConnection, now: datetime, *, limit: int = 1000) -> int:
    """What time alone changed, as of ``now``: computed values whose window moved (and then the
    memberships of those customers, since a segment may test them), then memberships with a
    due re-check. The larger of the two counts (the sweeper loops while it is ``limit``)."""
    recomputed = await traits.sweep_customers(conn, now, limit=limit)
    if recomputed:
        await membership.on_customers_changed(conn, recomputed, reason=ChangeReason.CLOCK, now=now)
    reevaluated = await membership.sweep(conn, now, limit=limit)
    return max(len(recomputed), reevaluated)


async def on_trait_changed(conn: IngestSql | AsyncConnection, trait_key: str) -> Outcome:
    """A computed trait was defined or redefined: its values changed for many customers at
    once (its backfill, in the caller's transaction), so the segments that test it are
    re-evaluated over every customer, their differences written as events (reason TRAIT)."""
    changes: list[tuple[str, uuid.UUID, membership.Change]] = []
    for key in await membership.segments_testing_trait(conn, trait_key):
        outcome = await membership.materialise(conn, key, emit=True, reason=ChangeReason.TRAIT)
        changes += outcome.changes
    return Outcome(changes)
