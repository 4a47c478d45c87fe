"""Subscriptions with API keys: no key no connection, partners see only their scope and only
customers who granted partner sharing; personal fields masked (issues 4 and 5)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest
import websockets

from tests.conftest import make_key
from tests.factories import Factory, gid
from tests.feed_sync import await_live, interaction_probe
from tests.live_server import PROTOCOL, Server, Writer, connect, start_server

FEED = """
subscription {
  interactionRecorded { cursor interaction { id channel { code } customer { displayName } } }
}
"""


@pytest.fixture(scope="module")
def server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    started = start_server(database_url, tmp_path_factory.mktemp("serve"), dev_mode=False)
    try:
        yield started
    finally:
        started.stop()


async def test_a_connection_without_a_valid_key_is_closed_4403(server: Server) -> None:
    for payload in ({}, {"Authorization": "Bearer hub_0123456789ab_" + "x" * 43}):
        async with websockets.connect(server.ws_url, subprotocols=[PROTOCOL]) as ws:  # type: ignore[list-item]
            await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403


async def test_a_partner_receives_only_its_scope_and_consenting_customers(
    server: Server, engine: Any, db: asyncpg.Connection
) -> None:
    factory = Factory(db)
    web = await factory.touchpoint("Shop", "WEB", "WEBSITE")
    app = await factory.touchpoint("App", "MOBILE", "MOBILE_APP")
    sharing = await factory.customer("Ada Sharing")
    private = await factory.customer("Bo Private")
    await db.execute(
        "INSERT INTO consents (customer_id, purpose, channel, status, granted_at)"
        " VALUES ($1, 'PARTNER_SHARING', '', 'GRANTED', now())",
        sharing,
    )
    key = await make_key(engine, "PARTNER", channels=["WEB"])
    async with connect(server, init=False) as client:
        await client.init({"Authorization": f"Bearer {key}"})
        op = await client.subscribe(FEED)
        visible_writer = Writer(engine, sharing, "Shop", web, "WEB")
        await await_live(client, {op: "interactionRecorded"}, interaction_probe(visible_writer))
        # Out of scope (MOBILE) and without consent (Bo): never delivered. Then the one that is.
        await Writer(engine, sharing, "App", app, "MOBILE").record(type="PAGE_VIEW")
        await Writer(engine, private, "Shop", web, "WEB").record(type="PAGE_VIEW")
        visible = await visible_writer.record(type="ORDER")
        data = await client.next_data()
    event = data["interactionRecorded"]["interaction"]
    assert event["id"] == gid("Interaction", visible)
    assert event["channel"] == {"code": "WEB"}
    # A partner never sees personal fields.
    assert event["customer"]["displayName"] == "•••"


async def test_an_admin_key_sees_every_event_unmasked(
    server: Server, engine: Any, db: asyncpg.Connection
) -> None:
    factory = Factory(db)
    app = await factory.touchpoint("App", "MOBILE", "MOBILE_APP")
    customer = await factory.customer("Cy Admin-visible")
    key = await make_key(engine, "ADMIN")
    async with connect(server, init=False) as client:
        await client.init({"Authorization": f"Bearer {key}"})
        op = await client.subscribe(FEED)
        mobile = Writer(engine, customer, "App", app, "MOBILE")
        await await_live(client, {op: "interactionRecorded"}, interaction_probe(mobile))
        written = await mobile.record(type="PAGE_VIEW")
        data = await client.next_data()
    event = data["interactionRecorded"]["interaction"]
    assert event["id"] == gid("Interaction", written)
    assert event["customer"]["displayName"] == "Cy Admin-visible"


async def test_a_partner_resume_cursor_is_checked_under_row_security(
    server: Server, engine: Any, db: asyncpg.Connection
) -> None:
    from hub.events.outbox import Position

    resume = "subscription($after: String) { interactionRecorded(after: $after) { cursor } }"
    factory = Factory(db)
    app = await factory.touchpoint("App", "MOBILE", "MOBILE_APP")
    shopper = await factory.customer("Di Mobile")
    await Writer(engine, shopper, "App", app, "MOBILE").record(type="PAGE_VIEW")
    xid, event_id = await db.fetchrow("SELECT xid, id FROM events ORDER BY id DESC LIMIT 1")
    key = await make_key(engine, "PARTNER", channels=["WEB"])
    async with connect(server, init=False) as client:
        await client.init({"Authorization": f"Bearer {key}"})
        # An unknown cursor past every event: refused as for any caller, not a server error.
        op = await client.subscribe(resume, {"after": Position(xid + 1000, event_id + 1000).cursor})
        [error] = await client.errors(op)
        assert error["extensions"]["code"] == "CURSOR_INVALID"
        # The cursor of an event the partner may not see names no event it can see: it answers
        # as a pruned one would, never with that event.
        op = await client.subscribe(resume, {"after": Position(xid, event_id).cursor})
        [error] = await client.errors(op)
        assert error["extensions"]["code"] == "CURSOR_EXPIRED"
