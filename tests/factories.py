"""Small, explicit test data written straight to PostgreSQL (independent of the ingest code)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from hub.core.ids import to_global_id

# The tests' clock: 09:00 UTC, 90 days before the day the run started. Test data lies at T0 plus
# offsets of at most ~60 days, so whatever is sent as `occurredAt` is in the past (the hub refuses
# times ahead of its clock) on any calendar day; a fixed date (it was 2026-01-01) made the suite
# pass or fail by the day it ran (#19).
T0 = (datetime.now(UTC) - timedelta(days=90)).replace(hour=9, minute=0, second=0, microsecond=0)


def zulu(at: datetime) -> str:
    """``at`` as RFC 3339 with the ``Z`` suffix (the form clients often send)."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def naive(at: datetime) -> str:
    """``at`` in UTC without an offset (the hub reads it as UTC, or refuses it)."""
    return at.astimezone(UTC).replace(tzinfo=None).isoformat()


def gid(type_name: str, key: Any) -> str:
    return to_global_id(type_name, str(key))


@dataclass
class Factory:
    db: asyncpg.Connection
    touchpoints: dict[str, uuid.UUID] = field(default_factory=dict)

    async def touchpoint(
        self,
        name: str,
        channel: str,
        kind: str,
        *,
        address: str | None = None,
        business_line: str | None = None,
        active: bool = True,
    ) -> uuid.UUID:
        tid = uuid.uuid4()
        await self.db.execute(
            "INSERT INTO touchpoints (id, channel_code, name, kind, address, business_line, active)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7)",
            tid,
            channel,
            name,
            kind,
            address,
            business_line,
            active,
        )
        self.touchpoints[name] = tid
        return tid

    async def customer(
        self,
        name: str | None,
        *,
        traits: dict[str, Any] | None = None,
        stage: str | None = None,
        created_at: datetime = T0,
        identities: list[tuple[str, str]] = (),  # type: ignore[assignment]
    ) -> uuid.UUID:
        cid = uuid.uuid4()
        await self.db.execute(
            "INSERT INTO customers (id, display_name, traits, current_stage, stage_entered_at,"
            " created_at, updated_at) VALUES ($1, $2, $3::jsonb, $4, $5, $6, $6)",
            cid,
            name,
            json.dumps(traits or {}),
            stage,
            created_at if stage else None,
            created_at,
        )
        for kind, value in identities:
            await self.db.execute(
                "INSERT INTO identities (customer_id, kind, value) VALUES ($1, $2, $3)",
                cid,
                kind,
                value,
            )
        return cid

    async def interaction(
        self,
        customer_id: uuid.UUID,
        touchpoint: str,
        *,
        at: datetime,
        type: str = "PAGE_VIEW",
        direction: str = "INBOUND",
        conversation_id: uuid.UUID | None = None,
        summary: str | None = None,
        sentiment: float | None = None,
        attributes: dict[str, Any] | None = None,
    ) -> uuid.UUID:
        tid = self.touchpoints[touchpoint]
        iid = uuid.uuid4()
        await self.db.execute(
            "INSERT INTO interactions (id, customer_id, touchpoint_id, channel_code, occurred_at,"
            " type, direction, conversation_id, summary, sentiment, attributes)"
            " SELECT $1, $2, $3, channel_code, $4, $5, $6, $7, $8, $9, $10::jsonb"
            " FROM touchpoints WHERE id = $3",
            iid,
            customer_id,
            tid,
            at,
            type,
            direction,
            conversation_id,
            summary,
            sentiment,
            json.dumps(attributes or {}),
        )
        await self.db.execute(
            "UPDATE customers SET first_seen_at = LEAST(coalesce(first_seen_at, $2), $2),"
            " last_seen_at = GREATEST(coalesce(last_seen_at, $2), $2) WHERE id = $1",
            customer_id,
            at,
        )
        return iid

    async def conversation(
        self, customer_id: uuid.UUID, key: str, *, status: str = "OPEN", at: datetime = T0
    ) -> uuid.UUID:
        cid = uuid.uuid4()
        await self.db.execute(
            "INSERT INTO conversations (id, customer_id, key, status, started_at, last_activity_at)"
            " VALUES ($1, $2, $3, $4, $5, $5)",
            cid,
            customer_id,
            key,
            status,
            at,
        )
        return cid

    async def stage_change(
        self,
        customer_id: uuid.UUID,
        stage: str,
        *,
        previous: str | None,
        transition: str,
        at: datetime,
        interaction_id: uuid.UUID | None = None,
        channel: str | None = None,
    ) -> None:
        await self.db.execute(
            "INSERT INTO stage_history (customer_id, stage, previous_stage, transition, entered_at,"
            " interaction_id, channel_code, reason) VALUES ($1, $2, $3, $4, $5, $6, $7, 'test')",
            customer_id,
            stage,
            previous,
            transition,
            at,
            interaction_id,
            channel,
        )


def minutes(n: int) -> timedelta:
    return timedelta(minutes=n)
