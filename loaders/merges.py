"""Batch functions for the merge ledger."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.db.rows import Record, fetch_all
from hub.loaders.customers import uuid_array
from hub.models import MERGES


async def merges_by_customer(engine: AsyncEngine, ids: list[uuid.UUID]) -> list[list[Record]]:
    """Merges each customer took part in (as survivor or merged), newest first."""
    m = MERGES.c
    rows = await fetch_all(
        engine,
        sa.select(MERGES)
        .where(sa.or_(m.survivor_id.in_(ids), m.merged_ids.overlap(uuid_array(ids))))
        .order_by(m.created_at.desc(), m.id.desc()),
    )
    wanted = set(ids)
    grouped: dict[uuid.UUID, list[Record]] = {}
    for row in rows:
        for cid in {row["survivor_id"], *row["merged_ids"]} & wanted:
            grouped.setdefault(cid, []).append(row)
    return [grouped.get(key, []) for key in ids]
