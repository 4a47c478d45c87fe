"""Segments that test computed traits: every change refreshes the traits before the memberships
(``hub.audiences.refresh``), redefining a trait re-evaluates the segments that test it, the
sweep moves both when a trait's window slides, and a trait a segment tests cannot be deleted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from hub.audiences.refresh import sweep
from tests.audiences.support import CREATE, membership_events, stored_members
from tests.audiences.test_traits import DEFINE
from tests.factories import zulu
from tests.ingest_support import interaction, record, row_id, touchpoints

UPDATE = """
mutation($input: UpdateComputedTraitInput!) { updateComputedTrait(input: $input) { key } }
"""
DELETE = "mutation($key: String!) { deleteComputedTrait(key: $key) { key } }"


async def _orders(db: asyncpg.Connection, now: datetime) -> dict[str, int]:
    """ORDER interactions per customer in the last 7 days, recounted from the table."""
    rows = await db.fetch(
        "SELECT customer_id, count(*) AS n FROM interactions WHERE type = 'ORDER'"
        " AND occurred_at > $1 GROUP BY customer_id",
        now - timedelta(days=7),
    )
    return {str(r["customer_id"]): r["n"] for r in rows}


async def test_a_segment_on_a_windowed_count(gql: Any, db: asyncpg.Connection, engine: Any) -> None:
    tp = (await touchpoints(db))["web"]
    now = datetime.now(UTC)
    trait = {
        "key": "orders_7d",
        "aggregate": "COUNT",
        "interactions": {"types": ["ORDER"]},
        "withinDays": 7,
    }
    await gql.data(DEFINE, {"input": trait})
    segment = {"key": "frequent", "name": "Frequent", "computed": [{"key": "orders_7d", "gt": 1}]}
    await gql.data(CREATE, {"input": segment})
    quiet = {"key": "quiet", "name": "Quiet", "computed": [{"key": "orders_7d", "lt": 1}]}

    def order(email: str, days: float) -> dict[str, Any]:
        at = zulu(now - timedelta(days=days))
        return interaction(tp, ("EMAIL", email), type="ORDER", occurredAt=at)

    a = row_id((await record(gql, order("a@example.com", 4.5)))["customer"]["id"])
    assert await stored_members(db, "frequent") == set()
    await record(gql, order("a@example.com", 1))  # the second order: the count is 2 only now
    assert await stored_members(db, "frequent") == {a}
    b = row_id((await record(gql, order("b@example.com", 1)))["customer"]["id"])
    view = row_id(
        (await record(gql, interaction(tp, ("EMAIL", "c@example.com"))))["customer"]["id"]
    )
    assert await stored_members(db, "frequent") == {a}
    # A customer with no ORDER has no stored value: its count is 0, so it is "quiet".
    await gql.data(CREATE, {"input": quiet})
    assert await stored_members(db, "quiet") == {view}
    recount = await _orders(db, now)
    assert recount == {str(a): 2, str(b): 1}  # the independent recount agrees

    # 3 days on, A's older order has left the window: the trait drops to 1 and A leaves.
    later = now + timedelta(days=3)
    async with engine.begin() as connection:
        assert await sweep(connection, later) == 1
    assert await stored_members(db, "frequent") == set()
    value = await db.fetchval(
        "SELECT number FROM customer_traits_computed WHERE customer_id = $1"
        " AND trait_key = 'orders_7d'",
        a,
    )
    assert value == 1.0
    events = [(k, c, ch, r) for k, c, ch, r in await membership_events(db)]
    assert events == [
        ("frequent", a, "ENTERED", "INGEST"),
        ("frequent", a, "EXITED", "CLOCK"),
    ]

    # Redefining the trait (a 30-day window) re-evaluates the segment testing it at once.
    await gql.data(UPDATE, {"input": {**trait, "withinDays": 30}})
    assert await stored_members(db, "frequent") == {a}
    assert (await membership_events(db))[-1][:4] == ("frequent", a, "ENTERED", "TRAIT")

    # A trait that segments test cannot be deleted (it would change what they mean).
    error = await gql.error(DELETE, {"key": "orders_7d"})
    assert error["extensions"]["code"] == "CONFLICT"
    assert (
        error["message"] == "computed trait 'orders_7d' is tested by segments ['frequent', 'quiet']"
    )
    assert await db.fetchval("SELECT count(*) FROM computed_traits") == 1
