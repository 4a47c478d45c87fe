"""Verified API keys, cached per process: a request with a known key costs no database trip.

What makes it safe (docs/security.md, "The key cache"):

- Entries are keyed by the SHA-256 of the key (``hash_key``); the clear key is never kept.
- Only keys the database verified go in. An unknown or wrong key is looked up every time and
  spends its client address's failed-key budget, as without a cache (no negative entries, so
  guessing cannot be served from memory, and the throttle runs before the cache is asked).
- Every entry carries the (monotonic) time at which the newest database read that found it valid
  *started*: its own lookup, or a later re-check round. An entry older than ``TRUST_S`` is not
  used (the key is looked up again). While the process holds entries, a round every
  ``interval`` seconds (0.5 by default) re-reads all of them in one statement, drops the revoked
  and deleted ones and refreshes the rest. So a key revoked by any process stops working in every
  process within ``TRUST_S`` < 1 s of the revocation's commit, even when rounds run late or the
  database is down (entries then age out and lookups answer, or fail with 503).
- A revocation made in this process drops the key from its caches at once
  (``hub.access.keys.revoke_key``).
- Bounded: at most ``size`` entries, the least recently used dropped first.

Keys have no expiry date in this schema (only revocation); an expiry would be one more condition
in ``hub.access.keys.live_keys`` and the lookup.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hub.access.keys import Principal, live_keys, register_cache

logger = logging.getLogger("hub.access")

# The oldest database confirmation an entry may be used on (seconds). Below one second by the
# margin a late re-check round may take.
TRUST_S = 0.9
# ``last_used_at`` is refreshed by the re-check round at most this often per key (seconds).
TOUCH_S = 60.0


@dataclass
class _Entry:
    prefix: str
    principal: Principal
    confirmed_at: float  # when the newest read that found the key valid started
    touched_at: float  # when last_used_at was last known to be fresh
    used_at: float


class KeyCache:
    """The verified keys of one process (see the module's docstring)."""

    def __init__(
        self,
        pool: Callable[[], Any],
        *,
        size: int,
        interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._pool = pool  # the key-check pool (asyncpg pool or AsyncEngine), opened later
        self.size = size
        self.interval = interval
        self.clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._task: asyncio.Task[None] | None = None
        register_cache(self)

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, digest: str) -> Principal | None:
        """The principal of a key confirmed less than ``TRUST_S`` ago, else None."""
        entry = self._entries.get(digest)
        if entry is None:
            return None
        now = self.clock()
        if now - entry.confirmed_at > TRUST_S:
            return None  # too old to trust: looked up again, and replaced then
        self._entries.move_to_end(digest)
        entry.used_at = now
        return entry.principal

    def put(self, digest: str, prefix: str, principal: Principal, read_at: float) -> None:
        """A key the database found valid by a read that started at ``read_at``."""
        if self.size <= 0:
            return
        self._entries[digest] = _Entry(prefix, principal, read_at, read_at, read_at)
        self._entries.move_to_end(digest)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)
        if self._task is None or self._task.done():
            # An empty context: the rounds belong to no request (nor its statement counts).
            self._task = asyncio.get_running_loop().create_task(
                self._watch(), name="hub-key-cache", context=contextvars.Context()
            )

    def forget(self, prefix: str) -> None:
        for digest in [d for d, e in self._entries.items() if e.prefix == prefix]:
            self._entries.pop(digest, None)

    async def check(self) -> None:
        """One re-check round: drop what is no longer valid, confirm the rest."""
        started = self.clock()
        entries = list(self._entries.items())
        if not entries:
            return
        due = sorted({e.prefix for _, e in entries if e.used_at - e.touched_at >= TOUCH_S})
        live = await live_keys(self._pool(), sorted({e.prefix for _, e in entries}), due)
        for digest, entry in entries:
            if live.get(entry.prefix) != (digest, entry.principal):
                # Revoked or deleted, its prefix now names another key, or its role or scopes
                # changed: gone, here too (the next request looks it up).
                if self._entries.get(digest) is entry:
                    del self._entries[digest]
                continue
            entry.confirmed_at = max(entry.confirmed_at, started)
            if entry.prefix in due:
                entry.touched_at = started

    async def _watch(self) -> None:
        failing = False
        while self._entries:
            await asyncio.sleep(self.interval)
            try:
                await self.check()
                failing = False
            except Exception as error:  # entries age out meanwhile: lookups take over
                if not failing:
                    logger.warning("could not re-check cached API keys: %r", error)
                failing = True

    async def close(self) -> None:
        self._entries.clear()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            if task.get_loop() is asyncio.get_running_loop():
                with contextlib.suppress(asyncio.CancelledError):
                    await task
