"""Who a websocket connection belongs to, and which events it may see.

INTEGRATION POINT for the access issue (API keys, roles, partner scopes): ``scope_from_connection``
turns the ``connection_init`` payload into an ``EventScope``; every subscription asks
``EventScope.allows`` before it delivers an event, and subscribers share one execution only when
their ``EventScope.share_key`` is equal. Until access control lands every connection is the
anonymous, unrestricted scope.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from hub.outbox import StoredEvent

CONTEXT_KEY = "event_scope"


@dataclass(frozen=True)
class EventScope:
    """What a principal may receive. ``None`` in a field means "no restriction"."""

    principal: str = "anonymous"
    channels: frozenset[str] | None = None
    touchpoint_ids: frozenset[uuid.UUID] | None = None

    def allows(self, event: StoredEvent) -> bool:
        """The one place partner scope filters events (replay and live alike)."""
        if self.channels is not None and event.channel_code not in self.channels:
            return False
        return self.touchpoint_ids is None or event.touchpoint_id in self.touchpoint_ids

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


def scope_from_connection(params: Mapping[str, object]) -> EventScope:
    """The scope of a connection from its ``connection_init`` payload.

    The access issue replaces this body: authenticate ``params["authorization"]`` (an API key),
    raise ``strawberry.exceptions.ConnectionRejectionError`` when it is wrong (the socket closes
    with 4403) and return the principal's partner scope.
    """
    return UNRESTRICTED
