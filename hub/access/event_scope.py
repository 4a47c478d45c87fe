"""Who a websocket connection belongs to, and which events it may see.

``hub.app`` authenticates the ``connection_init`` payload and stores ``scope_for_principal`` of
the key's principal on the connection's context; every subscription asks ``EventScope.allows``
before it delivers an event, and subscribers share one execution only when their
``EventScope.share_key`` is equal.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from hub.access.keys import Principal, Role
from hub.events.emit import EventKind
from hub.events.outbox import StoredEvent


@dataclass(frozen=True)
class EventScope:
    """What a principal may receive. ``None`` in a field means "no restriction"."""

    principal: str = "anonymous"
    channels: frozenset[str] | None = None
    touchpoint_ids: frozenset[uuid.UUID] | None = None

    def allows(self, event: StoredEvent) -> bool:
        """The one place partner scope filters events (replay and live alike).

        Like ``hub.access.scope.RowScope``: with any restriction, an event is visible when its
        channel OR its touchpoint is in scope; an event on no channel (a merge) is not.
        """
        if self.channels is None and self.touchpoint_ids is None:
            return True
        if event.kind == EventKind.SEGMENT_MEMBERSHIP_CHANGED:
            # On no channel: its scope is its customer's visibility, which the subscription
            # checks by reading the customer through row security (resolvers/segments.py).
            return event.customer_id is not None
        return event.channel_code in (self.channels or ()) or (
            event.touchpoint_id in (self.touchpoint_ids or ())
        )

    @property
    def share_key(self) -> str:
        """Subscribers with equal keys see the same events, so may share one execution."""
        channels = ",".join(sorted(self.channels)) if self.channels is not None else "*"
        touchpoints = (
            ",".join(sorted(str(t) for t in self.touchpoint_ids))
            if self.touchpoint_ids is not None
            else "*"
        )
        return f"{self.principal}|{channels}|{touchpoints}"


UNRESTRICTED = EventScope()


def scope_for_principal(principal: Principal) -> EventScope:
    """The event scope of an authenticated connection: a partner sees its channels and
    touchpoints only (and, per batch, only customers who granted partner sharing: see
    ``resolvers.subscriptions``); every other role sees every event. The access class (role,
    personal data or masked) is part of the share key, so masked and unmasked subscribers never
    share an execution."""
    access = f"{principal.role.value}:{'pii' if principal.sees_pii else 'masked'}"
    if principal.role is Role.SOURCE:  # sends, never receives: an empty scope
        return EventScope(principal=access, channels=frozenset(), touchpoint_ids=frozenset())
    if principal.role is not Role.PARTNER:
        return EventScope(principal=access)
    return EventScope(
        principal=access,
        channels=frozenset(principal.channels),
        touchpoint_ids=frozenset(principal.touchpoints),
    )
