"""Live delivery through real `hub serve` processes over real websockets."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from hub.events.outbox import Position, decode_cursor
from tests.factories import Factory, gid
from tests.feed_sync import (
    await_live,
    drain_to,
    first_of_last_transaction,
    interaction_probe,
    outbox_positions,
)
from tests.live_server import (
    Server,
    Writer,
    assert_redis_carried,
    connect,
    redis_broker_settings,
    start_server,
    start_servers,
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
        op = await client.subscribe(FEED)
        probed = await await_live(client, {op: "interactionRecorded"}, interaction_probe(writer))
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
    assert decode_cursor(event["cursor"]) > probed


async def test_filters_select_events_and_unknown_touchpoints_are_refused(
    server: Server, writer: Writer
) -> None:
    async with connect(server) as client:
        op = await client.subscribe(FEED, {"filter": {"types": ["CALL"], "channels": ["WEB"]}})

        async def call() -> Position:
            await writer.record(type="CALL")
            return await first_of_last_transaction(writer.engine)

        await await_live(client, {op: "interactionRecorded"}, call)
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
        op = await client.subscribe(FEED)
        await await_live(client, {op: "interactionRecorded"}, interaction_probe(writer))
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
    process_a, process_b = start_servers(2, database_url, tmp_path, **broker)
    probe = interaction_probe(writer)
    try:
        async with connect(process_a) as on_a, connect(process_b) as on_b:
            op_a = await on_a.subscribe(FEED)
            op_b = await on_b.subscribe(FEED)
            start_a = await await_live(on_a, {op_a: "interactionRecorded"}, probe)
            start_b = await await_live(on_b, {op_b: "interactionRecorded"}, probe)
            start = max(start_a, start_b)
            recorded = [await writer.record() for _ in range(3)]
            marker = await probe()
            expected = [gid("Interaction", r) for r in recorded]
            outbox = await outbox_positions(writer.engine, start, marker, ["INTERACTION_RECORDED"])
            outbox.remove(marker)
            for client, op in ((on_a, op_a), (on_b, op_b)):
                received = (await drain_to(client, {op: "interactionRecorded"}, marker))[op]
                # What arrived after the last probe: the three, once each, in cursor order,
                # exactly the outbox's events between the probe and the final marker.
                after = [(p, e) for p, e in received if p > start]
                assert [e["interaction"]["id"] for _, e in after] == expected
                assert [p for p, _ in after] == outbox
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
        op = await client.subscribe(readme_subscription())
        await await_live(client, {op: "interactionRecorded"}, interaction_probe(writer))
        recorded = await writer.record(type="PRODUCT_VIEW")
        event = (await client.next_data())["interactionRecorded"]
    assert event["interaction"]["id"] == gid("Interaction", recorded)
    assert event["interaction"]["touchpoint"] == {"name": "Shop"}
    async with connect(server) as client:  # and resuming from its cursor replays what followed
        # Resuming replays from the outbox: nothing to wait for, the next event is the one
        # written after that cursor, whenever the subscription registers.
        await client.subscribe(readme_subscription(), {"after": event["cursor"]})
        later = await writer.record()
        assert interaction_id(await client.next_data()) == gid("Interaction", later)


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
    process_a, process_b = start_servers(2, database_url, tmp_path, **broker)
    touchpoint = gid("Touchpoint", writer.touchpoint_id)
    probe = interaction_probe(writer)
    try:
        async with connect(process_b) as on_b:
            op = await on_b.subscribe(FEED)
            start = await await_live(on_b, {op: "interactionRecorded"}, probe)
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
            marker = await probe()
            received = (await drain_to(on_b, {op: "interactionRecorded"}, marker))[op]
            # The retry is not a second event: exactly the two, as in the outbox.
            assert [e["interaction"]["id"] for _, e in received] == recorded[:2]
            outbox = await outbox_positions(writer.engine, start, marker, ["INTERACTION_RECORDED"])
            assert [p for p, _ in received] == outbox[:-1]
        assert_redis_carried(broker, process_a, process_b)
    finally:
        process_a.stop()
        process_b.stop()
