"""Webhooks in PostgreSQL: registrations, who may see them, the delivery lease, the cursor and
the delivery log. Plain values in and out: the GraphQL layer and the worker build on these.

Status: ACTIVE (delivering), FAILING (an event was dead-lettered; still delivering), PAUSED (by
its owner, or after ``webhook_pause_after`` dead letters in a row), DISABLED (its key was
revoked). ``revision`` grows with every change an operator makes (update, pause, resume,
replay, rotation): a delivering task that sees another revision starts again from the row, and
its cursor writes carry its revision, so a replay is never overwritten by a stale task.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hub.access.keys import Principal, Role, principal_from_row
from hub.core.errors import NotFound
from hub.db.rows import Record
from hub.events.outbox import Position
from hub.models import API_KEYS, EVENTS, WEBHOOK_DELIVERIES, WEBHOOKS
from hub.webhooks.signing import new_secret

W = WEBHOOKS.c
D = WEBHOOK_DELIVERIES.c


class WebhookStatus(StrEnum):
    ACTIVE = "ACTIVE"
    FAILING = "FAILING"
    PAUSED = "PAUSED"
    DISABLED = "DISABLED"


class DeliveryStatus(StrEnum):
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"  # this attempt failed; the event is retried
    DEAD_LETTER = "DEAD_LETTER"  # the last attempt: the event was given up on


DELIVERING = (WebhookStatus.ACTIVE.value, WebhookStatus.FAILING.value)
# What the API returns; never the secrets.
PUBLIC_COLUMNS = [c for c in WEBHOOKS.c if c.name not in ("secret", "previous_secret")]


@dataclass(frozen=True)
class Owner:
    """Who registers or manages webhooks: an ADMIN manages all, a PARTNER its key's own."""

    key_id: int | None
    name: str
    role: Role

    @classmethod
    def of(cls, principal: Principal) -> Owner:
        return cls(principal.key_id, principal.name, principal.role)

    def where(self) -> Any:
        if self.role is Role.ADMIN:
            return sa.true()
        return W.key_id == self.key_id if self.key_id is not None else sa.false()


def position(row: Record) -> Position:
    return Position(int(row["cursor_xid"]), int(row["cursor_id"]))


async def create(
    connection: AsyncConnection,
    owner: Owner,
    *,
    url: str,
    query: str,
    variables: dict[str, Any],
    description: str,
    start: Position,
) -> tuple[Record, str]:
    """A new ACTIVE webhook delivering the events after ``start``; returns it and its secret."""
    secret = new_secret()
    row = (
        await connection.execute(
            WEBHOOKS.insert()
            .values(
                id=uuid.uuid4(),
                key_id=owner.key_id,
                owner=owner.name,
                role=owner.role.value,
                url=url,
                query=query,
                variables=variables,
                description=description,
                status=WebhookStatus.ACTIVE.value,
                secret=secret,
                cursor_xid=start.xid,
                cursor_id=start.id,
                failure_streak=0,
                revision=0,
            )
            .returning(*PUBLIC_COLUMNS)
        )
    ).one()
    return row._mapping, secret


async def get(connection: AsyncConnection, owner: Owner, webhook_id: uuid.UUID) -> Record:
    """The webhook if ``owner`` may see it, else NOT_FOUND (a partner cannot probe others')."""
    row = (
        await connection.execute(
            sa.select(*PUBLIC_COLUMNS).where(W.id == webhook_id, owner.where())
        )
    ).first()
    if row is None:
        raise NotFound("no webhook with this id")
    return row._mapping


async def list_for(connection: AsyncConnection, owner: Owner) -> Sequence[Record]:
    rows = await connection.execute(
        sa.select(*PUBLIC_COLUMNS).where(owner.where()).order_by(W.created_at, W.id)
    )
    return [row._mapping for row in rows]


async def change(
    connection: AsyncConnection, owner: Owner, webhook_id: uuid.UUID, **values: Any
) -> Record:
    """Apply an operator's change (a new revision: the delivering task reloads)."""
    row = (
        await connection.execute(
            WEBHOOKS.update()
            .where(W.id == webhook_id, owner.where())
            .values(**values, revision=W.revision + 1, updated_at=sa.func.now())
            .returning(*PUBLIC_COLUMNS)
        )
    ).first()
    if row is None:
        raise NotFound("no webhook with this id")
    return row._mapping


async def rotate_secret(
    connection: AsyncConnection, owner: Owner, webhook_id: uuid.UUID, grace_s: float
) -> tuple[Record, str]:
    """A new secret; the current one keeps signing (beside it) for ``grace_s`` seconds."""
    secret = new_secret()
    row = await change(
        connection,
        owner,
        webhook_id,
        previous_secret=W.secret,
        previous_secret_until=sa.func.now() + timedelta(seconds=grace_s),
        secret=secret,
    )
    return row, secret


async def delete(connection: AsyncConnection, owner: Owner, webhook_id: uuid.UUID) -> None:
    result = await connection.execute(WEBHOOKS.delete().where(W.id == webhook_id, owner.where()))
    if result.rowcount == 0:
        raise NotFound("no webhook with this id")


async def signing_secrets(engine: AsyncEngine, webhook_id: uuid.UUID) -> list[str]:
    """The secrets a delivery is signed with now: the current one, and the previous one while
    its grace period lasts."""
    async with engine.connect() as connection:
        row = (
            await connection.execute(
                sa.select(
                    W.secret,
                    sa.case(
                        (W.previous_secret_until > sa.func.now(), W.previous_secret),
                        else_=None,
                    ).label("previous"),
                ).where(W.id == webhook_id)
            )
        ).first()
    if row is None:
        return []
    return [row.secret] + ([row.previous] if row.previous else [])


def secrets_of(row: Record) -> list[str]:
    """``signing_secrets`` from a loaded row (a rotation is a new revision: rows reload)."""
    until = row["previous_secret_until"]
    previous = row["previous_secret"] if until is not None and until > now() else None
    return [row["secret"]] + ([previous] if previous else [])


async def load(engine: AsyncEngine, webhook_id: uuid.UUID) -> Record | None:
    async with engine.connect() as connection:
        row = (await connection.execute(sa.select(WEBHOOKS).where(W.id == webhook_id))).first()
    return row._mapping if row is not None else None


async def principal_of(engine: AsyncEngine, row: Record) -> Principal | None:
    """Who deliveries act as: the registering key as it is NOW (None if revoked or deleted).
    A webhook registered without a key (development mode, the CLI) acts as an ADMIN."""
    if row["key_id"] is None:
        return Principal(role=Role(row["role"]), name=row["owner"], pii=True)
    async with engine.connect() as connection:
        key = (
            await connection.execute(
                sa.select(API_KEYS).where(
                    API_KEYS.c.id == row["key_id"], API_KEYS.c.revoked_at.is_(None)
                )
            )
        ).first()
    return principal_from_row(key._mapping) if key is not None else None


# ---- leases ----


async def claim(engine: AsyncEngine, me: str, lease_s: float) -> dict[uuid.UUID, int]:
    """Renew this process's leases and take free or expired ones; {webhook id: revision} of
    every delivering webhook this process holds now."""
    async with engine.begin() as connection:
        rows = await connection.execute(
            sa.text(
                "UPDATE webhooks SET lease_owner = :me,"
                " lease_until = now() + make_interval(secs => :lease)"
                " WHERE id IN (SELECT id FROM webhooks WHERE status = ANY(:delivering)"
                "   AND (lease_owner = :me OR lease_owner IS NULL OR lease_until < now())"
                "   FOR UPDATE SKIP LOCKED)"
                " RETURNING id, revision"
            ),
            {"me": me, "lease": lease_s, "delivering": list(DELIVERING)},
        )
        return {row.id: row.revision for row in rows}


async def release(engine: AsyncEngine, me: str) -> None:
    """Give every lease up (a clean shutdown: another process takes over at once)."""
    async with engine.begin() as connection:
        await connection.execute(
            WEBHOOKS.update().where(W.lease_owner == me).values(lease_owner=None, lease_until=None)
        )


# ---- delivery progress ----


async def skipped(
    engine: AsyncEngine, webhook_id: uuid.UUID, me: str, revision: int, to: Position
) -> bool:
    """Move the cursor over events that gave no delivery (filtered out, not visible), if this
    process still holds the lease at this revision; False when it does not (the task stops)."""
    async with engine.begin() as connection:
        return await _advance(connection, webhook_id, me, revision, to, delivered=False)


async def _advance(
    connection: AsyncConnection,
    webhook_id: uuid.UUID,
    me: str,
    revision: int,
    to: Position,
    *,
    delivered: bool,
) -> bool:
    values: dict[str, Any] = {"cursor_xid": to.xid, "cursor_id": to.id}
    if delivered:
        values["failure_streak"] = 0
        values["status"] = sa.case(
            (W.status == WebhookStatus.FAILING.value, WebhookStatus.ACTIVE.value),
            else_=W.status,
        )
        values["status_reason"] = sa.case(
            (W.status == WebhookStatus.FAILING.value, None), else_=W.status_reason
        )
    holds = [W.id == webhook_id, W.lease_owner == me, W.revision == revision]
    result = await connection.execute(
        WEBHOOKS.update()
        .where(*holds, sa.tuple_(W.cursor_xid, W.cursor_id) < sa.tuple_(to.xid, to.id))
        .values(**values)
    )
    if result.rowcount:
        return True
    still = await connection.scalar(sa.select(sa.func.count()).where(*holds))
    return bool(still)


async def dead_letter(
    engine: AsyncEngine,
    webhook_id: uuid.UUID,
    me: str,
    revision: int,
    to: Position,
    reason: str,
    pause_after: int,
) -> str | None:
    """The event at ``to`` was given up on: past it, FAILING (PAUSED after ``pause_after`` in a
    row) with the reason. Returns the new status, None if the lease was lost."""
    streak = W.failure_streak + 1
    async with engine.begin() as connection:
        row = (
            await connection.execute(
                WEBHOOKS.update()
                .where(W.id == webhook_id, W.lease_owner == me, W.revision == revision)
                .values(
                    cursor_xid=to.xid,
                    cursor_id=to.id,
                    failure_streak=streak,
                    status=sa.case(
                        (streak >= pause_after, WebhookStatus.PAUSED.value),
                        else_=WebhookStatus.FAILING.value,
                    ),
                    status_reason=reason,
                    updated_at=sa.func.now(),
                )
                .returning(W.status)
            )
        ).first()
    return row.status if row is not None else None


async def failing(engine: AsyncEngine, webhook_id: uuid.UUID, reason: str) -> None:
    """An ACTIVE webhook that cannot run its document is FAILING with the reason (the same
    revision: its task goes on trying; a delivery turns it ACTIVE again)."""
    async with engine.begin() as connection:
        await connection.execute(
            WEBHOOKS.update()
            .where(W.id == webhook_id, W.status.in_(DELIVERING))
            .values(
                status=WebhookStatus.FAILING.value,
                status_reason=reason[:1000],
                updated_at=sa.func.now(),
            )
        )


async def disable(engine: AsyncEngine, webhook_id: uuid.UUID, reason: str) -> None:
    async with engine.begin() as connection:
        await connection.execute(
            WEBHOOKS.update()
            .where(W.id == webhook_id)
            .values(
                status=WebhookStatus.DISABLED.value,
                status_reason=reason,
                revision=W.revision + 1,
                updated_at=sa.func.now(),
            )
        )


@dataclass(frozen=True)
class LoggedAttempt:
    """One attempt, as the delivery log keeps it."""

    webhook_id: uuid.UUID
    event_cursor: str
    attempt: int
    status: DeliveryStatus
    body: str
    status_code: int | None
    latency_s: float | None
    error: str | None

    def insert(self) -> Any:
        return (
            WEBHOOK_DELIVERIES.insert()
            .values(
                webhook_id=self.webhook_id,
                event_cursor=self.event_cursor,
                attempt=self.attempt,
                status=self.status.value,
                status_code=self.status_code,
                latency_ms=None if self.latency_s is None else round(self.latency_s * 1000, 3),
                error=self.error,
                body=self.body,
            )
            .returning(WEBHOOK_DELIVERIES)
        )


async def record(engine: AsyncEngine, attempt: LoggedAttempt) -> Record:
    async with engine.begin() as connection:
        row = (await connection.execute(attempt.insert())).one()
    mapping: Record = row._mapping
    return mapping


async def delivered(
    engine: AsyncEngine, me: str, revision: int, to: Position, attempt: LoggedAttempt
) -> bool:
    """A successful attempt: logged and the cursor moved past it, in one transaction (False,
    and nothing written, when this process no longer holds the webhook at this revision)."""
    async with engine.begin() as connection:
        moved = await _advance(connection, attempt.webhook_id, me, revision, to, delivered=True)
        if moved:
            await connection.execute(attempt.insert())
    return moved


async def deliveries(
    connection: AsyncConnection,
    webhook_id: uuid.UUID,
    status: DeliveryStatus | None,
    first: int,
    after: int | None,
) -> Sequence[Record]:
    """The delivery log, newest first, keyset-paged by delivery id."""
    where = [D.webhook_id == webhook_id]
    if status is not None:
        where.append(D.status == status.value)
    if after is not None:
        where.append(D.id < after)
    rows = await connection.execute(
        sa.select(WEBHOOK_DELIVERIES).where(*where).order_by(D.id.desc()).limit(first)
    )
    return [row._mapping for row in rows]


async def delivery(
    connection: AsyncConnection, owner: Owner, delivery_id: int
) -> tuple[Record, Record]:
    """A delivery and its webhook, if ``owner`` may see the webhook."""
    row = (
        await connection.execute(sa.select(WEBHOOK_DELIVERIES).where(D.id == delivery_id))
    ).first()
    if row is None:
        raise NotFound("no delivery with this id")
    webhook = await get(connection, owner, row.webhook_id)
    return row._mapping, webhook


async def backlogs(engine: AsyncEngine) -> dict[uuid.UUID, int]:
    """Per delivering webhook: events in the outbox after its cursor (an upper bound of what
    it still has to handle; its filter may skip some)."""
    async with engine.connect() as connection:
        rows = await connection.execute(
            sa.select(
                W.id,
                sa.select(sa.func.count())
                .where(sa.tuple_(EVENTS.c.xid, EVENTS.c.id) > sa.tuple_(W.cursor_xid, W.cursor_id))
                .scalar_subquery()
                .label("backlog"),
            ).where(W.status.in_(DELIVERING))
        )
        return {row.id: int(row.backlog) for row in rows}


def backoff_s(attempt: int, initial_s: float, max_s: float) -> float:
    """Exponential backoff with full jitter: a random wait in [d/2, d], d = initial·2^(n-1)."""
    ceiling = min(max_s, initial_s * 2 ** min(attempt - 1, 32))
    return random.uniform(ceiling / 2, ceiling)


def now() -> datetime:
    return datetime.now(UTC)
