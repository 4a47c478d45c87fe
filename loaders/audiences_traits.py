"""Batch functions for computed traits: the definitions (whole table), values by customer."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.audiences.traits import TraitDefinition
from hub.db.rows import Record, fetch_all, group_rows
from hub.models import COMPUTED_TRAITS, CUSTOMER_TRAITS_COMPUTED


async def computed_trait_tables(
    engine: AsyncEngine, keys: list[str]
) -> list[dict[str, TraitDefinition]]:
    """The definitions the request may see (a partner: those in its scope), by key."""
    rows = await fetch_all(engine, sa.select(COMPUTED_TRAITS))
    table = {row["key"]: TraitDefinition.from_row(row) for row in rows}
    return [table for _ in keys]


async def computed_by_customer(engine: AsyncEngine, ids: list[uuid.UUID]) -> list[list[Record]]:
    t = CUSTOMER_TRAITS_COMPUTED.c
    rows = await fetch_all(
        engine,
        sa.select(t.customer_id, t.trait_key, t.value, t.updated_at).where(t.customer_id.in_(ids)),
    )
    grouped = group_rows(rows, "customer_id")
    return [grouped.get(key, []) for key in ids]
