"""Windows slide without a nightly job: ``sweep(conn, now=...)`` with a moved clock moves
customers out of (and into) segments, exactly as a Python recount at that instant says."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from hub.audiences.membership import sweep
from tests.audiences.support import (
    CREATE,
    Rule,
    expected_members,
    membership_events,
    stored_members,
)
from tests.factories import zulu
from tests.ingest_support import interaction, record, row_id, touchpoints

RECENT = Rule(types=("ORDER",), days=7, low=1, high=None)
LAPSED = Rule(types=("ORDER",), days=7, low=0, high=0)


async def test_sweep_with_a_moved_clock(gql: Any, db: asyncpg.Connection, engine: Any) -> None:
    tp = (await touchpoints(db))["web"]
    now = datetime.now(UTC)
    ages = {"a@example.com": 1.5, "b@example.com": 4.5, "c@example.com": 9.5}
    ids = {}
    for email, days in ages.items():
        at = zulu(now - timedelta(days=days))
        result = await record(gql, interaction(tp, ("EMAIL", email), type="ORDER", occurredAt=at))
        ids[email] = row_id(result["customer"]["id"])
    for key, window in (("recent", {"min": 1}), ("lapsed", {"max": 0})):
        activity = [{"interactions": {"types": ["ORDER"]}, "withinDays": 7, **window}]
        await gql.data(CREATE, {"input": {"key": key, "name": key, "activity": activity}})
    assert await stored_members(db, "recent") == {ids["a@example.com"], ids["b@example.com"]}
    assert await stored_members(db, "lapsed") == {ids["c@example.com"]}

    # 3 days on, B's order (4.5 days old) has left the 7-day window; A's has not.
    later = now + timedelta(days=3)
    async with engine.begin() as connection:
        assert await sweep(connection, later) == 1
    assert await stored_members(db, "recent") == await expected_members(db, RECENT, later)
    assert await stored_members(db, "recent") == {ids["a@example.com"]}
    assert await stored_members(db, "lapsed") == await expected_members(db, LAPSED, later)
    assert await stored_members(db, "lapsed") == {ids["c@example.com"], ids["b@example.com"]}
    # Negative control: at the real time the recount differs (the sweep did move the clock).
    assert await expected_members(db, RECENT, now) != await stored_members(db, "recent")

    # Nothing else is due before A's order leaves too; then A moves as well.
    async with engine.begin() as connection:
        assert await sweep(connection, later) == 0
        assert await sweep(connection, now + timedelta(days=5, hours=13)) == 1
    assert await stored_members(db, "recent") == set()
    assert await stored_members(db, "lapsed") == set(ids.values())
    assert await db.fetchval("SELECT count(*) FROM segment_checks") == 0
    assert sorted((k, c, ch, r) for k, c, ch, r in await membership_events(db)) == sorted(
        [
            ("recent", ids["b@example.com"], "EXITED", "CLOCK"),
            ("lapsed", ids["b@example.com"], "ENTERED", "CLOCK"),
            ("recent", ids["a@example.com"], "EXITED", "CLOCK"),
            ("lapsed", ids["a@example.com"], "ENTERED", "CLOCK"),
        ]
    )


async def test_an_expiring_consent_moves_a_customer_out(
    gql: Any, db: asyncpg.Connection, engine: Any
) -> None:
    tp = (await touchpoints(db))["web"]
    now = datetime.now(UTC)
    customers = {}
    for name, expires in (("short", now + timedelta(days=2)), ("long", None)):
        result = await record(gql, interaction(tp, ("EMAIL", f"{name}@example.com")))
        customers[name] = result["customer"]["id"]
        consent = {"customerId": customers[name], "purpose": "MARKETING", "status": "GRANTED"}
        if expires is not None:
            consent["expiresAt"] = zulu(expires)
        await gql.data(
            "mutation($c: SetConsentInput!) { setConsent(input: $c) { status } }", {"c": consent}
        )
    await gql.data(
        CREATE,
        {"input": {"key": "ok", "name": "ok", "filter": {"hasConsent": {"purpose": "MARKETING"}}}},
    )
    both = {row_id(c) for c in customers.values()}
    assert await stored_members(db, "ok") == both
    async with engine.begin() as connection:
        assert await sweep(connection, now + timedelta(days=1)) == 0  # not due yet
        assert await sweep(connection, now + timedelta(days=2, seconds=1)) == 1
    assert await stored_members(db, "ok") == {row_id(customers["long"])}
    assert [(c, r) for _, c, _, r in await membership_events(db)] == [
        (row_id(customers["short"]), "CLOCK")
    ]


async def test_a_re_check_is_stored_only_where_time_can_change_the_answer(
    gql: Any, db: asyncpg.Connection
) -> None:
    tp = (await touchpoints(db))["web"]
    now = datetime.now(UTC)
    ordered = now - timedelta(days=1)
    viewed = now - timedelta(days=2)
    await record(
        gql, interaction(tp, ("EMAIL", "a@example.com"), type="ORDER", occurredAt=zulu(ordered))
    )
    result = await record(gql, interaction(tp, ("EMAIL", "a@example.com"), occurredAt=zulu(viewed)))
    who = row_id(result["customer"]["id"])
    segments = {
        # A member that leaves when its order leaves the window: due then.
        "recent": [{"interactions": {"types": ["ORDER"]}, "withinDays": 7, "min": 1}],
        # Not a member (one order of two): time only lowers the count, so never.
        "two-orders": [{"interactions": {"types": ["ORDER"]}, "withinDays": 7, "min": 2}],
        # A member (one view, at most one): time cannot take it over the max, so never.
        "few-views": [{"interactions": {"types": ["PAGE_VIEW"]}, "withinDays": 7, "max": 1}],
        # Not a member (one view, none allowed): enters when its view leaves the window.
        "no-views": [{"interactions": {"types": ["PAGE_VIEW"]}, "withinDays": 7, "max": 0}],
        # Not a member because of its order, which time never removes: over its view's max,
        # but coming under it would not let it in, so never.
        "no-views-no-orders": [
            {"interactions": {"types": ["PAGE_VIEW"]}, "withinDays": 7, "max": 0},
            {"interactions": {"types": ["ORDER"]}, "max": 0},
        ],
    }
    for key, activity in segments.items():
        await gql.data(CREATE, {"input": {"key": key, "name": key, "activity": activity}})
    assert await stored_members(db, "recent") == {who}
    assert await stored_members(db, "few-views") == {who}
    due = {
        (r["segment_key"], r["customer_id"]): r["due_at"]
        for r in await db.fetch("SELECT segment_key, customer_id, due_at FROM segment_checks")
    }
    whole = timedelta(seconds=1)  # occurredAt is sent to the second
    assert due.keys() == {("recent", who), ("no-views", who)}
    assert abs(due["recent", who] - (ordered + timedelta(days=7))) < whole
    assert abs(due["no-views", who] - (viewed + timedelta(days=7))) < whole
