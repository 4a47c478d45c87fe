"""Profile mutations: upsertCustomer, updateTraits survivorship, addIdentity, removeIdentity."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import asyncpg

from tests.factories import T0, gid

UPSERT = """
mutation($input: UpsertCustomerInput!) {
  upsertCustomer(input: $input) { created customer { id displayName traits identities { value } } }
}
"""
TRAITS = """
mutation($id: ID!, $traits: JSON!, $at: DateTime) {
  updateTraits(customerId: $id, traits: $traits, observedAt: $at) { traits }
}
"""
ADD = """
mutation($id: ID!, $value: String!) {
  addIdentity(customerId: $id, kind: EMAIL, value: $value) { identities { value } }
}
"""
REMOVE = """
mutation($id: ID!, $value: String!) {
  removeIdentity(customerId: $id, kind: EMAIL, value: $value) { id }
}
"""


async def _create(gql: Any, email: str) -> str:
    result = await gql.data(
        UPSERT, {"input": {"identities": [{"kind": "EMAIL", "value": email}], "displayName": "A"}}
    )
    assert result["upsertCustomer"]["created"] is True
    customer_id: str = result["upsertCustomer"]["customer"]["id"]
    return customer_id


async def test_upsert_finds_the_same_customer_by_identity(gql: Any, db: asyncpg.Connection) -> None:
    cid = await _create(gql, "ana@example.com")
    again = await gql.data(
        UPSERT,
        {
            "input": {
                "identities": [{"kind": "EMAIL", "value": "ANA@example.com"}],
                "traits": {"tier": "gold"},
            }
        },
    )
    assert again["upsertCustomer"]["created"] is False
    assert again["upsertCustomer"]["customer"]["id"] == cid
    assert again["upsertCustomer"]["customer"]["traits"] == {"tier": "gold"}
    neither = await gql.error(UPSERT, {"input": {"displayName": "x"}})
    assert neither["extensions"]["code"] == "BAD_USER_INPUT"
    events = await db.fetchval("SELECT count(*) FROM events WHERE kind = 'CUSTOMER_UPDATED'")
    assert events == 2


async def test_trait_survivorship(gql: Any, db: asyncpg.Connection) -> None:
    cid = await _create(gql, "ana@example.com")
    # Observation times from the tests' clock (weeks before the server's now): the last update,
    # sent without `at`, is the server's now and must be the newest.
    now = (T0 + timedelta(days=59)).isoformat()
    older = (T0 + timedelta(days=31)).isoformat()
    await gql.data(
        TRAITS, {"id": cid, "traits": {"city": "Lyon", "first_order_at": "2026-02"}, "at": now}
    )
    stale = await gql.data(TRAITS, {"id": cid, "traits": {"city": "Paris"}, "at": older})
    assert stale["updateTraits"]["traits"]["city"] == "Lyon"  # older observation loses
    empty = await gql.data(TRAITS, {"id": cid, "traits": {"city": None, "tier": ""}})
    assert empty["updateTraits"]["traits"] == {"city": "Lyon", "first_order_at": "2026-02"}
    newer = await gql.data(
        TRAITS, {"id": cid, "traits": {"city": "Nice", "first_order_at": "2027"}}
    )
    # city: most recent wins; first_order_at is declared FIRST-wins.
    assert newer["updateTraits"]["traits"] == {"city": "Nice", "first_order_at": "2026-02"}
    bad = await gql.error(TRAITS, {"id": cid, "traits": [1]})
    assert bad["extensions"]["code"] == "BAD_USER_INPUT"


async def test_identities_are_added_guarded_and_removed(gql: Any, db: asyncpg.Connection) -> None:
    ana = await _create(gql, "ana@example.com")
    ben = await _create(gql, "ben@example.com")
    added = await gql.data(ADD, {"id": ana, "value": " Ana.Work@Example.com"})
    assert {i["value"] for i in added["addIdentity"]["identities"]} == {
        "ana@example.com",
        "ana.work@example.com",
    }
    taken = await gql.error(ADD, {"id": ana, "value": "ben@example.com"})
    assert taken["extensions"]["code"] == "CONFLICT"
    invalid = await gql.error(ADD, {"id": ana, "value": "nope"})
    assert invalid["extensions"]["code"] == "BAD_USER_INPUT"
    removed = await gql.data(REMOVE, {"id": ana, "value": "ana.work@example.com"})
    assert removed["removeIdentity"]["id"] == ana
    missing = await gql.error(REMOVE, {"id": ana, "value": "ana.work@example.com"})
    assert missing["extensions"]["code"] == "NOT_FOUND"
    # Each keeps exactly its own address: the refused add moved nothing from Ben to Ana.
    owners = await db.fetch("SELECT customer_id, value FROM identities ORDER BY value")
    assert [(gid("Customer", o["customer_id"]), o["value"]) for o in owners] == [
        (ana, "ana@example.com"),
        (ben, "ben@example.com"),
    ]
