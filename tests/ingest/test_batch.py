"""recordInteractions: identity resolution across a batch, merges, stage order, statement count."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import asyncpg

from tests.driver_statements import DriverStatements
from tests.factories import T0
from tests.ingest_support import RECORD_MANY, interaction, record, touchpoints

EMAIL = ("EMAIL", "ana@example.com")
PHONE = ("PHONE", "+4915112345670")
# The advisory locks, the lookups, one statement writing everything, the stored customers for the
# payload, the audit row written before the change and its outcome after it. No key lookup: the
# warm-up request put the key in the process's key cache (hub/access/key_cache.py).
EXPECTED_BULK = 6


def at(minutes: int) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat()


async def test_people_new_in_the_batch_are_joined_without_a_merge(
    gql: Any, db: asyncpg.Connection
) -> None:
    tp = await touchpoints(db)
    inputs = [
        interaction(tp["web"], EMAIL, occurredAt=at(0)),
        interaction(tp["call"], PHONE, occurredAt=at(1)),
        interaction(tp["chat"], PHONE, EMAIL, occurredAt=at(2)),
    ]
    result = (await gql.data(RECORD_MANY, {"inputs": inputs}))["recordInteractions"]
    assert len({s["customer"]["id"] for s in result["stored"]}) == 1
    assert [s["created"] for s in result["stored"]] == [True, False, False]
    assert await db.fetchval("SELECT count(*) FROM customers") == 1
    assert await db.fetchval("SELECT count(*) FROM merges") == 0


async def test_people_joined_in_the_batch_take_the_stage_entered_last(
    gql: Any, db: asyncpg.Connection
) -> None:
    tp = await touchpoints(db)
    inputs = [
        interaction(tp["web"], EMAIL, type="PAGE_VIEW", occurredAt=at(0)),
        interaction(tp["store"], PHONE, type="ORDER", occurredAt=at(1)),
        interaction(tp["chat"], PHONE, EMAIL, type="CHAT_MESSAGE", occurredAt=at(2)),  # no rule
    ]
    await gql.data(RECORD_MANY, {"inputs": inputs})
    # One customer, in the stage its order put it in (as a merge would: the stage entered last).
    [customer] = await db.fetch(
        "SELECT current_stage, stage_entered_at, stage_channel_code FROM customers"
    )
    assert tuple(customer) == ("PURCHASE", T0 + timedelta(minutes=1), "PHYSICAL")
    rows = await db.fetch("SELECT stage, transition FROM stage_history ORDER BY entered_at")
    assert [(r["stage"], r["transition"]) for r in rows] == [
        ("AWARENESS", "INITIAL"),
        ("PURCHASE", "INITIAL"),
    ]


async def test_a_batch_that_proves_two_known_customers_one_person_merges_them(
    gql: Any, db: asyncpg.Connection
) -> None:
    tp = await touchpoints(db)
    ana = await record(gql, interaction(tp["web"], EMAIL, occurredAt=at(0)))
    await record(gql, interaction(tp["call"], PHONE, occurredAt=at(1)))
    inputs = [
        interaction(tp["store"], ("EMAIL", "ben@example.com"), occurredAt=at(3)),
        interaction(tp["chat"], PHONE, EMAIL, occurredAt=at(2)),
        interaction(tp["call"], PHONE, type="ORDER", occurredAt=at(4)),
    ]
    result = (await gql.data(RECORD_MANY, {"inputs": inputs}))["recordInteractions"]
    stored = {s["index"]: s for s in result["stored"]}
    assert len(stored[1]["merges"]) == 1
    assert stored[1]["customer"]["id"] == stored[2]["customer"]["id"] == ana["customer"]["id"]
    assert await db.fetchval("SELECT count(*) FROM customers WHERE merged_into_id IS NULL") == 2
    stage = await db.fetchval(
        "SELECT current_stage FROM customers WHERE id = (SELECT"
        " customer_id FROM identities WHERE value = 'ana@example.com')"
    )
    assert stage == "PURCHASE"


async def test_a_batch_is_processed_in_time_order_for_the_journey(
    gql: Any, db: asyncpg.Connection
) -> None:
    tp = await touchpoints(db)
    inputs = [
        interaction(tp["store"], EMAIL, type="ORDER", occurredAt=at(30)),
        interaction(tp["web"], EMAIL, type="PAGE_VIEW", occurredAt=at(0)),
        interaction(tp["web"], EMAIL, type="PRODUCT_VIEW", occurredAt=at(10)),
    ]
    await gql.data(RECORD_MANY, {"inputs": inputs})
    rows = await db.fetch("SELECT stage, transition FROM stage_history ORDER BY entered_at")
    assert [(r["stage"], r["transition"]) for r in rows] == [
        ("AWARENESS", "INITIAL"),
        ("CONSIDERATION", "FORWARD"),
        ("PURCHASE", "FORWARD"),
    ]


async def test_the_bulk_path_uses_a_fixed_number_of_statements(
    gql: Any, db: asyncpg.Connection, count_driver_statements: DriverStatements
) -> None:
    tp = await touchpoints(db)
    counted = count_driver_statements

    async def statements(size: int, tag: str) -> int:
        inputs = [
            interaction(
                tp["web"],
                ("EMAIL", f"{tag}{n}@example.com"),
                idempotencyKey=f"{tag}{n}",
                conversationKey=f"{tag}-conv-{n % 3}",
            )
            for n in range(size)
        ]
        counted.clear()
        result = (await gql.data(RECORD_MANY, {"inputs": inputs}))["recordInteractions"]
        assert len(result["stored"]) == size
        return counted.count

    await statements(1, "warm")  # connections opened and their types introspected
    small, large = await statements(5, "a"), await statements(500, "b")
    # Counted where asyncpg sends them (the bulk path may run on asyncpg directly): the same,
    # exact number for 5 new people as for 500.
    assert (small, large) == (EXPECTED_BULK, EXPECTED_BULK), counted.report()
    assert await db.fetchval("SELECT count(*) FROM interactions") == 506
