"""Queries on a streaming replica, with read-your-writes for the caller that wrote.

``ReadRouter`` decides, per query request, whether it reads the replica or the primary:

* after every mutation, the caller's **fence** is recorded on the primary: its key (or dev-mode
  name) and ``pg_current_wal_lsn()`` taken after the mutation committed (table ``read_fences``,
  shared by every process and worker, so a write through one worker fences reads through all);
* each process reads the replica's ``pg_last_wal_replay_lsn()`` every
  ``read_replica_check_interval_ms`` in the background (and, once a second, the primary's WAL
  position, for the lag);
* a query reads the replica when the replica answered the last check, is at most
  ``read_replica_max_lag_s`` behind, and has replayed past the caller's fence; else the primary.

So a caller always sees its own writes; other callers may see the replica's slightly older state
(as they would a moment earlier on the primary). Mutations, key checks, the audit log, the event
outbox and subscriptions always use the primary.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.core.settings import Settings

logger = logging.getLogger("hub.replica")


class Principal(Protocol):
    """Who reads or writes, as far as the fence cares (``hub.access.keys.Principal`` is one):
    the database layer knows nothing else of access control."""

    @property
    def key_id(self) -> int | None: ...

    @property
    def name(self) -> str: ...


CHECK_TIMEOUT_S = 2.0
PRIMARY_SAMPLE_INTERVAL_S = 1.0
"""How often the primary's WAL position is sampled for the lag (a query on the primary)."""
_PRIMARY_LSN = sa.text("SELECT pg_current_wal_lsn()::text")
_REPLICA_STATE = sa.text(
    "SELECT pg_is_in_recovery() AS standby, pg_last_wal_replay_lsn()::text AS replayed"
)
_RECORD_FENCE = sa.text(
    "INSERT INTO read_fences AS f (principal, lsn) VALUES (:principal, pg_current_wal_lsn())"
    " ON CONFLICT (principal) DO UPDATE"
    " SET lsn = greatest(f.lsn, excluded.lsn), updated_at = now()"
    " RETURNING lsn::text"
)
_READ_FENCE = sa.text("SELECT lsn::text FROM read_fences WHERE principal = :principal")
CURRENT = 2**64
"""The replay position of a server that is not a standby: it is never behind itself."""


def lsn_value(text: str) -> int:
    """``'16/B374D848'`` → a comparable integer."""
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) | int(low, 16)


def fence_key(principal: Principal) -> str:
    return f"key:{principal.key_id}" if principal.key_id is not None else f"name:{principal.name}"


class ReadRouter:
    """Where one process's queries read: the replica when it is fresh enough for the caller."""

    def __init__(self, primary: AsyncEngine, replica: AsyncEngine, settings: Settings) -> None:
        self.primary = primary
        self.replica = replica
        self.settings = settings
        self.replayed: int | None = None  # the replica's replay position; None: unreachable
        self.lag_seconds = 0.0
        # (monotonic time, primary WAL position then), increasing; those the replica has
        # replayed are dropped, so the oldest left tells how far behind it is.
        self._samples: deque[tuple[float, int]] = deque(maxlen=100_000)
        self._task: asyncio.Task[None] | None = None
        self._sampled_at = -PRIMARY_SAMPLE_INTERVAL_S
        self._closing = False

    async def start(self) -> None:
        await self.check_once()
        self._task = asyncio.create_task(self._check_loop(), name="hub-replica-check")

    async def close(self) -> None:
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task], timeout=CHECK_TIMEOUT_S * 2)

    @property
    def usable(self) -> bool:
        lag_ok = self.lag_seconds <= self.settings.read_replica_max_lag_s
        return self.replayed is not None and lag_ok

    @property
    def status(self) -> str:
        if self.replayed is None:
            return "unreachable"
        return "ok" if self.usable else "lagging"

    async def _check_loop(self) -> None:
        interval = self.settings.read_replica_check_interval_ms / 1000
        while not self._closing:
            await asyncio.sleep(interval)
            await self.check_once()

    async def check_once(self) -> None:
        now = time.monotonic()
        if now - self._sampled_at >= PRIMARY_SAMPLE_INTERVAL_S:
            self._sampled_at = now
            await self._sample_primary(now)
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_S), self.replica.connect() as connection:
                row = (await connection.execute(_REPLICA_STATE)).one()
        except Exception:  # queries read the primary until the replica answers again
            if self.replayed is not None:
                logger.warning("read replica unreachable; queries read the primary", exc_info=True)
            self.replayed = None
            return
        if self.replayed is None:
            logger.info("read replica reachable; queries read it")
        replayed = lsn_value(row.replayed) if row.standby and row.replayed else CURRENT
        if not row.standby:
            self._samples.clear()
        self.replayed = replayed
        while self._samples and self._samples[0][1] <= replayed:
            self._samples.popleft()
        was_usable = self.lag_seconds <= self.settings.read_replica_max_lag_s
        self.lag_seconds = now - self._samples[0][0] if self._samples else 0.0
        if was_usable and not self.usable:
            logger.warning("read replica %.1fs behind; queries read the primary", self.lag_seconds)

    async def _sample_primary(self, now: float) -> None:
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_S), self.primary.connect() as connection:
                primary_lsn = lsn_value(str(await connection.scalar(_PRIMARY_LSN)))
        except Exception:  # the primary is down: the lag cannot grow meanwhile
            logger.debug("primary WAL position unavailable", exc_info=True)
            return
        if not self._samples or primary_lsn > self._samples[-1][1]:
            self._samples.append((now, primary_lsn))

    async def use_replica(self, principal: Principal) -> bool:
        """True when this caller's query may read the replica now."""
        replayed = self.replayed
        if replayed is None or not self.usable:
            return False
        try:
            async with self.primary.connect() as connection:
                fence = await connection.scalar(_READ_FENCE, {"principal": fence_key(principal)})
        except Exception:  # the primary is unreachable: the replica is all there is
            logger.warning("could not read the caller's read fence", exc_info=True)
            return True
        return fence is None or replayed >= lsn_value(str(fence))

    async def record_write(self, principal: Principal) -> int | None:
        """After a mutation: this caller reads the primary until the replica passes here."""
        try:
            async with self.primary.begin() as connection:
                fence = await connection.scalar(_RECORD_FENCE, {"principal": fence_key(principal)})
        except Exception:  # the primary is unreachable, so the write most likely failed too
            logger.warning("could not record a read fence", exc_info=True)
            return None
        return lsn_value(str(fence))
