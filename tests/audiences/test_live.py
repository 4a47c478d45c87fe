"""Membership events over a real websocket (graphql-transport-ws) from a real `hub serve`:
produced by real ingest and merges, each delivered exactly once across a reconnect with the
cursor; and the running sweeper moves a customer out when its window slides."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from hub.events.outbox import Position
from tests.audiences.support import CREATE, stored_members
from tests.conftest import make_key
from tests.factories import zulu
from tests.ingest_support import RECORD, interaction, record, row_id, touchpoints
from tests.live_server import Client, Server, connect, start_server
from tests.waiting import until

FEED = """
subscription Members($after: String) {
  segmentMembershipChanged(keys: ["buyers", "today"], after: $after) {
    cursor change reason customerId segment { key } customer { id }
  }
}
"""
MERGE = """
mutation($input: MergeCustomersInput!) { mergeCustomers(input: $input) { merge { id } } }
"""


@pytest.fixture(scope="module")
def server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    started = start_server(
        database_url,
        tmp_path_factory.mktemp("serve"),
        audiences_sweep_s="0.2",
        # A slow drainer: the segment feed meets an ingest's customer still queued, and must
        # wait for its evaluation (test_interaction_recorded_filtered_by_segment_…).
        audiences_drain_ms="500",
    )
    try:
        yield started
    finally:
        started.stop()


async def order(gql: Any, tp: str, email: str, ago: timedelta = timedelta(hours=2)) -> str:
    at = datetime.now(UTC) - ago
    result = await record(gql, interaction(tp, ("EMAIL", email), type="ORDER", occurredAt=zulu(at)))
    customer: str = result["customer"]["id"]
    return customer


async def last_position(db: asyncpg.Connection) -> Position:
    row = await db.fetchrow("SELECT xid, id FROM events ORDER BY xid DESC, id DESC LIMIT 1")
    assert row is not None
    return Position(row["xid"], row["id"])


async def change(client: Client) -> tuple[str, str, str, str]:
    event = (await client.next_data())["segmentMembershipChanged"]
    return event["change"], event["reason"], event["customerId"], event["cursor"]


async def test_events_exactly_once_across_a_reconnect(
    server: Server, gql: Any, db: asyncpg.Connection
) -> None:
    tp = (await touchpoints(db))["web"]
    buyers = {"activity": [{"interactions": {"types": ["ORDER"]}, "withinDays": 30}]}
    await gql.data(CREATE, {"input": {"key": "buyers", "name": "Buyers", **buyers}})
    p0 = await order(gql, tp, "p0@example.com")
    start = (await last_position(db)).cursor  # p0 ENTERED: the resume point

    async with connect(server) as client:
        await client.subscribe(FEED, {"after": start})
        p1 = await order(gql, tp, "p1@example.com")
        entered = await change(client)
        assert entered[:3] == ("ENTERED", "INGEST", p1)
        resume = entered[3]

    # While nobody listens: p2 enters (ingest), then is merged into p1 (p2 exits); a page view
    # of p3 changes no membership (no event).
    p2 = await order(gql, tp, "p2@example.com")
    await gql.data(MERGE, {"input": {"survivorId": p1, "mergedIds": [p2]}})
    await record(gql, interaction(tp, ("EMAIL", "p3@example.com"), type="PAGE_VIEW"))

    async with connect(server) as client:
        await client.subscribe(FEED, {"after": resume})
        missed = [await change(client) for _ in range(2)]
        assert [m[:3] for m in missed] == [("ENTERED", "INGEST", p2), ("EXITED", "MERGE", p2)]
        p4 = await order(gql, tp, "p4@example.com")  # the marker: the next one, nothing between
        marker = await change(client)
        assert marker[:3] == ("ENTERED", "INGEST", p4)
    cursors = [entered[3], *(m[3] for m in missed), marker[3]]
    assert len(set(cursors)) == 4
    assert p0 not in {entered[2], *(m[2] for m in missed), marker[2]}


async def test_the_running_sweeper_moves_a_customer_out_of_a_window(
    server: Server, gql: Any, db: asyncpg.Connection
) -> None:
    tp = (await touchpoints(db))["web"]
    today = {"activity": [{"interactions": {"types": ["ORDER"]}, "withinDays": 1}]}
    await gql.data(CREATE, {"input": {"key": "today", "name": "Today", **today}})
    # Ordered a day ago less a few seconds: in the window now, out of it seconds later.
    stays = await order(gql, tp, "stays@example.com", ago=timedelta(hours=1))
    leaves = await order(gql, tp, "leaves@example.com", ago=timedelta(days=1, seconds=-4))
    start = (await last_position(db)).cursor
    members = await stored_members(db, "today")
    assert len(members) == 2
    async with connect(server) as client:
        await client.subscribe(FEED, {"after": start})
        exited = await change(client)
    assert exited[:3] == ("EXITED", "CLOCK", leaves)

    async def only_stays() -> bool:
        return len(await stored_members(db, "today")) == 1

    await until(only_stays, "the sweeper's commit")
    count = await gql.data('{ segment(key: "today") { memberCount members { nodes { id } } } }')
    assert count["segment"] == {"memberCount": 1, "members": {"nodes": [{"id": stays}]}}


CONSENT = """
mutation($id: ID!) {
  setConsent(input: {customerId: $id, purpose: PARTNER_SHARING, status: GRANTED}) { status }
}
"""


async def test_a_partner_receives_only_members_in_its_scope(
    server: Server, gql: Any, db: asyncpg.Connection, engine: Any
) -> None:
    tp = await touchpoints(db)
    people = {}
    for name, place in (("ana", "web"), ("bob", "app"), ("cy", "web")):
        result = await record(gql, interaction(tp[place], ("EMAIL", f"{name}@example.com")))
        people[name] = result["customer"]["id"]
    for name in ("ana", "bob"):  # Cy does not share with partners
        await gql.data(CONSENT, {"id": people[name]})
    buyers = {"activity": [{"interactions": {"types": ["ORDER"]}, "withinDays": 30}]}
    await gql.data(CREATE, {"input": {"key": "buyers", "name": "Buyers", **buyers}})
    # A cursor the partner may resume from must be an event it sees: Ana's page view.
    seen = await db.fetchrow(
        "SELECT xid, id FROM events WHERE kind = 'INTERACTION_RECORDED' AND customer_id = $1",
        row_id(people["ana"]),
    )
    start = Position(seen["xid"], seen["id"]).cursor
    # Cy (not sharing) and Bob (only on MOBILE) enter first; Ana (WEB, sharing) last.
    await order(gql, tp["web"], "cy@example.com")
    await order(gql, tp["app"], "bob@example.com")
    await order(gql, tp["web"], "ana@example.com")
    assert len(await stored_members(db, "buyers")) == 3  # negative control: all three entered
    key = await make_key(engine, "PARTNER", channels=["WEB"])
    async with connect(server, init=False) as client:
        await client.init({"Authorization": f"Bearer {key}"})
        await client.subscribe(FEED, {"after": start})
        first = await change(client)
    assert first[:3] == ("ENTERED", "INGEST", people["ana"])
    # interactionRecorded by segment keeps the partner's scope: of the three members' orders
    # only Ana's (WEB, sharing) arrives; Ana's page view before came from no member.
    orders = await db.fetch(
        "SELECT customer_id, id FROM interactions WHERE type = 'ORDER' ORDER BY occurred_at, id"
    )
    assert len(orders) == 3  # negative control: three members ordered
    async with connect(server, init=False) as client:
        await client.init({"Authorization": f"Bearer {key}"})
        await client.subscribe(SEGMENT_FEED, {"after": start, "segment": {"in": ["buyers"]}})
        got, _ = await recorded(client)
        # Cy's and Bob's orders came before Ana's in the outbox and were skipped; the marker,
        # Ana's next page view, is the very next delivery.
        marker = await record(gql, interaction(tp["web"], ("EMAIL", "ana@example.com")))
        assert (await recorded(client))[0] == marker["interaction"]["id"]
    ana_orders = [r["id"] for r in orders if r["customer_id"] == row_id(people["ana"])]
    assert [row_id(got)] == ana_orders


SEGMENT_FEED = """
subscription Feed($after: String, $segment: SegmentFilter) {
  interactionRecorded(filter: {segment: $segment}, after: $after) {
    cursor interaction { id type }
  }
}
"""


async def recorded(client: Client) -> tuple[str, str]:
    event = (await client.next_data())["interactionRecorded"]
    return event["interaction"]["id"], event["cursor"]


async def test_interaction_recorded_filtered_by_segment_across_a_reconnect(
    server: Server, gql: Any, db: asyncpg.Connection, engine: Any
) -> None:
    tp = (await touchpoints(db))["web"]
    buyers = {"activity": [{"interactions": {"types": ["ORDER"]}, "withinDays": 30}]}
    await gql.data(CREATE, {"input": {"key": "buyers", "name": "Buyers", **buyers}})

    async def view(email: str) -> str:
        result = await record(gql, interaction(tp, ("EMAIL", email)))
        interaction_id: str = result["interaction"]["id"]
        return interaction_id

    async def buy(email: str) -> str:
        result = await record(gql, interaction(tp, ("EMAIL", email), type="ORDER"))
        interaction_id: str = result["interaction"]["id"]
        return interaction_id

    await buy("ana@example.com")
    await view("bob@example.com")
    start = (await last_position(db)).cursor
    segment = {"in": ["buyers"]}
    async with connect(server) as client:
        await client.subscribe(SEGMENT_FEED, {"after": start, "segment": segment})
        sent = [await view("bob@example.com"), await view("ana@example.com")]
        # Cy's order makes Cy a member once the server's drainer has evaluated it: sent to the
        # server itself (the other calls go through the test's app, which drains before it
        # answers), so the feed meets Cy still queued and judges Cy after the drain
        # (hub.audiences.queue.evaluated).
        key = await make_key(engine, "ADMIN")
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=server.http_url, headers=headers) as http:
            item = interaction(tp, ("EMAIL", "cy@example.com"), type="ORDER")
            answer = await http.post(
                "/graphql", json={"query": RECORD, "variables": {"input": item}}
            )
            sent.append(answer.json()["data"]["recordInteraction"]["interaction"]["id"])
        first = [await recorded(client) for _ in range(2)]
    assert [f[0] for f in first] == sent[1:]
    # While nobody listens: Bob views again (not a member), Ana views (a member).
    missed = [await view("bob@example.com"), await view("ana@example.com")]
    async with connect(server) as client:
        await client.subscribe(SEGMENT_FEED, {"after": first[-1][1], "segment": segment})
        marker = await view("cy@example.com")
        again = [await recorded(client) for _ in range(2)]
    assert [a[0] for a in again] == [missed[1], marker]
    # The independent recount: those delivered are exactly the interactions of members.
    members = await stored_members(db, "buyers")
    by_customer = {
        row["id"]: row["customer_id"]
        for row in await db.fetch("SELECT id, customer_id FROM interactions")
    }
    for interaction_id in [*sent, *missed, marker]:
        delivered = interaction_id in {*(f[0] for f in first), *(a[0] for a in again)}
        assert delivered == (by_customer[row_id(interaction_id)] in members)
    # notIn: the complement (negative control: Bob's views arrive there, and only them).
    async with connect(server) as client:
        await client.subscribe(SEGMENT_FEED, {"after": start, "segment": {"notIn": ["buyers"]}})
        complement = [(await recorded(client))[0] for _ in range(2)]
    assert complement == [sent[0], missed[0]]
