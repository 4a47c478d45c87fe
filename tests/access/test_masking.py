"""Personal fields are masked for every principal without the pii scope, on every path."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import asyncpg
import pytest

from tests.access_world import World, build_world, share_with_partners
from tests.conftest import GraphQLClient

GqlAs = Callable[..., Awaitable[GraphQLClient]]
PROFILE = """query($id: ID!) { customer(id: $id) {
    displayName traits identities { kind value }
    interactions(orderBy: OCCURRED_AT_ASC) { nodes { summary attributes } }
} }"""


@pytest.fixture
async def world(db: asyncpg.Connection) -> World:
    world = await build_world(db)
    await share_with_partners(db, world.ana, world.bob)
    return world


def _masked(customer: dict[str, object]) -> None:
    assert customer["displayName"] == "•••"
    assert customer["traits"] == {"tier": "gold", "email": "•••"}
    assert customer["identities"] == [
        {"kind": "EMAIL", "value": "a•••@example.com"},
        {"kind": "PHONE", "value": "•••58"},
    ]
    web = customer["interactions"]["nodes"][0]  # type: ignore[index]
    assert web["summary"] == "•••"
    assert web["attributes"] == {"ip": "•••", "campaign": "spring"}


def _clear(customer: dict[str, object]) -> None:
    assert customer["displayName"] == "Ana Silva"
    assert customer["traits"] == {"tier": "gold", "email": "ana@example.com"}
    assert {"kind": "EMAIL", "value": "ana@example.com"} in customer["identities"]  # type: ignore[operator]
    web = customer["interactions"]["nodes"][0]  # type: ignore[index]
    assert web["summary"] == "Ana asked about running shoes"
    assert web["attributes"] == {"ip": "192.0.2.1", "campaign": "spring"}


@pytest.mark.parametrize(
    ("role", "scopes"),
    [("ANALYST", {}), ("FRONTEND", {}), ("PARTNER", {"channels": ["WEB", "MOBILE"]})],
)
async def test_masked_without_pii(
    gql_as: GqlAs, world: World, role: str, scopes: dict[str, object]
) -> None:
    client = await gql_as(role, **scopes)
    data = await client.data(PROFILE, {"id": world.id("Customer", world.ana)})
    _masked(data["customer"])


@pytest.mark.parametrize("role", ["ANALYST", "FRONTEND"])
async def test_clear_with_pii(gql_as: GqlAs, world: World, role: str) -> None:
    client = await gql_as(role, pii=True)
    data = await client.data(PROFILE, {"id": world.id("Customer", world.ana)})
    _clear(data["customer"])


async def test_admin_sees_clear(gql: GraphQLClient, world: World) -> None:
    data = await gql.data(PROFILE, {"id": world.id("Customer", world.ana)})
    _clear(data["customer"])


async def test_masked_through_node_entities_and_relations(gql_as: GqlAs, world: World) -> None:
    analyst = await gql_as("ANALYST")
    data = await analyst.data(
        """query($c: ID!, $i: ID!, $r: [_Any!]!) {
            node(id: $c) { ... on Customer { displayName } }
            interaction(id: $i) { summary customer { displayName identities { value } } }
            _entities(representations: $r) { ... on Customer { displayName } }
            customers { nodes { displayName } }
        }""",
        {
            "c": world.id("Customer", world.ana),
            "i": world.id("Interaction", world.ana_web),
            "r": [{"__typename": "Customer", "id": world.id("Customer", world.bob)}],
        },
    )
    assert data["node"]["displayName"] == "•••"
    assert data["interaction"]["summary"] == "•••"
    assert data["interaction"]["customer"]["displayName"] == "•••"
    assert "ana@" not in str(data)
    assert data["_entities"] == [{"displayName": "•••"}]
    assert {c["displayName"] for c in data["customers"]["nodes"]} == {"•••"}


async def test_filtering_on_personal_fields_needs_pii(gql_as: GqlAs, world: World) -> None:
    analyst = await gql_as("ANALYST")
    for query in [
        '{ customers(filter: {displayName: {startsWith: "An"}}) { totalCount } }',
        '{ customers(filter: {trait: {key: "email", exists: true}}) { totalCount } }',
        # Any case and separator of a personal key; a whole object would test what is inside.
        '{ customers(filter: {trait: {key: "Contact_E-Mail", exists: true}}) { totalCount } }',
        '{ customers(filter: {trait: {key: "contact", eq: {email: "a@b.co"}}}) { totalCount } }',
        '{ customers(filter: {trait: {key: "tags", in: [["vip"]]}}) { totalCount } }',
        "{ customers(orderBy: [DISPLAY_NAME_ASC]) { totalCount } }",
    ]:
        error = await analyst.error(query)
        assert error["extensions"]["code"] == "FORBIDDEN", query
    allowed = await analyst.data(
        '{ customers(filter: {trait: {key: "tier", eq: "gold"}}) { totalCount } }'
    )
    assert allowed["customers"]["totalCount"] == 1
    with_pii = await gql_as("ANALYST", pii=True)
    data = await with_pii.data(
        '{ customers(filter: {displayName: {startsWith: "An"}}) { totalCount } }'
    )
    assert data["customers"]["totalCount"] == 1


async def test_personal_keys_are_configurable(app_with: object, world: World) -> None:
    """HUB_PERSONAL_KEYS adds patterns to the defaults (e-mail stays masked); the deprecated
    HUB_PERSONAL_TRAITS still counts, as whole keys."""
    from tests.conftest import make_key

    for setting in ({"personal_keys": ["tier"]}, {"personal_traits": ["tier"]}):
        async with app_with(**setting) as (client, engine):  # type: ignore[operator]
            key = await make_key(engine, "ANALYST")
            response = await client.post(
                "/graphql",
                json={
                    "query": "query($id: ID!) { customer(id: $id) { traits } }",
                    "variables": {"id": world.id("Customer", world.ana)},
                },
                headers={"Authorization": f"Bearer {key}"},
            )
        assert response.json()["data"]["customer"]["traits"] == {"tier": "•••", "email": "•••"}
