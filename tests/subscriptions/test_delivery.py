"""Live delivery through real `hub serve` processes over real websockets."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from hub.events.emit import EventKind, NewEvent, emit_many
from tests.factories import Factory, gid
from tests.live_server import (
    Server,
    Writer,
    assert_redis_carried,
    connect,
    redis_broker_settings,
    start_server,
)

FEED = """
subscription Feed($filter: InteractionRecordedFilter, $after: String) {
  interactionRecorded(filter: $filter, after: $after) {
    cursor
    interaction { id type channel { code } touchpoint { name } customer { displayName } }
  }
}
"""


@pytest.fixture(scope="module")
def server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    started = start_server(database_url, tmp_path_factory.mktemp("serve"))
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(params=["postgres", "redis"])
def broker(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """The settings of each broker: every process polls the outbox (postgres, the default), or
    one leader polls it and Redis fans out (redis, docs/subscriptions.md)."""
    if request.param == "postgres":
        yield {}
        return
    with redis_broker_settings() as settings:
        yield settings


@pytest.fixture
async def writer(engine: Any, db: asyncpg.Connection) -> Writer:
    factory = Factory(db)
    touchpoint = await factory.touchpoint("Shop", "WEB", "WEBSITE")
    await factory.touchpoint("Store", "PHYSICAL", "STORE")
    customer = await factory.customer("Ada")
    return Writer(engine, customer, "Shop", touchpoint, "WEB")


def interaction_id(data: dict[str, Any]) -> str:
    return str(data["interactionRecorded"]["interaction"]["id"])


async def test_a_subscriber_receives_recorded_interactions(server: Server, writer: Writer) -> None:
    async with connect(server) as client:
        await client.subscribe(FEED)
        await asyncio.sleep(0.3)  # let the subscription register before writing
        first = await writer.record(type="ORDER")
        data = await client.next_data()
    event = data["interactionRecorded"]
    assert event["interaction"] == {
        "id": gid("Interaction", first),
        "type": "ORDER",
        "channel": {"code": "WEB"},
        "touchpoint": {"name": "Shop"},
        "customer": {"displayName": "Ada"},
    }
    assert isinstance(event["cursor"], str) and event["cursor"]


async def test_filters_select_events_and_unknown_touchpoints_are_refused(
    server: Server, writer: Writer
) -> None:
    async with connect(server) as client:
        await client.subscribe(FEED, {"filter": {"types": ["CALL"], "channels": ["WEB"]}})
        await asyncio.sleep(0.3)
        await writer.record(type="PAGE_VIEW")
        wanted = await writer.record(type="CALL")
        assert interaction_id(await client.next_data()) == gid("Interaction", wanted)

        missing = gid("Touchpoint", "00000000-0000-0000-0000-000000000000")
        op = await client.subscribe(FEED, {"filter": {"touchpointIds": [missing]}})
        errors = await client.errors(op)
        assert errors[0]["extensions"]["code"] == "BAD_USER_INPUT"
        assert "unknown touchpoint" in errors[0]["message"]

        op = await client.subscribe(FEED, {"filter": {"channels": ["TELEPATHY"]}})
        errors = await client.errors(op)
        assert errors[0]["extensions"]["code"] == "BAD_USER_INPUT"
        assert "TELEPATHY" in errors[0]["message"]


async def test_no_event_is_delivered_for_a_rolled_back_write(
    server: Server, writer: Writer
) -> None:
    async with connect(server) as client:
        await client.subscribe(FEED)
        await asyncio.sleep(0.3)
        with pytest.raises(RuntimeError):
            async with writer.transaction() as transaction:
                await writer.record_in(transaction)
                raise RuntimeError("roll back")
        committed = await writer.record()
        # The next event delivered is the committed one: the rolled-back one never appears.
        assert interaction_id(await client.next_data()) == gid("Interaction", committed)


async def test_every_process_delivers_every_committed_event_once(
    database_url: str, tmp_path: Path, writer: Writer, broker: dict[str, str]
) -> None:
    # Two replicas on one database. The write goes through neither: each replica only sees the
    # outbox row (postgres broker) or the leader's stream entry (redis broker).
    process_a = start_server(database_url, tmp_path, **broker)
    process_b = start_server(database_url, tmp_path, **broker)
    try:
        async with connect(process_a) as on_a, connect(process_b) as on_b:
            await on_a.subscribe(FEED)
            await on_b.subscribe(FEED)
            await asyncio.sleep(0.3)
            recorded = [await writer.record() for _ in range(3)]
            expected = [gid("Interaction", r) for r in recorded]
            for client in (on_a, on_b):
                assert [interaction_id(await client.next_data()) for _ in expected] == expected
            with pytest.raises(TimeoutError):  # and nothing twice
                await on_b.receive(timeout=0.5)
        assert_redis_carried(broker, process_a, process_b)
    finally:
        process_a.stop()
        process_b.stop()


def readme_subscription() -> str:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Subscriptions", 1)[1].split("\n## ", 1)[0]
    return section.split("```graphql\n", 1)[1].split("```", 1)[0]


async def test_the_readme_example_works(server: Server, writer: Writer) -> None:
    async with connect(server) as client:
        await client.subscribe(readme_subscription())
        await asyncio.sleep(0.3)
        recorded = await writer.record(type="PRODUCT_VIEW")
        event = (await client.next_data())["interactionRecorded"]
    assert event["interaction"]["id"] == gid("Interaction", recorded)
    assert event["interaction"]["touchpoint"] == {"name": "Shop"}
    async with connect(server) as client:  # and resuming from its cursor replays what followed
        await client.subscribe(readme_subscription(), {"after": event["cursor"]})
        await asyncio.sleep(0.3)
        later = await writer.record()
        assert interaction_id(await client.next_data()) == gid("Interaction", later)


async def test_stage_merge_customer_and_conversation_feeds(
    server: Server, writer: Writer, engine: Any, db: asyncpg.Connection
) -> None:
    factory = Factory(db)
    other = await factory.customer("Bob")
    conversation = await factory.conversation(writer.customer_id, "T-1")
    customer_gid = gid("Customer", writer.customer_id)
    async with connect(server) as client:
        stage_op = await client.subscribe(
            "subscription { journeyStageChanged(filter: {stages: [PURCHASE]}) {"
            " cursor transition stage { code } previousStage { code } customer { displayName } } }"
        )
        merge_op = await client.subscribe(
            "subscription { customerMerged { cursor mergedCustomerId rule survivor { id } } }"
        )
        await asyncio.sleep(0.3)
        async with engine.begin() as connection:
            await emit_many(
                connection,
                [
                    NewEvent(
                        EventKind.JOURNEY_STAGE_CHANGED,
                        customer_id=writer.customer_id,
                        payload={"stage": "CONSIDERATION", "transition": "FORWARD"},
                    ),
                    NewEvent(
                        EventKind.JOURNEY_STAGE_CHANGED,
                        customer_id=writer.customer_id,
                        payload={
                            "stage": "PURCHASE",
                            "previous_stage": "CONSIDERATION",
                            "transition": "FORWARD",
                        },
                    ),
                    NewEvent(
                        EventKind.CUSTOMER_MERGED,
                        customer_id=writer.customer_id,
                        payload={"merged_id": str(other), "rule": "same-email"},
                    ),
                ],
            )
        by_operation = {}
        for _ in range(2):
            message = await client.receive()
            assert message["type"] == "next", message
            by_operation[message["id"]] = message["payload"]["data"]
    change = by_operation[stage_op]["journeyStageChanged"]
    assert change["stage"] == {"code": "PURCHASE"}
    assert change["previousStage"] == {"code": "CONSIDERATION"}
    assert change["transition"] == "FORWARD"
    assert change["customer"] == {"displayName": "Ada"}
    merge = by_operation[merge_op]["customerMerged"]
    assert merge["mergedCustomerId"] == gid("Customer", other)
    assert merge["rule"] == "same-email"
    assert merge["survivor"] == {"id": customer_gid}

    async with connect(server) as client:
        await client.subscribe(
            "subscription($id: ID!) { customerUpdated(id: $id) { customer { displayName } } }",
            {"id": customer_gid},
        )
        await client.subscribe(
            "subscription($id: ID!) { conversationUpdated(id: $id) { conversation { key } } }",
            {"id": gid("Conversation", conversation)},
        )
        await asyncio.sleep(0.3)
        await db.execute(
            "UPDATE customers SET display_name = 'Ada L.' WHERE id = $1", writer.customer_id
        )
        async with engine.begin() as connection:
            await emit_many(
                connection,
                [
                    NewEvent(EventKind.CUSTOMER_UPDATED, customer_id=other),  # someone else
                    NewEvent(EventKind.CUSTOMER_UPDATED, customer_id=writer.customer_id),
                    NewEvent(
                        EventKind.CONVERSATION_UPDATED,
                        customer_id=writer.customer_id,
                        subject_id=conversation,
                    ),
                ],
            )
        received = [await client.next_data() for _ in range(2)]
        with pytest.raises(TimeoutError):
            await client.receive(timeout=0.5)
    assert {"customerUpdated": {"customer": {"displayName": "Ada L."}}} in received
    assert {"conversationUpdated": {"conversation": {"key": "T-1"}}} in received


RECORD = """
mutation($tp: ID!, $key: String!) {
  recordInteraction(input: {identities: [{kind: EMAIL, value: "ada@example.com"}],
                            touchpointId: $tp, type: ORDER, direction: INBOUND,
                            idempotencyKey: $key}) {
    interaction { id }
  }
}
"""


async def test_an_interaction_recorded_over_http_on_a_reaches_a_subscriber_on_b(
    database_url: str, tmp_path: Path, writer: Writer, broker: dict[str, str]
) -> None:
    # The whole path: recordInteraction over HTTP on replica A commits the interaction and its
    # outbox row; B's broker (its own outbox poll, or the redis leader's stream) delivers it to
    # B's subscriber, once.
    process_a = start_server(database_url, tmp_path, **broker)
    process_b = start_server(database_url, tmp_path, **broker)
    touchpoint = gid("Touchpoint", writer.touchpoint_id)
    try:
        async with connect(process_b) as on_b:
            await on_b.subscribe(FEED)
            await asyncio.sleep(0.3)
            recorded = []
            async with httpx.AsyncClient(base_url=process_a.http_url) as http:
                for key in ("order-1", "order-2", "order-1"):  # the retry stores nothing new
                    response = await http.post(
                        "/graphql",
                        json={"query": RECORD, "variables": {"tp": touchpoint, "key": key}},
                    )
                    body = response.json()
                    assert "errors" not in body, body
                    recorded.append(body["data"]["recordInteraction"]["interaction"]["id"])
            assert recorded[0] == recorded[2]
            received = [interaction_id(await on_b.next_data()) for _ in range(2)]
            assert received == recorded[:2]
            with pytest.raises(TimeoutError):  # the retry is not a second event
                await on_b.receive(timeout=0.5)
        assert_redis_carried(broker, process_a, process_b)
    finally:
        process_a.stop()
        process_b.stop()
