"""An erased person is not silently re-linked by their old identifiers (issues 3 and 5)."""

from __future__ import annotations

from typing import Any

import asyncpg

from tests.conftest import GraphQLClient
from tests.factories import Factory, gid

RECORD = """
mutation Record($identities: [IdentityInput!]!, $tp: ID!) {
  recordInteractions(inputs: [{identities: $identities, touchpointId: $tp, type: QUESTION,
                               direction: INBOUND}]) {
    stored { index interaction { customer { id identities { kind value } } } }
    rejected { index code message }
  }
}
"""


async def test_erase_then_reingest_with_the_old_email(
    gql: GraphQLClient, db: asyncpg.Connection
) -> None:
    factory = Factory(db)
    tp = await factory.touchpoint("Web chat", "WEB", "LIVE_CHAT")
    touchpoint_id = (await gql.data("{ touchpoints(first: 1) { nodes { id } } }"))["touchpoints"][
        "nodes"
    ][0]["id"]
    assert touchpoint_id == gid("Touchpoint", tp)
    email = [{"kind": "EMAIL", "value": "ana@example.com"}]
    first: Any = await gql.data(RECORD, {"identities": email, "tp": touchpoint_id})
    customer_id = first["recordInteractions"]["stored"][0]["interaction"]["customer"]["id"]

    await gql.data(
        "mutation($id: ID!) { eraseCustomer(id: $id) { customerId } }", {"id": customer_id}
    )

    # The old e-mail alone: refused, nothing linked, no new profile built from it.
    again: Any = await gql.data(RECORD, {"identities": email, "tp": touchpoint_id})
    assert again["recordInteractions"]["stored"] == []
    [rejected] = again["recordInteractions"]["rejected"]
    assert rejected["code"] == "ERASED_IDENTITY"
    assert await db.fetchval("SELECT count(*) FROM identities WHERE value = 'ana@example.com'") == 0

    # With an identifier the person gives anew, the interaction is stored without the old one.
    fresh = [*email, {"kind": "PHONE", "value": "+44 20 7946 0958"}]
    stored: Any = await gql.data(RECORD, {"identities": fresh, "tp": touchpoint_id})
    [item] = stored["recordInteractions"]["stored"]
    customer = item["interaction"]["customer"]
    assert customer["id"] != customer_id
    assert customer["identities"] == [{"kind": "PHONE", "value": "+442079460958"}]
    # The erased profile stays empty: nothing was linked back to it.
    erased_id = await db.fetchval("SELECT customer_id FROM erasures ORDER BY id DESC LIMIT 1")
    assert gid("Customer", erased_id) == customer_id
    assert (
        await db.fetchval("SELECT count(*) FROM identities WHERE customer_id = $1", erased_id) == 0
    )
    assert await db.fetchval("SELECT count(*) FROM customers WHERE erased_at IS NULL") == 1


RECORD_TWO = """
mutation Record($inputs: [RecordInteractionInput!]!) {
  recordInteractions(inputs: $inputs) {
    stored { index duplicate interaction { id customer { identities { kind value } } } }
    rejected { index code }
  }
}
"""


async def test_items_of_one_event_get_one_answer_when_some_carry_only_erased_identifiers(
    gql: GraphQLClient, db: asyncpg.Connection
) -> None:
    """Items sharing an idempotency key are one event: it is stored once, by the first item
    left with an identifier once erased ones are dropped, and the others are its duplicates —
    the answer a retry of the batch gets. (The first item being refused made the second a
    duplicate of nothing stored, and the mutation failed with INTERNAL_SERVER_ERROR.)"""
    tp = gid("Touchpoint", await Factory(db).touchpoint("Web chat", "WEB", "LIVE_CHAT"))
    email = [{"kind": "EMAIL", "value": "ana@example.com"}]
    first: Any = await gql.data(RECORD, {"identities": email, "tp": tp})
    customer_id = first["recordInteractions"]["stored"][0]["interaction"]["customer"]["id"]
    await gql.data(
        "mutation($id: ID!) { eraseCustomer(id: $id) { customerId } }", {"id": customer_id}
    )
    phone = [{"kind": "PHONE", "value": "+44 20 7946 0958"}]
    item = {"touchpointId": tp, "type": "QUESTION", "direction": "INBOUND"}
    for first_item, second_item in ((email, phone), ([*email, *phone], email)):
        key = f"k{len(first_item)}"
        inputs = [
            {**item, "idempotencyKey": key, "identities": first_item},
            {**item, "idempotencyKey": key, "identities": second_item},
        ]
        answers = []
        for _ in range(2):  # the batch, then its retry: the same answer
            body: Any = await gql.data(RECORD_TWO, {"inputs": inputs})
            assert body["recordInteractions"]["rejected"] == []
            stored = body["recordInteractions"]["stored"]
            assert [s["index"] for s in stored] == [0, 1]
            assert len({s["interaction"]["id"] for s in stored}) == 1
            answers.append([s["duplicate"] for s in stored])
            [customer] = {str(s["interaction"]["customer"]["identities"]) for s in stored}
            assert customer == str([{"kind": "PHONE", "value": "+442079460958"}])
        # Stored by the first item that kept an identifier; the other is its duplicate.
        assert answers == [[True, False] if first_item == email else [False, True], [True, True]]
        count = "SELECT count(*) FROM interactions WHERE idempotency_key = $1"
        assert await db.fetchval(count, key) == 1
    assert await db.fetchval("SELECT count(*) FROM identities WHERE value = 'ana@example.com'") == 0
