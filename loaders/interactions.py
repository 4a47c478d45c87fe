"""Batch functions for interactions: by id, pages per owner, counts per owner, per conversation."""

from __future__ import annotations

import uuid
from collections import defaultdict
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.models import CONVERSATIONS, INTERACTIONS
from hub.scope import UNRESTRICTED, Scope
from loaders.customers import key_table
from loaders.pages import InteractionFilterSpec, InteractionPage
from loaders.sql import Record, fetch_all, group_rows

PageKey = tuple[uuid.UUID, InteractionPage]
CountKey = tuple[uuid.UUID, InteractionFilterSpec]


async def interactions_by_id(
    engine: AsyncEngine, ids: list[uuid.UUID], scope: Scope = UNRESTRICTED
) -> list[Record | None]:
    rows = await fetch_all(
        engine,
        sa.select(INTERACTIONS).where(INTERACTIONS.c.id.in_(ids), scope.interaction_clause()),
    )
    by_id = {row["id"]: row for row in rows}
    return [by_id.get(key) for key in ids]


async def _pages(
    engine: AsyncEngine, keys: list[PageKey], owner: sa.Column[Any], scope: Scope
) -> list[list[Record]]:
    """One LATERAL statement per distinct page shape (normally one per batch), ``limit + 1`` rows
    per owner so the caller can tell whether a next page exists."""
    owners_by_page: dict[InteractionPage, list[uuid.UUID]] = defaultdict(list)
    for owner_id, page in keys:
        owners_by_page[page].append(owner_id)
    found: dict[PageKey, list[Record]] = {}
    for page, owner_ids in owners_by_page.items():
        k = key_table(owner_ids)
        lateral = (
            sa.select(INTERACTIONS)
            .where(owner == k.c.key_id, scope.interaction_clause(), *page.clauses())
            .order_by(*page.order_by())
            .limit(page.limit + 1)
            .lateral("i")
        )
        rows = await fetch_all(engine, sa.select(lateral).select_from(k.join(lateral, sa.true())))
        for owner_id, owner_rows in group_rows(rows, owner.name).items():
            found[(owner_id, page)] = owner_rows
    return [found.get(key, []) for key in keys]


async def _counts(
    engine: AsyncEngine, keys: list[CountKey], owner: sa.Column[Any], scope: Scope
) -> list[int]:
    owners_by_filter: dict[InteractionFilterSpec, list[uuid.UUID]] = defaultdict(list)
    for owner_id, spec in keys:
        owners_by_filter[spec].append(owner_id)
    found: dict[CountKey, int] = {}
    for spec, owner_ids in owners_by_filter.items():
        rows = await fetch_all(
            engine,
            sa.select(owner.label("owner"), sa.func.count().label("n"))
            .where(owner.in_(owner_ids), scope.interaction_clause(), *spec.clauses())
            .group_by(owner),
        )
        for row in rows:
            found[(row["owner"], spec)] = row["n"]
    return [found.get(key, 0) for key in keys]


async def interaction_pages_by_customer(
    engine: AsyncEngine, keys: list[PageKey], scope: Scope = UNRESTRICTED
) -> list[list[Record]]:
    return await _pages(engine, keys, INTERACTIONS.c.customer_id, scope)


async def interaction_pages_by_touchpoint(
    engine: AsyncEngine, keys: list[PageKey], scope: Scope = UNRESTRICTED
) -> list[list[Record]]:
    return await _pages(engine, keys, INTERACTIONS.c.touchpoint_id, scope)


async def interaction_counts_by_customer(
    engine: AsyncEngine, keys: list[CountKey], scope: Scope = UNRESTRICTED
) -> list[int]:
    return await _counts(engine, keys, INTERACTIONS.c.customer_id, scope)


async def interaction_counts_by_touchpoint(
    engine: AsyncEngine, keys: list[CountKey], scope: Scope = UNRESTRICTED
) -> list[int]:
    return await _counts(engine, keys, INTERACTIONS.c.touchpoint_id, scope)


async def interactions_by_conversation(
    engine: AsyncEngine, ids: list[uuid.UUID], scope: Scope = UNRESTRICTED
) -> list[list[Record]]:
    rows = await fetch_all(
        engine,
        sa.select(INTERACTIONS)
        .where(INTERACTIONS.c.conversation_id.in_(ids), scope.interaction_clause())
        .order_by(INTERACTIONS.c.occurred_at, INTERACTIONS.c.id),
    )
    grouped = group_rows(rows, "conversation_id")
    return [grouped.get(key, []) for key in ids]


async def conversations_by_id(
    engine: AsyncEngine, ids: list[uuid.UUID], scope: Scope = UNRESTRICTED
) -> list[Record | None]:
    rows = await fetch_all(
        engine,
        sa.select(CONVERSATIONS).where(CONVERSATIONS.c.id.in_(ids), scope.conversation_clause()),
    )
    by_id = {row["id"]: row for row in rows}
    return [by_id.get(key) for key in ids]
