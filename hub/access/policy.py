"""What a principal may do and see: the one place other features ask.

- ``can_see_pii(principal)``: personal fields unmasked?
- ``can_write(principal)``, ``can_use_analytics(principal)``, ``can_introspect(principal)``.
- ``principal.scope`` (``hub.access.scope.RowScope``): SQL predicates and
  ``allows(channel, touchpoint)`` for the partner scope.
- ``partner_sharing_allowed(connection, customer_ids)``: which customers granted PARTNER_SHARING;
  events of the others are never delivered to a PARTNER.
- ``event_visible(principal, event, sharing)``: the whole rule for one event and one subscriber;
  ``visible_events(connection, principal, events)`` applies it to a batch (one query).
- ``is_erased_identifier(connection, kind, value)``: ingest must not re-link such an identifier.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.access.keys import Principal, Role
from hub.models import CUSTOMERS
from hub.privacy.consent import ConsentChannel, ConsentPurpose, consent_granted
from hub.privacy.erasure import is_erased_identifier

__all__ = [
    "can_introspect",
    "can_see_pii",
    "can_send_tracking",
    "can_use_analytics",
    "can_use_graphql",
    "can_write",
    "event_visible",
    "is_erased_identifier",
    "partner_sharing_allowed",
    "visible_events",
]

WRITE_ROLES = frozenset({Role.ADMIN, Role.FRONTEND})
ANALYTICS_ROLES = frozenset({Role.ADMIN, Role.ANALYST})
INTROSPECTION_ROLES = frozenset({Role.ADMIN, Role.ANALYST})


def can_see_pii(principal: Principal) -> bool:
    return principal.sees_pii


def can_write(principal: Principal) -> bool:
    return principal.role in WRITE_ROLES


def can_use_analytics(principal: Principal) -> bool:
    return principal.role in ANALYTICS_ROLES


def can_introspect(principal: Principal) -> bool:
    return principal.dev or principal.role in INTROSPECTION_ROLES


def can_use_graphql(principal: Principal) -> bool:
    """SOURCE keys only send tracking data (``/v1/*``): no GraphQL, on any transport."""
    return principal.role is not Role.SOURCE


def can_send_tracking(principal: Principal) -> bool:
    """Only SOURCE keys, bound to one touchpoint, send to the tracking API (``/v1/*``)."""
    return principal.source_touchpoint is not None


async def partner_sharing_allowed(
    connection: AsyncConnection, customer_ids: Sequence[uuid.UUID]
) -> set[uuid.UUID]:
    """The customers among ``customer_ids`` with a valid PARTNER_SHARING consent (one query)."""
    if not customer_ids:
        return set()
    rows = await connection.scalars(
        sa.select(CUSTOMERS.c.id).where(
            CUSTOMERS.c.id.in_(list(set(customer_ids))),
            consent_granted(ConsentPurpose.PARTNER_SHARING, ConsentChannel.ANY),
        )
    )
    return set(rows)


def event_visible(
    principal: Principal, event: Mapping[str, Any], sharing: set[uuid.UUID] | None = None
) -> bool:
    """May ``principal`` receive this event (a row of ``events``)?

    For a PARTNER: the event's channel/touchpoint is in scope and its customer is in ``sharing``
    (the result of ``partner_sharing_allowed`` for the batch). Other roles see every event.
    """
    if not principal.scope.restricted:
        return True
    if not principal.scope.allows(event.get("channel_code"), event.get("touchpoint_id")):
        return False
    return sharing is not None and event.get("customer_id") in sharing


async def visible_events(
    connection: AsyncConnection, principal: Principal, events: Sequence[Mapping[str, Any]]
) -> list[Mapping[str, Any]]:
    """The events (rows of ``events``) ``principal`` may receive, in order: the one call a
    subscription needs per delivered batch (one consent query, only for partners)."""
    if not principal.scope.restricted:
        return list(events)
    in_scope = [
        event
        for event in events
        if principal.scope.allows(event.get("channel_code"), event.get("touchpoint_id"))
    ]
    customer_ids = [e["customer_id"] for e in in_scope if e.get("customer_id") is not None]
    sharing = await partner_sharing_allowed(connection, customer_ids)
    return [event for event in in_scope if event_visible(principal, event, sharing)]
