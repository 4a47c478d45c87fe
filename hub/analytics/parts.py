"""Run one analytics statement over disjoint ranges of customers at once, on one snapshot.

PostgreSQL runs a window function in a single process: it has no parallel plan for
``lead() OVER (PARTITION BY customer_id ...)``, which is what a channel- or business-line-
filtered ``channelTransitions`` needs (hub/analytics/reports.py). Its answer is a set of counts per
customer, summed; customers never straddle two ranges, so the statement can run over
``[low, high)`` ranges of ``customer_id`` on separate connections and the sums add up exactly.

All parts read one snapshot: the first connection exports it (``pg_export_snapshot()``) and
holds its transaction open until every part has finished; the others import it (``SET
TRANSACTION SNAPSHOT``), so a write committed between two parts cannot be counted in one and
missed in another. Extra connections are limited per engine (half its pool); a part that finds
none free runs on the first connection, one after the other.

Range bounds come from the planner's statistics (``pg_stats`` histogram of
``journey_steps.customer_id``): free to read, and balanced enough; without statistics (a fresh
table), the statement runs once over everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import weakref
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hub.db.rows import Record

# What pg_export_snapshot() returns, e.g. 00000003-0000001B-1: checked before it is spliced into
# SET TRANSACTION SNAPSHOT, which takes no bound parameters.
_SNAPSHOT_ID = re.compile(r"^[0-9A-F]+-[0-9A-F]+-[0-9]+$")

# The histogram's bounds split the table's rows into equal shares (by the sample ANALYZE took).
_BOUNDS = """
SELECT CAST(CAST(histogram_bounds AS text) AS uuid[])
FROM pg_stats
WHERE schemaname = current_schema() AND tablename = 'journey_steps'
  AND attname = 'customer_id'
"""

Range = tuple[UUID | None, UUID | None]
"""``[low, high)`` of ``customer_id``; None: unbounded on that side."""


def range_condition(alias: str, bounds: Range) -> str:
    """SQL condition (``TRUE`` when unbounded) restricting ``alias.customer_id`` to a range, on
    the parameters ``:part_low`` / ``:part_high`` (``range_params``)."""
    low, high = bounds
    clauses = ["TRUE"]
    if low is not None:
        clauses.append(f"{alias}.customer_id >= :part_low")
    if high is not None:
        clauses.append(f"{alias}.customer_id < :part_high")
    return " AND ".join(clauses)


def range_params(bounds: Range) -> dict[str, Any]:
    low, high = bounds
    return {"part_low": low, "part_high": high}


def split(bounds: Sequence[UUID], parts: int) -> list[Range]:
    """``parts`` consecutive ranges cut at evenly spaced histogram bounds (fewer when the
    histogram is shorter; one unbounded range when there is none)."""
    inner = list(bounds[1:-1])
    cuts: list[UUID] = []
    if parts > 1 and inner:
        step = (len(inner) + 1) / parts
        cuts = sorted(
            {inner[min(len(inner) - 1, max(0, round(step * k) - 1))] for k in range(1, parts)}
        )
    edges: list[UUID | None] = [None, *cuts, None]
    return [(edges[k], edges[k + 1]) for k in range(len(edges) - 1)]


async def execute(
    connection: AsyncConnection, sql: str, params: dict[str, Any]
) -> Sequence[Record]:
    """The rows of one analytics statement (every analytics query reads through here)."""
    result = await connection.execute(sa.text(sql), params)
    return result.mappings().all()


@dataclass(frozen=True)
class Snapshot:
    """An exported snapshot: ``connection``'s REPEATABLE READ transaction, held open, and the
    id other transactions import it by."""

    engine: AsyncEngine
    connection: AsyncConnection
    id: str

    @contextlib.asynccontextmanager
    async def imported(self) -> AsyncIterator[AsyncConnection]:
        """Another pooled connection in a transaction that sees exactly this snapshot."""
        async with self.engine.connect() as connection:
            connection = await connection.execution_options(isolation_level="REPEATABLE READ")
            # The first statement of the transaction; the id was checked when exported.
            await connection.execute(sa.text(f"SET TRANSACTION SNAPSHOT '{self.id}'"))
            yield connection


@contextlib.asynccontextmanager
async def exported_snapshot(engine: AsyncEngine) -> AsyncIterator[Snapshot]:
    """A REPEATABLE READ transaction on a pooled connection and its exported snapshot, valid
    until the block ends (the transaction is then rolled back: it only read)."""
    async with engine.connect() as connection:
        connection = await connection.execution_options(isolation_level="REPEATABLE READ")
        snapshot = await connection.scalar(sa.text("SELECT pg_export_snapshot()"))
        if not isinstance(snapshot, str) or not _SNAPSHOT_ID.match(snapshot):
            raise RuntimeError(f"unexpected snapshot id {snapshot!r}")
        yield Snapshot(engine, connection, snapshot)


# Extra connections for parts, per engine: at most half its pool, so that analytics queries
# waiting for a second connection while holding a first can never starve each other (or the
# rest of the hub). A part that finds none free runs on the first connection after its own.
_PERMITS: weakref.WeakKeyDictionary[Any, asyncio.Semaphore] = weakref.WeakKeyDictionary()


def extra_connections(engine: AsyncEngine) -> asyncio.Semaphore:
    permits = _PERMITS.get(engine.sync_engine)
    if permits is None:
        size = getattr(engine.pool, "size", None)
        capacity = max(1, size() // 2) if callable(size) else 4
        permits = _PERMITS[engine.sync_engine] = asyncio.Semaphore(capacity)
    return permits


async def rows_in_parts(
    engine: AsyncEngine,
    statement: Callable[[Range], str],
    params: dict[str, Any],
    parts: int,
    *,
    ranges: list[Range] | None = None,
) -> list[Record]:
    """The rows of ``statement(range)`` for each range of customers, concatenated. ``parts``
    is how many connections may run at once; 1 runs the statement once, unbounded. The ranges
    are cut from the statistics unless given."""
    if parts <= 1:
        async with engine.connect() as connection:
            return list(await execute(connection, statement((None, None)), params))

    async def run(connection: AsyncConnection, bounds: Range) -> Sequence[Record]:
        return await execute(connection, statement(bounds), {**params, **range_params(bounds)})

    permits = extra_connections(engine)
    async with exported_snapshot(engine) as snapshot:
        if ranges is None:
            ranges = split(await snapshot.connection.scalar(sa.text(_BOUNDS)) or [], parts)
        here, elsewhere = ranges[:1], []
        for bounds in ranges[1:]:
            if permits.locked():
                here.append(bounds)
            else:
                await permits.acquire()  # free: returns at once
                elsewhere.append(bounds)

        async def on_first() -> list[Record]:
            return [row for bounds in here for row in await run(snapshot.connection, bounds)]

        async def on_another(bounds: Range) -> Sequence[Record]:
            async with snapshot.imported() as connection:
                return await run(connection, bounds)

        # A task group: when one part fails, the others are cancelled, not left running. Its
        # error is raised as it is (not in an ExceptionGroup), so callers tell a database
        # outage or a timeout apart exactly as for a single statement (hub/core/faults.py).
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [
                    group.create_task(on_first()),
                    *(group.create_task(on_another(bounds)) for bounds in elsewhere),
                ]
        except ExceptionGroup as failed:
            raise failed.exceptions[0] from None
        finally:
            for _ in elsewhere:
                permits.release()
    return [row for task in tasks for row in task.result()]
