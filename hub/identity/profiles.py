"""Profile mutations: traits with survivorship, identities added and removed, manual stages.

Each runs in the caller's transaction, locks the customer row, and writes a CUSTOMER_UPDATED
(or JOURNEY_STAGE_CHANGED) event in the same transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.core.enums import StageCode
from hub.core.errors import BadUserInput, Conflict, NotFound
from hub.core.settings import Settings
from hub.db.locks import lock_key, take_locks
from hub.db.statements import AlchemySql
from hub.events.emit import EventKind, NewEvent, emit
from hub.identity.identifiers import normalize_identifier, normalize_identities
from hub.identity.traits import merge_traits, stamp
from hub.journeys.rules import classify_transition
from hub.vocabulary.registry import current

MAX_TRAITS_BYTES = 32 * 1024


async def lock_customer(connection: AsyncConnection, customer_id: uuid.UUID) -> RowMapping:
    """The live customer row, locked; a merged-away id is a CONFLICT naming the survivor."""
    result = await connection.execute(
        sa.text("SELECT * FROM customers WHERE id = :id FOR UPDATE"), {"id": customer_id}
    )
    row = result.mappings().first()
    if row is None:
        raise NotFound(f"no customer with id {str(customer_id)!r}")
    if row["merged_into_id"] is not None:
        raise Conflict(
            f"customer {customer_id} was merged into {row['merged_into_id']}: change that one",
            mergedIntoId=str(row["merged_into_id"]),
        )
    return row


async def _updated(
    connection: AsyncConnection, customer_id: uuid.UUID, what: str, payload: dict[str, Any]
) -> None:
    await emit(
        connection,
        NewEvent(
            EventKind.CUSTOMER_UPDATED, customer_id=customer_id, payload={"what": what, **payload}
        ),
    )


def _check_traits(traits: Any) -> Mapping[str, Any]:
    if not isinstance(traits, dict):
        raise BadUserInput("`traits` must be a JSON object")
    if any(not key.strip() for key in traits):
        raise BadUserInput("trait names must not be empty")
    if len(orjson.dumps(traits)) > MAX_TRAITS_BYTES:
        raise BadUserInput(f"`traits` is at most {MAX_TRAITS_BYTES} bytes as JSON")
    return traits


async def update_traits(
    connection: AsyncConnection,
    customer_id: uuid.UUID,
    traits: Any,
    settings: Settings,
    observed_at: datetime | None = None,
    display_name: str | None = None,
) -> RowMapping:
    """Apply ``traits`` observed at ``observed_at`` (default now) with per-trait survivorship."""
    incoming = _check_traits(traits)
    moment = observed_at or datetime.now(UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if moment > datetime.now(UTC) + timedelta(seconds=settings.max_future_seconds):
        raise BadUserInput("`observedAt` is in the future")
    row = await lock_customer(connection, customer_id)
    merged, stamps = merge_traits(
        row["traits"],
        row["trait_updated_at"],
        incoming,
        {key: stamp(moment) for key in incoming},
        settings.trait_survivorship,
    )
    result = await connection.execute(
        sa.text(
            "UPDATE customers SET traits = CAST(:traits AS jsonb), trait_updated_at ="
            " CAST(:stamps AS jsonb), display_name = coalesce(:name, display_name),"
            " updated_at = now() WHERE id = :id RETURNING *"
        ),
        {
            "id": customer_id,
            "traits": orjson.dumps(merged).decode(),
            "stamps": orjson.dumps(stamps).decode(),
            "name": display_name,
        },
    )
    await _updated(connection, customer_id, "traits", {"keys": sorted(incoming)})
    return result.mappings().one()


async def create_customer(
    connection: AsyncConnection,
    identities: Sequence[tuple[str, str]],
    settings: Settings,
    traits: Any = None,
    display_name: str | None = None,
) -> tuple[RowMapping, bool]:
    """The customer holding ``identities`` (created if none does), then traits applied.

    Identities held by several customers are a CONFLICT: merging is explicit (mergeCustomers).
    """
    vocabulary = await current(AlchemySql(connection))
    keys = normalize_identities(identities, settings, vocabulary.normalisers)
    await take_locks(connection, {lock_key("identity", *key) for key in keys})
    result = await connection.execute(
        sa.text(
            "SELECT DISTINCT customer_id FROM identities i JOIN unnest(CAST(:kinds AS text[]),"
            " CAST(:vals AS text[])) AS k(kind, value) ON i.kind = k.kind AND i.value = k.value"
        ),
        {"kinds": [k for k, _ in keys], "vals": [v for _, v in keys]},
    )
    holders = [row.customer_id for row in result]
    if len(holders) > 1:
        raise Conflict(
            "these identities belong to different customers; merge them with mergeCustomers",
            customerIds=[str(h) for h in holders],
        )
    created = not holders
    customer_id = holders[0] if holders else uuid.uuid4()
    if created:
        await connection.execute(
            sa.text("INSERT INTO customers (id, display_name) VALUES (:id, :name)"),
            {"id": customer_id, "name": display_name},
        )
    for kind, value in keys:
        await _link(connection, customer_id, kind, value, settings)
    row = await update_traits(
        connection, customer_id, traits or {}, settings, display_name=display_name
    )
    return row, created


async def _link(
    connection: AsyncConnection, customer_id: uuid.UUID, kind: str, value: str, settings: Settings
) -> None:
    count = await connection.scalar(
        sa.text("SELECT count(*) FROM identities WHERE customer_id = :id AND kind = :kind"),
        {"id": customer_id, "kind": kind},
    )
    exists = await connection.scalar(
        sa.text("SELECT customer_id FROM identities WHERE kind = :kind AND value = :value"),
        {"kind": kind, "value": value},
    )
    if exists is not None:
        if exists != customer_id:
            raise Conflict(
                f"{kind} {value!r} belongs to another customer; merge them with mergeCustomers",
                customerId=str(exists),
            )
        return
    if (count or 0) >= settings.max_identities_per_kind:
        raise Conflict(
            f"the customer already holds {settings.max_identities_per_kind} identifiers of kind "
            f"{kind}"
        )
    await connection.execute(
        sa.text("INSERT INTO identities (customer_id, kind, value) VALUES (:id, :kind, :value)"),
        {"id": customer_id, "kind": kind, "value": value},
    )


async def add_identity(
    connection: AsyncConnection,
    customer_id: uuid.UUID,
    kind: str,
    value: str,
    settings: Settings,
) -> RowMapping:
    vocabulary = await current(AlchemySql(connection))
    [(norm_kind, norm_value)] = normalize_identities(
        [(kind, value)], settings, vocabulary.normalisers
    )
    await take_locks(connection, {lock_key("identity", norm_kind, norm_value)})
    row = await lock_customer(connection, customer_id)
    await _link(connection, customer_id, norm_kind, norm_value, settings)
    await _updated(connection, customer_id, "identity_added", {"kind": norm_kind})
    return row


async def remove_identity(
    connection: AsyncConnection,
    customer_id: uuid.UUID,
    kind: str,
    value: str,
    settings: Settings,
) -> RowMapping:
    normalized = normalize_identifier(kind, value, settings.default_phone_region)
    row = await lock_customer(connection, customer_id)
    deleted = await connection.execute(
        sa.text(
            "DELETE FROM identities WHERE customer_id = :id AND kind = :kind AND value = :value"
            " RETURNING id"
        ),
        {"id": customer_id, "kind": kind, "value": normalized},
    )
    if deleted.first() is None:
        raise NotFound(f"the customer holds no {kind} {normalized!r}")
    await _updated(connection, customer_id, "identity_removed", {"kind": kind})
    return row


async def set_stage(
    connection: AsyncConnection, customer_id: uuid.UUID, stage: StageCode, reason: str
) -> RowMapping:
    """A manual stage override, written to the stage history with its reason."""
    if not reason.strip():
        raise BadUserInput("a manual stage change needs a `reason`")
    row = await lock_customer(connection, customer_id)
    previous = StageCode(row["current_stage"]) if row["current_stage"] else None
    transition = classify_transition(previous, stage, None, None)
    if transition is None:
        return row
    now = datetime.now(UTC)
    await connection.execute(
        sa.text(
            "INSERT INTO stage_history (customer_id, stage, previous_stage, transition,"
            " entered_at, reason) VALUES (:id, :stage, :prev, :transition, :now, :reason)"
        ),
        {
            "id": customer_id,
            "stage": stage.value,
            "prev": previous.value if previous else None,
            "transition": transition.value,
            "now": now,
            "reason": f"manual: {reason.strip()}",
        },
    )
    result = await connection.execute(
        sa.text(
            "UPDATE customers SET current_stage = :stage, stage_entered_at = :now,"
            " stage_channel_code = NULL, stage_signal_at = :now, updated_at = now()"
            " WHERE id = :id RETURNING *"
        ),
        {"id": customer_id, "stage": stage.value, "now": now},
    )
    await emit(
        connection,
        NewEvent(
            EventKind.JOURNEY_STAGE_CHANGED,
            customer_id=customer_id,
            payload={
                "stage": stage.value,
                "previousStage": previous.value if previous else None,
                "transition": transition.value,
                "reason": reason.strip(),
            },
        ),
    )
    return result.mappings().one()
