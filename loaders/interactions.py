"""Batch functions for interactions: by id, pages per owner, counts per owner, per conversation."""

from __future__ import annotations

import uuid
from collections import defaultdict
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.db.rows import Record, fetch_all, group_rows
from hub.loaders.customers import key_table
from hub.loaders.interaction_rows import select_interactions
from hub.models import CONVERSATIONS, INTERACTIONS
from hub.reads.interactions import InteractionFilterSpec, InteractionPage

PageKey = tuple[uuid.UUID, InteractionPage]
CountKey = tuple[uuid.UUID, InteractionFilterSpec]


async def interactions_by_id(engine: AsyncEngine, ids: list[uuid.UUID]) -> list[Record | None]:
    rows = await fetch_all(engine, select_interactions().where(INTERACTIONS.c.id.in_(ids)))
    by_id = {row["id"]: row for row in rows}
    return [by_id.get(key) for key in ids]


async def _pages(
    engine: AsyncEngine, keys: list[PageKey], owner: sa.Column[Any]
) -> list[list[Record]]:
    """Pages of interactions for many owners in ONE statement: per distinct page shape (normally
    one per batch) a LATERAL join over the owners, ``limit + 1`` rows each so the caller can
    tell whether a next page exists; several shapes are glued with UNION ALL."""
    owners_by_page: dict[InteractionPage, list[uuid.UUID]] = defaultdict(list)
    for owner_id, page in dict.fromkeys(keys):
        owners_by_page[page].append(owner_id)
    shapes = list(owners_by_page.items())
    parts = []
    for index, (page, owner_ids) in enumerate(shapes):
        k = key_table(owner_ids, name=f"owners_{index}")
        lateral = (
            select_interactions()
            .where(owner == k.c.key_id, *page.clauses())
            .order_by(*page.order_by())
            .limit(page.limit + 1)
            .lateral(f"i{index}")
        )
        parts.append(
            sa.select(sa.literal_column(str(index)).label("page_shape"), lateral).select_from(
                k.join(lateral, sa.true())
            )
        )
    statement = parts[0] if len(parts) == 1 else sa.union_all(*parts)
    found: dict[PageKey, list[Record]] = defaultdict(list)
    for row in await fetch_all(engine, statement):
        found[(row[owner.name], shapes[row["page_shape"]][0])].append(row)
    # Neither a join nor UNION ALL promises an order: put each page back in its own.
    for (_, page), rows in found.items():
        rows.sort(key=lambda row: (row["occurred_at"], row["id"]), reverse=page.newest_first)
    return [found.get(key, []) for key in keys]


async def _counts(engine: AsyncEngine, keys: list[CountKey], owner: sa.Column[Any]) -> list[int]:
    """Counts for many owners and filters in ONE statement: a ``count(*) FILTER (...)`` column
    per distinct filter, grouped by owner."""
    specs = list(dict.fromkeys(spec for _, spec in keys))
    owner_ids = list(dict.fromkeys(owner_id for owner_id, _ in keys))
    columns = [
        sa.func.count().filter(sa.and_(sa.true(), *spec.clauses())).label(f"n{index}")
        for index, spec in enumerate(specs)
    ]
    rows = await fetch_all(
        engine,
        sa.select(owner.label("owner"), *columns).where(owner.in_(owner_ids)).group_by(owner),
    )
    found: dict[CountKey, int] = {}
    for row in rows:
        for index, spec in enumerate(specs):
            found[(row["owner"], spec)] = row[f"n{index}"]
    return [found.get(key, 0) for key in keys]


async def interaction_pages_by_customer(
    engine: AsyncEngine, keys: list[PageKey]
) -> list[list[Record]]:
    return await _pages(engine, keys, INTERACTIONS.c.customer_id)


async def interaction_pages_by_touchpoint(
    engine: AsyncEngine, keys: list[PageKey]
) -> list[list[Record]]:
    return await _pages(engine, keys, INTERACTIONS.c.touchpoint_id)


async def interaction_counts_by_customer(engine: AsyncEngine, keys: list[CountKey]) -> list[int]:
    return await _counts(engine, keys, INTERACTIONS.c.customer_id)


async def interaction_counts_by_touchpoint(engine: AsyncEngine, keys: list[CountKey]) -> list[int]:
    return await _counts(engine, keys, INTERACTIONS.c.touchpoint_id)


async def interactions_by_conversation(
    engine: AsyncEngine, ids: list[uuid.UUID]
) -> list[list[Record]]:
    rows = await fetch_all(
        engine,
        select_interactions()
        .where(INTERACTIONS.c.conversation_id.in_(ids))
        .order_by(INTERACTIONS.c.occurred_at, INTERACTIONS.c.id),
    )
    grouped = group_rows(rows, "conversation_id")
    return [grouped.get(key, []) for key in ids]


async def conversations_by_id(engine: AsyncEngine, ids: list[uuid.UUID]) -> list[Record | None]:
    rows = await fetch_all(engine, sa.select(CONVERSATIONS).where(CONVERSATIONS.c.id.in_(ids)))
    by_id = {row["id"]: row for row in rows}
    return [by_id.get(key) for key in ids]
