"""Consents: per customer, purpose and channel, with history; and the SQL that honours them.

A consent for a specific channel (MARKETING by EMAIL) wins over the purpose-wide one (channel
ANY). A consent counts only while it is GRANTED and not expired; no row means no consent.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.core.errors import BadUserInput
from hub.db.statements import AlchemySql
from hub.models import CONSENT_HISTORY, CONSENTS, CUSTOMERS
from hub.vocabulary.registry import current


class ConsentPurpose(StrEnum):
    """The built-in purposes (the registry, ``hub.vocabulary``, holds every registered one)."""

    MARKETING = "MARKETING"
    ANALYTICS = "ANALYTICS"
    PERSONALIZATION = "PERSONALIZATION"
    PARTNER_SHARING = "PARTNER_SHARING"


class ConsentChannel(StrEnum):
    ANY = "ANY"  # stored as '' : the consent covers every contact channel
    EMAIL = "EMAIL"
    SMS = "SMS"
    WHATSAPP = "WHATSAPP"
    PHONE = "PHONE"
    POST = "POST"
    PUSH = "PUSH"


class ConsentStatus(StrEnum):
    GRANTED = "GRANTED"
    DENIED = "DENIED"
    REVOKED = "REVOKED"


def stored_channel(channel: ConsentChannel) -> str:
    return "" if channel is ConsentChannel.ANY else channel.value


def consent_granted(
    purpose: str,
    channel: ConsentChannel = ConsentChannel.ANY,
    customer_id: Any = CUSTOMERS.c.id,
    now: Any = None,
) -> sa.ColumnElement[bool]:
    """Predicate: the customer (a column or value) has a valid consent for purpose and channel
    (valid at ``now``, an expression; default the transaction's time)."""
    moment = now if now is not None else sa.func.now()
    c = CONSENTS.c
    channels = sorted({"", stored_channel(channel)})
    most_specific = (
        sa.select(
            sa.and_(
                c.status == ConsentStatus.GRANTED.value,
                sa.or_(c.expires_at.is_(None), c.expires_at > moment),
            )
        )
        .where(c.customer_id == customer_id, c.purpose == str(purpose), c.channel.in_(channels))
        .order_by((c.channel == "").asc())
        .limit(1)
        .scalar_subquery()
    )
    return sa.func.coalesce(most_specific, sa.false())


async def set_consent(
    connection: AsyncConnection,
    *,
    customer_id: uuid.UUID,
    purpose: str,
    channel: ConsentChannel,
    status: ConsentStatus,
    source: str | None,
    expires_at: datetime | None,
    changed_by: str,
) -> Any:
    """Upsert the current consent and append the change to its history (caller's transaction).
    ``purpose`` must be registered (``UNKNOWN_CODE`` otherwise: hub.vocabulary)."""
    (await current(AlchemySql(connection))).consent_purpose(purpose)
    if expires_at is not None and expires_at.tzinfo is None:
        raise BadUserInput("`expiresAt` needs a time zone")
    c = CONSENTS.c
    values = {
        "customer_id": customer_id,
        "purpose": purpose,
        "channel": stored_channel(channel),
        "status": status.value,
        "source": source,
        "expires_at": expires_at,
    }
    granted_at = sa.func.now() if status is ConsentStatus.GRANTED else None
    insert = pg_insert(CONSENTS).values(**values, granted_at=granted_at)
    upsert = insert.on_conflict_do_update(
        constraint="uq_consents_key",
        set_={
            "status": insert.excluded.status,
            "source": insert.excluded.source,
            "expires_at": insert.excluded.expires_at,
            "granted_at": sa.case(
                (insert.excluded.status == ConsentStatus.GRANTED.value, sa.func.now()),
                else_=c.granted_at,
            ),
            "updated_at": sa.func.now(),
        },
    ).returning(CONSENTS)
    row = (await connection.execute(upsert)).mappings().one()
    await connection.execute(CONSENT_HISTORY.insert().values(**values, changed_by=changed_by))
    return row
