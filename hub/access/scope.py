"""What slice of the interaction data a principal may see, as SQL predicates and a Python test.

A partner key is scoped to channels and/or touchpoints: it sees an interaction when the
interaction's channel is one of its channels *or* its touchpoint is one of its touchpoints; a
conversation or a customer when at least one of their interactions is visible. Every other role
is unrestricted. Out-of-scope rows are filtered inside the SQL, so they look exactly like rows
that do not exist (NOT_FOUND, empty lists), never like a refusal.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from hub.models import CONVERSATIONS, CUSTOMERS, INTERACTIONS, STAGE_HISTORY


@dataclass(frozen=True)
class RowScope:
    restricted: bool = False
    channels: frozenset[str] = frozenset()
    touchpoints: frozenset[uuid.UUID] = frozenset()

    def allows(self, channel_code: str | None, touchpoint_id: uuid.UUID | None) -> bool:
        """In-memory check (events, subscriptions): is this channel or touchpoint in scope?"""
        if not self.restricted:
            return True
        return channel_code in self.channels or touchpoint_id in self.touchpoints

    def interaction_clause(self, interactions: Any = INTERACTIONS) -> sa.ColumnElement[bool]:
        """Predicate on an ``interactions`` table (or alias): the row is visible."""
        if not self.restricted:
            return sa.true()
        alternatives: list[sa.ColumnElement[bool]] = []
        if self.channels:
            alternatives.append(interactions.c.channel_code.in_(sorted(self.channels)))
        if self.touchpoints:
            alternatives.append(interactions.c.touchpoint_id.in_(sorted(self.touchpoints)))
        return sa.or_(*alternatives) if alternatives else sa.false()

    def conversation_clause(self, conversations: Any = CONVERSATIONS) -> sa.ColumnElement[bool]:
        if not self.restricted:
            return sa.true()
        seen = INTERACTIONS.alias("scope_i")
        return sa.exists().where(
            seen.c.conversation_id == conversations.c.id, self.interaction_clause(seen)
        )

    def customer_clause(self, customers: Any = CUSTOMERS) -> sa.ColumnElement[bool]:
        if not self.restricted:
            return sa.true()
        seen = INTERACTIONS.alias("scope_i")
        return sa.exists().where(
            seen.c.customer_id == customers.c.id, self.interaction_clause(seen)
        )

    def stage_change_clause(self, history: Any = STAGE_HISTORY) -> sa.ColumnElement[bool]:
        """A stage change caused by an out-of-scope interaction would reveal it: hide it."""
        if not self.restricted:
            return sa.true()
        seen = INTERACTIONS.alias("scope_i")
        caused_in_scope = sa.exists().where(
            seen.c.id == history.c.interaction_id, self.interaction_clause(seen)
        )
        return sa.or_(history.c.interaction_id.is_(None), caused_in_scope)


UNRESTRICTED = RowScope()
