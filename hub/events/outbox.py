"""Reading the event outbox in delivery order: positions, cursors, the watermark query, pruning.

Events are delivered ordered by ``(xid, id)`` and only once their writer's transaction id is below
``pg_snapshot_xmin(pg_current_snapshot())``: every transaction under that horizon has finished, so
an event that becomes visible later always sorts after everything already delivered. The full
reasoning (read-only transactions, long and prepared transactions) is in docs/subscriptions.md.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hub.core.errors import HubError

# Step 1 of a read: the ids of transactions running in OTHER databases of the cluster (a backend
# is bound to one database, so they can never write our events), as 64-bit ids. A transaction
# holds an ExclusiveLock on its own (32-bit) id until it ends; pg_locks and the pid/datname of
# pg_stat_activity are readable by every role. Prepared transactions keep the lock without a
# backend, hence pg_prepared_xacts.
_FOREIGN_IN_PROGRESS = sa.text(
    """
    WITH next AS (SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint AS xid),
    foreign_ids AS (
        SELECT l.transactionid::text::bigint AS xid32
        FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
        WHERE l.locktype = 'transactionid' AND l.mode = 'ExclusiveLock' AND l.granted
          AND a.datname IS DISTINCT FROM current_database()
        UNION
        SELECT transaction::text::bigint FROM pg_prepared_xacts
        WHERE database <> current_database()
    )
    SELECT coalesce(array_agg(next.xid - ((next.xid - f.xid32) % 4294967296)), '{}') AS ids
    FROM next JOIN foreign_ids f ON true
    """
)
# Step 2: the horizon inside the reading statement's own snapshot: the oldest transaction still
# running there that is not known to belong to another database. Everything below it has
# finished; a transaction that started after step 1 counts as ours (conservative).
HORIZON = """(
    SELECT coalesce(min(x::text::bigint), pg_snapshot_xmax(pg_current_snapshot())::text::bigint)
    FROM pg_snapshot_xip(pg_current_snapshot()) AS x
    WHERE x::text::bigint <> ALL(CAST(:foreign_ids AS bigint[]))
)"""

_READ_AFTER = (
    "SELECT id, xid, kind, customer_id, subject_id, channel_code, touchpoint_id, payload,"
    " created_at FROM events"
    f" WHERE (xid, id) > (:xid, :id) AND xid < {HORIZON} {{kinds}}"
    " ORDER BY xid, id LIMIT :limit"
)
_READ_ALL = sa.text(_READ_AFTER.format(kinds=""))
_READ_KINDS = sa.text(_READ_AFTER.format(kinds="AND kind = ANY(:kinds)"))
# Where a fresh notifier starts: the last event below the horizon, so it delivers what follows.
_START_POSITION = sa.text(
    f"SELECT xid, id FROM events WHERE xid < {HORIZON} ORDER BY xid DESC, id DESC LIMIT 1"
)
# The last deliverable event after a position: where a notifier without subscribers moves to.
_LAST_AFTER = sa.text(
    "SELECT xid, id, created_at FROM events"
    f" WHERE (xid, id) > (:xid, :id) AND xid < {HORIZON} ORDER BY xid DESC, id DESC LIMIT 1"
)
_CURSOR_STATE = sa.text(
    "SELECT EXISTS (SELECT 1 FROM events WHERE xid = :xid AND id = :id) AS found,"
    " (SELECT min(id) FROM events) AS oldest_id,"
    " (SELECT last_value FROM events_id_seq) AS last_id"
)
_PRUNE = sa.text("DELETE FROM events WHERE created_at < now() - make_interval(secs => :seconds)")

CURSOR_PREFIX = "ev1:"


class CursorExpired(HubError):
    code = "CURSOR_EXPIRED"


class CursorInvalid(HubError):
    code = "CURSOR_INVALID"


@dataclass(frozen=True, order=True, slots=True)
class Position:
    """A place in the delivery order; events are delivered strictly after it."""

    xid: int
    id: int

    @property
    def cursor(self) -> str:
        raw = f"{CURSOR_PREFIX}{self.xid}:{self.id}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")


START = Position(0, 0)


def decode_cursor(cursor: str) -> Position:
    """The position inside an event cursor; anything else is a CURSOR_INVALID error."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if not text.startswith(CURSOR_PREFIX):
            raise ValueError(text)
        xid, _, event_id = text.removeprefix(CURSOR_PREFIX).partition(":")
        position = Position(int(xid), int(event_id))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise CursorInvalid(f"{cursor!r} is not an event cursor") from None
    if position.xid <= 0 or position.id <= 0:
        raise CursorInvalid(f"{cursor!r} is not an event cursor")
    return position


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One committed event as read from the outbox."""

    position: Position
    kind: str
    customer_id: uuid.UUID | None
    subject_id: uuid.UUID | None
    channel_code: str | None
    touchpoint_id: uuid.UUID | None
    payload: dict[str, Any]
    created_at: datetime
    # Per-event memo shared by every subscription that processes this very event object (the
    # broker publishes one object to all): e.g. the DataLoaders of one access scope.
    memo: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_row(cls, row: Any) -> StoredEvent:
        return cls(
            position=Position(row.xid, row.id),
            kind=row.kind,
            customer_id=row.customer_id,
            subject_id=row.subject_id,
            channel_code=row.channel_code,
            touchpoint_id=row.touchpoint_id,
            payload=row.payload or {},
            created_at=row.created_at,
        )


async def read_after(
    connection: AsyncConnection,
    after: Position,
    limit: int,
    kinds: Collection[str] | None = None,
) -> list[StoredEvent]:
    """Committed events after ``after`` and below the horizon, in delivery order.

    One statement, so the horizon and the rows come from the same snapshot (READ COMMITTED).
    """
    params: dict[str, Any] = {
        **await _in_progress(connection),
        "xid": after.xid,
        "id": after.id,
        "limit": limit,
    }
    if kinds is None:
        result = await connection.execute(_READ_ALL, params)
    else:
        result = await connection.execute(_READ_KINDS, {**params, "kinds": list(kinds)})
    return [StoredEvent.from_row(row) for row in result]


async def _in_progress(connection: AsyncConnection) -> dict[str, Any]:
    row = (await connection.execute(_FOREIGN_IN_PROGRESS)).one()
    return {"foreign_ids": list(row.ids)}


async def start_position(connection: AsyncConnection) -> Position:
    params = await _in_progress(connection)
    row = (await connection.execute(_START_POSITION, params)).first()
    return Position(int(row.xid), int(row.id)) if row is not None else START


async def last_after(
    connection: AsyncConnection, after: Position
) -> tuple[Position, datetime] | None:
    """The last committed event after ``after`` below the horizon (and when it was created),
    or None: what reading everything with ``read_after`` would end on, in one row."""
    params = {**await _in_progress(connection), "xid": after.xid, "id": after.id}
    row = (await connection.execute(_LAST_AFTER, params)).first()
    return (Position(int(row.xid), int(row.id)), row.created_at) if row is not None else None


async def check_cursor(engine: AsyncEngine, position: Position, retention_days: float) -> None:
    """Refuse a cursor naming no event: CURSOR_EXPIRED if it was pruned, else CURSOR_INVALID."""
    async with engine.connect() as connection:
        row = (
            await connection.execute(_CURSOR_STATE, {"xid": position.xid, "id": position.id})
        ).one()
    if row.found:
        return
    # Ids grow with time, and pruning deletes the oldest: an id below every remaining one (or any
    # issued id once everything is pruned) was an event that aged out of the window.
    oldest = row.oldest_id if row.oldest_id is not None else (row.last_id or 0) + 1
    if position.id < oldest:
        raise CursorExpired(
            f"the event at this cursor is older than the {retention_days:g}-day replay window; "
            "subscribe without `after` and reload the current state"
        )
    raise CursorInvalid("no event has this cursor")


async def prune(engine: AsyncEngine, retention_days: float) -> int:
    """Delete events older than the retention window; returns how many went."""
    async with engine.begin() as connection:
        result = await connection.execute(_PRUNE, {"seconds": retention_days * 86400})
    return int(result.rowcount)
