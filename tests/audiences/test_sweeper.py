"""The running sweeper (a task of the app, HUB_AUDIENCES_SWEEP_S) moves a window by itself; the
running drainer (HUB_AUDIENCES_DRAIN_MS) evaluates what ingest queued."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from tests.audiences.test_traits import DEFINE
from tests.conftest import GraphQLClient, make_key
from tests.ingest_support import RECORD_MANY, interaction, touchpoints
from tests.waiting import until


async def test_the_sweeper_slides_a_window(
    db: asyncpg.Connection, app_with: Callable[..., Any]
) -> None:
    tp = await touchpoints(db)
    async with app_with(audiences_sweep_s=0.1, audiences_drain_ms=20) as (http, engine):
        http.headers["Authorization"] = f"Bearer {await make_key(engine, 'ADMIN')}"
        gql = GraphQLClient(http)
        trait = {
            "key": "today",
            "aggregate": "COUNT",
            "interactions": {"channels": ["WEB"]},
            "withinDays": 1,
        }
        await gql.data(DEFINE, {"input": trait})
        # One visit that leaves the one-day window four seconds from now, one that stays.
        now = datetime.now(UTC)
        leaving = now - timedelta(days=1) + timedelta(seconds=4)
        items = [
            interaction(tp["web"], ("EMAIL", "ana@example.com"), occurredAt=leaving.isoformat()),
            interaction(tp["web"], ("EMAIL", "ana@example.com"), occurredAt=now.isoformat()),
        ]
        await gql.data(RECORD_MANY, {"inputs": items})
        value = "SELECT value::text FROM customer_traits_computed WHERE trait_key = 'today'"

        async def drained() -> bool:
            # The values commit with the round's evaluation, the queue row goes with its end.
            queued = await db.fetchval("SELECT count(*) FROM audience_queue")
            return queued == 0 and await db.fetchval(value) is not None

        await until(drained, "the drainer to evaluate the ingest")
        assert await db.fetchval(value) == "2"
        assert await db.fetchval("SELECT next_change_at FROM customer_traits_computed") == (
            leaving + timedelta(days=1)
        )

        async def slid() -> bool:
            return await db.fetchval(value) == "1"

        await until(slid, "the sweeper to drop the visit that left the window")
        # And the next change is the remaining visit's.
        assert await db.fetchval("SELECT next_change_at FROM customer_traits_computed") == (
            now + timedelta(days=1)
        )
