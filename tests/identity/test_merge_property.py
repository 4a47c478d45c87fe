"""Property: for any history, merge then unmerge gives back exactly the state before the merge."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import asyncpg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import DATA_TABLES
from tests.factories import T0
from tests.ingest_support import RECORD_MANY, interaction, touchpoints

MERGE = """
mutation($input: MergeCustomersInput!) { mergeCustomers(input: $input) { merge { id } } }
"""
UNMERGE = "mutation($id: ID!) { unmergeCustomer(mergeId: $id) { merge { id } } }"
TRAITS = """
mutation($id: ID!, $traits: JSON!, $at: DateTime) {
  updateTraits(customerId: $id, traits: $traits, observedAt: $at) { id }
}
"""
DIGEST_QUERIES = {
    # updated_at is "when the row last changed": an unmerge is a change, so it is left out.
    "customers": "SELECT id, display_name, traits, trait_updated_at, current_stage,"
    " stage_entered_at, stage_channel_code, first_seen_at, last_seen_at, merged_into_id,"
    " created_at FROM customers ORDER BY id",
    "identities": "SELECT * FROM identities ORDER BY id",
    "interactions": "SELECT * FROM interactions ORDER BY id",
    "conversations": "SELECT * FROM conversations ORDER BY id",
    "stage_history": "SELECT * FROM stage_history ORDER BY id",
    # Derived by triggers (migration 0008): it must come back too.
    "journey_steps": "SELECT * FROM journey_steps ORDER BY id",
    "stage_entries": "SELECT * FROM stage_entries ORDER BY id",
}
TYPES = ["PAGE_VIEW", "PRODUCT_VIEW", "ORDER", "SUPPORT_TICKET", "REPEAT_ORDER", "EMAIL"]
PLACES = ["web", "app", "chat", "call", "store"]

step = st.tuples(
    st.integers(0, 2),  # which person
    st.sampled_from(PLACES),
    st.sampled_from(TYPES),
    st.integers(0, 10_000),  # minutes after T0
    st.sampled_from([None, "conv-a", "conv-b"]),
)
trait = st.tuples(
    st.integers(0, 2),
    st.sampled_from(["tier", "city", "first_order_at"]),
    st.sampled_from(["a", "b", "c"]),
    st.integers(0, 10_000),
)


async def digest(db: asyncpg.Connection) -> dict[str, list[tuple[Any, ...]]]:
    while await db.fetchval("SELECT analytics_catch_up()"):  # the derived tables take it all in
        pass
    return {name: [tuple(r) for r in await db.fetch(sql)] for name, sql in DIGEST_QUERIES.items()}


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    steps=st.lists(step, min_size=3, max_size=14),
    traits=st.lists(trait, max_size=5),
    people=st.integers(2, 3),
)
async def test_merge_then_unmerge_restores_every_table(
    gql: Any, db: asyncpg.Connection, steps: list[Any], traits: list[Any], people: int
) -> None:
    # Every data table but the keys: the client's own API key must survive between examples.
    tables = [t for t in DATA_TABLES if t not in ("api_keys", "audit_log")]
    await db.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
    tp = await touchpoints(db)
    emails = [("EMAIL", f"p{n}@example.com") for n in range(people)]
    phones = [("PHONE", f"+49151123456{n:02d}") for n in range(people)]
    inputs = [
        interaction(tp["web"], emails[n], phones[n], occurredAt=T0.isoformat())
        for n in range(people)
    ]
    for who, place, itype, minutes, conversation in steps:
        n = who % people
        identity = phones[n] if place == "call" else emails[n]
        at = (T0 + timedelta(minutes=minutes)).isoformat()
        extra = {"conversationKey": f"{conversation}-{n}"} if conversation else {}
        inputs.append(interaction(tp[place], identity, type=itype, occurredAt=at, **extra))
    result = (await gql.data(RECORD_MANY, {"inputs": inputs}))["recordInteractions"]
    assert result["rejected"] == []
    ids = [result["stored"][n]["customer"]["id"] for n in range(people)]
    assert len(set(ids)) == people
    for who, key, value, minutes in traits:
        at = (T0 + timedelta(minutes=minutes)).isoformat()
        await gql.data(TRAITS, {"id": ids[who % people], "traits": {key: value}, "at": at})
    before = await digest(db)
    survivor, *others = ids
    merge = await gql.data(MERGE, {"input": {"survivorId": survivor, "mergedIds": others}})
    during = await digest(db)
    assert during != before
    await gql.data(UNMERGE, {"id": merge["mergeCustomers"]["merge"]["id"]})
    assert await digest(db) == before
