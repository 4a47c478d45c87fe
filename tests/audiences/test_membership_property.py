"""Property: after any interleaving of ingest, merges, unmerges and erasures (all through the
API) and drains of the audiences queue, every segment's stored members equal an independent
recount in Python over the same rows once the queue is drained, and the ENTERED/EXITED events of
each (segment, customer) alternate from the baseline and end at the stored state (each change
once, none missing). The operations go through a client that does not drain (the suite's
plain one): customers stay queued across merges, unmerges, erasures and further ingests until a
drawn ``drain``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.audiences.queue import drain_all, settled
from tests.audiences.support import CREATE, Rule, expected_members, membership_events
from tests.conftest import DATA_TABLES, GraphQLClient
from tests.factories import zulu
from tests.ingest_support import interaction, touchpoints

SEGMENTS = {
    "buyers": (
        {"activity": [{"interactions": {"types": ["ORDER"]}, "withinDays": 30, "min": 2}]},
        Rule(types=("ORDER",), days=30, low=2, high=None),
    ),
    "quiet": (
        {"activity": [{"interactions": {"types": ["PAGE_VIEW"]}, "max": 1}]},
        Rule(types=("PAGE_VIEW",), days=None, low=0, high=1),
    ),
}
MERGE = """
mutation($input: MergeCustomersInput!) { mergeCustomers(input: $input) { merge { id } } }
"""
UNMERGE = "mutation($id: ID!) { unmergeCustomer(mergeId: $id) { merge { id } } }"
ERASE = "mutation($id: ID!) { eraseCustomer(id: $id) { customerId } }"
RECORD = """
mutation($input: RecordInteractionInput!) { recordInteraction(input: $input) { customer { id } } }
"""
WHO = "query($v: String!) { customerByIdentity(kind: EMAIL, value: $v) { id } }"

ingest = st.tuples(
    st.just("ingest"),
    st.integers(0, 3),
    st.sampled_from(["ORDER", "PAGE_VIEW"]),
    # Days ago, half-days so no interaction sits on a window's edge.
    st.sampled_from([0.5, 2.5, 12.5, 29.5, 30.5, 45.5]),
)
merge = st.tuples(st.just("merge"), st.integers(0, 3), st.integers(0, 3), st.just(0))
unmerge = st.tuples(st.just("unmerge"), st.just(0), st.just(0), st.just(0))
erase = st.tuples(st.just("erase"), st.integers(0, 3), st.just(0), st.just(0))
drain = st.tuples(st.just("drain"), st.just(0), st.just(0), st.just(0))
operation = st.one_of(ingest, ingest, ingest, merge, unmerge, erase, drain)


def email(n: int) -> str:
    return f"person{n}@example.com"


async def current(gql: Any, n: int) -> str | None:
    body = await gql(WHO, {"v": email(n)})
    found = (body.get("data") or {}).get("customerByIdentity")
    return found["id"] if found else None


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(operations=st.lists(operation, min_size=4, max_size=12))
async def test_membership_equals_an_independent_recount(
    client: httpx.AsyncClient, engine: Any, db: asyncpg.Connection, operations: list[Any]
) -> None:
    gql = GraphQLClient(client)
    tables = [t for t in DATA_TABLES if t not in ("api_keys", "audit_log")]
    await db.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
    tp = await touchpoints(db)
    for key, (conditions, _) in SEGMENTS.items():
        await gql.data(CREATE, {"input": {"key": key, "name": key, **conditions}})
    merges: list[str] = []
    for kind, a, b, extra in operations:
        if kind == "ingest":
            at = datetime.now(UTC) - timedelta(days=extra)
            item = interaction(tp["web"], ("EMAIL", email(a)), type=b, occurredAt=zulu(at))
            await gql(RECORD, {"input": item})  # an erased person's identifier is refused
        elif kind == "merge":
            survivor, merged = await current(gql, a), await current(gql, b)
            if survivor and merged and survivor != merged:
                done = await gql.data(
                    MERGE, {"input": {"survivorId": survivor, "mergedIds": [merged]}}
                )
                merges.append(done["mergeCustomers"]["merge"]["id"])
        elif kind == "unmerge" and merges:
            await gql(UNMERGE, {"id": merges.pop()})  # may be refused (erased since)
        elif kind == "erase":
            who = await current(gql, a)
            if who:
                await gql.data(ERASE, {"id": who})
        elif kind == "drain":
            await drain_all(engine)
    await settled(engine)
    now = datetime.now(UTC)
    events = await membership_events(db)
    erased = {
        r["id"] for r in await db.fetch("SELECT id FROM customers WHERE erased_at IS NOT NULL")
    }
    for key, (_, rule) in SEGMENTS.items():
        stored = {
            r["customer_id"]
            for r in await db.fetch(
                "SELECT customer_id FROM segment_members WHERE segment_key = $1", key
            )
        }
        assert stored == await expected_members(db, rule, now), key
        # The size record (segment analytics) adds up to the same recount.
        size = await db.fetchval(
            "SELECT coalesce(sum(entered - exited), 0) FROM segment_size_changes"
            " WHERE segment_key = $1",
            key,
        )
        assert size == len(await expected_members(db, rule, now)), key
        # Events replayed from the (empty) baseline give the stored state, alternating.
        state: dict[Any, bool] = {}
        for segment, customer, change, _reason in events:
            if segment != key or customer in erased:
                continue  # an erasure empties its customer's payloads
            before = state.get(customer, False)
            assert change == ("EXITED" if before else "ENTERED"), (key, customer, change)
            state[customer] = not before
        assert {c for c, inside in state.items() if inside} == stored - erased, key
