"""Conversation lifecycle beyond ingest (which opens and reopens them): resolving."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.core.errors import NotFound
from hub.events.emit import EventKind, NewEvent, emit


async def resolve_conversation(
    connection: AsyncConnection, conversation_id: uuid.UUID
) -> RowMapping:
    """Mark a conversation RESOLVED (idempotent: resolving it again changes nothing).

    A later interaction with the same key reopens it (see ``hub.ingest.record``).
    """
    result = await connection.execute(
        sa.text(
            "UPDATE conversations SET status = 'RESOLVED', resolved_at = coalesce(resolved_at,"
            " now()) WHERE id = :id RETURNING *"
        ),
        {"id": conversation_id},
    )
    row = result.mappings().first()
    if row is None:
        raise NotFound(f"no conversation with id {str(conversation_id)!r}")
    await emit(
        connection,
        NewEvent(
            EventKind.CONVERSATION_UPDATED,
            customer_id=row["customer_id"],
            subject_id=row["id"],
            payload={"key": row["key"], "status": "RESOLVED"},
        ),
    )
    return row
