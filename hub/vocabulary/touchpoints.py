"""Creating and changing touchpoints, by an ADMIN: so a touchpoint kind defined at run time
(``defineTouchpointKind``) can be used at all.

A touchpoint's kind must be registered (``UNKNOWN_CODE`` otherwise, checked against the
vocabulary as the database has it in the same transaction). Its channel is fixed once created:
every interaction recorded on it carries that channel, and partner keys are scoped by channel or
touchpoint (``hub.access.row_security``), so moving it would change what existing keys see of
its past. Touchpoints are catalogue data (no customer data): every role reads them.
"""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.core.errors import BadUserInput, NotFound
from hub.core.ids import uuid7
from hub.db.rows import Record
from hub.db.statements import AlchemySql
from hub.models import TOUCHPOINTS
from hub.vocabulary.registry import current

MAX_NAME = 200
MAX_ADDRESS = 2000
MAX_BUSINESS_LINE = 200

# The fields ``update_touchpoint`` may change (the channel is not one of them).
CHANGEABLE = ("kind", "name", "address", "business_line", "active")


def _text(name: str, value: str | None, limit: int, *, required: bool = False) -> str | None:
    if value is None:
        if required:
            raise BadUserInput(f"`{name}` is required")
        return None
    if not value.strip():
        if required:
            raise BadUserInput(f"`{name}` must not be empty")
        return None  # an empty address or business line: none
    if len(value) > limit:
        raise BadUserInput(f"`{name}` is at most {limit} characters")
    return value.strip()


async def _check_kind(connection: AsyncConnection, kind: str) -> None:
    vocabulary = await current(AlchemySql(connection))
    vocabulary.touchpoint_kind(kind)  # UNKNOWN_CODE when not registered


async def create_touchpoint(
    connection: AsyncConnection,
    *,
    channel: str,
    kind: str,
    name: str,
    address: str | None = None,
    business_line: str | None = None,
    active: bool = True,
) -> Record:
    """Insert a touchpoint (in the caller's transaction); its row."""
    await _check_kind(connection, kind)
    values = {
        "id": uuid7(),
        "channel_code": channel,
        "kind": kind,
        "name": _text("name", name, MAX_NAME, required=True),
        "address": _text("address", address, MAX_ADDRESS),
        "business_line": _text("businessLine", business_line, MAX_BUSINESS_LINE),
        "active": active,
    }
    statement = TOUCHPOINTS.insert().values(**values).returning(TOUCHPOINTS)
    row: Record = (await connection.execute(statement)).mappings().one()
    return row


async def update_touchpoint(
    connection: AsyncConnection, touchpoint_id: uuid.UUID, changes: dict[str, Any]
) -> Record:
    """Change the given fields of a touchpoint (``CHANGEABLE``; None leaves a field as it is,
    an empty address or business line clears it); its row. ``NOT_FOUND`` for no such one."""
    unknown = set(changes) - set(CHANGEABLE)
    assert not unknown, unknown
    values: dict[str, Any] = {}
    if changes.get("kind") is not None:
        await _check_kind(connection, changes["kind"])
        values["kind"] = changes["kind"]
    if changes.get("name") is not None:
        values["name"] = _text("name", changes["name"], MAX_NAME, required=True)
    if changes.get("address") is not None:
        values["address"] = _text("address", changes["address"], MAX_ADDRESS)
    if changes.get("business_line") is not None:
        values["business_line"] = _text("businessLine", changes["business_line"], MAX_BUSINESS_LINE)
    if changes.get("active") is not None:
        values["active"] = changes["active"]
    t = TOUCHPOINTS.c
    statement = (
        TOUCHPOINTS.update().where(t.id == touchpoint_id).values(**values).returning(TOUCHPOINTS)
        if values
        else sa.select(TOUCHPOINTS).where(t.id == touchpoint_id)
    )
    row = (await connection.execute(statement)).mappings().one_or_none()
    if row is None:
        raise NotFound(f"no touchpoint with id {touchpoint_id}")
    return row
