"""The derived tables analytics read: ``journey_steps``, ``stage_entries`` and
``conversation_facts`` (migration 0008, docs/analytics.md).

One row per interaction with what path questions need already linked: the stage the customer was
in, their next interaction and the gap to it, the next one at the same touchpoint / on the same
channel, and per grouping the previous move of the same kind and the smallest / largest gaps of
later ones. ``hub.analytics.reports`` answers from it in one pass instead of window functions
over every interaction. ``stage_entries`` holds the stage changes that are not LOOPING with when the
customer left, their next entry into the same stage and their latest entry into the previous
stage: the funnel in one pass. ``conversation_facts`` holds each conversation's first INBOUND
interaction and first answer after it: response times without a window over conversations.

Maintenance lives in PostgreSQL, next to the data, in two halves (migrations 0008 and 0010):
statement-level triggers with transition tables on ``interactions`` and ``stage_history`` *mark*
the customers and conversations each writing statement touched (``analytics_pending``, in the
writer's transaction: an append that never waits), and ``analytics_catch_up()`` recomputes the
marked ones, each once, with ``journey_steps_refresh`` / ``stage_entries_refresh`` /
``conversation_facts_refresh``. ``catch_up`` runs before every analytics query (so answers are
exact as of the moment the query starts) and every ``HUB_ANALYTICS_CATCH_UP_S`` in the
background (so a query rarely has much to do). Every writer is covered without knowing about it
— ingest's one-statement batches, merges and unmerges (which move rows between customers), stage
changes set by hand, test factories, bench loaders. Recomputing inside the writer's transaction
(0008) made ingest ten times slower on customers with long histories; marking costs one small
insert per statement. Erasure changes no column the steps depend on. Only a bulk load that
switches triggers off (the seeder, ``session_replication_role = replica``) must call ``rebuild``
before it commits.
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from hub.core.periodic import every
from hub.db.engine import sqlalchemy_url

logger = logging.getLogger(__name__)

REBUILD_SQL = "SELECT journey_steps_rebuild()"
"""Recompute the three tables from the base tables, set-based (returns the journey_steps rows)."""

CATCH_UP_SQL = "SELECT analytics_catch_up()"
"""One round: up to ``ROUND`` marks, oldest first, in the caller's transaction (0: nothing was
left)."""
ROUND = 200
"""The marks a round takes at most: ``analytics_catch_up``'s default (migration 0010)."""


async def catch_up(engine: AsyncEngine) -> int:
    """Recompute every customer and conversation marked so far, a round of at most ``ROUND``
    marks per transaction on ``engine`` (the primary) until a round finds fewer; returns the
    marks taken. Short transactions: an open writing transaction holds back live event delivery
    (the outbox delivers in commit order, hub.events.outbox), so one long catch-up would delay every
    subscriber. Each round is one statement in autocommit: its own transaction, no BEGIN and
    COMMIT round trips around it."""
    taken = 0
    async with engine.connect() as connection:
        connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
        while True:
            done = int(await connection.scalar(sa.text(CATCH_UP_SQL)) or 0)
            taken += done
            # Fewer than a full round: every mark committed before this round was visible to it
            # and is taken (or being taken by a concurrent catch-up: SKIP LOCKED).
            if done < ROUND:
                return taken


async def catch_up_forever(engine: AsyncEngine, interval_s: float) -> None:
    """The background half: ``catch_up`` every ``interval_s`` (one warning per run of failures,
    e.g. a database outage; the marks wait in the table meanwhile)."""
    await every(interval_s, lambda: catch_up(engine), logger, "analytics catch-up")


async def rebuild(connection: AsyncConnection) -> int:
    """Recompute the derived tables from the base tables in the caller's transaction."""
    written = await connection.scalar(sa.text(REBUILD_SQL))
    return int(written or 0)


def _differences(table: str) -> str:
    """SQL: how many rows of ``table`` and of its recomputation (``<table>_all()``, which
    returns rows of the same type) are not in the other."""
    return f"""(SELECT count(*) FROM (
            (SELECT * FROM {table} EXCEPT ALL SELECT * FROM {table}_all())
            UNION ALL
            (SELECT * FROM {table}_all() EXCEPT ALL SELECT * FROM {table})
        ) AS differences)"""


DERIVED_TABLES = ("journey_steps", "stage_entries", "conversation_facts")
STALE_SQL = "SELECT " + " + ".join(_differences(table) for table in DERIVED_TABLES)


async def stale_rows(connection: AsyncConnection) -> int:
    """How many rows differ from a recomputation from the base tables (0 when current): a check
    for tests and for ``hub analytics check``; it reads everything, so it is not for requests."""
    result: Any = await connection.scalar(sa.text(STALE_SQL))
    return int(result)


async def run_rebuild(database_url: str) -> int:
    """``hub analytics rebuild``: ``rebuild`` in a transaction of its own."""
    engine = create_async_engine(sqlalchemy_url(database_url))
    try:
        async with engine.begin() as connection:
            written = await rebuild(connection)
            await connection.execute(sa.text(f"ANALYZE {', '.join(DERIVED_TABLES)}"))
        return written
    finally:
        await engine.dispose()


async def run_check(database_url: str) -> int:
    """``hub analytics check``: ``stale_rows`` on a connection of its own."""
    engine = create_async_engine(sqlalchemy_url(database_url))
    try:
        await catch_up(engine)  # what is merely pending is not stale
        async with engine.connect() as connection:
            return await stale_rows(connection)
    finally:
        await engine.dispose()
