"""Batch functions for the channel taxonomy, touchpoints and journey stages."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.models import CHANNELS, CUSTOMERS, JOURNEY_STAGES, TOUCHPOINTS
from hub.scope import UNRESTRICTED, Scope
from loaders.sql import Record, fetch_all, group_rows


async def channels_by_code(engine: AsyncEngine, codes: list[str]) -> list[Record | None]:
    rows = await fetch_all(engine, sa.select(CHANNELS).where(CHANNELS.c.code.in_(codes)))
    by_code = {row["code"]: row for row in rows}
    return [by_code.get(code) for code in codes]


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


async def stages_by_code(engine: AsyncEngine, codes: list[str]) -> list[Record | None]:
    rows = await fetch_all(
        engine, sa.select(JOURNEY_STAGES).where(JOURNEY_STAGES.c.code.in_(codes))
    )
    by_code = {row["code"]: row for row in rows}
    return [by_code.get(code) for code in codes]


async def customer_counts_by_stage(
    engine: AsyncEngine, codes: list[str], scope: Scope = UNRESTRICTED
) -> list[int]:
    rows = await fetch_all(
        engine,
        sa.select(CUSTOMERS.c.current_stage, sa.func.count().label("n"))
        .where(
            CUSTOMERS.c.current_stage.in_(codes),
            CUSTOMERS.c.merged_into_id.is_(None),
            scope.customer_clause(),
        )
        .group_by(CUSTOMERS.c.current_stage),
    )
    counts = {row["current_stage"]: row["n"] for row in rows}
    return [counts.get(code, 0) for code in codes]
