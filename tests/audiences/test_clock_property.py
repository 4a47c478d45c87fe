"""Property: as the clock moves, the sweeper alone keeps every segment exact. After random
histories of dated interactions, ``sweep`` at a sequence of later instants leaves each segment's
stored members equal to an independent recount at that instant, writes exactly one CLOCK event
per membership that moved since the previous instant, and leaves no re-check row once every
window is empty. Re-check rows are stored only where time can change an answer, so a rule that
dropped one that is needed fails here (the member stays, or the non-member stays out)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.audiences.membership import sweep
from tests.audiences.support import CREATE, Rule, expected_members, membership_events
from tests.conftest import DATA_TABLES
from tests.factories import zulu
from tests.ingest_support import RECORD_MANY, interaction, touchpoints


def _order(days: int | None, **bounds: int) -> dict[str, Any]:
    return {"interactions": {"types": ["ORDER"]}, "withinDays": days, **bounds}


def _views(days: int | None, **bounds: int) -> dict[str, Any]:
    return {"interactions": {"types": ["PAGE_VIEW"]}, "withinDays": days, **bounds}


# Each segment: its activity conditions, and the same conditions as Python rules (all must hold).
SEGMENTS: dict[str, tuple[list[dict[str, Any]], list[Rule]]] = {
    "recent-order": ([_order(10, min=1)], [Rule(("ORDER",), 10, 1, None)]),
    "two-orders": ([_order(20, min=2)], [Rule(("ORDER",), 20, 2, None)]),
    "quiet": ([_views(15, max=1)], [Rule(("PAGE_VIEW",), 15, 0, 1)]),
    "steady-buyer": ([_order(20, min=1, max=2)], [Rule(("ORDER",), 20, 1, 2)]),
    "browsing-not-buying": (
        [_views(10, min=1), _order(5, max=0)],
        [Rule(("PAGE_VIEW",), 10, 1, None), Rule(("ORDER",), 5, 0, 0)],
    ),
    "few-orders-no-views": (
        [_order(None, max=2), _views(10, max=0)],
        [Rule(("ORDER",), None, 0, 2), Rule(("PAGE_VIEW",), 10, 0, 0)],
    ),
}
# Ages in half days and steps at a quarter past whole days: no interaction leaves a window at a
# step (the recount and the sweep never disagree about an edge by the seconds between them).
AGES = [0.5, 1.5, 3.5, 4.5, 7.5, 9.5, 12.5, 14.5, 19.5, 22.5]
STEPS = [k + 0.25 for k in range(0, 24)]  # past the widest window (20 days) at the end

history = st.lists(
    st.tuples(st.integers(0, 3), st.sampled_from(["ORDER", "PAGE_VIEW"]), st.sampled_from(AGES)),
    min_size=1,
    max_size=14,
)


async def _recount(db: asyncpg.Connection, at: datetime) -> dict[str, set[uuid.UUID]]:
    found = {}
    for key, (_, rules) in SEGMENTS.items():
        members = await expected_members(db, rules[0], at)
        for rule in rules[1:]:
            members &= await expected_members(db, rule, at)
        found[key] = members
    return found


async def _stored(db: asyncpg.Connection) -> dict[str, set[uuid.UUID]]:
    found: dict[str, set[uuid.UUID]] = {key: set() for key in SEGMENTS}
    for row in await db.fetch("SELECT segment_key, customer_id FROM segment_members"):
        found[row["segment_key"]].add(row["customer_id"])
    return found


def _moves(
    before: dict[str, set[uuid.UUID]], after: dict[str, set[uuid.UUID]]
) -> list[tuple[str, uuid.UUID, str]]:
    moved = []
    for key in SEGMENTS:
        moved += [(key, c, "ENTERED") for c in after[key] - before[key]]
        moved += [(key, c, "EXITED") for c in before[key] - after[key]]
    return sorted(moved)


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(interactions=history)
async def test_the_sweeper_keeps_segments_exact_as_the_clock_moves(
    gql: Any, db: asyncpg.Connection, engine: Any, interactions: list[Any]
) -> None:
    tables = [t for t in DATA_TABLES if t not in ("api_keys", "audit_log")]
    await db.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
    tp = await touchpoints(db)
    for key, (activity, _) in SEGMENTS.items():
        await gql.data(CREATE, {"input": {"key": key, "name": key, "activity": activity}})
    now = datetime.now(UTC)
    items = [
        interaction(
            tp["web"],
            ("EMAIL", f"person{who}@example.com"),
            type=kind,
            occurredAt=zulu(now - timedelta(days=age)),
        )
        for who, kind, age in interactions
    ]
    stored = await gql.data(RECORD_MANY, {"inputs": items})
    assert stored["recordInteractions"]["rejected"] == []
    assert await _stored(db) == await _recount(db, datetime.now(UTC))

    seen = len(await membership_events(db))
    before = await _stored(db)
    for step in STEPS:
        at = now + timedelta(days=step)
        async with engine.begin() as connection:
            for _ in range(10):  # every due customer, in rounds of at most 1,000
                if await sweep(connection, at) == 0:
                    break
            else:
                raise AssertionError("the sweep kept finding due customers")
        after = await _stored(db)
        assert after == await _recount(db, at), f"{step} days on"
        events = await membership_events(db)
        clock = sorted((k, c, ch) for k, c, ch, reason in events[seen:] if reason == "CLOCK")
        assert len(events) - seen == len(clock)  # the sweep wrote nothing but CLOCK events
        assert clock == _moves(before, after), f"{step} days on"
        seen, before = len(events), after
    # Every window is empty now: nothing time can still change, so nothing is due.
    assert await db.fetchval("SELECT count(*) FROM segment_checks") == 0
