"""Batch functions for customers and what hangs off them (identities, stages, usage)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.db.rows import Record, fetch_all, group_rows
from hub.loaders.interaction_rows import select_interactions
from hub.models import (
    CONVERSATIONS,
    CUSTOMERS,
    IDENTITIES,
    INTERACTIONS,
    STAGE_HISTORY,
)


def uuid_array(ids: Sequence[uuid.UUID], name: str = "ids") -> sa.BindParameter[Any]:
    array_type: Any = ARRAY(UUID(as_uuid=True))
    return sa.bindparam(name, list(ids), type_=array_type)


def key_table(ids: Sequence[uuid.UUID], name: str = "ids") -> sa.TableValuedAlias:
    """``unnest($ids) AS k(key_id)``: the batch's keys as a table to join LATERAL against."""
    return (
        sa.func.unnest(uuid_array(ids, name))
        .table_valued("key_id")
        .render_derived(name=f"k_{name}")
    )


async def customers_by_id(engine: AsyncEngine, ids: list[uuid.UUID]) -> list[Record | None]:
    rows = await fetch_all(engine, sa.select(CUSTOMERS).where(CUSTOMERS.c.id.in_(ids)))
    by_id = {row["id"]: row for row in rows}
    return [by_id.get(key) for key in ids]


async def identities_by_customer(engine: AsyncEngine, ids: list[uuid.UUID]) -> list[list[Record]]:
    rows = await fetch_all(
        engine,
        sa.select(IDENTITIES)
        .where(IDENTITIES.c.customer_id.in_(ids))
        .order_by(IDENTITIES.c.kind, IDENTITIES.c.created_at, IDENTITIES.c.id),
    )
    grouped = group_rows(rows, "customer_id")
    return [grouped.get(key, []) for key in ids]


async def stage_history_by_customer(
    engine: AsyncEngine, ids: list[uuid.UUID]
) -> list[list[Record]]:
    rows = await fetch_all(
        engine,
        sa.select(STAGE_HISTORY)
        .where(STAGE_HISTORY.c.customer_id.in_(ids))
        .order_by(STAGE_HISTORY.c.entered_at, STAGE_HISTORY.c.id),
    )
    grouped = group_rows(rows, "customer_id")
    return [grouped.get(key, []) for key in ids]


async def channel_usage_by_customer(
    engine: AsyncEngine, ids: list[uuid.UUID]
) -> list[list[Record]]:
    c = INTERACTIONS.c
    rows = await fetch_all(
        engine,
        sa.select(
            c.customer_id,
            c.channel_code,
            sa.func.count().label("interaction_count"),
            sa.func.min(c.occurred_at).label("first_seen_at"),
            sa.func.max(c.occurred_at).label("last_seen_at"),
        )
        .where(c.customer_id.in_(ids))
        .group_by(c.customer_id, c.channel_code)
        .order_by(c.customer_id, sa.func.min(c.occurred_at)),
    )
    grouped = group_rows(rows, "customer_id")
    return [grouped.get(key, []) for key in ids]


async def last_interaction_by_customer(
    engine: AsyncEngine, ids: list[uuid.UUID]
) -> list[Record | None]:
    keys = key_table(ids)
    latest = (
        select_interactions()
        .where(INTERACTIONS.c.customer_id == keys.c.key_id)
        .order_by(INTERACTIONS.c.occurred_at.desc(), INTERACTIONS.c.id.desc())
        .limit(1)
        .lateral("i")
    )
    rows = await fetch_all(engine, sa.select(latest).select_from(keys.join(latest, sa.true())))
    by_customer = {row["customer_id"]: row for row in rows}
    return [by_customer.get(key) for key in ids]


async def conversations_by_customer(
    engine: AsyncEngine, ids: list[uuid.UUID]
) -> list[list[Record]]:
    rows = await fetch_all(
        engine,
        sa.select(CONVERSATIONS)
        .where(CONVERSATIONS.c.customer_id.in_(ids))
        .order_by(CONVERSATIONS.c.last_activity_at.desc(), CONVERSATIONS.c.id),
    )
    grouped = group_rows(rows, "customer_id")
    return [grouped.get(key, []) for key in ids]
