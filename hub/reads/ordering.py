"""Sort keys, the ordering signature inside cursors, and the keyset predicate.

A cursor holds the sort-key values of its row, so a page is found by index range instead of
OFFSET, and stays correct while rows are inserted before it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

import sqlalchemy as sa

from hub.core.errors import BadUserInput
from hub.core.ids import decode_cursor
from hub.models import CUSTOMERS

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


def cursor_values(list_name: str, keys: Sequence[SortKey], cursor: str) -> list[Any]:
    """The sort-key values a cursor holds (``BAD_USER_INPUT`` for a foreign or broken one)."""
    raw = decode_cursor(cursor, ordering_signature(list_name, keys), len(keys))
    return [key.decode(value) for key, value in zip(keys, raw, strict=True)]


def beyond(
    keys: Sequence[SortKey], bounds: Sequence[sa.ColumnElement[Any]], backwards: bool
) -> sa.ColumnElement[bool]:
    """Rows strictly after (or before) the row whose sort-key values are ``bounds``.

    With one direction throughout this is a row comparison ``(k1, k2) > (v1, v2)``, which
    PostgreSQL answers with one index range scan. Mixed directions are expanded as
    (k1 > v1) OR (k1 = v1 AND k2 < v2) OR ...
    """
    if len({key.descending for key in keys}) == 1:
        row = sa.tuple_(*(key.expression for key in keys))
        bound = sa.tuple_(*bounds)
        return row > bound if keys[0].descending == backwards else row < bound
    alternatives = []
    for index, key in enumerate(keys):
        equal = [keys[i].expression == bounds[i] for i in range(index)]
        later = key.descending == backwards  # ascending & forwards: '>'
        step = key.expression > bounds[index] if later else key.expression < bounds[index]
        alternatives.append(sa.and_(*equal, step))
    return sa.or_(*alternatives)


def order_by(keys: Sequence[SortKey], backwards: bool = False) -> list[sa.ColumnElement[Any]]:
    """The ORDER BY terms of a page (reversed when paging backwards)."""
    return [
        key.expression.desc() if key.descending != backwards else key.expression.asc()
        for key in keys
    ]


# ---- the customers list ----


class CustomerOrderBy(StrEnum):
    """Orders of the customers list (the GraphQL enum of the same name); the id breaks ties."""

    CREATED_AT_ASC = "CREATED_AT_ASC"
    CREATED_AT_DESC = "CREATED_AT_DESC"
    LAST_SEEN_AT_ASC = "LAST_SEEN_AT_ASC"
    LAST_SEEN_AT_DESC = "LAST_SEEN_AT_DESC"
    DISPLAY_NAME_ASC = "DISPLAY_NAME_ASC"
    DISPLAY_NAME_DESC = "DISPLAY_NAME_DESC"


CUSTOMER_LIST = "customers"

# Literal SQL, not bind parameters: the expressions must match the indexes of migration 0007
# exactly, also in the generic plans of prepared statements.
_EPOCH_FLOOR: sa.ColumnElement[Any] = sa.literal_column("'-infinity'::timestamptz")
_EMPTY: sa.ColumnElement[Any] = sa.literal_column("''")
_CUSTOMER_TERMS: dict[str, tuple[str, Callable[[Any], sa.ColumnElement[Any]], ValueKind]] = {
    "CREATED_AT": ("k_created", lambda c: c.created_at, "timestamp"),
    "LAST_SEEN_AT": (
        "k_seen",
        lambda c: sa.func.coalesce(c.last_seen_at, _EPOCH_FLOOR),
        "timestamp",
    ),
    "DISPLAY_NAME": ("k_name", lambda c: sa.func.coalesce(c.display_name, _EMPTY), "text"),
}


def customer_sort_keys(
    orders: Sequence[CustomerOrderBy] | None, customers: sa.FromClause = CUSTOMERS
) -> list[SortKey]:
    """The sort keys of the customers list over ``customers`` (the table or an alias of it)."""
    keys: list[SortKey] = []
    for order in orders or [CustomerOrderBy.CREATED_AT_ASC]:
        term, direction = order.value.rsplit("_", 1)
        label, expression, kind = _CUSTOMER_TERMS[term]
        if any(key.label == label for key in keys):
            raise BadUserInput(f"{order.name} repeats an ordering already given")
        keys.append(SortKey(label, expression(customers.c), direction == "DESC", kind))
    # The id breaks ties, so every row has exactly one place in the order.
    keys.append(SortKey("k_id", customers.c.id, keys[-1].descending, "uuid"))
    return keys
