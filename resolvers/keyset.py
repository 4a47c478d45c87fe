"""Keyset (cursor) pagination over any ordered Core select, both directions.

Sort keys, cursors and the keyset predicate come from ``hub.reads.ordering``, which the compiled
read path uses too; this module runs the page and wraps it in a Relay connection.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import sqlalchemy as sa

from hub.context import Info
from hub.core.ids import encode_cursor
from hub.db.rows import Record, fetch_all, fetch_one
from hub.reads.ordering import SortKey, beyond, cursor_values, order_by, ordering_signature
from hub.reads.paging import page_size
from hub.schema.pagination import Connection, Edge, PageInfo

T = TypeVar("T")


async def paginate(
    info: Info,
    base: sa.Select[Any],
    count_base: sa.Select[Any],
    keys: Sequence[SortKey],
    build: Callable[[Record], T],
    *,
    list_name: str,
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
) -> Connection[T]:
    """One page of ``base`` (already filtered) ordered by ``keys``, plus a lazy total count."""
    size, backwards = page_size(info.context.settings, first, last, after, before)
    cursor = before if backwards else after
    statement = base
    if cursor is not None:
        values = cursor_values(list_name, keys, cursor)
        bounds = [
            sa.literal(value, key.expression.type) for key, value in zip(keys, values, strict=True)
        ]
        statement = statement.where(beyond(keys, bounds, backwards))
    statement = statement.add_columns(*(key.expression.label(key.label) for key in keys))
    statement = statement.order_by(*order_by(keys, backwards)).limit(size + 1)
    rows = list(await fetch_all(info.context.engine, statement))
    has_more = len(rows) > size
    rows = rows[:size]
    if backwards:
        rows.reverse()
    signature = ordering_signature(list_name, keys)
    edges = [
        Edge(
            cursor=encode_cursor(signature, [key.encode(row[key.label]) for key in keys]),
            node=build(row),
        )
        for row in rows
    ]
    engine = info.context.engine

    async def count() -> int:
        row = await fetch_one(engine, sa.select(sa.func.count()).select_from(count_base.subquery()))
        assert row is not None
        return int(next(iter(row.values())))

    return Connection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=has_more if not backwards else before is not None,
            has_previous_page=has_more if backwards else after is not None,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        ),
        count=count,
    )
