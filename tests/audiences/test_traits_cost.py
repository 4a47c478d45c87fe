"""What audiences cost a single compiled ingest, counted where asyncpg sends it: nothing without
definitions (tests/compiled/test_ingest_statements.py pins 4 round trips), one statement with
any number of them — the customer queued for the drainer (``hub.audiences.queue``; the store
statement says whether computed traits exist, the claims statement lists the segments) — and,
in the drain, one statement for all traits and one per group of segments."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from hub.audiences.queue import settled
from tests.audiences.support import CREATE
from tests.audiences.test_traits import DEFINE, TRAITS
from tests.compiled.test_ingest_statements import KNOWN_PERSON, NEW_PERSON, SINGLE
from tests.conftest import GraphQLClient
from tests.driver_statements import DriverStatements
from tests.ingest_support import touchpoints


async def test_audiences_add_one_round_trip_to_an_event(
    gql: Any,
    db: asyncpg.Connection,
    engine: Any,
    gql_as: Callable[..., Awaitable[GraphQLClient]],
    count_driver_statements: DriverStatements,
) -> None:
    tp = await touchpoints(db)
    http = (await gql_as("FRONTEND")).http

    async def trips(email: str) -> list[str]:
        event = {
            "identities": [{"kind": "EMAIL", "value": email}],
            "touchpointId": tp["web"],
            "type": "ORDER",
            "direction": "INBOUND",
            "attributes": {"amount": 3},
        }
        count_driver_statements.clear()
        response = await http.post(
            "/graphql", json={"query": SINGLE, "variables": {"input": event}}
        )
        assert "errors" not in response.json(), response.json()
        return count_driver_statements.round_trips

    await trips("warm@example.com")  # connections opened, types introspected
    for trait in TRAITS:
        if "sku" not in trait.get("attribute", ""):  # no sku seen yet: unknown attribute
            await gql.data(DEFINE, {"input": trait})
    for email in ("bob@example.com", "ana@example.com"):
        sent = await trips(email)
        assert len(sent) == NEW_PERSON + 1, "\n---\n".join(sent)
        assert sum("INSERT INTO audience_queue" in s for s in sent) == 1
        assert not any("customer_traits_computed" in s for s in sent)
    assert await db.fetchval("SELECT count(*) FROM audience_queue") == 2
    count_driver_statements.clear()
    await settled(engine)
    drained = count_driver_statements.work
    assert sum("customer_traits_computed" in s for s in drained) == 1, "\n---\n".join(drained)
    assert await db.fetchval("SELECT count(*) FROM audience_queue") == 0
    values = await db.fetch(
        "SELECT c.trait_key, c.value::text FROM customer_traits_computed c JOIN identities i"
        " ON i.customer_id = c.customer_id WHERE i.value = 'ana@example.com' ORDER BY trait_key"
    )
    assert [tuple(v) for v in values] == [
        ("basket", "3"),
        ("favourite_channel", '"WEB"'),
        ("largest", "3"),
        ("orders", "1"),
        ("recent_web", "1"),
        ("revenue", "3"),
        ("smallest", "3"),
    ]


async def test_an_event_no_definition_tests_costs_no_audience_statement(
    gql: Any,
    db: asyncpg.Connection,
    engine: Any,
    gql_as: Callable[..., Awaitable[GraphQLClient]],
    count_driver_statements: DriverStatements,
) -> None:
    """hub.audiences.relevance, in the drain: for a known customer, an event that no trait's
    filter and no segment's activity matches costs neither statement when drained (the
    ingest itself costs the queue's one statement); the next event that matches costs one each
    and changes what it must (the control: skipping everything would leave the count at 1 and
    ana out of the segment)."""
    tp = await touchpoints(db)
    http = (await gql_as("FRONTEND")).http

    async def record(touchpoint: str, type_: str, direction: str) -> tuple[list[str], list[str]]:
        """The ingest's round trips, and the work of draining it."""
        event = {
            "identities": [{"kind": "EMAIL", "value": "ana@example.com"}],
            "touchpointId": tp[touchpoint],
            "type": type_,
            "direction": direction,
            "attributes": {"amount": 5, "sku": "A-1"},
        }
        count_driver_statements.clear()
        response = await http.post(
            "/graphql", json={"query": SINGLE, "variables": {"input": event}}
        )
        assert "errors" not in response.json(), response.json()
        sent = list(count_driver_statements.round_trips)
        count_driver_statements.clear()
        await settled(engine)
        return sent, list(count_driver_statements.work)

    await record("web", "ORDER", "INBOUND")  # ana exists; connections warm
    for trait in TRAITS:
        await gql.data(DEFINE, {"input": trait})
    segment = {"activity": [{"interactions": {"types": ["ORDER"]}, "min": 2}]}
    await gql.data(CREATE, {"input": {"key": "repeat", "name": "Repeat buyers", **segment}})
    await record("web", "PAGE_VIEW", "INBOUND")  # the drainer learns the definitions

    # OUTBOUND, on the ASSISTED channel, a type no definition names: nothing to recompute.
    sent, drained = await record("call", "SMS", "OUTBOUND")
    assert len(sent) == KNOWN_PERSON + 1, "\n---\n".join(sent)
    assert any("audience_queue" in s for s in drained)  # the drain ran…
    assert not any("customer_traits_computed" in s or "segment_members" in s for s in drained)

    sent, drained = await record("web", "ORDER", "INBOUND")
    assert len(sent) == KNOWN_PERSON + 1, "\n---\n".join(sent)
    assert sum("customer_traits_computed" in s for s in drained) == 1, "\n---\n".join(drained)
    assert sum("segment_members" in s for s in drained) == 1, "\n---\n".join(drained)
    orders = await db.fetchval(
        "SELECT c.value::text FROM customer_traits_computed c JOIN identities i"
        " ON i.customer_id = c.customer_id WHERE i.value = 'ana@example.com'"
        " AND c.trait_key = 'orders'"
    )
    assert orders == "2"
    members = await db.fetch(
        "SELECT i.value FROM segment_members m JOIN identities i ON i.customer_id = m.customer_id"
        " WHERE m.segment_key = 'repeat'"
    )
    assert [m["value"] for m in members] == ["ana@example.com"]
