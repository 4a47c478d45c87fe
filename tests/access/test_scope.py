"""Partner scope: out-of-scope interactions, conversations and customers look like not found,
through every path; in-scope ones are there."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import pytest

from tests.access_world import World, build_world, share_with_partners
from tests.conftest import GraphQLClient

GqlAs = Callable[..., Awaitable[GraphQLClient]]


@pytest.fixture
async def world(db: asyncpg.Connection) -> World:
    world = await build_world(db)
    await share_with_partners(db, world.ana, world.bob)
    return world


@pytest.fixture
async def partner(gql_as: GqlAs) -> GraphQLClient:
    return await gql_as("PARTNER", channels=["WEB"])


async def test_interaction_by_id_out_of_scope_is_not_found(
    partner: GraphQLClient, gql: GraphQLClient, world: World
) -> None:
    query = "query($id: ID!) { interaction(id: $id) { id } }"
    error = await partner.error(query, {"id": world.id("Interaction", world.ana_mobile)})
    assert error["extensions"]["code"] == "NOT_FOUND"
    seen = await partner.data(query, {"id": world.id("Interaction", world.ana_web)})
    assert seen["interaction"]["id"] == world.id("Interaction", world.ana_web)
    # The admin sees the one the partner may not.
    admin = await gql.data(query, {"id": world.id("Interaction", world.ana_mobile)})
    assert admin["interaction"]["id"] == world.id("Interaction", world.ana_mobile)


async def test_node_out_of_scope_is_not_found(partner: GraphQLClient, world: World) -> None:
    query = "query($id: ID!) { node(id: $id) { id } }"
    for type_name, key in [
        ("Interaction", world.ana_mobile),
        ("Conversation", world.bob_thread),
        ("Customer", world.bob),
    ]:
        error = await partner.error(query, {"id": world.id(type_name, key)})
        assert error["extensions"]["code"] == "NOT_FOUND", type_name
    for type_name, key in [
        ("Interaction", world.ana_web),
        ("Conversation", world.ana_thread),
        ("Customer", world.ana),
    ]:
        data = await partner.data(query, {"id": world.id(type_name, key)})
        assert data["node"]["id"] == world.id(type_name, key)


async def test_entities_out_of_scope_are_null(partner: GraphQLClient, world: World) -> None:
    query = """query($r: [_Any!]!) { _entities(representations: $r) {
        ... on Interaction { id } ... on Customer { id } } }"""
    representations = [
        {"__typename": "Interaction", "id": world.id("Interaction", world.ana_mobile)},
        {"__typename": "Interaction", "id": world.id("Interaction", world.ana_web)},
        {"__typename": "Customer", "id": world.id("Customer", world.bob)},
    ]
    data = await partner.data(query, {"r": representations})
    assert data["_entities"] == [
        None,
        {"id": world.id("Interaction", world.ana_web)},
        None,
    ]


async def test_relations_show_only_scope(
    partner: GraphQLClient, gql: GraphQLClient, world: World
) -> None:
    query = """query($id: ID!) { customer(id: $id) {
        interactions { totalCount nodes { id channel { code } } }
        lastInteraction { id }
        channelsUsed { channel { code } interactionCount }
        conversations { id interactions { id } lastInteraction { id } channels { code } }
    } }"""
    variables = {"id": world.id("Customer", world.ana)}
    mine = (await partner.data(query, variables))["customer"]
    assert mine["interactions"]["totalCount"] == 1
    assert [n["channel"]["code"] for n in mine["interactions"]["nodes"]] == ["WEB"]
    assert mine["lastInteraction"]["id"] == world.id("Interaction", world.ana_web)
    assert [u["channel"]["code"] for u in mine["channelsUsed"]] == ["WEB"]
    [thread] = mine["conversations"]
    assert [i["id"] for i in thread["interactions"]] == [world.id("Interaction", world.ana_web)]
    assert thread["lastInteraction"]["id"] == world.id("Interaction", world.ana_web)
    assert [c["code"] for c in thread["channels"]] == ["WEB"]
    everything = (await gql.data(query, variables))["customer"]
    assert everything["interactions"]["totalCount"] == 2
    assert everything["lastInteraction"]["id"] == world.id("Interaction", world.ana_mobile)


async def test_lists_show_only_scope(partner: GraphQLClient, world: World) -> None:
    data = await partner.data(
        """{ customers { totalCount nodes { id } }
             interactions { totalCount nodes { id } } }"""
    )
    assert [n["id"] for n in data["customers"]["nodes"]] == [world.id("Customer", world.ana)]
    assert data["customers"]["totalCount"] == 1
    assert [n["id"] for n in data["interactions"]["nodes"]] == [
        world.id("Interaction", world.ana_web)
    ]
    assert data["interactions"]["totalCount"] == 1


async def test_touchpoint_interactions_out_of_scope_are_empty(
    partner: GraphQLClient, world: World
) -> None:
    query = (
        "query($id: ID!) { node(id: $id) { ... on Touchpoint { interactions { totalCount } } } }"
    )
    store: Any = await partner.data(query, {"id": world.id("Touchpoint", world.store)})
    assert store["node"]["interactions"]["totalCount"] == 0
    site: Any = await partner.data(query, {"id": world.id("Touchpoint", world.site)})
    assert site["node"]["interactions"]["totalCount"] == 1


async def test_conversation_and_customer_out_of_scope_are_not_found(
    partner: GraphQLClient, world: World
) -> None:
    error = await partner.error(
        "query($id: ID!) { conversation(id: $id) { id } }",
        {"id": world.id("Conversation", world.bob_thread)},
    )
    assert error["extensions"]["code"] == "NOT_FOUND"
    error = await partner.error(
        "query($id: ID!) { customer(id: $id) { id } }", {"id": world.id("Customer", world.bob)}
    )
    assert error["extensions"]["code"] == "NOT_FOUND"
    error = await partner.error(
        '{ customerByIdentity(kind: EMAIL, value: "bob@example.com") { id } }'
    )
    assert error["extensions"]["code"] == "NOT_FOUND"


async def test_touchpoint_scope(gql_as: GqlAs, world: World) -> None:
    partner = await gql_as("PARTNER", touchpoints=[str(world.store)])
    data = await partner.data("{ interactions { nodes { id } } }")
    assert [n["id"] for n in data["interactions"]["nodes"]] == [
        world.id("Interaction", world.bob_store)
    ]


async def test_scope_is_a_union_of_channels_and_touchpoints(gql_as: GqlAs, world: World) -> None:
    partner = await gql_as("PARTNER", channels=["MOBILE"], touchpoints=[str(world.store)])
    data = await partner.data("{ interactions(orderBy: OCCURRED_AT_ASC) { nodes { id } } }")
    assert [n["id"] for n in data["interactions"]["nodes"]] == [
        world.id("Interaction", world.bob_store),
        world.id("Interaction", world.ana_mobile),
    ]


async def test_stage_history_and_stage_counts_follow_scope(
    partner: GraphQLClient, gql: GraphQLClient, world: World, db: asyncpg.Connection
) -> None:
    from tests.factories import T0, Factory, minutes

    f = Factory(db)
    await f.stage_change(
        world.ana,
        "AWARENESS",
        previous=None,
        transition="INITIAL",
        at=T0,
        interaction_id=world.ana_web,
        channel="WEB",
    )
    await f.stage_change(
        world.ana,
        "CONSIDERATION",
        previous="AWARENESS",
        transition="FORWARD",
        at=T0 + minutes(5),
        interaction_id=world.ana_mobile,
        channel="MOBILE",
    )
    await db.execute("UPDATE customers SET current_stage = 'CONSIDERATION'")
    query = """query($id: ID!) { customer(id: $id) { stageHistory { stage { code } } }
        journeyStages { code customerCount } }"""
    mine = await partner.data(query, {"id": world.id("Customer", world.ana)})
    assert [s["stage"]["code"] for s in mine["customer"]["stageHistory"]] == ["AWARENESS"]
    counts = {s["code"]: s["customerCount"] for s in mine["journeyStages"]}
    none = dict.fromkeys(counts, 0)
    assert counts == {**none, "CONSIDERATION": 1}  # Ana only: Bob is out of scope
    everything = await gql.data(query, {"id": world.id("Customer", world.ana)})
    assert [s["stage"]["code"] for s in everything["customer"]["stageHistory"]] == [
        "AWARENESS",
        "CONSIDERATION",
    ]
    assert {s["code"]: s["customerCount"] for s in everything["journeyStages"]} == {
        **none,
        "CONSIDERATION": 2,
    }
    assert len(none) == 5
