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
- **An ingest does not wait for a round's evaluation**: a round first *claims* its rows in a
  short transaction of its own, then evaluates in a second one that holds the customers ``FOR
  KEY SHARE SKIP LOCKED``. That conflicts with the ``FOR UPDATE`` of every other evaluating
  change (merges, unmerges, erasure, consent, stage and profile changes, the sweeper:
  ``hub.audiences.refresh`` and erasure take it), so their evaluations and the round's never
  overlap, but not with ingest's ``FOR NO KEY UPDATE``: an ingest of a customer being evaluated
  goes on and appends to the claimed row (a new version). Rounds exclude each other per customer
  with a tried advisory lock. A third transaction ends the round (``_FINISH``, rows locked in id
  order as ingest upserts them, holding no customer lock): rows whose version it read leave the
  queue; the others lose the facts it saw and wait for the next round. An ingest may wait for
  that short end, and one that merges waits for the round like any merge. A failed round
  releases its claims; one cancelled or dead leaves them until ``CLAIM_EXPIRY`` (a minute;
  a round still running then is excluded by the advisory lock).
- **Exact once drained**: memberships, computed values and membership events of an ingest follow
  it by one drain (the interval, ``HUB_AUDIENCES_DRAIN_MS``, plus the evaluation). ``settled``
  waits for that (tests, ``hub import``). Changes made outside ingest (merges, unmerges, erasure,
  consent, stage and profile changes, definitions, the sweeper) evaluate in their own
  transaction as before: an erased customer leaves its segments when the erasure commits.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.audiences.reasons import ChangeReason
from hub.audiences.refresh import hold_definitions, on_customers_changed
from hub.audiences.relevance import NewInteraction, Touched
from hub.db.statements import AlchemySql, IngestSql, Statement

logger = logging.getLogger("hub.audiences")
DRAIN_LIMIT = 1000
CLAIM_EXPIRY = timedelta(minutes=1)
ROUND_LOCKS = 0x0025  # the advisory lock class of rounds (the two-key form: class, customer)

# A queued customer's row takes what this ingest stored; a row already there (not drained yet,
# or being drained) keeps its place in line, gains this ingest's interactions and a new version
# (a drain that read the older version leaves the row for the next round).
_ENQUEUE = Statement.named(
    "INSERT INTO audience_queue AS q (customer_id, queued_at, created, everything, touched)"
    " SELECT u.c, now(), u.n, u.e, u.t FROM jsonb_to_recordset(CAST(:rows AS jsonb))"
    " AS u(c uuid, n boolean, e boolean, t jsonb)"
    " ON CONFLICT (customer_id) DO UPDATE SET created = q.created OR excluded.created,"
    " everything = q.everything OR excluded.everything, touched = q.touched || excluded.touched,"
    " version = q.version + 1"
)

# A round's claim, committed on its own (no lock outlives it): the oldest rows no round holds
# (or whose round died: its claim older than CLAIM_EXPIRY).
_CLAIM = Statement.named(
    "UPDATE audience_queue q SET claim = CAST(:token AS uuid), claimed_at = now()"
    " WHERE q.customer_id IN (SELECT customer_id FROM audience_queue"
    " WHERE claim IS NULL OR claimed_at < now() - CAST(:expiry AS interval)"
    " ORDER BY queued_at LIMIT :limit FOR UPDATE SKIP LOCKED)"
    " RETURNING q.customer_id, q.created, q.everything, q.touched, q.version"
)

# The claimed customers that exist, and those of them no other change holds: FOR KEY SHARE
# conflicts with the FOR UPDATE of merges, unmerges, erasure, consent, stage and profile changes
# and the sweeper (so their evaluations and the round's are serialised), not with ingest's FOR
# NO KEY UPDATE (an ingest does not wait for a round's evaluation). Rounds exclude each other
# per customer with an advisory lock (tried, never waited for): two rounds share a customer only
# if one's claim expired, and then the second skips it.
_LOCK = Statement.named(
    "SELECT (SELECT array_agg(id) FROM customers WHERE id = ANY(CAST(:ids AS uuid[])))"
    " AS existing, (SELECT array_agg(id) FROM (SELECT id FROM customers"
    " WHERE id = ANY(CAST(:ids AS uuid[])) ORDER BY id FOR KEY SHARE SKIP LOCKED) AS s"
    f" WHERE pg_try_advisory_xact_lock({ROUND_LOCKS}, hashtext(id::text))) AS held"
)

# The end of a round, a transaction of its own after the evaluation committed (it holds no
# customer lock while it waits for a queue row an ingest is appending to): its rows locked in id
# order, the order ingest upserts them in. A row the round evaluated leaves the queue unless an
# ingest appended to it since the claim (a new version): then the facts the round saw are cut
# off (it is exact up to them; "created" no longer holds) and the rest wait for the next round.
# Rows it did not evaluate (held elsewhere) are released as they are.
_FINISH = Statement.named(
    "WITH locked AS (SELECT customer_id, version FROM audience_queue"
    " WHERE claim = CAST(:token AS uuid) ORDER BY customer_id FOR UPDATE),"
    " done AS (SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:versions AS bigint[]),"
    " CAST(:seen AS int[])) AS d(id, v, n)),"
    " gone AS (DELETE FROM audience_queue q USING locked l, done d"
    " WHERE q.customer_id = l.customer_id AND d.id = l.customer_id AND l.version = d.v"
    " RETURNING q.customer_id),"
    " kept AS (UPDATE audience_queue q SET claim = NULL, claimed_at = NULL,"
    " created = q.created AND d.id IS NULL,"
    " touched = CASE WHEN d.id IS NULL THEN q.touched ELSE coalesce((SELECT jsonb_agg(e"
    " ORDER BY o) FROM jsonb_array_elements(q.touched) WITH ORDINALITY AS x(e, o)"
    " WHERE o > d.n), '[]') END"
    " FROM locked l LEFT JOIN done d ON d.id = l.customer_id"
    " WHERE q.customer_id = l.customer_id"
    " AND l.customer_id NOT IN (SELECT customer_id FROM gone) RETURNING 1)"
    " SELECT (SELECT count(*) FROM gone) AS gone, (SELECT count(*) FROM kept) AS released"
)
_RELEASE = Statement.named(
    "UPDATE audience_queue SET claim = NULL, claimed_at = NULL WHERE claim = CAST(:token AS uuid)"
)

_ANY = Statement.named("SELECT EXISTS (SELECT FROM audience_queue) AS queued")


async def _anything_queued(engine: AsyncEngine) -> bool:
    """Whether any row is queued, as every transaction sees it (a claimed one included)."""
    async with engine.connect() as probe:
        [row] = await AlchemySql(probe).fetch(_ANY, {})
        await probe.rollback()
    return bool(row["queued"])


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


def _facts_of(row: Any) -> list[Any]:
    facts = row["touched"]
    return list(orjson.loads(facts) if isinstance(facts, str) else facts)


def _touched(rows: Iterable[Any]) -> Touched:
    touched = Touched()
    for row in rows:
        customer = row["customer_id"]
        facts = _facts_of(row)
        touched.new[customer] = [_from_facts(f) for f in facts]
        if row["created"]:
            touched.created.add(customer)
        if row["everything"]:
            touched.everything.add(customer)
    return touched


async def claim(engine: AsyncEngine, token: uuid.UUID, *, limit: int) -> Sequence[Any]:
    """A round's first transaction: mark up to ``limit`` of the oldest unclaimed rows as the
    round's (``token``); their contents."""
    async with engine.begin() as connection:
        return await AlchemySql(connection).fetch(
            _CLAIM, {"token": token, "limit": limit, "expiry": CLAIM_EXPIRY}
        )


async def evaluate(engine: AsyncEngine, token: uuid.UUID, claimed: Sequence[Any]) -> int:
    """A round's evaluation, then its end (``_FINISH``), each a transaction: evaluate the
    ``claimed`` customers no other change holds; take their rows off the queue unless an ingest
    appended to them since the claim; release the rest. How many left the queue. A round that
    fails releases its claims; a cancelled one leaves them for ``CLAIM_EXPIRY``."""
    try:
        async with engine.begin() as connection:
            sql = AlchemySql(connection)
            # The definitions lock before the customer locks, the order every writer takes.
            await hold_definitions(sql)
            ids = [row["customer_id"] for row in claimed]
            [locks] = await sql.fetch(_LOCK, {"ids": ids})
            held = set(locks["held"] or ())
            rows = [row for row in claimed if row["customer_id"] in held]
            if rows:
                await on_customers_changed(
                    sql,
                    [row["customer_id"] for row in rows],
                    reason=ChangeReason.INGEST,
                    now=datetime.now(UTC),
                    locked=True,
                    touched=_touched(rows),
                )
        # Evaluated, or without a customer (none is ever deleted; a test truncating tables).
        existing = set(locks["existing"] or ())
        done = [r for r in claimed if r["customer_id"] in held or r["customer_id"] not in existing]
        async with engine.begin() as connection:
            [finished] = await AlchemySql(connection).fetch(
                _FINISH,
                {
                    "token": token,
                    "ids": [row["customer_id"] for row in done],
                    "versions": [row["version"] for row in done],
                    "seen": [len(_facts_of(row)) for row in done],
                },
            )
    except Exception:
        await _release(engine, token)
        raise
    # Cancelled (the process stopping): no statement now — one cut short by a second
    # cancellation would leave its connection checked out; the claims expire instead.
    return int(finished["gone"])


async def _release(engine: AsyncEngine, token: uuid.UUID) -> None:
    """Give a failed round's rows back to the queue (best effort: a claim left behind expires)."""
    try:
        async with engine.begin() as connection:
            await AlchemySql(connection).fetch(_RELEASE, {"token": token})
    except Exception:  # the database away: CLAIM_EXPIRY covers it
        logger.warning("could not release an audiences round's claims", exc_info=True)


async def drain_all(engine: AsyncEngine, *, limit: int = DRAIN_LIMIT) -> int:
    """Rounds (``claim``, then ``evaluate``) while there is work and rounds are full; how many
    customers they took off the queue."""
    total = 0
    while True:
        if not await _anything_queued(engine):
            return total
        token = uuid.uuid4()
        claimed = await claim(engine, token, limit=limit)
        if not claimed:
            return total
        total += await evaluate(engine, token, claimed)
        if len(claimed) < limit:
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
        if not await _anything_queued(engine):
            return
        await asyncio.sleep(interval_s)
