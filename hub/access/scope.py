"""What slice of the interaction data a principal may see.

A partner key is scoped to channels and/or touchpoints: it sees an interaction when the
interaction's channel is one of its channels *or* its touchpoint is one of its touchpoints; a
conversation or a customer when at least one of their interactions is visible (and, for rows
read from the database, the customer granted PARTNER_SHARING). Every other role is unrestricted.

Rows read from the database are filtered by PostgreSQL itself (row-level security, migration
0013; ``hub.access.row_security`` runs a partner's queries under it with this scope), so they
look exactly like rows that do not exist (NOT_FOUND, empty lists), never like a refusal, and no
query needs a predicate of its own. ``allows`` is the same rule in memory, for events the broker
delivers without a query.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass


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


UNRESTRICTED = RowScope()
# A restricted scope with no channel and no touchpoint: sees no row at all (SOURCE keys).
NOTHING = RowScope(restricted=True)
