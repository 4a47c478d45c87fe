"""Every feed from the real write path: mutations over HTTP on a real `hub serve`, the events
they commit received over a real websocket (graphql-transport-ws), checked against the outbox.

The events under test are written only by the hub's own mutations (recordInteraction(s),
setJourneyStage, mergeCustomers, unmergeCustomer, updateTraits, add/removeIdentity,
resolveConversation); probes and final markers (tests/feed_sync.py) only synchronise."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from hub.events.emit import EventKind, NewEvent
from hub.events.outbox import Position
from tests.factories import Factory, gid
from tests.feed_sync import await_live, drain_to, event_probe, extend, outbox_positions, take
from tests.live_server import Server, connect, start_server


@pytest.fixture(scope="module")
def server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    started = start_server(database_url, tmp_path_factory.mktemp("serve"))
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
async def touchpoints(db: asyncpg.Connection) -> dict[str, str]:
    factory = Factory(db)
    made = {
        "web": await factory.touchpoint("Web shop", "WEB", "WEBSITE"),
        "chat": await factory.touchpoint("Live chat", "WEB", "LIVE_CHAT"),
        "call": await factory.touchpoint("Contact centre", "ASSISTED", "VOICE"),
        "store": await factory.touchpoint("Flagship", "PHYSICAL", "STORE"),
    }
    return {name: gid("Touchpoint", tid) for name, tid in made.items()}


async def mutate(server: Server, query: str, **variables: Any) -> dict[str, Any]:
    """One mutation over HTTP; its data (no errors allowed)."""
    async with httpx.AsyncClient(base_url=server.http_url, timeout=30) as http:
        response = await http.post("/graphql", json={"query": query, "variables": variables})
    body: dict[str, Any] = response.json()
    assert response.status_code == 200 and "errors" not in body, body
    data: dict[str, Any] = body["data"]
    return data


RECORD = """
mutation($input: RecordInteractionInput!) {
  recordInteraction(input: $input) {
    interaction { id conversation { id } } customer { id } merges { id rule survivorId }
  }
}
"""
RECORD_MANY = """
mutation($inputs: [RecordInteractionInput!]!) {
  recordInteractions(inputs: $inputs) { stored { interaction { id } } rejected { code } }
}
"""


def interaction(touchpoint: str, *identities: tuple[str, str], **fields: Any) -> dict[str, Any]:
    return {
        "identities": [{"kind": kind, "value": value} for kind, value in identities],
        "touchpointId": touchpoint,
        "direction": "INBOUND",
        **fields,
    }


async def record(
    server: Server, touchpoint: str, *identities: tuple[str, str], **fields: Any
) -> Any:
    return (await mutate(server, RECORD, input=interaction(touchpoint, *identities, **fields)))[
        "recordInteraction"
    ]


STAGES = """
subscription($filter: JourneyStageChangedFilter) {
  journeyStageChanged(filter: $filter) {
    cursor transition stage { code } previousStage { code } customer { id }
    interaction { id type }
  }
}
"""


async def test_stage_changes_from_ingest_and_by_hand_reach_the_stage_feed(
    server: Server, touchpoints: dict[str, str], engine: Any, db: asyncpg.Connection
) -> None:
    probe_customer = await Factory(db).customer("Probe")
    probe = event_probe(
        engine,
        NewEvent(
            EventKind.JOURNEY_STAGE_CHANGED,
            customer_id=probe_customer,
            payload={
                "stage": "PURCHASE",
                "previousStage": "CONSIDERATION",
                "transition": "FORWARD",
            },
        ),
    )
    ada = ("EMAIL", "ada@example.com")
    async with connect(server) as client:
        every = await client.subscribe(STAGES)
        purchases = await client.subscribe(STAGES, {"filter": {"stages": ["PURCHASE"]}})
        operations = {every: "journeyStageChanged", purchases: "journeyStageChanged"}
        start = await await_live(client, operations, probe)

        view = await record(server, touchpoints["web"], ada, type="PAGE_VIEW")
        customer = view["customer"]["id"]
        product = await record(server, touchpoints["web"], ada, type="PRODUCT_VIEW")
        await record(server, touchpoints["web"], ada, type="SEARCH")  # same stage: no event
        batch = await mutate(
            server,
            RECORD_MANY,
            inputs=[interaction(touchpoints["store"], ada, type="ORDER")],
        )
        order = batch["recordInteractions"]["stored"][0]["interaction"]["id"]
        await mutate(
            server,
            "mutation($id: ID!) { setJourneyStage(customerId: $id, stage: AWARENESS,"
            ' reason: "test: back to the start") { id } }',
            id=customer,
        )
        marker = await probe()
        received = await drain_to(client, operations, marker)

    def change(
        stage: str, previous: str | None, transition: str, caused: tuple[str, str] | None
    ) -> dict[str, Any]:
        return {
            "stage": {"code": stage},
            "previousStage": {"code": previous} if previous else None,
            "transition": transition,
            "customer": {"id": customer},
            "interaction": {"id": caused[0], "type": caused[1]} if caused else None,
        }

    expected = [
        change("AWARENESS", None, "INITIAL", (view["interaction"]["id"], "PAGE_VIEW")),
        change(
            "CONSIDERATION", "AWARENESS", "FORWARD", (product["interaction"]["id"], "PRODUCT_VIEW")
        ),
        change("PURCHASE", "CONSIDERATION", "FORWARD", (order, "ORDER")),
        change("AWARENESS", "PURCHASE", "BACKWARD", None),
    ]
    assert [{k: v for k, v in e.items() if k != "cursor"} for _, e in received[every]] == expected
    assert [{k: v for k, v in e.items() if k != "cursor"} for _, e in received[purchases]] == [
        expected[2]
    ]
    outbox = await outbox_positions(engine, start, marker, ["JOURNEY_STAGE_CHANGED"])
    assert [p for p, _ in received[every]] == outbox[:-1]


async def test_a_late_older_signal_does_not_move_the_stage_back_nor_reach_the_feed(
    server: Server, touchpoints: dict[str, str], engine: Any, db: asyncpg.Connection
) -> None:
    """The stage is decided by occurrence time: after a purchase confirmed on another channel,
    product views that happened before the newest purchase signal (one before the purchase, one
    between the purchase and its confirmation) arrive late and change nothing."""
    probe_customer = await Factory(db).customer("Probe")
    probe = event_probe(
        engine,
        NewEvent(
            EventKind.JOURNEY_STAGE_CHANGED,
            customer_id=probe_customer,
            payload={"stage": "AWARENESS", "previousStage": None, "transition": "INITIAL"},
        ),
    )
    bea = ("EMAIL", "bea@example.com")
    base = datetime.now(UTC) - timedelta(hours=2)

    def when(minutes: int) -> str:
        return (base + timedelta(minutes=minutes)).isoformat()

    async with connect(server) as client:
        every = await client.subscribe(STAGES)
        operations = {every: "journeyStageChanged"}
        start = await await_live(client, operations, probe)

        web = touchpoints["web"]
        view = await record(server, web, bea, type="PRODUCT_VIEW", occurredAt=when(0))
        customer = view["customer"]["id"]
        order = await record(server, touchpoints["web"], bea, type="ORDER", occurredAt=when(20))
        confirmed = await record(
            server, touchpoints["store"], bea, type="ORDER", occurredAt=when(40)
        )
        await record(server, touchpoints["web"], bea, type="PRODUCT_VIEW", occurredAt=when(30))
        await mutate(
            server,
            RECORD_MANY,
            inputs=[interaction(touchpoints["web"], bea, type="PRODUCT_VIEW", occurredAt=when(10))],
        )
        marker = await probe()
        received = await drain_to(client, operations, marker)

    caused = [
        (view, "CONSIDERATION", None, "INITIAL", "PRODUCT_VIEW"),
        (order, "PURCHASE", "CONSIDERATION", "FORWARD", "ORDER"),
        (confirmed, "PURCHASE", "PURCHASE", "LOOPING", "ORDER"),
    ]
    assert [{k: v for k, v in e.items() if k != "cursor"} for _, e in received[every]] == [
        {
            "stage": {"code": stage},
            "previousStage": {"code": previous} if previous else None,
            "transition": transition,
            "customer": {"id": customer},
            "interaction": {"id": result["interaction"]["id"], "type": itype},
        }
        for result, stage, previous, transition, itype in caused
    ]
    outbox = await outbox_positions(engine, start, marker, ["JOURNEY_STAGE_CHANGED"])
    assert [p for p, _ in received[every]] == outbox[:-1]
    now = await mutate(
        server,
        "query($id: ID!) { customer(id: $id) { currentStage { code } stageEnteredAt } }",
        id=customer,
    )
    assert now["customer"]["currentStage"] == {"code": "PURCHASE"}
    entered = datetime.fromisoformat(now["customer"]["stageEnteredAt"])
    assert entered == base + timedelta(minutes=20)


MERGED = """
subscription { customerMerged { cursor mergedCustomerId mergedCustomerIds rule survivor { id } } }
"""
UPDATED = """
subscription($id: ID!) {
  customerUpdated(id: $id) { cursor customer { id identities { kind value } } }
}
"""
MERGE = """
mutation($survivor: ID!, $merged: [ID!]!) {
  mergeCustomers(input: {survivorId: $survivor, mergedIds: $merged}) { merge { id } }
}
"""
UNMERGE = "mutation($id: ID!) { unmergeCustomer(mergeId: $id) { merge { id active } } }"
CUSTOMER_KINDS = [
    "CUSTOMER_UPDATED",
    "JOURNEY_STAGE_CHANGED",
    "CUSTOMER_MERGED",
    "CUSTOMER_UNMERGED",
]


async def test_merges_and_unmerges_reach_the_merge_and_customer_feeds(
    server: Server, touchpoints: dict[str, str], engine: Any, db: asyncpg.Connection
) -> None:
    email = ("EMAIL", "ada@example.com")
    phone = ("PHONE", "+442071234567")
    ada = (await record(server, touchpoints["web"], email, type="PAGE_VIEW"))["customer"]["id"]
    bo = (await record(server, touchpoints["web"], phone, type="PAGE_VIEW"))["customer"]["id"]
    ids = {
        name: await db.fetchval("SELECT customer_id FROM identities WHERE kind = $1", kind)
        for name, kind in (("ada", "EMAIL"), ("bo", "PHONE"))
    }
    probe_customer = await Factory(db).customer("Probe")
    probe = event_probe(
        engine,
        NewEvent(EventKind.CUSTOMER_MERGED, customer_id=probe_customer),
        NewEvent(EventKind.CUSTOMER_UPDATED, customer_id=ids["ada"]),
        NewEvent(EventKind.CUSTOMER_UPDATED, customer_id=ids["bo"]),
    )
    async with connect(server) as client:
        merged = await client.subscribe(MERGED)
        on_ada = await client.subscribe(UPDATED, {"id": ada})
        on_bo = await client.subscribe(UPDATED, {"id": bo})
        operations = {merged: "customerMerged", on_ada: "customerUpdated", on_bo: "customerUpdated"}
        start = await await_live(client, operations, probe)

        # Each change's deliveries before the next change: the feeds load the customer when
        # they deliver, so each state is checked while it is current.
        received: dict[str, list[tuple[Position, dict[str, Any]]]] = {}
        by_hand = (await mutate(server, MERGE, survivor=ada, merged=[bo]))["mergeCustomers"]
        extend(received, await take(client, operations, {merged: 1, on_ada: 1, on_bo: 1}))
        await mutate(server, UNMERGE, id=by_hand["merge"]["id"])
        extend(received, await take(client, operations, {on_ada: 1, on_bo: 1}))
        # An interaction carrying both identifiers merges them again, by identity.
        both = await record(server, touchpoints["web"], email, phone, type="PAGE_VIEW")
        extend(received, await take(client, operations, {merged: 1, on_ada: 1, on_bo: 1}))
        marker = await probe()
        assert await drain_to(client, operations, marker) == {op: [] for op in operations}

    assert [(m["rule"], m["survivorId"]) for m in both["merges"]] == [("IDENTITY_MATCH", ada)]
    assert [{k: v for k, v in e.items() if k != "cursor"} for _, e in received[merged]] == [
        {
            "mergedCustomerId": bo,
            "mergedCustomerIds": [bo],
            "rule": "MANUAL",
            "survivor": {"id": ada},
        },
        {
            "mergedCustomerId": bo,
            "mergedCustomerIds": [bo],
            "rule": "IDENTITY_MATCH",
            "survivor": {"id": ada},
        },
    ]
    assert [p for p, _ in received[merged]] == (
        await outbox_positions(engine, start, marker, ["CUSTOMER_MERGED"])
    )[:-1]
    both_identities = [
        {"kind": "EMAIL", "value": "ada@example.com"},
        {"kind": "PHONE", "value": "+442071234567"},
    ]
    # Each customer's feed: exactly its events in the outbox (its own, or naming it as merged
    # away), and the customer as it was then (merged: the survivor with both identifiers).
    for operation, name in ((on_ada, "ada"), (on_bo, "bo")):
        outbox = await outbox_positions(
            engine,
            start,
            marker,
            CUSTOMER_KINDS,
            "customer_id = :cid OR payload->'mergedIds' ? CAST(:cid AS text)",
            cid=ids[name],
        )
        assert [p for p, _ in received[operation]] == outbox
    ada_views = [e["customer"] for _, e in received[on_ada]]
    assert [sorted(c["identities"], key=lambda i: i["kind"]) for c in ada_views] == [
        both_identities,  # merged by hand
        [{"kind": "EMAIL", "value": "ada@example.com"}],  # unmerged
        both_identities,  # merged by identity
    ]
    bo_views = [e["customer"] for _, e in received[on_bo]]
    assert [c["id"] for c in bo_views] == [ada, bo, ada]


CONVERSATION = """
subscription($id: ID!) {
  conversationUpdated(id: $id) { cursor conversation { key status channels { code } } }
}
"""


async def test_a_conversation_resumed_on_another_channel_reaches_its_feed(
    server: Server, touchpoints: dict[str, str], engine: Any, db: asyncpg.Connection
) -> None:
    ada = ("EMAIL", "ada@example.com")
    opened = await record(
        server, touchpoints["chat"], ada, type="CHAT_MESSAGE", conversationKey="T-1"
    )
    conversation = opened["interaction"]["conversation"]["id"]
    conversation_id = await db.fetchval("SELECT id FROM conversations WHERE key = 'T-1'")
    probe = event_probe(
        engine,
        NewEvent(
            EventKind.CONVERSATION_UPDATED,
            customer_id=await db.fetchval("SELECT customer_id FROM conversations"),
            subject_id=conversation_id,
        ),
    )
    async with connect(server) as client:
        op = await client.subscribe(CONVERSATION, {"id": conversation})
        start = await await_live(client, {op: "conversationUpdated"}, probe)
        operations = {op: "conversationUpdated"}
        got: dict[str, list[tuple[Position, dict[str, Any]]]] = {}
        # Resumed on the phone, another conversation meanwhile, resolved, reopened by chat;
        # each delivery awaited before the next change (the feed loads it when delivering).
        await record(server, touchpoints["call"], ada, type="CALL", conversationKey="T-1")
        extend(got, await take(client, operations, {op: 1}))
        await record(server, touchpoints["chat"], ada, type="CHAT_MESSAGE", conversationKey="T-2")
        await mutate(
            server, "mutation($id: ID!) { resolveConversation(id: $id) { id } }", id=conversation
        )
        extend(got, await take(client, operations, {op: 1}))
        await record(server, touchpoints["chat"], ada, type="CHAT_MESSAGE", conversationKey="T-1")
        extend(got, await take(client, operations, {op: 1}))
        marker = await probe()
        assert await drain_to(client, operations, marker) == {op: []}
        received = got[op]
    assert [e["conversation"] for _, e in received] == [
        {"key": "T-1", "status": "OPEN", "channels": [{"code": "WEB"}, {"code": "ASSISTED"}]},
        {"key": "T-1", "status": "RESOLVED", "channels": [{"code": "WEB"}, {"code": "ASSISTED"}]},
        # Each channel once per visit: back on the chat is a third visit.
        {
            "key": "T-1",
            "status": "OPEN",
            "channels": [{"code": "WEB"}, {"code": "ASSISTED"}, {"code": "WEB"}],
        },
    ]
    outbox = await outbox_positions(
        engine, start, marker, ["CONVERSATION_UPDATED"], "subject_id = :id", id=conversation_id
    )
    assert [p for p, _ in received] == outbox[:-1]


PROFILE = """
subscription($id: ID!) {
  customerUpdated(id: $id) { cursor customer { displayName traits identities { kind value } } }
}
"""
PHONE_CHANGE = """
mutation($id: ID!) { %s(customerId: $id, kind: PHONE, value: "+442071234567") { id } }
"""


async def test_profile_changes_reach_the_customer_feed_and_only_its_own(
    server: Server, touchpoints: dict[str, str], engine: Any, db: asyncpg.Connection
) -> None:
    created = await mutate(
        server,
        'mutation { upsertCustomer(input: {identities: [{kind: EMAIL, value: "ada@example.com"}],'
        ' displayName: "Ada"}) { created customer { id } } }',
    )
    assert created["upsertCustomer"]["created"] is True
    ada = created["upsertCustomer"]["customer"]["id"]
    ada_id = await db.fetchval("SELECT id FROM customers WHERE display_name = 'Ada'")
    other = (
        await record(server, touchpoints["web"], ("EMAIL", "bo@example.com"), type="PAGE_VIEW")
    )["customer"]["id"]
    probe = event_probe(engine, NewEvent(EventKind.CUSTOMER_UPDATED, customer_id=ada_id))
    async with connect(server) as client:
        op = await client.subscribe(PROFILE, {"id": ada})
        start = await await_live(client, {op: "customerUpdated"}, probe)
        operations = {op: "customerUpdated"}
        got: dict[str, list[tuple[Position, dict[str, Any]]]] = {}
        # Each delivery awaited before the next change (the feed loads the customer then).
        await mutate(
            server,
            'mutation($id: ID!) { upsertCustomer(input: {id: $id, displayName: "Ada L.",'
            ' traits: {tier: "gold"}}) { created } }',
            id=ada,
        )
        extend(got, await take(client, operations, {op: 1}))
        await mutate(  # someone else: not on Ada's feed
            server,
            'mutation($id: ID!) { updateTraits(customerId: $id, traits: {tier: "silver"}) { id } }',
            id=other,
        )
        await mutate(
            server,
            PHONE_CHANGE % "addIdentity",
            id=ada,
        )
        extend(got, await take(client, operations, {op: 1}))
        await mutate(
            server,
            PHONE_CHANGE % "removeIdentity",
            id=ada,
        )
        extend(got, await take(client, operations, {op: 1}))
        marker = await probe()
        assert await drain_to(client, operations, marker) == {op: []}  # not Bo's change
        received = got[op]
    email = {"kind": "EMAIL", "value": "ada@example.com"}
    phone = {"kind": "PHONE", "value": "+442071234567"}
    assert [e["customer"] for _, e in received] == [
        {"displayName": "Ada L.", "traits": {"tier": "gold"}, "identities": [email]},
        {"displayName": "Ada L.", "traits": {"tier": "gold"}, "identities": [email, phone]},
        {"displayName": "Ada L.", "traits": {"tier": "gold"}, "identities": [email]},
    ]
    outbox = await outbox_positions(
        engine, start, marker, CUSTOMER_KINDS, "customer_id = :id", id=ada_id
    )
    assert [p for p, _ in received] == outbox[:-1]
