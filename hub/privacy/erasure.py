"""Data-subject rights: export everything held on a customer, and erase their personal data.

Erasure keeps the anonymous facts (interactions' time, channel, touchpoint, type, sentiment,
outcome; stage history) so aggregates stay right, and removes identities, traits, the display
name, summaries, personal attributes, consents and event payloads. The hashes of the erased
identifiers are kept so that ingest can recognise the person's old identifiers and not silently
build a new profile from them (``is_erased_identifier``).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.core.errors import NotFound
from hub.db.statements import AlchemySql
from hub.models import (
    CONSENT_HISTORY,
    CONSENTS,
    CONVERSATIONS,
    CUSTOMERS,
    ERASURES,
    EVENTS,
    IDENTITIES,
    INTERACTIONS,
    STAGE_HISTORY,
)
from hub.vocabulary.registry import current


def identity_hash(kind: str, normalized_value: str) -> str:
    """SHA-256 of ``KIND:value`` (the value as normalised by ``hub.identity.identifiers``)."""
    return hashlib.sha256(f"{kind}:{normalized_value}".encode()).hexdigest()


async def is_erased_identifier(connection: AsyncConnection, kind: str, value: str) -> bool:
    """True when this (kind, normalised value) belonged to a customer whose data was erased.

    Ingest calls it before linking an identifier it does not know: such an identifier must not be
    stored or used to link (the person asked to be forgotten).
    """
    wanted = sa.bindparam("hashes", [identity_hash(kind, value)], type_=ARRAY(sa.Text))
    found = await connection.scalar(
        sa.select(ERASURES.c.id).where(ERASURES.c.identity_hashes.contains(wanted)).limit(1)
    )
    return found is not None


async def merge_cluster(connection: AsyncConnection, customer_id: uuid.UUID) -> list[uuid.UUID]:
    """The customer and every customer merged into it, directly or through others."""
    tree = (
        sa.select(CUSTOMERS.c.id)
        .where(CUSTOMERS.c.id == customer_id)
        .cte("cluster", recursive=True)
    )
    tree = tree.union(sa.select(CUSTOMERS.c.id).where(CUSTOMERS.c.merged_into_id == tree.c.id))
    return list(await connection.scalars(sa.select(tree.c.id)))


def _json(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return {key: _json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json(item) for item in value]
    return value


async def _rows(connection: AsyncConnection, statement: Any) -> list[dict[str, Any]]:
    result = await connection.execute(statement)
    return [_json(dict(row)) for row in result.mappings().all()]


async def export_customer(connection: AsyncConnection, customer_id: uuid.UUID) -> dict[str, Any]:
    """Everything the hub holds on a customer (and the customers merged into it), as JSON."""
    ids = await merge_cluster(connection, customer_id)
    if not ids:
        raise NotFound(f"no customer with id {customer_id}")
    ids_param = sa.bindparam("ids", ids, type_=ARRAY(UUID(as_uuid=True)))

    def of(table: sa.Table, *order: Any) -> Any:
        return (
            sa.select(table).where(table.c.customer_id == sa.func.any(ids_param)).order_by(*order)
        )

    customers = await _rows(
        connection,
        sa.select(CUSTOMERS)
        .where(CUSTOMERS.c.id == sa.func.any(ids_param))
        .order_by(CUSTOMERS.c.created_at),
    )
    return {
        "customerId": str(customer_id),
        "exportedAt": _json(await connection.scalar(sa.select(sa.func.now()))),
        "customers": customers,
        "identities": await _rows(connection, of(IDENTITIES, IDENTITIES.c.id)),
        "consents": await _rows(connection, of(CONSENTS, CONSENTS.c.id)),
        "consentHistory": await _rows(connection, of(CONSENT_HISTORY, CONSENT_HISTORY.c.id)),
        "conversations": await _rows(connection, of(CONVERSATIONS, CONVERSATIONS.c.started_at)),
        "interactions": await _rows(
            connection, of(INTERACTIONS, INTERACTIONS.c.occurred_at, INTERACTIONS.c.id)
        ),
        "stageHistory": await _rows(connection, of(STAGE_HISTORY, STAGE_HISTORY.c.id)),
        "erasures": await _rows(connection, of(ERASURES, ERASURES.c.id)),
    }


async def erase_customer(
    connection: AsyncConnection,
    customer_id: uuid.UUID,
    *,
    erased_by: str,
    personal_attributes: Sequence[str],
) -> dict[str, Any]:
    """Erase the personal data of a customer (caller's transaction); returns the erasure row."""
    ids = await merge_cluster(connection, customer_id)
    if not ids:
        raise NotFound(f"no customer with id {customer_id}")
    # Locked first: a drain round of the audiences queue (FOR KEY SHARE) evaluating one of them
    # commits before anything is erased (its membership events are then emptied with the
    # others), or skips them.
    await connection.execute(
        sa.select(CUSTOMERS.c.id)
        .where(CUSTOMERS.c.id.in_(ids))
        .order_by(CUSTOMERS.c.id)
        .with_for_update()
    )
    identities = (
        await connection.execute(
            sa.delete(IDENTITIES)
            .where(IDENTITIES.c.customer_id.in_(ids))
            .returning(IDENTITIES.c.kind, IDENTITIES.c.value)
        )
    ).all()
    hashes = sorted({identity_hash(kind, value) for kind, value in identities})
    await connection.execute(
        sa.update(CUSTOMERS)
        .where(CUSTOMERS.c.id.in_(ids))
        .values(
            display_name=None,
            traits={},
            trait_updated_at={},
            erased_at=sa.func.now(),
            updated_at=sa.func.now(),
        )
    )
    # HUB_PERSONAL_ATTRIBUTES and every registered interaction type's personal attributes.
    vocabulary = await current(AlchemySql(connection))
    removed = sorted({*personal_attributes, *vocabulary.personal_attributes})
    personal = sa.bindparam("personal", removed, type_=ARRAY(sa.Text))
    await connection.execute(
        sa.update(INTERACTIONS)
        .where(INTERACTIONS.c.customer_id.in_(ids))
        .values(summary=None, attributes=INTERACTIONS.c.attributes.op("-")(personal))
    )
    await connection.execute(
        sa.delete(CONSENT_HISTORY).where(CONSENT_HISTORY.c.customer_id.in_(ids))
    )
    await connection.execute(sa.delete(CONSENTS).where(CONSENTS.c.customer_id.in_(ids)))
    await connection.execute(
        sa.update(EVENTS).where(EVENTS.c.customer_id.in_(ids)).values(payload={})
    )
    row = (
        (
            await connection.execute(
                ERASURES.insert()
                .values(customer_id=customer_id, identity_hashes=hashes, erased_by=erased_by)
                .returning(ERASURES)
            )
        )
        .mappings()
        .one()
    )
    return {**_json(dict(row)), "identitiesRemoved": len(identities)}
