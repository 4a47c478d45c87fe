"""What computed traits cost a single compiled ingest, counted where asyncpg sends it: nothing
without traits (tests/compiled/test_ingest_statements.py pins 4 round trips), one statement for
all traits with them (the definitions are known to the process by the version the store
statement returns)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from tests.audiences.test_traits import DEFINE, TRAITS
from tests.compiled.test_ingest_statements import NEW_PERSON, SINGLE
from tests.conftest import GraphQLClient
from tests.driver_statements import DriverStatements
from tests.ingest_support import touchpoints


async def test_traits_add_one_round_trip_to_an_event(
    gql: Any,
    db: asyncpg.Connection,
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
    learn = await trips("bob@example.com")  # the process reads the new definitions once
    assert len(learn) == NEW_PERSON + 2, "\n---\n".join(learn)
    sent = await trips("ana@example.com")
    assert len(sent) == NEW_PERSON + 1, "\n---\n".join(sent)
    assert sum("customer_traits_computed" in s for s in sent) == 1
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
