"""Batch functions for segment memberships."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.db.rows import Record, fetch_all, group_rows
from hub.models import SEGMENT_MEMBERS, SEGMENTS


async def segments_by_customer(engine: AsyncEngine, ids: list[uuid.UUID]) -> list[list[Record]]:
    """Each customer's memberships with the segment's row (key, name, description), by key."""
    m, s = SEGMENT_MEMBERS.c, SEGMENTS.c
    rows = await fetch_all(
        engine,
        sa.select(m.customer_id, m.entered_at, s.key, s.name, s.description)
        .join(SEGMENTS, s.key == m.segment_key)
        .where(m.customer_id.in_(ids))
        .order_by(s.key),
    )
    grouped = group_rows(rows, "customer_id")
    return [grouped.get(key, []) for key in ids]
