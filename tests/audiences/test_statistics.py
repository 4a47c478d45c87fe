"""A definition's bulk write leaves its tables analysed: the planner plans the next ingest
against their real size, not the size before (``hub.audiences.statistics``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from tests.audiences.support import CREATE
from tests.factories import zulu
from tests.ingest_support import interaction, record, touchpoints

DEFINE = (
    "mutation($input: DefineComputedTraitInput!) { defineComputedTrait(input: $input) { key } }"
)


async def _planner_rows(db: asyncpg.Connection, table: str) -> float:
    """What the planner believes the table holds (-1: never analysed since it was emptied)."""
    return float(await db.fetchval("SELECT reltuples FROM pg_class WHERE relname = $1", table))


async def test_definitions_leave_their_tables_analysed(gql: Any, db: asyncpg.Connection) -> None:
    tp = (await touchpoints(db))["web"]
    at = zulu(datetime.now(UTC) - timedelta(days=1))
    for n in range(7):
        order = interaction(tp, ("EMAIL", f"p{n}@example.com"), type="ORDER", occurredAt=at)
        await record(gql, order)
    activity = [{"interactions": {"types": ["ORDER"]}, "withinDays": 30, "min": 1}]
    await gql.data(CREATE, {"input": {"key": "buyers", "name": "Buyers", "activity": activity}})
    for table in ("segment_members", "segment_checks"):
        stored = await db.fetchval(f"SELECT count(*) FROM {table}")
        assert stored == 7, table
        assert await _planner_rows(db, table) == stored, table

    trait = {"key": "orders", "aggregate": "COUNT", "interactions": {"types": ["ORDER"]}}
    await gql.data(DEFINE, {"input": trait})
    stored = await db.fetchval("SELECT count(*) FROM customer_traits_computed")
    assert stored == 7
    assert await _planner_rows(db, "customer_traits_computed") == stored
