"""Segments through GraphQL: create (materialised at once), membership kept by real ingest,
members and counts, the customers filter, Customer.segments, preview, update, delete, errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from tests.audiences.support import (
    CREATE,
    Rule,
    all_members,
    expected_members,
    membership_events,
    stored_members,
)
from tests.factories import gid, zulu
from tests.ingest_support import interaction, record, row_id, touchpoints

BUYERS = {
    "key": "web-buyers",
    "name": "Buyers",
    "description": "two orders in 30 days",
    "activity": [{"interactions": {"types": ["ORDER"]}, "withinDays": 30, "min": 2}],
}
BUYERS_RULE = Rule(types=("ORDER",), days=30, low=2, high=None)


async def _orders(gql: Any, tp: str, email: str, ages_days: list[float]) -> str:
    """Record one ORDER per age (days ago) for ``email``; returns the customer's global id."""
    customer = ""
    for age in ages_days:
        at = datetime.now(UTC) - timedelta(days=age)
        result = await record(
            gql, interaction(tp, ("EMAIL", email), type="ORDER", occurredAt=zulu(at))
        )
        customer = result["customer"]["id"]
    return customer


async def test_create_materialises_then_ingest_keeps_it_exact(
    gql: Any, db: asyncpg.Connection
) -> None:
    tp = await touchpoints(db)
    ana = await _orders(gql, tp["web"], "ana@example.com", [3, 10])
    bob = await _orders(gql, tp["web"], "bob@example.com", [5])
    cy = await _orders(gql, tp["web"], "cy@example.com", [40, 50])  # outside the window
    await record(gql, interaction(tp["web"], ("EMAIL", "dee@example.com"), type="PAGE_VIEW"))

    created = (await gql.data(CREATE, {"input": BUYERS}))["createSegment"]
    now = datetime.now(UTC)
    expected = await expected_members(db, BUYERS_RULE, now)
    assert expected == {row_id(ana)}  # negative control: the rule is not trivially true
    assert created == {"key": "web-buyers", "name": "Buyers", "memberCount": 1}
    assert await stored_members(db, "web-buyers") == expected
    assert await membership_events(db) == []  # the initial members are the baseline

    # A real ingest makes Bob enter; Cy's old orders do not count.
    await _orders(gql, tp["web"], "bob@example.com", [1])
    await _orders(gql, tp["web"], "cy@example.com", [45])
    expected = await expected_members(db, BUYERS_RULE, datetime.now(UTC))
    assert expected == {row_id(ana), row_id(bob)}
    assert await stored_members(db, "web-buyers") == expected
    assert await membership_events(db) == [("web-buyers", row_id(bob), "ENTERED", "INGEST")]

    count, ids = await all_members(gql, "web-buyers")
    assert count == 2
    assert sorted(ids) == sorted([ana, bob])
    assert len(set(ids)) == 2

    listed = await gql.data(
        """query($f: CustomerFilter) { customers(filter: $f, first: 50) { nodes { id } } }""",
        {"f": {"segment": {"in": ["web-buyers"]}}},
    )
    assert sorted(n["id"] for n in listed["customers"]["nodes"]) == sorted([ana, bob])
    others = await gql.data(
        """query($f: CustomerFilter) { customers(filter: $f, first: 50) { nodes { id } } }""",
        {"f": {"segment": {"notIn": ["web-buyers"]}}},
    )
    everyone = {r["id"] for r in await db.fetch("SELECT id FROM customers")}
    assert {row_id(n["id"]) for n in others["customers"]["nodes"]} == everyone - expected
    assert row_id(cy) in everyone - expected

    seen = await gql.data(
        """query($id: ID!) { customer(id: $id) { segments { enteredAt segment { key name } } } }""",
        {"id": bob},
    )
    assert [s["segment"] for s in seen["customer"]["segments"]] == [
        {"key": "web-buyers", "name": "Buyers"}
    ]


async def test_preview_counts_without_writing(gql: Any, db: asyncpg.Connection) -> None:
    tp = await touchpoints(db)
    ana = await _orders(gql, tp["web"], "ana@example.com", [3, 10])
    await _orders(gql, tp["web"], "bob@example.com", [5])
    preview = await gql.data(
        """query($input: SegmentConditionsInput!) {
             previewSegment(input: $input) { count sample { id } } }""",
        {"input": {"activity": BUYERS["activity"]}},
    )
    assert preview["previewSegment"] == {"count": 1, "sample": [{"id": ana}]}
    assert await db.fetchval("SELECT count(*) FROM segments") == 0
    assert await db.fetchval("SELECT count(*) FROM segment_members") == 0


async def test_update_re_evaluates_with_events_and_delete_removes(
    gql: Any, db: asyncpg.Connection
) -> None:
    tp = await touchpoints(db)
    ana = await _orders(gql, tp["web"], "ana@example.com", [3, 10])
    bob = await _orders(gql, tp["web"], "bob@example.com", [5])
    await gql.data(CREATE, {"input": BUYERS})
    updated = await gql.data(
        """mutation($input: UpdateSegmentInput!) {
             updateSegment(input: $input) { key name memberCount } }""",
        {
            "input": {
                "key": "web-buyers",
                "name": "One order",
                "conditions": {
                    "activity": [
                        {"interactions": {"types": ["ORDER"]}, "withinDays": 30, "min": 1, "max": 1}
                    ]
                },
            }
        },
    )
    assert updated["updateSegment"] == {"key": "web-buyers", "name": "One order", "memberCount": 1}
    assert await stored_members(db, "web-buyers") == {row_id(bob)}
    assert sorted(await membership_events(db)) == sorted(
        [
            ("web-buyers", row_id(ana), "EXITED", "DEFINITION"),
            ("web-buyers", row_id(bob), "ENTERED", "DEFINITION"),
        ]
    )
    deleted = await gql.data(
        """mutation { deleteSegment(key: "web-buyers") { key } }""",
    )
    assert deleted["deleteSegment"] == {"key": "web-buyers"}
    assert await db.fetchval("SELECT count(*) FROM segment_members") == 0
    error = await gql.error("""{ segment(key: "web-buyers") { key } }""")
    assert error["extensions"]["code"] == "NOT_FOUND"


async def test_merge_unmerge_and_erasure_move_members(gql: Any, db: asyncpg.Connection) -> None:
    tp = await touchpoints(db)
    ana = await _orders(gql, tp["web"], "ana@example.com", [3])
    other = await _orders(gql, tp["app"], "ana.other@example.com", [4])
    await gql.data(CREATE, {"input": BUYERS})
    assert await stored_members(db, "web-buyers") == set()
    merged = await gql.data(
        """mutation($s: ID!, $m: [ID!]!) {
             mergeCustomers(input: {survivorId: $s, mergedIds: $m}) { merge { id } } }""",
        {"s": ana, "m": [other]},
    )
    assert await stored_members(db, "web-buyers") == {row_id(ana)}
    merge_id = merged["mergeCustomers"]["merge"]["id"]
    await gql.data(
        """mutation($id: ID!) { unmergeCustomer(mergeId: $id) { customers { id } } }""",
        {"id": merge_id},
    )
    assert await stored_members(db, "web-buyers") == set()
    assert [(c, r) for _, _, c, r in await membership_events(db)] == [
        ("ENTERED", "MERGE"),
        ("EXITED", "UNMERGE"),
    ]
    await gql.data(
        """mutation($s: ID!, $m: [ID!]!) {
             mergeCustomers(input: {survivorId: $s, mergedIds: $m}) { merge { id } } }""",
        {"s": ana, "m": [other]},
    )
    await gql.data("""mutation($id: ID!) { eraseCustomer(id: $id) { customerId } }""", {"id": ana})
    assert await stored_members(db, "web-buyers") == set()
    # The erasure emptied the payloads of Ana's earlier events, as of every event of hers.
    assert [(c, r) for _, _, c, r in await membership_events(db)] == [
        (None, None),
        (None, None),
        (None, None),
        ("EXITED", "ERASURE"),
    ]


BAD = [
    ({"filter": {}}, "filter` is empty"),
    ({}, "at least one condition"),
    ({"activity": [{"withinDays": 0}]}, "withinDays must be between 1"),
    ({"activity": [{"withinDays": -3}]}, "withinDays must be between 1"),
    ({"activity": [{"min": 3, "max": 1}]}, "`min` (3) is greater than `max` (1)"),
    ({"computed": [{"key": "nope", "gt": 1}]}, "unknown computed trait key(s): nope"),
    ({"filter": {"segment": {"in": ["x"]}}}, "cannot refer to segments"),
]


async def test_bad_definitions_are_clear_errors(gql: Any, db: asyncpg.Connection) -> None:
    for conditions, message in BAD:
        error = await gql.error(CREATE, {"input": {"key": "bad", "name": "Bad", **conditions}})
        assert error["extensions"]["code"] == "BAD_USER_INPUT", (conditions, error)
        assert message in error["message"], (conditions, error["message"])
    error = await gql.error(CREATE, {"input": {**BUYERS, "key": "no spaces"}})
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert await db.fetchval("SELECT count(*) FROM segments") == 0
    await gql.data(CREATE, {"input": BUYERS})
    error = await gql.error(CREATE, {"input": BUYERS})
    assert error["extensions"]["code"] == "CONFLICT"


async def test_partner_sees_only_members_in_scope(
    gql: Any, gql_as: Any, db: asyncpg.Connection
) -> None:
    tp = await touchpoints(db)
    ana = await _orders(gql, tp["web"], "ana@example.com", [3, 4])
    bob = await _orders(gql, tp["app"], "bob@example.com", [3, 4])
    for customer in (ana, bob):
        await gql.data(
            """mutation($id: ID!) { setConsent(input: {customerId: $id,
                 purpose: PARTNER_SHARING, status: GRANTED}) { status } }""",
            {"id": customer},
        )
    await gql.data(CREATE, {"input": BUYERS})
    assert await stored_members(db, "web-buyers") == {row_id(ana), row_id(bob)}
    partner = await gql_as("PARTNER", channels=["WEB"])
    count, ids = await all_members(partner, "web-buyers")
    assert (count, ids) == (1, [ana])
    admin_count, _ = await all_members(gql, "web-buyers")
    assert admin_count == 2  # negative control: the partner's 1 is its scope, not the data
    seen = await partner.data(
        """query($f: CustomerFilter) { customers(filter: $f) { nodes { id displayName } } }""",
        {"f": {"segment": {"in": ["web-buyers"]}}},
    )
    assert [n["id"] for n in seen["customers"]["nodes"]] == [ana]
    error = await partner.error(CREATE, {"input": {**BUYERS, "key": "p"}})
    assert error["extensions"]["code"] == "FORBIDDEN"
    assert gid("Customer", row_id(ana)) == ana
