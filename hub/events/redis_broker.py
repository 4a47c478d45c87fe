"""``RedisBroker``: one outbox poller for all processes, a Redis stream for the fan-out.

The outbox stays the source of truth: events are written in the change's transaction and read
in ``(xid, id)`` order below the horizon (hub/events/outbox.py); resume cursors still read the
outbox.
Redis only carries the live fan-out between processes:

* **One leader** (a Redis lock, ``<prefix>leader``, renewed every poll interval, expiring after
  ``LEADER_TTL_S``) polls the outbox and appends each batch it reads to the stream
  ``<prefix>events`` as one entry: the events, ``prev``, the position the batch was read after,
  and ``last``, its last event's. A batch is exactly the events between ``prev`` and ``last``, in
  order. A new leader first appends an entry without events at its start position.
* **Every process** (the leader included) reads the stream in order and publishes each entry's
  events to its local subscribers, skipping those at or below its own position (duplicates from
  two leaders after a lock expiry). When an entry's ``prev`` is beyond the process's position,
  something was not in the stream for it (a new leader, a trimmed or restarted stream), and the
  process reads the gap from the outbox first. So each process publishes every committed event
  once, in order, whatever the leaders did.
* **Redis unreachable**: each process polls the outbox itself (exactly what ``PostgresBroker``
  does) until Redis answers again; then it takes the stream's tail, catches up from the outbox
  (everything up to the tail was below the horizon when the leader read it, so the outbox shows
  it) and goes on from the tail. Delivery continues, with one outbox poll per process meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Coroutine
from datetime import datetime
from typing import Any

import orjson
import redis.asyncio as redis
from redis.exceptions import LockError, RedisError
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.core.settings import Settings
from hub.events.broker import PostgresBroker
from hub.events.outbox import Position, StoredEvent, read_after, start_position

logger = logging.getLogger("hub.broker")

LEADER_TTL_S = 3.0
"""A leader that stops renewing (crashed, stalled) is replaced after this long."""
BLOCK_MS = 1000
"""How long one XREAD waits for new entries before asking again."""
STREAM_MAXLEN = 10_000
"""Entries (batches) kept in the stream, approximately; a reader further behind repairs from the
outbox."""


def _position_text(position: Position) -> str:
    return f"{position.xid}:{position.id}"


def _parse_position(raw: bytes) -> Position:
    xid, _, event_id = raw.decode().partition(":")
    return Position(int(xid), int(event_id))


def _uuid_text(value: uuid.UUID | None) -> str | None:
    return str(value) if value is not None else None


def _uuid(value: str | None) -> uuid.UUID | None:
    return uuid.UUID(value) if value is not None else None


def encode_events(events: list[StoredEvent]) -> bytes:
    return orjson.dumps(
        [
            {
                "xid": event.position.xid,
                "id": event.position.id,
                "kind": event.kind,
                "customer_id": _uuid_text(event.customer_id),
                "subject_id": _uuid_text(event.subject_id),
                "channel_code": event.channel_code,
                "touchpoint_id": _uuid_text(event.touchpoint_id),
                "payload": event.payload,
                "created_at": event.created_at.isoformat(),
            }
            for event in events
        ]
    )


def decode_events(raw: bytes) -> list[StoredEvent]:
    return [
        StoredEvent(
            position=Position(item["xid"], item["id"]),
            kind=item["kind"],
            customer_id=_uuid(item["customer_id"]),
            subject_id=_uuid(item["subject_id"]),
            channel_code=item["channel_code"],
            touchpoint_id=_uuid(item["touchpoint_id"]),
            payload=item["payload"],
            created_at=datetime.fromisoformat(item["created_at"]),
        )
        for item in orjson.loads(raw)
    ]


class RedisBroker(PostgresBroker):
    """The outbox read once per deployment (by the elected leader), fanned out by Redis."""

    def __init__(self, engine: AsyncEngine, database_url: str, settings: Settings) -> None:
        super().__init__(engine, database_url, settings)
        # socket_timeout above BLOCK_MS: a blocking XREAD is not a hung server.
        self._redis = redis.Redis.from_url(
            settings.redis_url,
            socket_connect_timeout=2,
            socket_timeout=BLOCK_MS / 1000 + 4,
        )
        self.stream_key = f"{settings.redis_key_prefix}events"
        self.leader_key = f"{settings.redis_key_prefix}leader"
        self._lock = self._redis.lock(
            self.leader_key, timeout=LEADER_TTL_S, blocking=False, thread_local=False
        )
        self.leading = False
        self.redis_connected = False
        self._lead_position: Position | None = None

    def _loops(self) -> list[tuple[str, Coroutine[Any, Any, None]]]:
        return [
            ("hub-redis-consumer", self._consume_loop()),
            ("hub-redis-leader", self._lead_loop()),
            ("hub-event-pruner", self._prune_loop()),
        ]

    @property
    def status(self) -> str:
        return "redis" if self.redis_connected else "redis unreachable: polling the outbox"

    # ---- every process: stream → local subscribers ----

    async def _consume_loop(self) -> None:
        interval = self._settings.events_poll_interval_ms / 1000
        last_id: bytes | None = None  # None: (re)connect first
        while not self._closing:
            try:
                if last_id is None:
                    tail: Any = await self._redis.xrevrange(self.stream_key, count=1)
                    tail_id: bytes = tail[0][0] if tail else b"0-0"
                    # Everything up to the tail was below the horizon when the leader read it,
                    # so this outbox read sees it: no gap at the seam, and later entries are
                    # filtered by position, so no duplicate.
                    await self.poll_once()
                    last_id = tail_id
                    if not self.redis_connected:
                        logger.info("redis broker connected (%s)", self.stream_key)
                    self.redis_connected = True
                reply: Any = await self._redis.xread(
                    {self.stream_key: last_id}, count=100, block=BLOCK_MS
                )
                for _stream, entries in reply or []:
                    for entry_id, fields in entries:
                        await self._apply(fields)
                        last_id = entry_id
                self._poll_succeeded()
            except (RedisError, OSError):
                if self.redis_connected or last_id is not None:
                    logger.warning("redis unreachable; polling the outbox", exc_info=True)
                self.redis_connected = False
                last_id = None
                await self._guarded_poll()  # the database may be away too: logged once
                await asyncio.sleep(interval)
            except Exception as error:  # a database hiccup while catching up: retry the entry
                self._poll_failed(error)
                await asyncio.sleep(interval)

    async def _apply(self, fields: dict[bytes, bytes]) -> None:
        prev = _parse_position(fields[b"prev"])
        events = decode_events(fields[b"events"])
        if not self._positioned or prev > self.position:
            # Events between our position and this entry never reached us through the stream
            # (a new leader, a trimmed or restarted stream): read them from the outbox (the
            # source of truth) first.
            await self.poll_once()
        self.publish([event for event in events if event.position > self.position])

    # ---- the leader: outbox → stream ----

    async def _lead_loop(self) -> None:
        interval = self._settings.events_poll_interval_ms / 1000
        while not self._closing:
            try:
                if await self._hold_leadership():
                    await self._forward()
            except (RedisError, OSError):
                # Whether the lock is still ours is unknown until Redis answers: the next
                # renewal tells (a restarted Redis has no lock, and any process may take it).
                logger.debug("redis broker leader: redis unreachable", exc_info=True)
            except Exception:  # the database: retried next tick
                logger.warning("outbox poll (leader) failed", exc_info=True)
            await self._wait_for_wake(interval)

    async def _hold_leadership(self) -> bool:
        if self.leading:
            try:
                await self._lock.reacquire()
            except LockError:
                logger.info("another process leads the redis broker now")
                self.leading = False
            return self.leading
        if not await self._lock.acquire():
            return False
        self.leading = True
        self._lead_position = None
        logger.info("this process leads the redis broker (polls the outbox)")
        return True

    async def _forward(self) -> None:
        """Append every deliverable event after the leader's position to the stream."""
        if self._lead_position is None:
            # Go on from the last batch in the stream; a new (or restarted, emptied) stream
            # starts at the horizon.
            tail: Any = await self._redis.xrevrange(self.stream_key, count=1)
            if tail:
                self._lead_position = _parse_position(tail[0][1][b"last"])
            else:
                async with self._engine.connect() as connection:
                    self._lead_position = await start_position(connection)
            # An entry without events first: a process whose position is below it reads the
            # difference from the outbox now, not only when the next event comes.
            await self._append(self._lead_position, [])
        batch_size = self._settings.events_batch_size
        while True:
            async with self._engine.connect() as connection:
                events = await read_after(connection, self._lead_position, batch_size)
            if not events:
                return
            await self._append(self._lead_position, events)
            self._lead_position = events[-1].position
            if len(events) < batch_size:
                return

    async def _append(self, prev: Position, events: list[StoredEvent]) -> None:
        """One stream entry: ``events`` are exactly those after ``prev`` up to ``last``."""
        last = events[-1].position if events else prev
        await self._redis.xadd(
            self.stream_key,
            {
                "prev": _position_text(prev),
                "last": _position_text(last),
                "events": encode_events(events),
            },
            maxlen=STREAM_MAXLEN,
            approximate=True,
        )

    async def close(self) -> None:
        await super().close()
        if self.leading:
            with contextlib.suppress(RedisError, OSError, LockError):
                await self._lock.release()
        self.leading = False
        await self._redis.aclose()
