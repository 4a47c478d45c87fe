"""Batch functions for the channel taxonomy, touchpoints and journey stages.

Channels (six) and journey stages (five) are small fixed taxonomies: a request reads each whole
table at most once, through a loader with one constant key, however many places in a query ask
for a channel or a stage and at whatever moment. Loading them code by code would run one
statement per DataLoader tick instead, a number that depends on timing, not on the query.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from strawberry.dataloader import DataLoader

from hub.db.rows import Record, fetch_all, group_rows
from hub.models import CHANNELS, CUSTOMERS, JOURNEY_STAGES, TOUCHPOINTS

WHOLE_TABLE = "all"
"""The one key of the taxonomy loaders."""

Taxonomy = dict[str, Record]
"""Every row of a taxonomy table by code, in display order."""


async def channel_tables(engine: AsyncEngine, keys: list[str]) -> list[Taxonomy]:
    rows = await fetch_all(engine, sa.select(CHANNELS).order_by(CHANNELS.c.position))
    table = {row["code"]: row for row in rows}
    return [table for _ in keys]


async def stage_tables(engine: AsyncEngine, keys: list[str]) -> list[Taxonomy]:
    rows = await fetch_all(engine, sa.select(JOURNEY_STAGES).order_by(JOURNEY_STAGES.c.position))
    table = {row["code"]: row for row in rows}
    return [table for _ in keys]


def by_code(
    tables: DataLoader[str, Taxonomy],
) -> Callable[[list[str]], Awaitable[list[Record | None]]]:
    """A batch function answering codes from the whole-table loader ``tables``."""

    async def batch(codes: list[str]) -> list[Record | None]:
        table = await tables.load(WHOLE_TABLE)
        return [table.get(code) for code in codes]

    return batch


async def touchpoints_by_id(engine: AsyncEngine, ids: list[uuid.UUID]) -> list[Record | None]:
    rows = await fetch_all(engine, sa.select(TOUCHPOINTS).where(TOUCHPOINTS.c.id.in_(ids)))
    by_id = {row["id"]: row for row in rows}
    return [by_id.get(key) for key in ids]


async def touchpoints_by_channel(engine: AsyncEngine, codes: list[str]) -> list[list[Record]]:
    rows = await fetch_all(
        engine,
        sa.select(TOUCHPOINTS)
        .where(TOUCHPOINTS.c.channel_code.in_(codes))
        .order_by(TOUCHPOINTS.c.business_line.nulls_first(), TOUCHPOINTS.c.name, TOUCHPOINTS.c.id),
    )
    grouped = group_rows(rows, "channel_code")
    return [grouped.get(code, []) for code in codes]


async def customer_counts_by_stage(engine: AsyncEngine, codes: list[str]) -> list[int]:
    rows = await fetch_all(
        engine,
        sa.select(CUSTOMERS.c.current_stage, sa.func.count().label("n"))
        .where(
            CUSTOMERS.c.current_stage.in_(codes),
            CUSTOMERS.c.merged_into_id.is_(None),
        )
        .group_by(CUSTOMERS.c.current_stage),
    )
    counts = {row["current_stage"]: row["n"] for row in rows}
    return [counts.get(code, 0) for code in codes]
