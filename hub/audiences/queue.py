"""Ingest's audience work, queued: an ingest names the customers it changed, a drainer evaluates.

Evaluating computed traits and segments inside every ingest transaction doubled what an event
cost PostgreSQL (docs/audiences.md, Cost), and a batch held its identity locks while it did. Now
an ingest writes one row per customer it changed into ``audience_queue`` (migration 0025) — in
its own transaction, so nothing it stored can be forgotten — and the **drainer**, a background
task of every ``hub serve`` process, takes the queued customers a round at a time and runs the
same evaluation (``hub.audiences.refresh.on_customers_changed``, reason ``INGEST``) for all of
them at once: one statement per group of customers instead of two per event.

- **What a row holds**: the customer, and what the ingests since its last evaluation stored for
  it (the facts ``hub.audiences.relevance`` filters on; whether an ingest created it, or a merge
  touched it). A second ingest of a queued customer appends to its row, so one evaluation serves
  both; what it may skip is decided on the union, as one ingest's would be.
- **Locks**: every writer of a customer's row here holds the customer's row lock (ingest locks
  the identifiers' holders ``FOR UPDATE``, or created the customer), and so does every writer of
  a customer's derived rows. The drainer takes the customers ``FOR UPDATE SKIP LOCKED`` (one
  being written is left for the next round), then deletes their queue rows: it never waits on a
  lock an ingest holds, so the two cannot deadlock.
- **Exact once drained**: memberships, computed values and membership events of an ingest follow
  it by one drain (the interval, ``HUB_AUDIENCES_DRAIN_MS``, plus the evaluation). ``settled``
  waits for that (tests, ``hub import``). Changes made outside ingest (merges, unmerges, erasure,
  consent, stage and profile changes, definitions, the sweeper) evaluate in their own
  transaction as before: an erased customer leaves its segments when the erasure commits.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hub.audiences.reasons import ChangeReason
from hub.audiences.refresh import hold_definitions, on_customers_changed
from hub.audiences.relevance import NewInteraction, Touched
from hub.db.statements import AlchemySql, IngestSql, Statement

DRAIN_LIMIT = 1000

# A queued customer's row takes what this ingest stored; a row already there (not drained yet)
# keeps its place in line and gains this ingest's interactions.
_ENQUEUE = Statement.named(
    "INSERT INTO audience_queue AS q (customer_id, queued_at, created, everything, touched)"
    " SELECT u.c, now(), u.n, u.e, u.t FROM jsonb_to_recordset(CAST(:rows AS jsonb))"
    " AS u(c uuid, n boolean, e boolean, t jsonb)"
    " ON CONFLICT (customer_id) DO UPDATE SET created = q.created OR excluded.created,"
    " everything = q.everything OR excluded.everything, touched = q.touched || excluded.touched"
)

# The oldest queued customers nobody is writing, locked, and their rows taken off the queue. A
# row whose customer does not exist (none is ever deleted; a test truncating tables) goes too:
# it is visible only once its ingest committed, customer included.
_TAKE = Statement.named(
    "WITH head AS (SELECT customer_id FROM audience_queue ORDER BY queued_at LIMIT :limit),"
    " picked AS (SELECT c.id FROM customers c WHERE c.id IN (SELECT customer_id FROM head)"
    " ORDER BY c.id FOR UPDATE OF c SKIP LOCKED),"
    " orphans AS (DELETE FROM audience_queue q WHERE q.customer_id IN (SELECT customer_id FROM"
    " head) AND NOT EXISTS (SELECT FROM customers c WHERE c.id = q.customer_id))"
    " DELETE FROM audience_queue q USING picked p WHERE q.customer_id = p.id"
    " RETURNING q.customer_id, q.created, q.everything, q.touched"
)

_ANY = Statement.named("SELECT EXISTS (SELECT FROM audience_queue) AS queued")


def _sql(conn: IngestSql | AsyncConnection) -> IngestSql:
    return AlchemySql(conn) if isinstance(conn, AsyncConnection) else conn


def _facts(new: NewInteraction) -> list[Any]:
    return [
        new.type,
        new.channel_code,
        str(new.touchpoint_id),
        new.direction,
        new.occurred_at.isoformat(),
        None if new.conversation_id is None else str(new.conversation_id),
    ]


def _from_facts(facts: Sequence[Any]) -> NewInteraction:
    kind, channel, touchpoint, direction, occurred_at, conversation = facts
    return NewInteraction(
        type=kind,
        channel_code=channel,
        touchpoint_id=uuid.UUID(touchpoint),
        direction=direction,
        occurred_at=datetime.fromisoformat(occurred_at),
        conversation_id=None if conversation is None else uuid.UUID(conversation),
    )


async def enqueue(sql: IngestSql, touched: Touched) -> None:
    """Queue the customers ``touched`` names (in the caller's transaction, which holds their
    row locks); nothing when it names none."""
    customers = sorted(touched.new.keys() | touched.everything)
    if not customers:
        return
    rows = [
        {
            "c": str(customer),
            "n": customer in touched.created,
            "e": customer in touched.everything,
            "t": [_facts(new) for new in touched.new.get(customer, ())],
        }
        for customer in customers
    ]
    await sql.fetch(_ENQUEUE, {"rows": orjson.dumps(rows).decode()})


def _touched(rows: Iterable[Any]) -> Touched:
    touched = Touched()
    for row in rows:
        customer = row["customer_id"]
        facts = row["touched"]
        if isinstance(facts, str):
            facts = orjson.loads(facts)
        touched.new[customer] = [_from_facts(f) for f in facts]
        if row["created"]:
            touched.created.add(customer)
        if row["everything"]:
            touched.everything.add(customer)
    return touched


async def drain(conn: IngestSql | AsyncConnection, *, limit: int = DRAIN_LIMIT) -> int:
    """One round, in the caller's transaction: take up to ``limit`` queued customers nobody is
    writing and evaluate their computed traits and segments. How many it took."""
    sql = _sql(conn)
    # The definitions lock before the customer locks, in the order every writer takes them.
    await hold_definitions(sql)
    rows = await sql.fetch(_TAKE, {"limit": limit})
    if not rows:
        return 0
    touched = _touched(rows)
    await on_customers_changed(
        sql,
        [row["customer_id"] for row in rows],
        reason=ChangeReason.INGEST,
        now=datetime.now(UTC),
        locked=True,
        touched=touched,
    )
    return len(rows)


async def drain_all(engine: AsyncEngine, *, limit: int = DRAIN_LIMIT) -> int:
    """Rounds of ``drain`` (a transaction each) while there is work; how many customers."""
    total = 0
    while True:
        async with engine.connect() as probe:
            [row] = await AlchemySql(probe).fetch(_ANY, {})
            await probe.rollback()
        if not row["queued"]:
            return total
        async with engine.begin() as connection:
            done = await drain(connection, limit=limit)
        total += done
        if done < limit:
            return total


_QUEUED = sa.text("SELECT customer_id FROM audience_queue WHERE customer_id = ANY(:ids)")


async def evaluated(
    engine: AsyncEngine,
    ids: Sequence[uuid.UUID],
    *,
    timeout_s: float = 2.0,
    interval_s: float = 0.01,
) -> bool:
    """Wait, at most ``timeout_s``, until none of ``ids`` is queued: a reader about to judge
    these customers' memberships (``interactionRecorded`` by segment) sees their ingests'
    effects. ``engine``: the reader's (a partner's row security applies to the queue too).
    False if some were still queued at the deadline (the reader goes on: a stopped drainer
    must not stop the feeds)."""
    if not ids:
        return True
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        async with engine.connect() as connection:
            queued = (await connection.execute(_QUEUED, {"ids": list(ids)})).first()
            await connection.rollback()
        if queued is None:
            return True
        if asyncio.get_running_loop().time() >= deadline:
            return False
        await asyncio.sleep(interval_s)


async def settled(
    engine: AsyncEngine, *, interval_s: float = 0.01, timeout_s: float = 120.0
) -> None:
    """Drain until the queue is empty as every transaction sees it (a round another process
    has taken but not committed still shows its rows; this waits for it). ``TimeoutError``
    after ``timeout_s`` (a customer kept locked all along)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        if asyncio.get_running_loop().time() >= deadline:
            raise TimeoutError(f"the audiences queue did not empty in {timeout_s} s")
        await drain_all(engine)
        async with engine.connect() as probe:
            [row] = await AlchemySql(probe).fetch(_ANY, {})
            await probe.rollback()
        if not row["queued"]:
            return
        await asyncio.sleep(interval_s)
