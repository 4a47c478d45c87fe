"""Interaction lists (a customer's, a touchpoint's, all of them): filter, order, keyset, cursor.

A page is described by an ``InteractionPage`` (hashable, so it can be part of a DataLoader key).
Interactions are ordered by (occurred_at, id), newest first by default; a cursor holds the
last row's (occurred_at, id), tagged with the ordering.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import sqlalchemy as sa

from hub.core.enums import ChannelCode, Direction
from hub.core.errors import BadUserInput
from hub.core.ids import decode_cursor, encode_cursor, uuid_from_global_id
from hub.db.rows import Record
from hub.models import INTERACTIONS


class InteractionFilterInput(Protocol):
    """The attributes of the GraphQL ``InteractionFilter`` read here."""

    @property
    def channels(self) -> Sequence[ChannelCode] | None: ...
    @property
    def touchpoint_ids(self) -> Sequence[str] | None: ...
    @property
    def types(self) -> Sequence[str] | None: ...
    @property
    def directions(self) -> Sequence[Direction] | None: ...
    @property
    def occurred_after(self) -> datetime | None: ...
    @property
    def occurred_before(self) -> datetime | None: ...


def as_utc(moment: datetime | None) -> datetime | None:
    """A moment given without an offset is read as UTC (and can then be compared with one
    given with an offset)."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def _codes(values: Sequence[Any] | None) -> tuple[str, ...] | None:
    """Enum members (their values) or registered codes (already strings), sorted."""
    if values is None:
        return None
    return tuple(sorted(getattr(value, "value", value) for value in values))


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

    @classmethod
    def of(cls, f: InteractionFilterInput | None) -> InteractionFilterSpec:
        """The spec of a GraphQL filter (``BAD_USER_INPUT`` for an empty time range)."""
        if f is None:
            return cls()
        occurred_after = as_utc(f.occurred_after)
        occurred_before = as_utc(f.occurred_before)
        if (
            occurred_after is not None
            and occurred_before is not None
            and occurred_after >= occurred_before
        ):
            raise BadUserInput("`occurredAfter` must be earlier than `occurredBefore`")
        touchpoints = f.touchpoint_ids
        return cls(
            channels=_codes(f.channels),
            touchpoint_ids=tuple(sorted(uuid_from_global_id(t, "Touchpoint") for t in touchpoints))
            if touchpoints is not None
            else None,
            types=_codes(f.types),
            directions=_codes(f.directions),
            occurred_after=occurred_after,
            occurred_before=occurred_before,
        )

    def clauses(self, interactions: sa.FromClause = INTERACTIONS) -> list[sa.ColumnElement[bool]]:
        c = interactions.c
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


def after_row(
    interactions: sa.FromClause,
    newest_first: bool,
    occurred_at: sa.ColumnElement[Any],
    row_id: sa.ColumnElement[Any],
) -> sa.ColumnElement[bool]:
    """Rows after the cursor row (occurred_at, row_id) in the list's order."""
    c = interactions.c
    key = sa.tuple_(c.occurred_at, c.id)
    bound = sa.tuple_(occurred_at, row_id)
    return key < bound if newest_first else key > bound


def interaction_order(
    interactions: sa.FromClause, newest_first: bool
) -> list[sa.ColumnElement[Any]]:
    c = interactions.c
    if newest_first:
        return [c.occurred_at.desc(), c.id.desc()]
    return [c.occurred_at.asc(), c.id.asc()]


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
            at = sa.literal(self.after[0], c.occurred_at.type)
            row_id = sa.literal(self.after[1], c.id.type)
            clauses.append(after_row(INTERACTIONS, self.newest_first, at, row_id))
        return clauses

    def order_by(self) -> list[Any]:
        return interaction_order(INTERACTIONS, self.newest_first)


def interaction_ordering(newest_first: bool) -> str:
    """The ordering tag inside interaction cursors."""
    return "interactions:newest" if newest_first else "interactions:oldest"


def interaction_cursor(row: Record, newest_first: bool) -> str:
    return encode_cursor(
        interaction_ordering(newest_first), [row["occurred_at"].isoformat(), str(row["id"])]
    )


def decode_interaction_cursor(cursor: str, newest_first: bool) -> tuple[datetime, uuid.UUID]:
    occurred_at, row_id = decode_cursor(cursor, interaction_ordering(newest_first), 2)
    try:
        moment = datetime.fromisoformat(occurred_at)
        if moment.tzinfo is None:
            raise ValueError("cursor times carry a time zone")
        return moment, uuid.UUID(row_id)
    except (TypeError, ValueError):
        raise BadUserInput(f"{cursor!r} is not a valid interaction cursor") from None
