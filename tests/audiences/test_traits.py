"""Computed traits: values against an independent recount, definitions and their errors."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson
import pytest

from hub.audiences.traits import sweep
from tests.audiences.recount import expected_values, stored_values
from tests.factories import T0, gid
from tests.ingest_support import RECORD_MANY, interaction, touchpoints

DEFINE = """
mutation($input: DefineComputedTraitInput!) {
  defineComputedTrait(input: $input) { key aggregate attribute withinDays interactions }
}
"""
CUSTOMER_COMPUTED = """
query($id: ID!, $keys: [String!]) {
  customer(id: $id) { computed(keys: $keys) { key value updatedAt } }
}
"""

# One trait per aggregate, over the web shop's orders and everything on WEB.
TRAITS: list[dict[str, Any]] = [
    {"key": "orders", "aggregate": "COUNT", "interactions": {"types": ["ORDER"]}},
    {
        "key": "revenue",
        "aggregate": "SUM",
        "interactions": {"types": ["ORDER"]},
        "attribute": "attributes.amount",
    },
    {
        "key": "smallest",
        "aggregate": "MIN",
        "interactions": {"types": ["ORDER"]},
        "attribute": "attributes.amount",
    },
    {
        "key": "largest",
        "aggregate": "MAX",
        "interactions": {"types": ["ORDER"]},
        "attribute": "attributes.amount",
    },
    {
        "key": "basket",
        "aggregate": "AVG",
        "interactions": {"types": ["ORDER"]},
        "attribute": "attributes.amount",
    },
    {
        "key": "first_sku",
        "aggregate": "FIRST",
        "interactions": {"types": ["ORDER", "PRODUCT_VIEW"]},
        "attribute": "attributes.sku",
    },
    {
        "key": "last_sku",
        "aggregate": "LAST",
        "interactions": {"types": ["ORDER", "PRODUCT_VIEW"]},
        "attribute": "attributes.sku",
    },
    {
        "key": "favourite_channel",
        "aggregate": "MOST_FREQUENT",
        "interactions": {"directions": ["INBOUND"]},
        "attribute": "channel",
    },
    {
        "key": "skus",
        "aggregate": "DISTINCT_COUNT",
        "interactions": {"types": ["ORDER", "PRODUCT_VIEW"]},
        "attribute": "attributes.sku",
    },
    {
        "key": "recent_web",
        "aggregate": "COUNT",
        "interactions": {"channels": ["WEB"]},
        "withinDays": 88,
    },
]


def flat(trait: dict[str, Any]) -> dict[str, Any]:
    """The recount's view of a definition."""
    f = trait["interactions"]
    return {
        "key": trait["key"],
        "aggregate": trait["aggregate"],
        "channels": f.get("channels"),
        "types": f.get("types"),
        "attribute": trait.get("attribute"),
        "withinDays": trait.get("withinDays"),
        "directions": f.get("directions"),
    }


def history(tp: dict[str, str]) -> list[dict[str, Any]]:
    """Three people; amounts as numbers, numeric strings and text (skipped by the numbers)."""
    ana, bob, cleo = (
        ("EMAIL", "ana@example.com"),
        ("EMAIL", "bob@example.com"),
        ("EMAIL", "cleo@example.com"),
    )

    def at(minutes: int) -> str:
        return (T0 + timedelta(minutes=minutes)).isoformat()

    return [
        interaction(
            tp["web"], ana, type="PRODUCT_VIEW", occurredAt=at(1), attributes={"sku": "J-1"}
        ),
        interaction(
            tp["web"],
            ana,
            type="ORDER",
            occurredAt=at(5),
            attributes={"sku": "J-1", "amount": 120.5},
        ),
        interaction(
            tp["app"],
            ana,
            type="ORDER",
            occurredAt=at(3000),
            attributes={"sku": "S-2", "amount": "30.25"},
        ),
        interaction(
            tp["store"],
            ana,
            type="ORDER",
            occurredAt=at(4000),
            attributes={"sku": "S-2", "amount": "n/a"},
        ),
        interaction(tp["web"], bob, type="PAGE_VIEW", occurredAt=at(2)),
        interaction(tp["web"], bob, type="PAGE_VIEW", occurredAt=at(5760)),
        interaction(
            tp["call"], cleo, type="ORDER", occurredAt=at(10), attributes={"amount": "oops"}
        ),
        interaction(tp["call"], cleo, type="SUPPORT_TICKET", occurredAt=at(20)),
    ]


async def define_all(gql: Any) -> None:
    for trait in TRAITS:
        await gql.data(DEFINE, {"input": trait})


async def check_exact(db: asyncpg.Connection, now: datetime) -> dict[tuple[str, uuid.UUID], Any]:
    expected = await expected_values(db, [flat(t) for t in TRAITS], now)
    assert await stored_values(db) == expected
    return expected


async def test_values_match_an_independent_recount(gql: Any, db: asyncpg.Connection) -> None:
    tp = await touchpoints(db)
    items = history(tp)
    # Half recorded before the traits exist (the definition computes them), half after (ingest).
    await gql.data(RECORD_MANY, {"inputs": items[:4]})
    await define_all(gql)
    await gql.data(RECORD_MANY, {"inputs": items[4:]})
    expected = await check_exact(db, datetime.now(UTC))
    # Negative control: the recount is not vacuous (values of every aggregate, and a text amount
    # skipped): Ana's revenue is 120.5 + 30.25, her basket their mean.
    ana = await db.fetchval("SELECT customer_id FROM identities WHERE value = 'ana@example.com'")
    assert expected[("revenue", ana)] == 150.75
    assert expected[("basket", ana)] == 75.375
    assert expected[("skus", ana)] == 2
    assert expected[("favourite_channel", ana)] == "WEB"
    cleo = await db.fetchval("SELECT customer_id FROM identities WHERE value = 'cleo@example.com'")
    assert expected[("revenue", cleo)] is None and expected[("orders", cleo)] == 1
    # Read through GraphQL: a customer's values, and a count's empty value for Bob (0).
    bob = await db.fetchval("SELECT customer_id FROM identities WHERE value = 'bob@example.com'")
    data = await gql.data(
        CUSTOMER_COMPUTED, {"id": gid("Customer", bob), "keys": ["orders", "recent_web", "revenue"]}
    )
    values = {v["key"]: v["value"] for v in data["customer"]["computed"]}
    # T0 is 89 to 91 days ago: of Bob's two web visits (T0 + 2 min, T0 + 4 days) the window
    # of 88 days holds the second only.
    assert values == {"orders": 0, "recent_web": 1, "revenue": None}
    assert expected[("recent_web", bob)] == 1
    # The list filter: customers with more than one order (Ana only), and with none (Bob).
    listed = await gql.data(
        "query($f: CustomerFilter) { customers(filter: $f, first: 10) { nodes { id } } }",
        {"f": {"computed": {"key": "orders", "gt": 1}}},
    )
    assert [n["id"] for n in listed["customers"]["nodes"]] == [gid("Customer", ana)]
    none = await gql.data(
        "query($f: CustomerFilter) { customers(filter: $f, first: 10) { nodes { id } } }",
        {"f": {"computed": {"key": "orders", "eq": 0}}},
    )
    assert [n["id"] for n in none["customers"]["nodes"]] == [gid("Customer", bob)]
    fav = await gql.data(
        "query($f: CustomerFilter) { customers(filter: $f, first: 10) { nodes { id } } }",
        {"f": {"computed": {"key": "favourite_channel", "eq": "ASSISTED"}}},
    )
    assert [n["id"] for n in fav["customers"]["nodes"]] == [gid("Customer", cleo)]


async def test_the_clock_moves_windows(gql: Any, db: asyncpg.Connection, engine: Any) -> None:
    tp = await touchpoints(db)
    await gql.data(RECORD_MANY, {"inputs": history(tp)})
    await define_all(gql)
    now = datetime.now(UTC)
    before = await check_exact(db, now)
    bob = await db.fetchval("SELECT customer_id FROM identities WHERE value = 'bob@example.com'")
    assert before[("recent_web", bob)] == 1
    # His visit at T0 + 4 days leaves the 88-day window at T0 + 92 days.
    due = await db.fetchval(
        "SELECT next_change_at FROM customer_traits_computed"
        " WHERE trait_key = 'recent_web' AND customer_id = $1",
        bob,
    )
    assert due == T0 + timedelta(days=92)
    async with engine.begin() as connection:
        assert await sweep(connection, due - timedelta(seconds=1)) == 0  # not due yet
    assert (await check_exact(db, due - timedelta(seconds=1)))[("recent_web", bob)] == 1
    async with engine.begin() as connection:
        assert await sweep(connection, due) == 1
    after = await check_exact(db, due)
    # Gone from the window: no row (a COUNT reads 0), and nothing else changed.
    assert ("recent_web", bob) not in after
    assert {k: v for k, v in after.items() if k[0] != "recent_web"} == {
        k: v for k, v in before.items() if k[0] != "recent_web"
    }
    async with engine.begin() as connection:
        assert await sweep(connection, due + timedelta(days=365)) == 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"attribute": "attributes.nothing_has_this"}, "unknown attribute path"),
        ({"attribute": "colour"}, "unknown attribute"),
        ({"interactions": {}}, "empty filter"),
        ({"interactions": {"channels": []}}, "empty list"),
        ({"withinDays": 0}, "withinDays"),
        ({"withinDays": -3}, "withinDays"),
        ({"attribute": None}, "needs an `attribute`"),
        ({"key": "9lives"}, "starts with a letter"),
    ],
)
async def test_bad_definitions_are_clear_errors(
    gql: Any, db: asyncpg.Connection, change: dict[str, Any], message: str
) -> None:
    tp = await touchpoints(db)
    await gql.data(RECORD_MANY, {"inputs": history(tp)})
    good = {
        "key": "revenue",
        "aggregate": "SUM",
        "interactions": {"types": ["ORDER"]},
        "attribute": "attributes.amount",
    }
    error = await gql.error(DEFINE, {"input": {**good, **change}})
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert message in error["message"]
    assert await db.fetchval("SELECT count(*) FROM computed_traits") == 0
    # The control: the good definition is accepted.
    await gql.data(DEFINE, {"input": good})
    assert await db.fetchval("SELECT count(*) FROM computed_traits") == 1


async def test_unknown_keys_in_reads_and_filters(gql: Any, db: asyncpg.Connection) -> None:
    tp = await touchpoints(db)
    await gql.data(RECORD_MANY, {"inputs": history(tp)})
    await gql.data(DEFINE, {"input": TRAITS[0]})
    cid = await db.fetchval("SELECT id FROM customers LIMIT 1")
    error = await gql.error(
        CUSTOMER_COMPUTED, {"id": gid("Customer", cid), "keys": ["orders", "nope"]}
    )
    assert error["extensions"]["code"] == "BAD_USER_INPUT" and "nope" in error["message"]
    error = await gql.error(
        "query($f: CustomerFilter) { customers(filter: $f) { totalCount } }",
        {"f": {"computed": {"key": "nope", "gt": 1}}},
    )
    assert error["extensions"]["code"] == "BAD_USER_INPUT" and "nope" in error["message"]
    error = await gql.error('mutation { deleteComputedTrait(key: "nope") { key } }')
    assert error["extensions"]["code"] == "NOT_FOUND"


async def test_update_recomputes_and_delete_removes(gql: Any, db: asyncpg.Connection) -> None:
    tp = await touchpoints(db)
    await gql.data(RECORD_MANY, {"inputs": history(tp)})
    await gql.data(DEFINE, {"input": TRAITS[0]})
    assert sorted((await stored_values(db)).values()) == [1, 3]  # Cleo 1, Ana 3 orders
    changed = {**TRAITS[0], "interactions": {"types": ["PAGE_VIEW"]}}
    await gql.data(
        "mutation($input: UpdateComputedTraitInput!) {"
        " updateComputedTrait(input: $input) { key } }",
        {"input": changed},
    )
    assert sorted((await stored_values(db)).values()) == [2]  # Bob's two page views
    await gql.data('mutation { deleteComputedTrait(key: "orders") { key } }')
    assert await stored_values(db) == {}
    assert await db.fetchval("SELECT count(*) FROM computed_traits") == 0


async def test_imported_interactions_count(
    gql: Any, db: asyncpg.Connection, engine: Any, settings: Any, tmp_path: Any
) -> None:
    """The file import path (``hub import``'s batches) keeps the values exact too."""
    import io

    from hub.sources.files import Checkpoint, ndjson_lines
    from hub.sources.transfer import run_import

    tp = await touchpoints(db)
    items = history(tp)
    await gql.data(RECORD_MANY, {"inputs": items[:2]})  # Ana's order holds an amount
    await define_all(gql)
    lines = b"".join(orjson.dumps(item) + b"\n" for item in items[2:])
    checkpoint = Checkpoint(tmp_path / "checkpoint", "events.ndjson")
    await run_import(
        engine,
        ndjson_lines(io.BytesIO(lines)),
        "events.ndjson",
        io.BytesIO(),
        checkpoint,
        3,
        settings,
    )
    assert await db.fetchval("SELECT count(*) FROM interactions") == len(items)
    await check_exact(db, datetime.now(UTC))


async def test_a_touchpoint_filter_reads_back_as_given(gql: Any, db: asyncpg.Connection) -> None:
    tp = await touchpoints(db)
    await gql.data(RECORD_MANY, {"inputs": history(tp)})
    trait = {"key": "at_shop", "aggregate": "COUNT", "interactions": {"touchpointIds": [tp["web"]]}}
    defined = (await gql.data(DEFINE, {"input": trait}))["defineComputedTrait"]
    assert defined["interactions"] == {"touchpointIds": [tp["web"]]}
    listed = (await gql.data("{ computedTraits { key interactions } }"))["computedTraits"]
    assert listed == [{"key": "at_shop", "interactions": {"touchpointIds": [tp["web"]]}}]
    # Ana visited the web shop twice, Bob twice (his page views), Cleo never (the call centre).
    by_email = await db.fetch(
        "SELECT i.value, c.value::text AS n FROM customer_traits_computed c"
        " JOIN identities i ON i.customer_id = c.customer_id ORDER BY i.value"
    )
    assert [tuple(r) for r in by_email] == [("ana@example.com", "2"), ("bob@example.com", "2")]
