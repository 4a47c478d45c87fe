"""Batch functions for consents and their history."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.db.rows import Record, fetch_all, group_rows
from hub.models import CONSENT_HISTORY, CONSENTS


async def consents_by_customer(engine: AsyncEngine, ids: list[uuid.UUID]) -> list[list[Record]]:
    rows = await fetch_all(
        engine,
        sa.select(CONSENTS)
        .where(CONSENTS.c.customer_id.in_(ids))
        .order_by(CONSENTS.c.purpose, CONSENTS.c.channel),
    )
    grouped = group_rows(rows, "customer_id")
    return [grouped.get(key, []) for key in ids]


async def consent_history_by_customer(
    engine: AsyncEngine, ids: list[uuid.UUID]
) -> list[list[Record]]:
    rows = await fetch_all(
        engine,
        sa.select(CONSENT_HISTORY)
        .where(CONSENT_HISTORY.c.customer_id.in_(ids))
        .order_by(CONSENT_HISTORY.c.changed_at, CONSENT_HISTORY.c.id),
    )
    grouped = group_rows(rows, "customer_id")
    return [grouped.get(key, []) for key in ids]
