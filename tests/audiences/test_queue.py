"""The audiences queue (hub.audiences.queue): what an ingest leaves for the drainer, how two
ingests share one evaluation, what a drain skips, and readers waiting for it.

These tests use the suite's plain client (``GraphQLClient``), which does not drain after a
request (tests/audiences/conftest.py's clients do): the queue is looked at before ``drain``."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from hub.audiences.queue import claim, drain_all, evaluate, evaluated, settled
from tests.audiences.support import CREATE, membership_events, stored_members
from tests.conftest import GraphQLClient
from tests.ingest_support import RECORD_MANY, interaction, record, row_id, touchpoints

TWICE = {"activity": [{"interactions": {"types": ["ORDER"]}, "min": 2}]}


async def test_ingest_queues_and_one_drain_evaluates_two_ingests(
    client: httpx.AsyncClient, db: asyncpg.Connection, engine: Any
) -> None:
    gql = GraphQLClient(client)
    tp = (await touchpoints(db))["web"]
    await gql.data(CREATE, {"input": {"key": "twice", "name": "Ordered twice", **TWICE}})
    first = await record(gql, interaction(tp, ("EMAIL", "ana@example.com"), type="ORDER"))
    await record(gql, interaction(tp, ("EMAIL", "ana@example.com"), type="ORDER"))
    ana = row_id(first["customer"]["id"])
    # Not evaluated yet: one row for Ana, holding both ingests' orders, created by the first.
    rows = await db.fetch("SELECT customer_id, created, everything, touched FROM audience_queue")
    assert [(r["customer_id"], r["created"], r["everything"]) for r in rows] == [(ana, True, False)]
    assert '"ORDER"' in rows[0]["touched"] and rows[0]["touched"].count('"ORDER"') == 2
    assert await stored_members(db, "twice") == set()
    # One drain: Ana enters once, with one event.
    assert await drain_all(engine) == 1
    assert await stored_members(db, "twice") == {ana}
    assert await membership_events(db) == [("twice", ana, "ENTERED", "INGEST")]
    assert await db.fetchval("SELECT count(*) FROM audience_queue") == 0
    assert await drain_all(engine) == 0


async def test_without_definitions_ingest_queues_nothing(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    gql = GraphQLClient(client)
    tp = (await touchpoints(db))["web"]
    await gql.data(RECORD_MANY, {"inputs": [interaction(tp, ("EMAIL", "ana@example.com"))]})
    assert await db.fetchval("SELECT count(*) FROM audience_queue") == 0
    # The control: with a segment, the same ingest queues its customer.
    await gql.data(CREATE, {"input": {"key": "twice", "name": "Ordered twice", **TWICE}})
    await gql.data(RECORD_MANY, {"inputs": [interaction(tp, ("EMAIL", "bob@example.com"))]})
    assert await db.fetchval("SELECT count(*) FROM audience_queue") == 1


async def test_a_drain_leaves_a_customer_being_written_for_later(
    client: httpx.AsyncClient, db: asyncpg.Connection, database_url: str, engine: Any
) -> None:
    gql = GraphQLClient(client)
    tp = (await touchpoints(db))["web"]
    await gql.data(CREATE, {"input": {"key": "twice", "name": "Ordered twice", **TWICE}})
    items = [interaction(tp, ("EMAIL", "ana@example.com"), type="ORDER") for _ in range(2)]
    items += [interaction(tp, ("EMAIL", "bob@example.com"), type="ORDER") for _ in range(2)]
    await gql.data(RECORD_MANY, {"inputs": items})
    ana, bob = [
        await db.fetchval("SELECT customer_id FROM identities WHERE value = $1", email)
        for email in ("ana@example.com", "bob@example.com")
    ]
    # Another transaction holds Ana's row FOR UPDATE (as a merge, an erasure or a consent change
    # of Ana would, evaluating Ana itself): the drain takes Bob only.
    other = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    try:
        holding = other.transaction()
        await holding.start()
        await other.execute("SELECT FROM customers WHERE id = $1 FOR UPDATE", ana)
        assert await drain_all(engine) == 1
        assert await stored_members(db, "twice") == {bob}
        queued = await db.fetch("SELECT customer_id FROM audience_queue")
        assert [r["customer_id"] for r in queued] == [ana]
        await holding.rollback()
    finally:
        await other.close()
    await settled(engine)
    assert await stored_members(db, "twice") == {ana, bob}


async def test_a_row_without_its_customer_is_dropped(db: asyncpg.Connection, engine: Any) -> None:
    await db.execute(
        "INSERT INTO audience_queue (customer_id, queued_at, created, everything, touched)"
        " VALUES (gen_random_uuid(), now(), true, false, '[]')"
    )
    await settled(engine)
    assert await db.fetchval("SELECT count(*) FROM audience_queue") == 0


async def test_a_reader_waits_until_its_customers_are_evaluated(
    client: httpx.AsyncClient, db: asyncpg.Connection, engine: Any
) -> None:
    gql = GraphQLClient(client)
    tp = (await touchpoints(db))["web"]
    await gql.data(CREATE, {"input": {"key": "twice", "name": "Ordered twice", **TWICE}})
    result = await record(gql, interaction(tp, ("EMAIL", "ana@example.com"), type="ORDER"))
    ana = row_id(result["customer"]["id"])
    # Ana is queued: the wait ends at its deadline, saying so.
    assert await evaluated(engine, [ana], timeout_s=0.2) is False
    waiting = asyncio.create_task(evaluated(engine, [ana], timeout_s=120))
    await drain_all(engine)
    assert await asyncio.wait_for(waiting, timeout=120) is True
    assert await db.fetchval("SELECT count(*) FROM audience_queue") == 0


async def test_an_ingest_during_a_round_is_evaluated_by_the_next(
    client: httpx.AsyncClient, db: asyncpg.Connection, engine: Any
) -> None:
    """A round claims Ana's row; an ingest of Ana commits before the round evaluates (nothing
    makes it wait: the claim is committed, the round holds no lock yet); the round keeps the
    row, now of a newer version, with only the facts it did not see, for the next round, which
    takes it off the queue."""
    gql = GraphQLClient(client)
    tp = (await touchpoints(db))["web"]
    await gql.data(CREATE, {"input": {"key": "twice", "name": "Ordered twice", **TWICE}})
    await record(gql, interaction(tp, ("EMAIL", "ana@example.com"), type="ORDER"))
    token = uuid.uuid4()
    claimed = await claim(engine, token, limit=10)
    assert [row["version"] for row in claimed] == [1]
    await record(gql, interaction(tp, ("EMAIL", "ana@example.com"), type="ORDER"))
    await evaluate(engine, token, claimed)
    row = await db.fetchrow("SELECT version, claim, created, touched FROM audience_queue")
    assert (row["version"], row["claim"], row["created"]) == (2, None, False)
    assert row["touched"].count('"ORDER"') == 1  # the second ingest's fact only
    ana = await db.fetchval("SELECT customer_id FROM identities WHERE value = 'ana@example.com'")
    assert await stored_members(db, "twice") == {ana}  # the round read both orders
    assert await drain_all(engine) == 1
    assert await db.fetchval("SELECT count(*) FROM audience_queue") == 0
    assert await membership_events(db) == [("twice", ana, "ENTERED", "INGEST")]


async def test_an_ingest_does_not_wait_for_a_round(
    client: httpx.AsyncClient, db: asyncpg.Connection, database_url: str
) -> None:
    """A round holds its customers FOR KEY SHARE: an ingest of one of them (FOR NO KEY UPDATE)
    goes on; a change that evaluates (FOR UPDATE, the control) waits for the round."""
    gql = GraphQLClient(client)
    tp = (await touchpoints(db))["web"]
    await gql.data(CREATE, {"input": {"key": "twice", "name": "Ordered twice", **TWICE}})
    first = await record(gql, interaction(tp, ("EMAIL", "ana@example.com"), type="ORDER"))
    ana = row_id(first["customer"]["id"])
    round_ = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    other = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    try:
        holding = round_.transaction()
        await holding.start()
        await round_.execute("SELECT FROM customers WHERE id = $1 FOR KEY SHARE", ana)
        item = interaction(tp, ("EMAIL", "ana@example.com"), type="ORDER")
        await asyncio.wait_for(record(gql, item), timeout=60)
        # The control: FOR UPDATE of Ana is not granted while the round holds it.
        async with other.transaction():
            await other.execute("SET LOCAL lock_timeout = '200ms'")
            with pytest.raises(asyncpg.LockNotAvailableError):
                await other.execute("SELECT FROM customers WHERE id = $1 FOR UPDATE", ana)
        await holding.rollback()
    finally:
        await round_.close()
        await other.close()


MERGE = """
mutation($input: MergeCustomersInput!) { mergeCustomers(input: $input) { merge { id } } }
"""


async def test_a_merge_into_a_queued_new_customer_is_not_skipped(
    client: httpx.AsyncClient, db: asyncpg.Connection, engine: Any
) -> None:
    """A customer queued as created (its facts were all its interactions) is merged with one
    holding an ORDER before its drain; its next visit must still be judged on everything (the
    merge's evaluation clears "created": the relevance rule for new customers would skip a
    segment needing an ORDER that no queued fact matches)."""
    gql = GraphQLClient(client)
    tp = (await touchpoints(db))["web"]
    both = {
        "activity": [
            {"interactions": {"types": ["ORDER"]}, "min": 1},
            {"interactions": {"types": ["PAGE_VIEW"]}, "min": 2},
        ]
    }
    await gql.data(CREATE, {"input": {"key": "both", "name": "Ordered and browsed", **both}})
    x = await record(gql, interaction(tp, ("EMAIL", "x@example.com"), type="PAGE_VIEW"))
    y = await record(gql, interaction(tp, ("EMAIL", "y@example.com"), type="ORDER"))
    merged = {"survivorId": x["customer"]["id"], "mergedIds": [y["customer"]["id"]]}
    await gql.data(MERGE, {"input": merged})
    assert await stored_members(db, "both") == set()  # one page view so far
    await record(gql, interaction(tp, ("EMAIL", "x@example.com"), type="PAGE_VIEW"))
    await settled(engine)
    assert await stored_members(db, "both") == {row_id(x["customer"]["id"])}
