"""The customer 360° view: one customer by id or identifier, and every field of ``Customer``."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg
import pytest

from tests.conftest import GraphQLClient
from tests.factories import T0, Factory, gid, minutes


@dataclass
class World:
    ana: uuid.UUID
    ben: uuid.UUID
    ticket: uuid.UUID
    interactions: list[uuid.UUID]
    f: Factory


@pytest.fixture
async def world(db: asyncpg.Connection) -> World:
    f = Factory(db)
    await f.touchpoint("Shop", "WEB", "WEBSITE", address="https://shop.example", business_line="A")
    await f.touchpoint("iOS app", "MOBILE", "MOBILE_APP", address="com.example.ios")
    await f.touchpoint("Live chat", "ASSISTED", "LIVE_CHAT")
    await f.touchpoint("Flagship", "PHYSICAL", "STORE", address="1 Main St")
    ana = await f.customer(
        "Ana",
        traits={"tier": "gold", "city": "Lisbon"},
        stage="PURCHASE",
        identities=[("EMAIL", "ana@example.com"), ("PHONE", "+442079460958")],
    )
    ben = await f.customer("Ben", identities=[("COOKIE", "c-1")])
    ticket = await f.conversation(ana, "T-1", at=T0 + minutes(10))
    ids = [
        await f.interaction(ana, "Shop", at=T0 + minutes(1), type="PRODUCT_VIEW"),
        await f.interaction(ana, "iOS app", at=T0 + minutes(5), type="PRODUCT_VIEW"),
        await f.interaction(
            ana,
            "Live chat",
            at=T0 + minutes(10),
            type="CHAT_MESSAGE",
            conversation_id=ticket,
            summary="Where is my order?",
            sentiment=-0.4,
            attributes={"orderId": "o-7"},
        ),
        await f.interaction(ana, "Shop", at=T0 + minutes(20), type="ORDER"),
        await f.interaction(
            ana,
            "Live chat",
            at=T0 + minutes(30),
            type="CHAT_MESSAGE",
            direction="OUTBOUND",
            conversation_id=ticket,
        ),
    ]
    await f.stage_change(ana, "CONSIDERATION", previous=None, transition="INITIAL", at=T0)
    await f.stage_change(
        ana,
        "PURCHASE",
        previous="CONSIDERATION",
        transition="FORWARD",
        at=T0 + minutes(20),
        interaction_id=ids[3],
        channel="WEB",
    )
    return World(ana=ana, ben=ben, ticket=ticket, interactions=ids, f=f)


CUSTOMER_360 = """
query ($id: ID!) {
  customer(id: $id) {
    id displayName traits createdAt updatedAt firstSeenAt lastSeenAt stageEnteredAt requestedId
    identities { kind value firstSeenAt lastSeenAt }
    currentStage { code name position }
    stageHistory {
      stage { code } previousStage transition enteredAt reason
      channel { code } interaction { id type }
    }
    lastInteraction { id type occurredAt }
    conversations { id key status channels { code } lastInteraction { summary direction } }
    channelsUsed { channel { code } interactionCount firstSeenAt lastSeenAt }
    interactions(first: 10) { totalCount nodes { type channel { code } } }
  }
}
"""


async def test_customer_360_view(gql: GraphQLClient, world: World) -> None:
    data = await gql.data(CUSTOMER_360, {"id": gid("Customer", world.ana)})
    c = data["customer"]
    assert c["id"] == gid("Customer", world.ana)
    assert c["displayName"] == "Ana"
    assert c["traits"] == {"tier": "gold", "city": "Lisbon"}
    assert c["requestedId"] is None
    assert c["firstSeenAt"] == (T0 + minutes(1)).isoformat()
    assert c["lastSeenAt"] == (T0 + minutes(30)).isoformat()
    assert c["createdAt"] == T0.isoformat()
    assert sorted((i["kind"], i["value"]) for i in c["identities"]) == [
        ("EMAIL", "ana@example.com"),
        ("PHONE", "+442079460958"),
    ]
    assert c["currentStage"] == {"code": "PURCHASE", "name": "Purchase", "position": 3}
    assert [s["stage"]["code"] for s in c["stageHistory"]] == ["CONSIDERATION", "PURCHASE"]
    first, second = c["stageHistory"]
    assert first["previousStage"] is None and first["transition"] == "INITIAL"
    assert first["channel"] is None and first["interaction"] is None
    assert second["previousStage"] == "CONSIDERATION"
    assert second["channel"] == {"code": "WEB"}
    assert second["interaction"] == {
        "id": gid("Interaction", world.interactions[3]),
        "type": "ORDER",
    }
    assert c["lastInteraction"]["id"] == gid("Interaction", world.interactions[4])
    assert c["conversations"] == [
        {
            "id": gid("Conversation", world.ticket),
            "key": "T-1",
            "status": "OPEN",
            "channels": [{"code": "ASSISTED"}],
            "lastInteraction": {"summary": None, "direction": "OUTBOUND"},
        }
    ]
    usage = {u["channel"]["code"]: u for u in c["channelsUsed"]}
    assert [u["channel"]["code"] for u in c["channelsUsed"]] == ["WEB", "MOBILE", "ASSISTED"]
    assert usage["WEB"]["interactionCount"] == 2
    assert usage["WEB"]["firstSeenAt"] == (T0 + minutes(1)).isoformat()
    assert usage["WEB"]["lastSeenAt"] == (T0 + minutes(20)).isoformat()
    assert usage["ASSISTED"]["interactionCount"] == 2
    assert c["interactions"]["totalCount"] == 5
    assert [n["type"] for n in c["interactions"]["nodes"]] == [
        "CHAT_MESSAGE",
        "ORDER",
        "CHAT_MESSAGE",
        "PRODUCT_VIEW",
        "PRODUCT_VIEW",
    ]


async def test_a_customer_without_activity_has_empty_relations(
    gql: GraphQLClient, world: World
) -> None:
    data = await gql.data(CUSTOMER_360, {"id": gid("Customer", world.ben)})
    c = data["customer"]
    assert c["currentStage"] is None and c["stageEnteredAt"] is None
    assert c["stageHistory"] == [] and c["conversations"] == [] and c["channelsUsed"] == []
    assert c["lastInteraction"] is None and c["firstSeenAt"] is None
    assert c["interactions"] == {"totalCount": 0, "nodes": []}
    assert c["traits"] == {}


async def test_every_interaction_field(
    gql: GraphQLClient, world: World, db: asyncpg.Connection
) -> None:
    await db.execute(
        "UPDATE interactions SET outcome = 'ANSWERED', agent = 'agent-7' WHERE id = $1",
        world.interactions[2],
    )
    data = await gql.data(
        """query ($id: ID!) { node(id: $id) { id ... on Interaction {
            occurredAt type direction summary sentiment outcome agent attributes
            touchpoint { id name kind address businessLine active channel { code } }
            channel { code name }
            customer { id displayName }
            conversation { id key customer { id } interactions { id } }
        } } }""",
        {"id": gid("Interaction", world.interactions[2])},
    )
    i = data["node"]
    assert i["occurredAt"] == (T0 + minutes(10)).isoformat()
    assert (i["type"], i["direction"]) == ("CHAT_MESSAGE", "INBOUND")
    assert i["summary"] == "Where is my order?" and i["sentiment"] == pytest.approx(-0.4)
    assert i["outcome"] == "ANSWERED" and i["agent"] == "agent-7"
    assert i["attributes"] == {"orderId": "o-7"}
    assert i["touchpoint"] == {
        "id": gid("Touchpoint", world.f.touchpoints["Live chat"]),
        "name": "Live chat",
        "kind": "LIVE_CHAT",
        "address": None,
        "businessLine": None,
        "active": True,
        "channel": {"code": "ASSISTED"},
    }
    assert i["channel"] == {"code": "ASSISTED", "name": "Assisted"}
    assert i["customer"] == {"id": gid("Customer", world.ana), "displayName": "Ana"}
    conversation = i["conversation"]
    assert conversation["key"] == "T-1"
    assert conversation["customer"]["id"] == gid("Customer", world.ana)
    assert [x["id"] for x in conversation["interactions"]] == [
        gid("Interaction", world.interactions[2]),
        gid("Interaction", world.interactions[4]),
    ]


async def test_interaction_without_conversation(gql: GraphQLClient, world: World) -> None:
    data = await gql.data(
        "query ($id: ID!) { interaction(id: $id) { conversation { id } type } }",
        {"id": gid("Interaction", world.interactions[0])},
    )
    assert data["interaction"] == {"conversation": None, "type": "PRODUCT_VIEW"}


async def test_customer_accepts_a_bare_uuid(gql: GraphQLClient, world: World) -> None:
    data = await gql.data("query ($id: ID!) { customer(id: $id) { id } }", {"id": str(world.ben)})
    assert data["customer"]["id"] == gid("Customer", world.ben)


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("EMAIL", " Ana@Example.COM "),
        ("EMAIL", "ana@example.com"),
        ("PHONE", "+44 20 7946 0958"),
        ("PHONE", "+44 (20) 7946-0958"),
        ("COOKIE", "  c-1 "),
    ],
)
async def test_customer_by_identity_normalises(
    gql: GraphQLClient, world: World, kind: str, value: str
) -> None:
    data = await gql.data(
        "query ($kind: IdentityKind!, $value: String!) {"
        " customerByIdentity(kind: $kind, value: $value) { id } }",
        {"kind": kind, "value": value},
    )
    expected = world.ben if kind == "COOKIE" else world.ana
    assert data["customerByIdentity"]["id"] == gid("Customer", expected)


async def test_customer_by_unknown_identity_is_not_found(gql: GraphQLClient, world: World) -> None:
    error = await gql.error(
        '{ customerByIdentity(kind: EMAIL, value: "Nobody@Example.com") { id } }'
    )
    assert error["extensions"]["code"] == "NOT_FOUND"
    assert "nobody@example.com" in error["message"]


async def test_a_merged_away_id_answers_with_the_survivor(
    gql: GraphQLClient, world: World, db: asyncpg.Connection
) -> None:
    gone = await world.f.customer("Ana (old profile)")
    await db.execute("UPDATE customers SET merged_into_id = $1 WHERE id = $2", world.ana, gone)
    query = "query ($id: ID!) { customer(id: $id) { id requestedId displayName } }"
    data = await gql.data(query, {"id": gid("Customer", gone)})
    assert data["customer"] == {
        "id": gid("Customer", world.ana),
        "requestedId": gid("Customer", gone),
        "displayName": "Ana",
    }
    # Chains of merges are followed to the end.
    older = await world.f.customer("Ana (older)")
    await db.execute("UPDATE customers SET merged_into_id = $1 WHERE id = $2", gone, older)
    data = await gql.data(query, {"id": gid("Customer", older)})
    assert data["customer"]["id"] == gid("Customer", world.ana)
    assert data["customer"]["requestedId"] == gid("Customer", older)
    # The list shows survivors only.
    listed = await gql.data("{ customers { totalCount nodes { displayName } } }")
    assert sorted(n["displayName"] for n in listed["customers"]["nodes"]) == ["Ana", "Ben"]
    assert listed["customers"]["totalCount"] == 2
    # node() follows the merge too.
    data = await gql.data(
        "query ($id: ID!) { node(id: $id) { id ... on Customer { requestedId } } }",
        {"id": gid("Customer", gone)},
    )
    assert data["node"] == {"id": gid("Customer", world.ana), "requestedId": gid("Customer", gone)}


async def test_customer_interactions_filters(gql: GraphQLClient, world: World) -> None:
    query = """query ($id: ID!, $filter: InteractionFilter, $order: InteractionOrderBy) {
        customer(id: $id) { interactions(first: 100, filter: $filter, orderBy: $order) {
            totalCount nodes { id } } } }"""
    ids = world.interactions
    shop = gid("Touchpoint", world.f.touchpoints["Shop"])
    cases: list[tuple[dict[str, object], list[int]]] = [
        ({}, [4, 3, 2, 1, 0]),
        ({"channels": ["WEB", "MOBILE"]}, [3, 1, 0]),
        ({"channels": []}, []),
        ({"touchpointIds": [shop]}, [3, 0]),
        ({"types": ["PRODUCT_VIEW"]}, [1, 0]),
        ({"directions": ["OUTBOUND"]}, [4]),
        ({"occurredAfter": (T0 + minutes(5)).isoformat()}, [4, 3, 2, 1]),
        ({"occurredBefore": (T0 + minutes(10)).isoformat()}, [1, 0]),
        (
            {
                "occurredAfter": (T0 + minutes(5)).isoformat(),
                "occurredBefore": (T0 + minutes(20)).isoformat(),
                "channels": ["ASSISTED", "MOBILE"],
            },
            [2, 1],
        ),
        ({"types": ["CHAT_MESSAGE"], "directions": ["INBOUND"]}, [2]),
    ]
    for filter_, expected in cases:
        data = await gql.data(query, {"id": gid("Customer", world.ana), "filter": filter_})
        got = data["customer"]["interactions"]
        assert [n["id"] for n in got["nodes"]] == [gid("Interaction", ids[i]) for i in expected], (
            filter_
        )
        assert got["totalCount"] == len(expected), filter_
    data = await gql.data(
        query, {"id": gid("Customer", world.ana), "filter": None, "order": "OCCURRED_AT_ASC"}
    )
    assert [n["id"] for n in data["customer"]["interactions"]["nodes"]] == [
        gid("Interaction", i) for i in ids
    ]
