"""Editing the journey engine's stage rules (table ``stage_rules``)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy import RowMapping
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.core.errors import NotFound
from hub.db.statements import AlchemySql
from hub.models import STAGE_RULES, VOCABULARY_VERSION
from hub.vocabulary.registry import current

R = STAGE_RULES.c


async def set_rule(
    connection: AsyncConnection, interaction_type: str, channel_code: str | None, stage: str
) -> RowMapping:
    """Create or replace the rule for (type, channel); channel None is the general rule. The
    type must be registered (``UNKNOWN_CODE`` otherwise)."""
    (await current(AlchemySql(connection))).interaction_type(interaction_type)
    statement = insert(STAGE_RULES).values(
        interaction_type=interaction_type, channel_code=channel_code, stage=stage
    )
    upsert = statement.on_conflict_do_update(
        constraint="uq_stage_rules_type_channel",
        set_={"stage": statement.excluded.stage, "updated_at": sa.func.now()},
    ).returning(STAGE_RULES)
    result = await connection.execute(upsert)
    row: RowMapping = result.mappings().one()
    await _changed(connection)
    return row


async def _changed(connection: AsyncConnection) -> None:
    """An interaction type's stage is part of the vocabulary (``interactionTypes``): bump its
    version in this transaction (hub.vocabulary.registry)."""
    await connection.execute(
        sa.update(VOCABULARY_VERSION).values(version=VOCABULARY_VERSION.c.version + 1)
    )


async def delete_rule(
    connection: AsyncConnection, interaction_type: str, channel_code: str | None
) -> RowMapping:
    channel_match = (
        R.channel_code.is_(None) if channel_code is None else R.channel_code == channel_code
    )
    result = await connection.execute(
        sa.delete(STAGE_RULES)
        .where(R.interaction_type == interaction_type, channel_match)
        .returning(STAGE_RULES)
    )
    row = result.mappings().first()
    if row is None:
        where = f" on {channel_code}" if channel_code else " (all channels)"
        raise NotFound(f"no stage rule for {interaction_type}{where}")
    await _changed(connection)
    return row
