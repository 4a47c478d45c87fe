"""recordInteraction: identity resolution, attaching, creating, guards, events."""

from __future__ import annotations

from typing import Any

import asyncpg

from tests.ingest_support import RECORD_BARE, interaction, record, row_id, touchpoints

EMAIL = ("EMAIL", " Ana@Example.COM ")
PHONE = ("PHONE", "+44 20 7946 0958")


async def test_first_interaction_creates_a_customer_with_normalised_identities(
    gql: Any, db: asyncpg.Connection
) -> None:
    tp = await touchpoints(db)
    result = await record(gql, interaction(tp["web"], EMAIL, PHONE, type="PRODUCT_VIEW"))
    assert result["created"] is True and result["duplicate"] is False
    assert sorted((i["kind"], i["value"]) for i in result["customer"]["identities"]) == [
        ("EMAIL", "ana@example.com"),
        ("PHONE", "+442079460958"),
    ]
    assert result["customer"]["currentStage"] == {"code": "CONSIDERATION"}
    row = await db.fetchrow("SELECT * FROM customers")
    assert row["first_seen_at"] == row["last_seen_at"] is not None
    matched = await db.fetchval(
        "SELECT i.value FROM interactions x JOIN identities i ON i.id = x.matched_identity_id"
    )
    assert matched == "ana@example.com"
    kinds = await db.fetch("SELECT kind, subject_id, channel_code, touchpoint_id FROM events")
    recorded = [e for e in kinds if e["kind"] == "INTERACTION_RECORDED"]
    assert len(recorded) == 1
    assert recorded[0]["subject_id"] == row_id(result["interaction"]["id"])
    assert recorded[0]["channel_code"] == "WEB"
    assert recorded[0]["touchpoint_id"] == row_id(tp["web"])
    assert {e["kind"] for e in kinds} == {"INTERACTION_RECORDED", "JOURNEY_STAGE_CHANGED"}


async def test_a_known_identifier_attaches_and_links_the_new_ones(
    gql: Any, db: asyncpg.Connection
) -> None:
    tp = await touchpoints(db)
    first = await record(gql, interaction(tp["web"], EMAIL))
    second = await record(gql, interaction(tp["call"], ("EMAIL", "ana@example.com"), PHONE))
    assert second["created"] is False
    assert second["customer"]["id"] == first["customer"]["id"]
    assert len(second["customer"]["identities"]) == 2
    assert await db.fetchval("SELECT count(*) FROM customers") == 1


async def test_identifiers_of_two_customers_merge_them_into_the_oldest(
    gql: Any, db: asyncpg.Connection
) -> None:
    tp = await touchpoints(db)
    ana = await record(gql, interaction(tp["web"], EMAIL))
    phone = await record(gql, interaction(tp["call"], PHONE))
    both = await record(gql, interaction(tp["chat"], PHONE, EMAIL))
    assert both["customer"]["id"] == ana["customer"]["id"]
    [merge] = both["merges"]
    assert merge["survivorId"] == ana["customer"]["id"]
    assert merge["mergedIds"] == [phone["customer"]["id"]]
    assert merge["rule"] == "IDENTITY_MATCH" and merge["identityKind"] == "PHONE"
    assert merge["active"] is True
    assert (
        await db.fetchval(
            "SELECT count(*) FROM interactions WHERE customer_id = $1",
            row_id(ana["customer"]["id"]),
        )
        == 3
    )
    merged = await db.fetchval(
        "SELECT merged_into_id FROM customers WHERE id = $1", row_id(phone["customer"]["id"])
    )
    assert merged == row_id(ana["customer"]["id"])
    again = await gql.data(
        "query($id: ID!) { customer(id: $id) { id requestedId } }",
        {"id": phone["customer"]["id"]},
    )
    assert again["customer"] == {
        "id": ana["customer"]["id"],
        "requestedId": phone["customer"]["id"],
    }
    assert await db.fetchval("SELECT count(*) FROM events WHERE kind = 'CUSTOMER_MERGED'") == 1


async def test_a_weak_identifier_alone_never_merges_two_known_customers(
    gql: Any, db: asyncpg.Connection
) -> None:
    tp = await touchpoints(db)
    cookie = ("COOKIE", "c-123")
    ana = await record(gql, interaction(tp["web"], EMAIL, cookie))
    ben = await record(gql, interaction(tp["web"], ("EMAIL", "ben@example.com")))
    shared = await record(gql, interaction(tp["web"], cookie, ("EMAIL", "ben@example.com")))
    assert shared["merges"] == []
    assert shared["customer"]["id"] == ben["customer"]["id"]
    assert "weak" in shared["warnings"][0]
    assert await db.fetchval("SELECT count(*) FROM customers WHERE merged_into_id IS NULL") == 2
    owner = await db.fetchval("SELECT customer_id FROM identities WHERE kind = 'COOKIE'")
    assert owner == row_id(ana["customer"]["id"])


async def test_blocked_identifiers_are_ignored_and_alone_are_an_error(
    gql: Any, db: asyncpg.Connection
) -> None:
    tp = await touchpoints(db)
    a = await record(gql, interaction(tp["web"], ("EMAIL", "test@example.com"), EMAIL))
    assert [i["value"] for i in a["customer"]["identities"]] == ["ana@example.com"]
    error = await gql.error(
        RECORD_BARE,
        {"input": interaction(tp["web"], ("EMAIL", "TEST@example.com"))},
    )
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "blocked" in error["message"]


async def test_at_most_n_identifiers_of_one_kind_are_linked(
    gql: Any, db: asyncpg.Connection, settings: Any
) -> None:
    tp = await touchpoints(db)
    limit = settings.max_identities_per_kind
    emails = [("EMAIL", f"ana{n}@example.com") for n in range(limit + 2)]
    result = await record(gql, interaction(tp["web"], *emails))
    assert len(result["customer"]["identities"]) == limit
    assert len(result["warnings"]) == 2
