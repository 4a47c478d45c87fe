"""Export and erasure: everything held comes out; erasure removes the personal data, keeps the
anonymous facts, and remembers the identifiers so the person is not silently re-linked."""

from __future__ import annotations

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


async def test_erase_removes_personal_data_and_keeps_facts(
    gql: GraphQLClient, world: World, db: asyncpg.Connection, engine: Any
) -> None:
    ana = world.id("Customer", world.ana)
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
    assert customer["interactions"]["totalCount"] == 2  # anonymous facts stay for aggregates
    for node in customer["interactions"]["nodes"]:
        assert node["summary"] is None
        assert "ip" not in node["attributes"]
    assert {n["channel"]["code"] for n in customer["interactions"]["nodes"]} == {"WEB", "MOBILE"}
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
