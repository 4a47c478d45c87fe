"""Keyset pagination shared by every list of interactions (a customer's, a touchpoint's, all).

A page is described by an ``InteractionPage`` (hashable, so it can be part of a DataLoader key).
Interactions are ordered by (occurred_at, id), newest first by default; a cursor holds the
last row's (occurred_at, id).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from hub.models import INTERACTIONS


@dataclass(frozen=True)
class InteractionFilterSpec:
    """A conjunctive interaction filter: every set field must match."""

    channels: tuple[str, ...] | None = None
    touchpoint_ids: tuple[uuid.UUID, ...] | None = None
    types: tuple[str, ...] | None = None
    directions: tuple[str, ...] | None = None
    occurred_after: datetime | None = None
    occurred_before: datetime | None = None
    conversation_id: uuid.UUID | None = None

    def clauses(self) -> list[sa.ColumnElement[bool]]:
        c = INTERACTIONS.c
        clauses: list[sa.ColumnElement[bool]] = []
        if self.channels is not None:
            clauses.append(c.channel_code.in_(self.channels))
        if self.touchpoint_ids is not None:
            clauses.append(c.touchpoint_id.in_(self.touchpoint_ids))
        if self.types is not None:
            clauses.append(c.type.in_(self.types))
        if self.directions is not None:
            clauses.append(c.direction.in_(self.directions))
        if self.occurred_after is not None:
            clauses.append(c.occurred_at >= self.occurred_after)
        if self.occurred_before is not None:
            clauses.append(c.occurred_at < self.occurred_before)
        if self.conversation_id is not None:
            clauses.append(c.conversation_id == self.conversation_id)
        return clauses


@dataclass(frozen=True)
class InteractionPage:
    """Which slice of an interaction list to fetch."""

    limit: int
    newest_first: bool = True
    after: tuple[datetime, uuid.UUID] | None = None
    filter: InteractionFilterSpec = InteractionFilterSpec()

    def clauses(self) -> list[sa.ColumnElement[bool]]:
        c = INTERACTIONS.c
        clauses = self.filter.clauses()
        if self.after is not None:
            key = sa.tuple_(c.occurred_at, c.id)
            bound = sa.tuple_(
                sa.literal(self.after[0], c.occurred_at.type), sa.literal(self.after[1], c.id.type)
            )
            clauses.append(key < bound if self.newest_first else key > bound)
        return clauses

    def order_by(self) -> list[Any]:
        c = INTERACTIONS.c
        if self.newest_first:
            return [c.occurred_at.desc(), c.id.desc()]
        return [c.occurred_at.asc(), c.id.asc()]
