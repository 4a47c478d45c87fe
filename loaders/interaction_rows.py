"""Interaction rows that carry their touchpoint.

Every statement that reads interactions for the API joins the touchpoint (a small table, one
index probe per row) and returns its columns as ``tp_<column>``. ``Interaction.touchpoint`` then
needs no loader: no extra statement, and none whose batching depends on which part of a query
happened to finish first.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from hub.models import INTERACTIONS, TOUCHPOINTS

PREFIX = "tp_"


def interaction_columns() -> list[sa.ColumnElement[Any]]:
    return [
        *INTERACTIONS.c,
        *(column.label(f"{PREFIX}{column.name}") for column in TOUCHPOINTS.c),
    ]


def select_interactions() -> sa.Select[Any]:
    """``SELECT interactions.*, touchpoints.* AS tp_* FROM interactions JOIN touchpoints``."""
    return sa.select(*interaction_columns()).join_from(
        INTERACTIONS, TOUCHPOINTS, TOUCHPOINTS.c.id == INTERACTIONS.c.touchpoint_id
    )


def touchpoint_of(row: Mapping[Any, Any]) -> dict[str, Any] | None:
    """The joined touchpoint's columns, or None for a row read without the join."""
    if f"{PREFIX}id" not in row:
        return None
    return {column.name: row[f"{PREFIX}{column.name}"] for column in TOUCHPOINTS.c}
