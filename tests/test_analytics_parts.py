"""Filtered transitions over ranges of customers at once (hub/analytics_parts.py): the same
answer in any number of parts, on one snapshot, the ranges cut where the statistics say."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa

from hub import analytics
from hub.analytics import Scope, TransitionGrouping
from hub.analytics_parts import rows_in_parts, split
from hub.analytics_rollup import catch_up
from tests.conftest import StatementCounter
from tests.factories import T0
from tests.test_analytics import build_dataset

BOUNDS = [uuid.UUID(int=k) for k in range(101)]


def test_ranges_are_cut_at_evenly_spaced_bounds() -> None:
    assert split(BOUNDS, 1) == [(None, None)]
    assert split(BOUNDS, 2) == [(None, BOUNDS[50]), (BOUNDS[50], None)]
    assert split(BOUNDS, 4) == [
        (None, BOUNDS[25]),
        (BOUNDS[25], BOUNDS[50]),
        (BOUNDS[50], BOUNDS[75]),
        (BOUNDS[75], None),
    ]


def test_without_statistics_there_is_one_range() -> None:
    assert split([], 4) == [(None, None)]
    # A histogram of two bounds has no bound inside it to cut at.
    assert split(BOUNDS[:2], 4) == [(None, None)]
    # Fewer inner bounds than parts: as many ranges as there are distinct cuts.
    assert split(BOUNDS[:3], 4) == [(None, BOUNDS[1]), (BOUNDS[1], None)]


SCOPES = [
    Scope(channels=("WEB", "ASSISTED", "SOCIAL")),
    Scope(business_lines=("retail",)),
    Scope(since=T0 + timedelta(days=2), channels=("WEB", "MOBILE")),
]


async def test_filtered_transitions_are_the_same_in_any_number_of_parts(
    db: asyncpg.Connection, engine: Any, count_statements: StatementCounter
) -> None:
    await build_dataset(db)
    await catch_up(engine)
    await db.execute("ANALYZE journey_steps")
    for grouping in TransitionGrouping:
        for scope in SCOPES:
            for gap in (None, timedelta(hours=10)):
                single = await analytics.transitions(engine, scope, grouping, gap, parts=1)
                assert single.links and single.nodes
                for parts in (2, 3):
                    count_statements.statements.clear()
                    result = await analytics.transitions(engine, scope, grouping, gap, parts=parts)
                    assert result == single, (grouping, scope, gap, parts)
                    statements = count_statements.statements
                    windows = [s for s in statements if "lead(" in s]
                    assert len(windows) == parts, statements
                    imports = [s for s in statements if "SET TRANSACTION SNAPSHOT" in s]
                    assert len(imports) == parts - 1, statements


async def test_parts_read_one_snapshot(db: asyncpg.Connection, engine: Any) -> None:
    """Every part reads the snapshot the first one exported, even while other transactions
    keep committing (each of which would move a snapshot taken by the part itself)."""
    stop = asyncio.Event()
    commits = 0

    async def keep_committing() -> None:
        nonlocal commits
        while not stop.is_set():
            await db.execute("SELECT txid_current()")  # one committed transaction id each
            commits += 1

    def own_snapshot(bounds: Any) -> str:
        return "SELECT CAST(pg_current_snapshot() AS text) AS snapshot"

    writer = asyncio.create_task(keep_committing())
    try:
        for _ in range(20):
            rows = await rows_in_parts(engine, own_snapshot, {}, 3, ranges=split(BOUNDS, 3))
            assert len(rows) == 3
            assert len({row["snapshot"] for row in rows}) == 1, rows
    finally:
        stop.set()
        await writer
    assert commits > 20  # the snapshots had every chance to differ


async def test_a_failing_part_raises_its_own_error(db: asyncpg.Connection, engine: Any) -> None:
    """Not an ExceptionGroup: the resolvers classify it like a single statement's error."""

    def fails_past_the_first_range(bounds: Any) -> str:
        return "SELECT 1 AS one" if bounds[0] is None else "SELECT 1 / 0 AS one"

    with pytest.raises(sa.exc.DBAPIError, match="division by zero"):
        await rows_in_parts(engine, fails_past_the_first_range, {}, 3, ranges=split(BOUNDS, 3))
    # The pool is still usable: nothing was left checked out or in a transaction.
    rows = await rows_in_parts(
        engine, lambda bounds: "SELECT 1 AS one", {}, 2, ranges=split(BOUNDS, 2)
    )
    assert [row["one"] for row in rows] == [1, 1]
