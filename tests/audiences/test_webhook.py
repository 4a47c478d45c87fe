"""A `segmentMembershipChanged` document works as a webhook: the delivery worker of a real
`hub serve` POSTs each ENTERED/EXITED, signed, to a real receiver."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.audiences.support import CREATE
from tests.ingest_support import interaction, record, touchpoints
from tests.live_server import Server
from tests.waiting import until
from tests.webhooks.receiver import Receiver, receiving
from tests.webhooks.test_delivery import register, serve

FEED = """
subscription { segmentMembershipChanged(keys: ["buyers"]) { change reason customerId } }
"""


@pytest.fixture
def server(database_url: str, tmp_path: Path, db: asyncpg.Connection) -> Iterator[Server]:
    started = serve(database_url, tmp_path)
    try:
        yield started
    finally:
        started.stop()


async def test_membership_changes_are_delivered_as_webhooks(
    server: Server, gql: Any, db: asyncpg.Connection
) -> None:
    tp = (await touchpoints(db))["web"]
    buyers = {"activity": [{"interactions": {"types": ["ORDER"]}, "withinDays": 30}]}
    await gql.data(CREATE, {"input": {"key": "buyers", "name": "Buyers", **buyers}})
    async with receiving(Receiver()) as receiver:
        await register(server, receiver, query=FEED)
        await record(gql, interaction(tp, ("EMAIL", "ana@example.com"), type="PAGE_VIEW"))
        ana = await record(gql, interaction(tp, ("EMAIL", "ana@example.com"), type="ORDER"))
        await until(lambda: len(receiver.delivered) == 1, "one verified delivery")
    assert all(r.verified for r in receiver.requests)
    assert [r.json["data"]["segmentMembershipChanged"] for r in receiver.delivered] == [
        {"change": "ENTERED", "reason": "INGEST", "customerId": ana["customer"]["id"]}
    ]


SEGMENT_FEED = """
subscription { interactionRecorded(filter: {segment: {in: ["buyers"]}}) { interaction { id } } }
"""


async def test_interactions_of_segment_members_are_delivered_as_webhooks(
    server: Server, gql: Any, db: asyncpg.Connection
) -> None:
    tp = (await touchpoints(db))["web"]
    buyers = {"activity": [{"interactions": {"types": ["ORDER"]}, "withinDays": 30}]}
    await gql.data(CREATE, {"input": {"key": "buyers", "name": "Buyers", **buyers}})
    await record(gql, interaction(tp, ("EMAIL", "ana@example.com"), type="ORDER"))
    async with receiving(Receiver()) as receiver:
        await register(server, receiver, query=SEGMENT_FEED)
        sent = []
        for email in ("bob@example.com", "ana@example.com", "bob@example.com", "ana@example.com"):
            result = await record(gql, interaction(tp, ("EMAIL", email)))
            sent.append((email, result["interaction"]["id"]))
        await until(lambda: len(receiver.delivered) == 2, "two verified deliveries")
    assert all(r.verified for r in receiver.requests)
    # Ana is the only member: her two page views, in order; none of Bob's.
    assert [
        r.json["data"]["interactionRecorded"]["interaction"]["id"] for r in receiver.delivered
    ] == [i for email, i in sent if email == "ana@example.com"]
