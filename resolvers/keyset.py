"""Keyset (cursor) pagination over any ordered Core select, both directions.

A cursor holds the sort-key values of its row, so a page is found by index range instead of
OFFSET, and stays correct while rows are inserted before it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, TypeVar

import sqlalchemy as sa

from hub.context import Info
from hub.core.errors import BadUserInput
from hub.core.ids import decode_cursor, encode_cursor
from hub.db.rows import Record, fetch_all, fetch_one
from hub.schema.pagination import Connection, Edge, PageInfo, page_size

T = TypeVar("T")
ValueKind = Literal["timestamp", "text", "uuid"]


@dataclass(frozen=True)
class SortKey:
    """One ORDER BY term: an expression that is never NULL, its direction, its value kind."""

    label: str
    expression: sa.ColumnElement[Any]
    descending: bool
    kind: ValueKind

    def encode(self, value: Any) -> Any:
        if self.kind == "timestamp":
            return value.isoformat()
        return str(value)

    def decode(self, value: Any) -> Any:
        try:
            if self.kind == "timestamp":
                return datetime.fromisoformat(value)
            if self.kind == "uuid":
                return uuid.UUID(value)
        except (TypeError, ValueError):
            raise BadUserInput("that cursor does not belong to this list or ordering") from None
        if not isinstance(value, str):
            raise BadUserInput("that cursor does not belong to this list or ordering")
        return value


def ordering_signature(list_name: str, keys: Sequence[SortKey]) -> str:
    """Names the list and its ordering inside every cursor, so a foreign cursor is refused."""
    terms = ",".join(f"{key.label}{'-' if key.descending else '+'}" for key in keys)
    return f"{list_name}:{terms}"


def _beyond(keys: Sequence[SortKey], values: Sequence[Any], backwards: bool) -> Any:
    """Rows strictly after (or before) the cursor row in the given order.

    With one direction throughout this is a row comparison ``(k1, k2) > (v1, v2)``, which
    PostgreSQL answers with one index range scan. Mixed directions are expanded as
    (k1 > v1) OR (k1 = v1 AND k2 < v2) OR ...
    """
    literals = [
        sa.literal(value, key.expression.type) for key, value in zip(keys, values, strict=True)
    ]
    if len({key.descending for key in keys}) == 1:
        row = sa.tuple_(*(key.expression for key in keys))
        bound = sa.tuple_(*literals)
        return row > bound if keys[0].descending == backwards else row < bound
    alternatives = []
    for index, key in enumerate(keys):
        equal = [keys[i].expression == literals[i] for i in range(index)]
        later = key.descending == backwards  # ascending & forwards: '>'
        step = key.expression > literals[index] if later else key.expression < literals[index]
        alternatives.append(sa.and_(*equal, step))
    return sa.or_(*alternatives)


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
    signature = ordering_signature(list_name, keys)
    statement = base
    if cursor is not None:
        raw = decode_cursor(cursor, signature, len(keys))
        values = [key.decode(value) for key, value in zip(keys, raw, strict=True)]
        statement = statement.where(_beyond(keys, values, backwards))
    order = [
        key.expression.desc() if key.descending != backwards else key.expression.asc()
        for key in keys
    ]
    statement = statement.add_columns(*(key.expression.label(key.label) for key in keys))
    rows = list(await fetch_all(info.context.engine, statement.order_by(*order).limit(size + 1)))
    has_more = len(rows) > size
    rows = rows[:size]
    if backwards:
        rows.reverse()
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
