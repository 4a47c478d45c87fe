"""Webhooks delivered by real `hub serve` processes to a real receiver on 127.0.0.1 that
verifies every request with the official `standardwebhooks` package (issue 17)."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from hub.core.ids import uuid_from_global_id
from hub.events.outbox import decode_cursor
from tests.conftest import make_key
from tests.factories import Factory, gid
from tests.live_server import Server, Writer, metric, sample, start_server
from tests.waiting import until
from tests.webhooks.receiver import Receiver, receiving

FEED = """
subscription Feed($filter: InteractionRecordedFilter) {
  interactionRecorded(filter: $filter) {
    cursor
    interaction { id type channel { code } customer { displayName } }
  }
}
"""
CREATE = """
mutation Create($input: CreateWebhookInput!) {
  createWebhook(input: $input) { webhook { id url status cursor } secret }
}
"""
STATE = """
query State($id: ID!, $status: DeliveryStatus) {
  webhook(id: $id) {
    status statusReason cursor
    deliveries(status: $status, first: 100) { id webhookId attempt status statusCode error }
  }
}
"""
# Fast retries, short leases: the tests wait for outcomes, never for time.
FAST = {
    "webhook_allow_private": "true",
    "webhook_lease_s": "1.5",
    "webhook_backoff_initial_s": "0.05",
    "webhook_backoff_max_s": "0.2",
}


def serve(database_url: str, tmp: Path, **settings: Any) -> Server:
    return start_server(database_url, tmp, **{**FAST, **settings})


@pytest.fixture
def server(database_url: str, tmp_path: Path, db: asyncpg.Connection) -> Iterator[Server]:
    """One process per test: a process left over from another test would compete for leases.
    Started after ``db`` emptied the tables: else it would deliver the webhooks an earlier test
    left behind (and count their attempts in this test's metrics)."""
    started = serve(database_url, tmp_path)
    try:
        yield started
    finally:
        started.stop()


async def graphql(
    server: Server, query: str, variables: dict[str, Any], key: str | None = None
) -> Any:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with httpx.AsyncClient(base_url=server.http_url, headers=headers) as http:
        response = await http.post("/graphql", json={"query": query, "variables": variables})
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


async def register(
    server: Server,
    receiver: Receiver,
    key: str | None = None,
    query: str = FEED,
    variables: dict[str, Any] | None = None,
) -> str:
    data = await graphql(
        server,
        CREATE,
        {"input": {"url": receiver.url, "query": query, "variables": variables}},
        key,
    )
    created = data["createWebhook"]
    assert created["secret"].startswith("whsec_")
    assert created["webhook"]["status"] == "ACTIVE"
    receiver.secrets.append(created["secret"])
    return str(created["webhook"]["id"])


async def state(server: Server, webhook_id: str, status: str | None = None) -> Any:
    data = await graphql(server, STATE, {"id": webhook_id, "status": status})
    return data["webhook"]


@pytest.fixture
async def writer(engine: Any, db: asyncpg.Connection) -> Writer:
    factory = Factory(db)
    touchpoint = await factory.touchpoint("Shop", "WEB", "WEBSITE")
    customer = await factory.customer("Ada Lovelace")
    return Writer(engine, customer, "Shop", touchpoint, "WEB")


def interaction_ids(requests: list[Any]) -> list[str]:
    assert all("errors" not in r.json for r in requests), requests[0].json
    return [r.json["data"]["interactionRecorded"]["interaction"]["id"] for r in requests]


async def test_every_event_is_delivered_signed_in_order_with_ids_stable_across_retries(
    server: Server, writer: Writer
) -> None:
    async with receiving(Receiver(fail_next=2)) as receiver:
        webhook_id = await register(server, receiver)
        types = ("PAGE_VIEW", "ORDER", "CHAT_MESSAGE", "ORDER")
        written = [await writer.record(type=t) for t in types]
        await until(lambda: len(receiver.delivered) == 4, "four verified deliveries")
    # Every request verified with standardwebhooks; the first event was answered 503 twice.
    assert all(r.verified for r in receiver.requests)
    assert len(receiver.requests) == 6
    assert [r.headers["x-answered"] for r in receiver.requests[:3]] == ["503", "503", "2xx"]
    first_id = receiver.requests[0].id
    assert [r.id for r in receiver.requests[:3]] == [first_id] * 3  # stable across retries
    assert interaction_ids(receiver.delivered) == [gid("Interaction", w) for w in written]
    # The body is the subscription result; webhook-id is the event's cursor, in cursor order.
    ids = [r.id for r in receiver.delivered]
    assert [r.json["data"]["interactionRecorded"]["cursor"] for r in receiver.delivered] == ids
    positions = [decode_cursor(i) for i in ids]
    assert positions == sorted(positions) and len(set(positions)) == 4
    assert receiver.delivered[0].json["data"]["interactionRecorded"]["interaction"] == {
        "id": gid("Interaction", written[0]),
        "type": "PAGE_VIEW",
        "channel": {"code": "WEB"},
        "customer": {"displayName": "Ada Lovelace"},
    }
    webhook = await state(server, webhook_id)
    assert webhook["status"] == "ACTIVE"
    assert webhook["cursor"] == ids[-1]
    # Metrics: attempts by outcome, their latency, and this webhook's backlog (none left).
    assert metric(server, 'hub_webhook_deliveries_total{outcome="succeeded"}') == 4
    assert metric(server, 'hub_webhook_deliveries_total{outcome="failed"}') == 2
    assert metric(server, "hub_webhook_attempt_duration_seconds_count") == 6
    raw_id = uuid_from_global_id(webhook_id, "Webhook")
    # The gauge is rebuilt on every lease tick from the webhooks this process holds; a tick
    # whose claim met the row locked by a cursor update (FOR UPDATE SKIP LOCKED) leaves the
    # webhook out until the next one, so absent means "not yet" here, as a stale count does.
    await until(
        lambda: sample(server, f'hub_webhook_backlog_events{{webhook="{raw_id}"}}') == 0,
        "the backlog gauge at 0",
    )
    log = list(reversed(webhook["deliveries"]))  # oldest first
    assert [(d["webhookId"], d["attempt"], d["status"], d["statusCode"]) for d in log] == [
        (ids[0], 1, "FAILED", 503),
        (ids[0], 2, "FAILED", 503),
        (ids[0], 3, "SUCCEEDED", 200),
        (ids[1], 1, "SUCCEEDED", 200),
        (ids[2], 1, "SUCCEEDED", 200),
        (ids[3], 1, "SUCCEEDED", 200),
    ]


async def test_a_receiver_down_for_a_while_gets_everything_once_back(
    server: Server, writer: Writer
) -> None:
    async with receiving(Receiver(status=503, retry_after="0")) as receiver:
        webhook_id = await register(server, receiver)
        written = [await writer.record(type="ORDER") for _ in range(3)]
        await until(lambda: len(receiver.requests) >= 4, "retries while the receiver is down")
        assert receiver.delivered == []
        assert {r.id for r in receiver.requests} == {receiver.requests[0].id}  # still the first
        receiver.status = 200
        await until(lambda: len(receiver.delivered) == 3, "everything after it came back")
    assert interaction_ids(receiver.delivered) == [gid("Interaction", w) for w in written]
    webhook = await state(server, webhook_id, "FAILED")
    assert len(webhook["deliveries"]) == len(receiver.requests) - 3
    assert {d["statusCode"] for d in webhook["deliveries"]} == {503}


async def test_a_receiver_that_never_recovers_ends_in_the_dead_letter_list_and_replays(
    database_url: str, tmp_path: Path, writer: Writer
) -> None:
    short = serve(database_url, tmp_path, webhook_retry_seconds="0.3")
    try:
        async with receiving(Receiver(status=500)) as receiver:
            before = await writer.record(type="PAGE_VIEW")  # the cursor the replay starts after
            webhook_id = await register(short, receiver)
            created = await state(short, webhook_id)
            written = [await writer.record(type="ORDER") for _ in range(2)]

            async def dead_letters() -> list[Any]:
                webhook = await state(short, webhook_id, "DEAD_LETTER")
                return list(webhook["deliveries"])

            await until(lambda: _len_is(dead_letters, 2), "two dead letters")
            webhook = await state(short, webhook_id)
            assert webhook["status"] == "FAILING"
            assert webhook["statusReason"].startswith("event ")
            assert "HTTP 500" in webhook["statusReason"]
            assert receiver.delivered == []
            # Replay from before the first event: both come, in order, once the receiver is up.
            receiver.status = 200
            replayed = await graphql(
                short,
                "mutation($id: ID!, $after: String!) { replayWebhook(id: $id, after: $after)"
                " { status } }",
                {"id": webhook_id, "after": created["cursor"]},
            )
            assert replayed == {"replayWebhook": {"status": "ACTIVE"}}
            await until(lambda: len(receiver.delivered) == 2, "the replayed events")
            assert interaction_ids(receiver.delivered) == [gid("Interaction", w) for w in written]
            # A dead letter can also be sent again on its own: same webhook-id, signed afresh.
            dead = (await dead_letters())[0]
            again = await graphql(
                short,
                "mutation($d: ID!) { redeliver(deliveryId: $d) { webhookId status statusCode } }",
                {"d": dead["id"]},
            )
            assert again == {
                "redeliver": {
                    "webhookId": dead["webhookId"],
                    "status": "SUCCEEDED",
                    "statusCode": 200,
                }
            }
            assert receiver.delivered[-1].id == dead["webhookId"]
            assert before not in written
    finally:
        short.stop()


async def _len_is(check: Any, n: int) -> bool:
    return len(await check()) == n


async def test_a_partner_webhook_receives_only_its_scope_masked(
    database_url: str, tmp_path: Path, engine: Any, db: asyncpg.Connection
) -> None:
    keyed = serve(database_url, tmp_path, dev_mode="false")
    try:
        factory = Factory(db)
        web = await factory.touchpoint("Shop", "WEB", "WEBSITE")
        app = await factory.touchpoint("App", "MOBILE", "MOBILE_APP")
        sharing = await factory.customer("Ada Sharing", traits={"email": "ada@example.com"})
        private = await factory.customer("Bo Private")
        await db.execute(
            "INSERT INTO consents (customer_id, purpose, channel, status, granted_at)"
            " VALUES ($1, 'PARTNER_SHARING', '', 'GRANTED', now())",
            sharing,
        )
        key = await make_key(engine, "PARTNER", channels=["WEB"])
        query = (
            "subscription { interactionRecorded { interaction"
            " { id channel { code } customer { displayName traits } } } }"
        )
        async with receiving(Receiver()) as receiver:
            await register(keyed, receiver, key, query)
            # Out of scope (MOBILE) and without consent (Bo): never delivered. Then one that is.
            await Writer(engine, sharing, "App", app, "MOBILE").record(type="PAGE_VIEW")
            await Writer(engine, private, "Shop", web, "WEB").record(type="PAGE_VIEW")
            visible = await Writer(engine, sharing, "Shop", web, "WEB").record(type="ORDER")
            last = await Writer(engine, sharing, "Shop", web, "WEB").record(type="CHAT_MESSAGE")
            await until(lambda: len(receiver.delivered) == 2, "the partner's deliveries")
        assert [r.json for r in receiver.delivered] == [
            {
                "data": {
                    "interactionRecorded": {
                        "interaction": {
                            "id": gid("Interaction", interaction),
                            "channel": {"code": "WEB"},
                            "customer": {"displayName": "•••", "traits": {"email": "•••"}},
                        }
                    }
                }
            }
            for interaction in (visible, last)
        ]
        # The partner sees its own webhook only; an ADMIN sees all.
        other = await make_key(engine, "PARTNER", channels=["WEB"])
        mine = await graphql(keyed, "{ webhooks { owner } }", {}, key)
        assert len(mine["webhooks"]) == 1
        assert await graphql(keyed, "{ webhooks { owner } }", {}, other) == {"webhooks": []}
    finally:
        keyed.stop()


async def test_a_revoked_key_stops_its_webhooks(
    database_url: str, tmp_path: Path, engine: Any, writer: Writer
) -> None:
    keyed = serve(database_url, tmp_path, dev_mode="false", key_recheck_seconds="0.05")
    try:
        key = await make_key(engine, "ADMIN")
        async with receiving(Receiver()) as receiver:
            webhook_id = await register(keyed, receiver, key)
            await writer.record(type="ORDER")
            await until(lambda: len(receiver.delivered) == 1, "the first delivery")
            async with engine.begin() as connection:
                from sqlalchemy import text

                await connection.execute(text("UPDATE api_keys SET revoked_at = now()"))
            await writer.record(type="ORDER")
            admin = await make_key(engine, "ADMIN")
            data = await graphql(keyed, STATE, {"id": webhook_id, "status": None}, admin)

            async def disabled() -> bool:
                webhook = (await graphql(keyed, STATE, {"id": webhook_id}, admin))["webhook"]
                return bool(webhook["status"] == "DISABLED")

            await until(disabled, "the webhook disabled")
            assert data["webhook"]["deliveries"][0]["status"] == "SUCCEEDED"
        assert len(receiver.delivered) == 1
    finally:
        keyed.stop()


async def test_two_processes_deliver_each_event_once_and_hand_over_when_one_dies(
    database_url: str, tmp_path: Path, writer: Writer, db: asyncpg.Connection
) -> None:
    servers = [serve(database_url, tmp_path / str(i)) for i in range(2) if _mk(tmp_path / str(i))]
    try:
        async with receiving(Receiver()) as receiver:
            await register(servers[0], receiver)
            written = [await writer.record(type="ORDER") for _ in range(5)]
            await until(lambda: len(receiver.delivered) == 5, "five deliveries")
            # Killed once the last 2xx is recorded (between a 2xx and the cursor write, a kill
            # makes the next process send that event again: at-least-once).
            last = decode_cursor(receiver.delivered[-1].id)

            async def recorded() -> bool:
                row = await db.fetchrow("SELECT cursor_xid, cursor_id FROM webhooks")
                return (row["cursor_xid"], row["cursor_id"]) == (last.xid, last.id)

            await until(recorded, "the cursor at the fifth event")
            owner = await db.fetchval("SELECT lease_owner FROM webhooks")
            pid = int(owner.split(":")[0])
            delivering = next(s for s in servers if s.process.pid == pid)
            other = next(s for s in servers if s is not delivering)
            os.kill(pid, signal.SIGKILL)  # no clean shutdown: its lease must expire
            delivering.process.wait()
            written += [await writer.record(type="CHAT_MESSAGE") for _ in range(3)]
            await until(lambda: len(receiver.delivered) == 8, "the other process's deliveries")
            assert int((await db.fetchval("SELECT lease_owner FROM webhooks")).split(":")[0]) == (
                other.process.pid
            )
        ids = [r.id for r in receiver.delivered]
        # Each event once (the process died idle), in order, ids from the events' cursors.
        assert len(set(ids)) == 8
        assert interaction_ids(receiver.delivered) == [gid("Interaction", w) for w in written]
    finally:
        for started in servers:
            started.stop()


def _mk(path: Path) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    return True
