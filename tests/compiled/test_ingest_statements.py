"""Round trips of the compiled ingest path, counted where asyncpg sends them.

Every round trip counts here, transaction control included (the compiled path sends BEGIN with
the advisory locks in one simple query, and COMMIT on its own): what a single event costs on
the wire is what these tests pin, exactly, for a FRONTEND key without pii (masked: the compiled
path serves it since issue 15).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from tests.conftest import GraphQLClient
from tests.driver_statements import DriverStatements
from tests.ingest_support import touchpoints

SINGLE = (
    "mutation($input: RecordInteractionInput!) { recordInteraction(input: $input) {"
    " created duplicate interaction { id summary } } }"
)
BATCH = (
    "mutation($inputs: [RecordInteractionInput!]!) { recordInteractions(inputs: $inputs) {"
    " stored { index created duplicate } rejected { index code } } }"
)
# A new person: BEGIN with the advisory locks, the claims (holders locked in the same
# statement), the store statement (events and audit row in it), COMMIT. (The API key is checked
# from the per-process key cache: no round trip once it is cached.)
NEW_PERSON = 4
# A known person: the same; the holder's row lock rides in the claims statement (it was a round
# trip of its own before).
KNOWN_PERSON = 4
# A retried idempotency key: BEGIN with the locks, the claims (the original interaction's row
# in them), the audit row (nothing else is written), COMMIT.
DUPLICATE = 4


async def test_single_events_cost_a_fixed_number_of_round_trips(
    db: asyncpg.Connection,
    gql_as: Callable[..., Awaitable[GraphQLClient]],
    count_driver_statements: DriverStatements,
) -> None:
    tp = await touchpoints(db)
    http = (await gql_as("FRONTEND")).http

    async def trips(email: str, **extra: Any) -> tuple[int, dict[str, Any]]:
        event = {
            "identities": [{"kind": "EMAIL", "value": email}],
            "touchpointId": tp["web"],
            "type": "PAGE_VIEW",
            "direction": "INBOUND",
            "summary": "hello",
            **extra,
        }
        count_driver_statements.clear()
        response = await http.post(
            "/graphql", json={"query": SINGLE, "variables": {"input": event}}
        )
        body = response.json()
        assert "errors" not in body, body
        return len(count_driver_statements.round_trips), body["data"]["recordInteraction"]

    await trips("warm@example.com")  # the pools' connections opened, types introspected
    new, first = await trips("ana@example.com", idempotencyKey="k1")
    assert (first["created"], first["duplicate"], first["interaction"]["summary"]) == (
        True,
        False,
        "•••",
    )
    assert new == NEW_PERSON, count_driver_statements.report()
    known, again = await trips("ana@example.com")
    assert (again["created"], again["duplicate"]) == (False, False)
    assert known == KNOWN_PERSON, "\n---\n".join(count_driver_statements.round_trips)
    retried, duplicate = await trips("ana@example.com", idempotencyKey="k1")
    assert (duplicate["duplicate"], duplicate["interaction"]) == (True, first["interaction"])
    assert retried == DUPLICATE, "\n---\n".join(count_driver_statements.round_trips)

    # A batch of new people: the same round trips for 3 as for 300.
    async def batch(size: int, tag: str) -> int:
        inputs = [
            {
                "identities": [{"kind": "EMAIL", "value": f"{tag}{n % 2}-{n}@example.com"}],
                "touchpointId": tp["web"],
                "type": "PAGE_VIEW",
                "direction": "INBOUND",
            }
            for n in range(size)
        ]
        count_driver_statements.clear()
        response = await http.post(
            "/graphql", json={"query": BATCH, "variables": {"inputs": inputs}}
        )
        stored = response.json()["data"]["recordInteractions"]["stored"]
        assert len(stored) == size
        return len(count_driver_statements.round_trips)

    assert (await batch(3, "a"), await batch(300, "b")) == (NEW_PERSON, NEW_PERSON)
    assert await db.fetchval("SELECT count(*) FROM interactions") == 3 + 303
