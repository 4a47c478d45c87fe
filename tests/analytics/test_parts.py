"""Filtered transitions over ranges of customers at once (hub/analytics/parts.py): the same
answer in any number of parts, on one snapshot, the ranges cut where the statistics say."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa

from hub.analytics import reports as analytics
from hub.analytics.parts import exported_snapshot, extra_connections, rows_in_parts, split
from hub.analytics.reports import Scope, TransitionGrouping
from hub.analytics.rollup import catch_up
from tests.analytics.test_analytics import build_dataset
from tests.conftest import StatementCounter
from tests.factories import T0, Factory

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
    """A row committed after the export is in no part: every part reads the exported
    snapshot, not one of its own (which a connection that does not import it does see)."""
    await Factory(db).touchpoint("Before", "WEB", "WEBSITE")
    async with exported_snapshot(engine) as snapshot:
        await Factory(db).touchpoint("After the export", "WEB", "WEBSITE")
        count = sa.text("SELECT count(*) FROM touchpoints")
        async with snapshot.imported() as part:
            assert await part.scalar(count) == 1
        assert await snapshot.connection.scalar(count) == 1
        async with engine.connect() as own:
            assert await own.scalar(count) == 2
    rows = await rows_in_parts(
        engine,
        lambda bounds: "SELECT count(*) AS seen FROM touchpoints",
        {},
        3,
        ranges=split(BOUNDS, 3),
    )
    assert [row["seen"] for row in rows] == [2, 2, 2]


async def test_without_free_connections_the_parts_run_on_the_first(
    engine: Any, count_statements: StatementCounter
) -> None:
    permits = extra_connections(engine)
    held = 0
    while not permits.locked():
        await permits.acquire()
        held += 1
    try:
        count_statements.statements.clear()
        rows = await rows_in_parts(
            engine, lambda bounds: "SELECT 1 AS one", {}, 3, ranges=split(BOUNDS, 3)
        )
        assert [row["one"] for row in rows] == [1, 1, 1]
        assert not [s for s in count_statements.statements if "SET TRANSACTION SNAPSHOT" in s]
    finally:
        for _ in range(held):
            permits.release()
    assert held >= 1
    # With connections free again, the parts take them (and give them back).
    count_statements.statements.clear()
    await rows_in_parts(engine, lambda bounds: "SELECT 1 AS one", {}, 3, ranges=split(BOUNDS, 3))
    assert len([s for s in count_statements.statements if "SET TRANSACTION SNAPSHOT" in s]) == 2
    assert not permits.locked()


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
