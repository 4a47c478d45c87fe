"""Export and erasure: everything held comes out; erasure removes the personal data, keeps the
anonymous facts, and remembers the identifiers so the person is not silently re-linked."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import pytest

from hub.access.policy import is_erased_identifier
from hub.core.enums import IdentityKind
from hub.identity.identifiers import normalize_identifier
from tests.access_world import World, build_world
from tests.conftest import GraphQLClient


@pytest.fixture
async def world(db: asyncpg.Connection) -> World:
    return await build_world(db)


async def test_export_holds_everything(gql: GraphQLClient, world: World) -> None:
    ana = world.id("Customer", world.ana)
    await gql.data(
        """mutation($id: ID!) { setConsent(input: {customerId: $id, purpose: ANALYTICS,
            status: GRANTED}) { status } }""",
        {"id": ana},
    )
    data = await gql.data("query($id: ID!) { exportCustomer(id: $id) }", {"id": ana})
    document = data["exportCustomer"]
    assert document["customers"][0]["display_name"] == "Ana Silva"
    assert {i["value"] for i in document["identities"]} == {"ana@example.com", "+442079460958"}
    assert len(document["interactions"]) == 2
    assert document["consents"][0]["purpose"] == "ANALYTICS"
    assert len(document["consentHistory"]) == 1
    assert [c["key"] for c in document["conversations"]] == ["T-1"]
    assert "Bob" not in str(document)
    log = await gql.data("{ auditLog { action targetIds } }")
    assert {"action": "exportCustomer", "targetIds": [ana]} in log["auditLog"]


RECORD = """
mutation($tp: ID!, $attributes: JSON) {
  recordInteraction(input: {identities: [{kind: EMAIL, value: "ana@example.com"}],
                            touchpointId: $tp, type: QUESTION, direction: INBOUND,
                            summary: "Ana wrote from her desk", attributes: $attributes}) {
    interaction { id }
  }
}
"""
CONSENT = """mutation($id: ID!, $purpose: ConsentPurpose!, $status: ConsentStatus!) {
  setConsent(input: {customerId: $id, purpose: $purpose, status: $status}) { status } }"""
# Every personal attribute of the default configuration, and one that is not personal.
ATTRIBUTES = {
    "email": "ana@example.com",
    "phone": "+442079460958",
    "address": "1 Long Lane",
    "ip": "192.0.2.9",
    "message": "call me",
    "campaign": "spring",
}


async def test_erase_removes_personal_data_and_keeps_facts(
    gql: GraphQLClient, world: World, db: asyncpg.Connection, engine: Any
) -> None:
    ana = world.id("Customer", world.ana)
    bob = world.id("Customer", world.bob)
    # Consents with history (granted, revoked, granted again) for both customers, and
    # events from real ingest, so that erasure has consents and event payloads to remove.
    for status in ("GRANTED", "REVOKED", "GRANTED"):
        await gql.data(CONSENT, {"id": ana, "purpose": "ANALYTICS", "status": status})
    await gql.data(CONSENT, {"id": ana, "purpose": "PARTNER_SHARING", "status": "GRANTED"})
    await gql.data(CONSENT, {"id": bob, "purpose": "ANALYTICS", "status": "GRANTED"})
    await gql.data(RECORD, {"tp": world.id("Touchpoint", world.site), "attributes": ATTRIBUTES})

    async def held(table: str, customer: Any) -> int:
        count: int = await db.fetchval(
            f"SELECT count(*) FROM {table} WHERE customer_id = $1", customer
        )
        return count

    assert (await held("consents", world.ana), await held("consent_history", world.ana)) == (2, 4)
    assert (await held("consents", world.bob), await held("consent_history", world.bob)) == (1, 1)
    events_before = await db.fetch(
        "SELECT id, kind, payload::text AS payload FROM events WHERE customer_id = $1 ORDER BY id",
        world.ana,
    )
    # The check below can fail: before erasure the ingest's events carry payloads.
    assert [e["kind"] for e in events_before] == ["JOURNEY_STAGE_CHANGED", "INTERACTION_RECORDED"]
    assert '"type": "QUESTION"' in events_before[1]["payload"], events_before
    bob_events = await db.fetch(
        "SELECT id, payload FROM events WHERE customer_id = $1 ORDER BY id", world.bob
    )

    erased = await gql.data(
        "mutation($id: ID!) { eraseCustomer(id: $id) { customerId identitiesRemoved } }",
        {"id": ana},
    )
    assert erased["eraseCustomer"] == {"customerId": ana, "identitiesRemoved": 2}
    data = await gql.data(
        """query($id: ID!) { customer(id: $id) { displayName traits identities { value }
            consents { status }
            interactions { totalCount nodes { summary attributes channel { code } } } } }""",
        {"id": ana},
    )
    customer = data["customer"]
    assert customer["displayName"] is None
    assert customer["traits"] == {}
    assert customer["identities"] == []
    assert customer["consents"] == []
    assert customer["interactions"]["totalCount"] == 3  # anonymous facts stay for aggregates
    assert sorted(
        (n["channel"]["code"], n["summary"], json.dumps(n["attributes"], sort_keys=True))
        for n in customer["interactions"]["nodes"]
    ) == [
        ("MOBILE", None, "{}"),
        ("WEB", None, '{"campaign": "spring"}'),
        ("WEB", None, '{"campaign": "spring"}'),
    ]
    # In the database: consents and their history gone, every event payload emptied (the events
    # themselves stay), the customer row marked; Bob's consent and events untouched.
    assert (await held("consents", world.ana), await held("consent_history", world.ana)) == (0, 0)
    assert (await held("consents", world.bob), await held("consent_history", world.bob)) == (1, 1)
    events_after = await db.fetch(
        "SELECT id, payload FROM events WHERE customer_id = $1 ORDER BY id", world.ana
    )
    assert [(e["id"], e["payload"]) for e in events_after] == [
        (e["id"], "{}") for e in events_before
    ]
    assert (
        await db.fetch(
            "SELECT id, payload FROM events WHERE customer_id = $1 ORDER BY id", world.bob
        )
        == bob_events
    )
    row = await db.fetchrow(
        "SELECT display_name, traits::text, trait_updated_at::text, erased_at IS NOT NULL AS erased"
        " FROM customers WHERE id = $1",
        world.ana,
    )
    assert tuple(row) == (None, "{}", "{}", True)
    assert await db.fetchval("SELECT count(*) FROM erasures WHERE customer_id = $1", world.ana) == 1
    error = await gql.error('{ customerByIdentity(kind: EMAIL, value: "ana@example.com") { id } }')
    assert error["extensions"]["code"] == "NOT_FOUND"
    # Bob is untouched.
    assert (
        await db.fetchval("SELECT count(*) FROM identities WHERE customer_id = $1", world.bob) == 1
    )
    # Re-ingest check: the old e-mail, however spelled, is known as erased; others are not.
    email = normalize_identifier(IdentityKind.EMAIL, " Ana@Example.COM ")
    async with engine.connect() as connection:
        assert await is_erased_identifier(connection, "EMAIL", email)
        assert await is_erased_identifier(connection, "PHONE", "+442079460958")
        assert not await is_erased_identifier(connection, "EMAIL", "bob@example.com")


async def test_erase_unknown_customer_is_not_found(gql: GraphQLClient, world: World) -> None:
    error = await gql.error(
        "mutation($id: ID!) { eraseCustomer(id: $id) { customerId } }",
        {"id": world.id("Customer", world.ana_web)},
    )
    assert error["extensions"]["code"] == "NOT_FOUND"
