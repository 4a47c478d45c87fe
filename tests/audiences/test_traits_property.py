"""Property: after any interleaving of ingest, merges (manual and by ingest), unmerges and
erasures, every stored computed value equals an independent recount over the interactions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.audiences.queue import settled
from hub.audiences.traits import sweep
from tests.audiences.recount import expected_values, stored_values
from tests.audiences.test_traits import DEFINE, TRAITS, flat
from tests.conftest import DATA_TABLES, GraphQLClient
from tests.factories import T0, gid
from tests.ingest_support import RECORD_MANY, interaction, touchpoints

MERGE = "mutation($input: MergeCustomersInput!) { mergeCustomers(input: $input) { merge { id } } }"
UNMERGE = "mutation($id: ID!) { unmergeCustomer(mergeId: $id) { merge { id } } }"
ERASE = "mutation($id: ID!) { eraseCustomer(id: $id) { customerId } }"
PLACES = ["web", "app", "call", "store"]
TYPES = ["PAGE_VIEW", "PRODUCT_VIEW", "ORDER"]
AMOUNTS = [None, 10, 2.5, "7.25", "n/a"]
SKUS = [None, "A", "B", "C"]

ingest = st.tuples(
    st.just("ingest"),
    st.integers(0, 3),  # person
    st.sampled_from(PLACES),
    st.sampled_from(TYPES),
    st.integers(0, 6000),  # minutes after T0
    st.sampled_from(AMOUNTS),
    st.sampled_from(SKUS),
)
link = st.tuples(st.just("link"), st.integers(0, 3), st.integers(0, 3))  # merges in ingest
merge = st.tuples(st.just("merge"), st.integers(0, 3), st.integers(0, 3))
unmerge = st.tuples(st.just("unmerge"))
erase = st.tuples(st.just("erase"), st.integers(0, 3))
step = st.one_of(ingest, ingest, link, merge, unmerge, erase)


def email(person: int) -> tuple[str, str]:
    return ("EMAIL", f"p{person}@example.com")


async def holder(db: asyncpg.Connection, person: int) -> Any:
    return await db.fetchval(
        "SELECT customer_id FROM identities WHERE kind = 'EMAIL' AND value = $1", email(person)[1]
    )


async def apply(gql: Any, db: asyncpg.Connection, tp: dict[str, str], op: tuple[Any, ...]) -> None:
    """One step; a step the hub refuses (a merge of a customer with itself, an unmerge with
    nothing to undo, an erased identifier) changes nothing, which is checked all the same."""
    kind = op[0]
    if kind == "ingest":
        _, person, place, itype, minutes, amount, sku = op
        attributes = {k: v for k, v in {"amount": amount, "sku": sku}.items() if v is not None}
        at = (T0 + timedelta(minutes=minutes)).isoformat()
        item = interaction(
            tp[place], email(person), type=itype, occurredAt=at, attributes=attributes
        )
        await gql(RECORD_MANY, {"inputs": [item]})
    elif kind == "link":
        at = (T0 + timedelta(minutes=30)).isoformat()
        item = interaction(tp["web"], email(op[1]), email(op[2]), occurredAt=at)
        await gql(RECORD_MANY, {"inputs": [item]})
    elif kind == "merge":
        a, b = await holder(db, op[1]), await holder(db, op[2])
        if a is not None and b is not None and a != b:
            survivor, merged = sorted([a, b], key=str)
            body = {"survivorId": gid("Customer", survivor), "mergedIds": [gid("Customer", merged)]}
            await gql(MERGE, {"input": body})
    elif kind == "unmerge":
        merge_id = await db.fetchval(
            "SELECT id FROM merges WHERE reversed_at IS NULL"
            " ORDER BY created_at DESC, id DESC LIMIT 1"
        )
        if merge_id is not None:
            await gql(UNMERGE, {"id": gid("Merge", merge_id)})
    elif kind == "erase":
        customer = await holder(db, op[1])
        if customer is not None:
            await gql(ERASE, {"id": gid("Customer", customer)})


async def check(
    db: asyncpg.Connection, engine: Any, traits: list[dict[str, Any]] = TRAITS
) -> dict[Any, Any]:
    # Time passes during the test: bring what the window moved up to date first, as the
    # sweeper does, then compare at that same moment.
    now = datetime.now(UTC)
    async with engine.begin() as connection:
        await sweep(connection, now)
    expected = await expected_values(db, [flat(t) for t in traits], now)
    assert await stored_values(db) == expected
    return expected


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    steps=st.lists(step, min_size=2, max_size=9),
    drains=st.lists(st.booleans(), min_size=9, max_size=9),
)
async def test_values_stay_exact_through_any_history(
    gql: Any,
    client: httpx.AsyncClient,
    db: asyncpg.Connection,
    engine: Any,
    steps: list[tuple[Any, ...]],
    drains: list[bool],
) -> None:
    """The steps go through a client that does not drain the audiences queue: a customer stays
    queued across the next steps (merges, unmerges, erasures, more ingest) until a drawn drain,
    after which the values are checked; and once more at the end."""
    tables = [t for t in DATA_TABLES if t not in ("api_keys", "audit_log")]
    await db.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
    tp = await touchpoints(db)
    # Everyone starts with an order, so there is something to move around.
    seed = [
        interaction(
            tp["web"],
            email(n),
            type="ORDER",
            occurredAt=(T0 + timedelta(minutes=n)).isoformat(),
            attributes={"amount": n + 1, "sku": "A"},
        )
        for n in range(4)
    ]
    await gql.data(RECORD_MANY, {"inputs": seed})
    for trait in TRAITS:
        await gql.data(DEFINE, {"input": trait})
    expected = await check(db, engine)
    assert len([k for k in expected if k[0] == "orders"]) == 4
    plain = GraphQLClient(client)
    for op, drain in zip(steps, drains, strict=False):
        await apply(plain, db, tp, op)
        if drain:
            await settled(engine)
            expected = await check(db, engine)
    await settled(engine)
    expected = await check(db, engine)
    # Negative control: the comparison sees a single wrong value.
    key, customer = next(iter(expected))
    await db.execute(
        "UPDATE customer_traits_computed SET value = '\"tampered\"'"
        " WHERE trait_key = $1 AND customer_id = $2",
        key,
        customer,
    )
    assert await stored_values(db) != expected


async def test_values_move_with_merge_unmerge_and_erasure(
    gql: Any, db: asyncpg.Connection, engine: Any
) -> None:
    """One fixed history through every kind of change (the property's steps, made sure)."""
    tp = await touchpoints(db)
    for n, amount in [(0, 10), (0, 2.5), (1, "7.25")]:
        at = (T0 + timedelta(minutes=n + 1)).isoformat()
        attributes = {"amount": amount, "sku": "B", "email": f"p{n}@example.com"}
        item = interaction(tp["web"], email(n), type="ORDER", occurredAt=at, attributes=attributes)
        await gql.data(RECORD_MANY, {"inputs": [item]})
    for trait in TRAITS:
        await gql.data(DEFINE, {"input": trait})
    last_email = {
        "key": "last_email",
        "aggregate": "LAST",
        "interactions": {"types": ["ORDER"]},
        "attribute": "attributes.email",
    }
    await gql.data(DEFINE, {"input": last_email})
    traits = [*TRAITS, last_email]
    p0, p1 = await holder(db, 0), await holder(db, 1)
    values = await check(db, engine, traits)
    assert (values[("orders", p0)], values[("orders", p1)]) == (2, 1)
    await apply(gql, db, tp, ("merge", 0, 1))
    survivor = await holder(db, 0)
    values = await check(db, engine, traits)
    assert values[("orders", survivor)] == 3 and values[("revenue", survivor)] == 19.75
    assert {k[1] for k in values} == {survivor}  # the merged-away customer has no values
    await apply(gql, db, tp, ("unmerge",))
    values = await check(db, engine, traits)
    assert (values[("orders", p0)], values[("orders", p1)]) == (2, 1)
    await apply(gql, db, tp, ("link", 0, 1))  # a merge made by ingest
    survivor = await holder(db, 0)
    values = await check(db, engine, traits)
    assert values[("orders", survivor)] == 3
    assert values[("last_email", survivor)] == "p1@example.com"  # the latest order's
    await apply(gql, db, tp, ("erase", 0))
    values = await check(db, engine, traits)
    # Erasure removed the personal attribute: the trait over it has no value left; the orders
    # (anonymous facts) still count.
    assert ("last_email", survivor) not in await stored_values(db)
    assert values[("orders", survivor)] == 3
