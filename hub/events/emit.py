"""Domain events, written to the outbox (``events`` table) inside the transaction that causes them.

Writers call ``emit``/``emit_many`` on the connection of their open transaction: the event exists
exactly when the change commits, and no NOTIFY is issued on the write path. Delivery (notifier,
broker, subscriptions) reads the table after commit; see ``hub.events.broker``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from hub.models import EVENTS


class EventKind(StrEnum):
    INTERACTION_RECORDED = "INTERACTION_RECORDED"
    JOURNEY_STAGE_CHANGED = "JOURNEY_STAGE_CHANGED"
    CUSTOMER_MERGED = "CUSTOMER_MERGED"
    CUSTOMER_UNMERGED = "CUSTOMER_UNMERGED"
    CUSTOMER_UPDATED = "CUSTOMER_UPDATED"
    CONVERSATION_UPDATED = "CONVERSATION_UPDATED"
    # Written by hub.audiences.membership (one SQL statement, not emit): payload segment, change,
    # reason; on no channel (partners: by customer visibility, migration 0019).
    SEGMENT_MEMBERSHIP_CHANGED = "SEGMENT_MEMBERSHIP_CHANGED"


@dataclass(frozen=True)
class NewEvent:
    """An event to write. ``subject_id`` is the interaction, conversation or merge it is about;
    ``channel_code``/``touchpoint_id`` let partner scopes filter without reading the payload."""

    kind: EventKind
    customer_id: uuid.UUID | None = None
    subject_id: uuid.UUID | None = None
    channel_code: str | None = None
    touchpoint_id: uuid.UUID | None = None
    payload: dict[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "customer_id": self.customer_id,
            "subject_id": self.subject_id,
            "channel_code": self.channel_code,
            "touchpoint_id": self.touchpoint_id,
            "payload": self.payload,
        }


async def emit_many(connection: AsyncConnection, events: Sequence[NewEvent]) -> None:
    """Write events in the caller's transaction (one multi-row INSERT)."""
    if events:
        await connection.execute(EVENTS.insert(), [event.row() for event in events])


async def emit(connection: AsyncConnection, event: NewEvent) -> None:
    await emit_many(connection, [event])
