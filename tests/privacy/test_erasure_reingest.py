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


async def test_a_repeat_of_a_refused_item_is_judged_on_its_own(
    gql: GraphQLClient, db: asyncpg.Connection
) -> None:
    """Two items with one idempotency key, the first refused for its erased identifier: the
    second is no duplicate of anything stored, so it is stored (it was reported a duplicate and
    lost)."""
    tp = gid("Touchpoint", await Factory(db).touchpoint("Web chat", "WEB", "LIVE_CHAT"))
    email = [{"kind": "EMAIL", "value": "ana@example.com"}]
    first: Any = await gql.data(RECORD, {"identities": email, "tp": tp})
    customer_id = first["recordInteractions"]["stored"][0]["interaction"]["customer"]["id"]
    await gql.data(
        "mutation($id: ID!) { eraseCustomer(id: $id) { customerId } }", {"id": customer_id}
    )
    item = {"touchpointId": tp, "type": "QUESTION", "direction": "INBOUND", "idempotencyKey": "k1"}
    phone = [{"kind": "PHONE", "value": "+44 20 7946 0958"}]
    inputs = [{**item, "identities": email}, {**item, "identities": phone}]
    body: Any = await gql.data(RECORD_TWO, {"inputs": inputs})
    assert body["recordInteractions"]["rejected"] == [{"index": 0, "code": "ERASED_IDENTITY"}]
    [stored] = body["recordInteractions"]["stored"]
    assert stored["index"] == 1 and stored["duplicate"] is False
    assert stored["interaction"]["customer"]["identities"] == [
        {"kind": "PHONE", "value": "+442079460958"}
    ]
    assert await db.fetchval("SELECT count(*) FROM interactions WHERE idempotency_key = 'k1'") == 1

    # Sent again, the batch is a retry: the stored item answers both (the first's identifier
    # is still refused, but its key now names a stored interaction).
    again: Any = await gql.data(RECORD_TWO, {"inputs": inputs})
    assert again["recordInteractions"]["rejected"] == []
    assert [s["duplicate"] for s in again["recordInteractions"]["stored"]] == [True, True]
    ids = {s["interaction"]["id"] for s in again["recordInteractions"]["stored"]}
    assert ids == {stored["interaction"]["id"]}
