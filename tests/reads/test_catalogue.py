"""Channels, touchpoints, journey stages, conversations, ``node`` and Federation entry points."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg
import pytest

from tests.conftest import GraphQLClient
from tests.factories import T0, Factory, gid, minutes


@dataclass
class Catalogue:
    f: Factory
    ana: uuid.UUID
    ben: uuid.UUID
    conversation: uuid.UUID
    interaction: uuid.UUID


@pytest.fixture
async def catalogue(db: asyncpg.Connection) -> Catalogue:
    f = Factory(db)
    await f.touchpoint("Outlet site", "WEB", "WEBSITE", address="https://outlet.example",
                       business_line="Outlet")  # fmt: skip
    await f.touchpoint("Fashion site", "WEB", "WEBSITE", address="https://fashion.example",
                       business_line="Fashion")  # fmt: skip
    await f.touchpoint("Old portal", "WEB", "SELF_SERVICE", active=False)
    await f.touchpoint("WhatsApp", "SOCIAL", "RICH_MESSAGING", address="+351910000000")
    await f.touchpoint("Flagship store", "PHYSICAL", "STORE", address="1 Main St",
                       business_line="Fashion")  # fmt: skip
    ana = await f.customer("Ana", stage="PURCHASE")
    ben = await f.customer("Ben", stage="PURCHASE")
    await f.customer("Cy", stage="AWARENESS")
    await f.customer("Dee")
    merged = await f.customer("Gone", stage="AWARENESS")
    await db.execute("UPDATE customers SET merged_into_id = $1 WHERE id = $2", ana, merged)
    conversation = await f.conversation(ana, "CASE-7", status="RESOLVED", at=T0)
    interaction = await f.interaction(
        ana, "WhatsApp", at=T0, type="CHAT_MESSAGE", conversation_id=conversation
    )
    await f.interaction(ana, "Flagship store", at=T0 + minutes(5), type="STORE_VISIT",
                        conversation_id=conversation)  # fmt: skip
    await f.interaction(ana, "WhatsApp", at=T0 + minutes(9), type="CHAT_MESSAGE",
                        conversation_id=conversation)  # fmt: skip
    await f.interaction(ben, "Fashion site", at=T0 + minutes(3))
    return Catalogue(f, ana, ben, conversation, interaction)


async def test_channels_with_touchpoints(gql: GraphQLClient, catalogue: Catalogue) -> None:
    data = await gql.data(
        "{ channels { id code name description position touchpoints { name businessLine } } }"
    )
    channels = data["channels"]
    assert [c["code"] for c in channels] == [
        "WEB", "MOBILE", "ASSISTED", "SOCIAL", "PHYSICAL", "OUTBOUND",
    ]  # fmt: skip
    assert [c["position"] for c in channels] == [1, 2, 3, 4, 5, 6]
    web = channels[0]
    assert web["id"] == gid("Channel", "WEB") and web["name"] == "Web" and web["description"]
    # By business line (none first), then name.
    assert [t["name"] for t in web["touchpoints"]] == ["Old portal", "Fashion site", "Outlet site"]
    assert channels[1]["touchpoints"] == []


async def test_channel_by_code(gql: GraphQLClient, catalogue: Catalogue) -> None:
    data = await gql.data(
        "{ channel(code: PHYSICAL) { code name touchpoints { id name kind address channel"
        " { code } interactions { totalCount nodes { type } } } } }"
    )
    store = data["channel"]["touchpoints"][0]
    assert data["channel"]["code"] == "PHYSICAL"
    assert store["id"] == gid("Touchpoint", catalogue.f.touchpoints["Flagship store"])
    assert (store["kind"], store["address"], store["channel"]) == (
        "STORE", "1 Main St", {"code": "PHYSICAL"},
    )  # fmt: skip
    assert store["interactions"] == {"totalCount": 1, "nodes": [{"type": "STORE_VISIT"}]}


async def test_touchpoint_by_id(gql: GraphQLClient, catalogue: Catalogue) -> None:
    tid = catalogue.f.touchpoints["WhatsApp"]
    data = await gql.data(
        """query ($id: ID!) { touchpoint(id: $id) { id name kind address businessLine active
        channel { code } interactions(first: 1) { totalCount
        nodes { occurredAt customer { displayName } } pageInfo { hasNextPage } } } }""",
        {"id": gid("Touchpoint", tid)},
    )
    t = data["touchpoint"]
    assert t["name"] == "WhatsApp" and t["kind"] == "RICH_MESSAGING" and t["active"] is True
    assert t["address"] == "+351910000000" and t["businessLine"] is None
    assert t["interactions"]["totalCount"] == 2
    assert t["interactions"]["nodes"] == [
        {"occurredAt": (T0 + minutes(9)).isoformat(), "customer": {"displayName": "Ana"}}
    ]
    assert t["interactions"]["pageInfo"]["hasNextPage"] is True


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ({}, ["Fashion site", "Flagship store", "Old portal", "Outlet site", "WhatsApp"]),
        ({"channels": ["WEB"]}, ["Fashion site", "Old portal", "Outlet site"]),
        ({"kinds": ["WEBSITE", "STORE"]}, ["Fashion site", "Flagship store", "Outlet site"]),
        ({"businessLines": ["Fashion"]}, ["Fashion site", "Flagship store"]),
        ({"active": False}, ["Old portal"]),
        ({"nameContains": "SITE"}, ["Fashion site", "Outlet site"]),
        ({"nameContains": "%"}, []),
        ({"channels": ["WEB"], "active": True, "businessLines": ["Outlet"]}, ["Outlet site"]),
    ],
)
async def test_touchpoints_filter(
    gql: GraphQLClient, catalogue: Catalogue, where: dict[str, object], expected: list[str]
) -> None:
    data = await gql.data(
        "query ($f: TouchpointFilter) { touchpoints(first: 50, filter: $f)"
        " { totalCount nodes { name } } }",
        {"f": where},
    )
    assert [n["name"] for n in data["touchpoints"]["nodes"]] == expected
    assert data["touchpoints"]["totalCount"] == len(expected)


async def test_journey_stages_count_current_customers(
    gql: GraphQLClient, catalogue: Catalogue
) -> None:
    data = await gql.data("{ journeyStages { code name position customerCount } }")
    assert data["journeyStages"] == [
        {"code": "AWARENESS", "name": "Awareness", "position": 1, "customerCount": 1},
        {"code": "CONSIDERATION", "name": "Consideration", "position": 2, "customerCount": 0},
        {"code": "PURCHASE", "name": "Purchase", "position": 3, "customerCount": 2},
        {"code": "POST_PURCHASE", "name": "Post-purchase", "position": 4, "customerCount": 0},
        {"code": "RETENTION", "name": "Retention", "position": 5, "customerCount": 0},
    ]


async def test_conversation_by_id(gql: GraphQLClient, catalogue: Catalogue) -> None:
    data = await gql.data(
        """query ($id: ID!) { conversation(id: $id) { id key status startedAt lastActivityAt
        resolvedAt customer { displayName } channels { code } interactions { type }
        lastInteraction { occurredAt } } }""",
        {"id": gid("Conversation", catalogue.conversation)},
    )
    c = data["conversation"]
    assert (c["key"], c["status"], c["resolvedAt"]) == ("CASE-7", "RESOLVED", None)
    assert c["customer"] == {"displayName": "Ana"}
    # WhatsApp -> store -> WhatsApp: each visit of a channel once, in order.
    assert [x["code"] for x in c["channels"]] == ["SOCIAL", "PHYSICAL", "SOCIAL"]
    assert [x["type"] for x in c["interactions"]] == ["CHAT_MESSAGE", "STORE_VISIT", "CHAT_MESSAGE"]
    assert c["lastInteraction"] == {"occurredAt": (T0 + minutes(9)).isoformat()}


async def test_node_for_every_node_type(gql: GraphQLClient, catalogue: Catalogue) -> None:
    cases = {
        gid("Customer", catalogue.ana): ("Customer", "displayName", "Ana"),
        gid("Interaction", catalogue.interaction): ("Interaction", "type", "CHAT_MESSAGE"),
        gid("Touchpoint", catalogue.f.touchpoints["WhatsApp"]): ("Touchpoint", "name", "WhatsApp"),
        gid("Conversation", catalogue.conversation): ("Conversation", "key", "CASE-7"),
        gid("Channel", "SOCIAL"): ("Channel", "code", "SOCIAL"),
    }
    for node_id, (typename, field, value) in cases.items():
        data = await gql.data(
            "query ($id: ID!) { node(id: $id) { __typename id"
            f" ... on {typename} {{ {field} }} }} }}",
            {"id": node_id},
        )
        assert data["node"] == {"__typename": typename, "id": node_id, field: value}


async def test_federation_service_sdl(gql: GraphQLClient) -> None:
    sdl = (await gql.data("{ _service { sdl } }"))["_service"]["sdl"]
    assert '@link(url: "https://specs.apollo.dev/federation/v2' in sdl
    assert 'type Customer implements Node @key(fields: "id")' in sdl
    assert 'type Touchpoint implements Node @key(fields: "id")' in sdl
    assert 'type Channel implements Node @key(fields: "code")' in sdl


async def test_federation_entities(gql: GraphQLClient, catalogue: Catalogue) -> None:
    touchpoint = catalogue.f.touchpoints["Flagship store"]
    data = await gql.data(
        """query ($r: [_Any!]!) { _entities(representations: $r) {
            __typename
            ... on Customer { id displayName currentStage { code } }
            ... on Touchpoint { id name channel { code } }
            ... on Channel { code name }
            ... on Interaction { id type }
        } }""",
        {
            "r": [
                {"__typename": "Customer", "id": gid("Customer", catalogue.ben)},
                {"__typename": "Touchpoint", "id": gid("Touchpoint", touchpoint)},
                {"__typename": "Channel", "code": "WEB"},
                {"__typename": "Interaction", "id": gid("Interaction", catalogue.interaction)},
                {"__typename": "Customer", "id": str(catalogue.ana)},
                {"__typename": "Customer", "id": gid("Customer", uuid.uuid4())},
            ]
        },
    )
    assert data["_entities"] == [
        {
            "__typename": "Customer",
            "id": gid("Customer", catalogue.ben),
            "displayName": "Ben",
            "currentStage": {"code": "PURCHASE"},
        },
        {
            "__typename": "Touchpoint",
            "id": gid("Touchpoint", touchpoint),
            "name": "Flagship store",
            "channel": {"code": "PHYSICAL"},
        },
        {"__typename": "Channel", "code": "WEB", "name": "Web"},
        {
            "__typename": "Interaction",
            "id": gid("Interaction", catalogue.interaction),
            "type": "CHAT_MESSAGE",
        },
        {
            "__typename": "Customer",
            "id": gid("Customer", catalogue.ana),
            "displayName": "Ana",
            "currentStage": {"code": "PURCHASE"},
        },
        None,
    ]
