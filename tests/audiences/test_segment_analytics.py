"""Segment analytics: sizes over time (from the size record kept with every membership change)
and overlaps, checked against an independent recount: snapshots of the stored membership taken
after each step of the test, at the instants the hub evaluated them (``sweep(conn, now=...)``
moves the clock; a real change reads its instant back from ``entered_at``)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from hub.audiences.membership import sweep
from hub.db.engine import asyncpg_dsn
from hub.db.migrations import aupgrade
from tests.audiences.support import CREATE, Rule, expected_members, stored_members
from tests.factories import zulu
from tests.ingest_support import interaction, record, row_id, touchpoints

KEYS = ("lapsed", "recent")
SIZES = """
query($keys: [String!]!, $since: DateTime!, $until: DateTime, $bucket: SegmentSizeBucket!) {
  analytics { segmentSizes(keys: $keys, since: $since, until: $until, bucket: $bucket) {
    segment points { start entered exited size } } }
}
"""
OVERLAP = """
query($keys: [String!]!) { analytics { segmentOverlap(keys: $keys) { a b customers } } }
"""

Snapshot = tuple[datetime, dict[str, set[uuid.UUID]]]


async def _snapshot(db: asyncpg.Connection, at: datetime) -> Snapshot:
    return at, {key: await stored_members(db, key) for key in KEYS}


def _expected(
    snapshots: list[Snapshot], since: datetime, until: datetime, step: timedelta
) -> list[dict[str, Any]]:
    """The series recounted from the snapshots: each step's entries and exits are the set
    differences from the previous snapshot, filed at the step's instant."""
    changes: list[tuple[datetime, str, int, int]] = []
    previous: dict[str, set[uuid.UUID]] = {key: set() for key in KEYS}
    for at, members in snapshots:
        for key in KEYS:
            entered = len(members[key] - previous[key])
            exited = len(previous[key] - members[key])
            changes.append((at, key, entered, exited))
        previous = members
    epoch = datetime(2000, 1, 3, tzinfo=UTC)
    first = epoch + (since - epoch) // step * step
    out = []
    for key in KEYS:
        points = []
        start = first
        while start < until:
            end = start + step
            mine = [c for c in changes if c[1] == key]
            inside = [c for c in mine if start <= c[0] < end]
            points.append(
                {
                    "start": start,
                    "entered": sum(c[2] for c in inside),
                    "exited": sum(c[3] for c in inside),
                    "size": sum(c[2] - c[3] for c in mine if c[0] < end),
                }
            )
            start = end
        out.append({"segment": key, "points": points})
    return out


async def _entered_at(db: asyncpg.Connection, key: str, customer: uuid.UUID) -> datetime:
    value: datetime = await db.fetchval(
        "SELECT entered_at FROM segment_members WHERE segment_key = $1 AND customer_id = $2",
        key,
        customer,
    )
    return value


async def test_sizes_over_time_and_overlap_match_a_recount(
    gql: Any, gql_as: Any, db: asyncpg.Connection, engine: Any
) -> None:
    tp = (await touchpoints(db))["web"]
    now = datetime.now(UTC)
    ids = {}
    for name, days in (("a", 1.5), ("b", 4.5), ("c", 9.5), ("d", 30)):
        at = zulu(now - timedelta(days=days))
        result = await record(
            gql, interaction(tp, ("EMAIL", f"{name}@example.com"), type="ORDER", occurredAt=at)
        )
        ids[name] = row_id(result["customer"]["id"])
    for key, window in (("recent", {"min": 1}), ("lapsed", {"max": 0})):
        activity = [{"interactions": {"types": ["ORDER"]}, "withinDays": 7, **window}]
        await gql.data(CREATE, {"input": {"key": key, "name": key, "activity": activity}})
    # The creation's instant, as the hub evaluated it (the baseline counts as entries).
    snapshots = [await _snapshot(db, await _entered_at(db, "recent", ids["a"]))]
    # C orders again now: C enters "recent" and leaves "lapsed" (ingest, the real clock).
    await record(gql, interaction(tp, ("EMAIL", "c@example.com"), type="ORDER"))
    snapshots.append(await _snapshot(db, await _entered_at(db, "recent", ids["c"])))
    # The clock moves: B's order leaves the window after 2.5 days, A's after 5.5.
    for later in (now + timedelta(days=3), now + timedelta(days=5, hours=13)):
        async with engine.begin() as connection:
            assert await sweep(connection, later) == 1
        snapshots.append(await _snapshot(db, later))
    final = snapshots[-1][1]
    assert final["recent"] == await expected_members(
        db, Rule(("ORDER",), 7, 1, None), snapshots[-1][0]
    )
    assert final == {"recent": {ids["c"]}, "lapsed": {ids["a"], ids["b"], ids["d"]}}

    since, until = now - timedelta(hours=30), now + timedelta(days=6)
    for bucket, step in (("HOUR", timedelta(hours=1)), ("DAY", timedelta(days=1))):
        got = await gql.data(
            SIZES,
            {"keys": list(KEYS), "since": zulu(since), "until": zulu(until), "bucket": bucket},
        )
        expected = _expected(snapshots, since, until, step)
        for series in got["analytics"]["segmentSizes"]:
            for point in series["points"]:
                point["start"] = datetime.fromisoformat(point["start"])
        assert got["analytics"]["segmentSizes"] == expected
        sizes = [p["size"] for p in expected[1]["points"]]
        # Negative control: the series does move (0 before creation, 2, 3, 2, 1).
        assert sorted(set(sizes)) == [0, 1, 2, 3]
    # The record adds up to the stored membership.
    for key in KEYS:
        total = await db.fetchval(
            "SELECT sum(entered - exited) FROM segment_size_changes WHERE segment_key = $1", key
        )
        assert total == len(final[key])

    # Overlap: add a segment of everyone who ever ordered, recounted from plain rows.
    await gql.data(
        CREATE,
        {
            "input": {
                "key": "buyers",
                "name": "buyers",
                "activity": [{"interactions": {"types": ["ORDER"]}}],
            }
        },
    )
    members = {key: await stored_members(db, key) for key in (*KEYS, "buyers")}
    assert members["buyers"] == await expected_members(db, Rule(("ORDER",), None, 1, None), now)
    keys = ["buyers", "recent", "lapsed"]
    expected_overlap = [{"a": k, "b": k, "customers": len(members[k])} for k in keys] + [
        {"a": a, "b": b, "customers": len(members[a] & members[b])}
        for i, a in enumerate(keys)
        for b in keys[i + 1 :]
    ]
    got = await gql.data(OVERLAP, {"keys": keys})
    assert got["analytics"]["segmentOverlap"] == expected_overlap
    # Negative control: disjoint and overlapping pairs both occur.
    assert [o["customers"] for o in expected_overlap] == [4, 1, 3, 1, 3, 0]

    analyst = await gql_as("ANALYST")
    assert (await analyst.data(OVERLAP, {"keys": keys}))["analytics"]["segmentOverlap"] == (
        expected_overlap
    )
    for role, scopes in (("PARTNER", {"channels": ["WEB"]}), ("FRONTEND", {})):
        other = await gql_as(role, **scopes)
        for query, variables in (
            (OVERLAP, {"keys": keys}),
            (SIZES, {"keys": keys, "since": zulu(since), "bucket": "DAY"}),
        ):
            error = await other.error(query, variables)
            assert error["extensions"]["code"] == "FORBIDDEN", (role, error)


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"keys": ["nope"]}, "unknown segment key(s): nope"),
        ({"keys": []}, "name at least one segment in `keys`"),
        ({"keys": ["s"], "until": "2026-01-01T00:00:00Z"}, "`since` must be earlier"),
        ({"keys": ["s"], "since": "2000-01-01T00:00:00Z", "bucket": "HOUR"}, "more than 5000"),
        (
            {"keys": ["s"], "since": "9999-12-31T00:00:00Z", "until": "9999-12-31T12:00:00Z"},
            "out of range",
        ),
    ],
)
async def test_bad_size_questions_are_clear_errors(
    gql: Any, variables: dict[str, Any], message: str
) -> None:
    await gql.data(
        CREATE, {"input": {"key": "s", "name": "s", "filter": {"stage": {"eq": "AWARENESS"}}}}
    )
    error = await gql.error(
        SIZES,
        {"since": "2026-06-01T00:00:00Z", "until": None, "bucket": "DAY", **variables},
    )
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert message in error["message"]


async def test_migration_0021_backfills_the_current_members(
    database_url: str, drop_at_exit: list[str]
) -> None:
    """A database at 0020 with members: 0021 files each as an entry in its ``entered_at`` hour."""
    parts = urlsplit(database_url)
    name = parts.path.lstrip("/") + "_m21"  # per worker database, so per worker too
    url = urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))
    admin = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    drop_at_exit.append(name)
    await aupgrade(url, "0020")
    db = await asyncpg.connect(asyncpg_dsn(url))
    try:
        t = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
        entries = {  # customer -> (segment, entered_at)
            uuid.UUID(int=1): ("a", t + timedelta(minutes=5)),
            uuid.UUID(int=2): ("a", t + timedelta(minutes=55)),
            uuid.UUID(int=3): ("a", t + timedelta(hours=1)),
            uuid.UUID(int=4): ("b", t + timedelta(days=2, minutes=1)),
        }
        for key in ("a", "b", "c"):
            await db.execute(
                "INSERT INTO segments (key, name, definition, created_by)"
                " VALUES ($1, $1, '{}', 'test')",
                key,
            )
        for customer, (key, at) in entries.items():
            await db.execute(
                "INSERT INTO customers (id, created_at, updated_at) VALUES ($1, $2, $2)",
                customer,
                at,
            )
            await db.execute(
                "INSERT INTO segment_members (segment_key, customer_id, entered_at)"
                " VALUES ($1, $2, $3)",
                key,
                customer,
                at,
            )
        await aupgrade(url, "head")
        rows = await db.fetch(
            "SELECT segment_key, hour, entered, exited FROM segment_size_changes"
            " ORDER BY segment_key, hour"
        )
    finally:
        await db.close()
    expected: dict[tuple[str, datetime], int] = {}
    for key, at in entries.values():
        hour = at.replace(minute=0, second=0, microsecond=0)
        expected[(key, hour)] = expected.get((key, hour), 0) + 1
    assert [(r["segment_key"], r["hour"], r["entered"], r["exited"]) for r in rows] == [
        (key, hour, n, 0) for (key, hour), n in sorted(expected.items())
    ]
    assert sorted(expected.values()) == [1, 1, 2]  # negative control: one hour holds two
