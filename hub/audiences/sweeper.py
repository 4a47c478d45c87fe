"""The segment sweeper: re-evaluates memberships whose window slid (no nightly job).

``hub serve`` runs ``sweep_forever`` in the background when ``HUB_SEGMENTS_SWEEP_ENABLED``
(default on), on a small pool of its own. Each round locks the customers with a due re-check
(``FOR UPDATE SKIP LOCKED``, in id order as ingest and merges lock them: several processes share
the work without doing it twice, and a customer being changed is left to that change),
re-evaluates them at the current time, and commits; it loops at once while rounds are full and
waits ``HUB_SEGMENTS_SWEEP_SECONDS`` otherwise. A failed round (the database away) is logged
once per run of failures and retried.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from hub.audiences.membership import sweep

logger = logging.getLogger(__name__)

ROUND = 500


async def sweep_once(engine: AsyncEngine, now: datetime | None = None) -> int:
    async with engine.begin() as connection:
        return await sweep(connection, now or datetime.now(UTC), limit=ROUND)


async def sweep_forever(engine: AsyncEngine, interval_s: float) -> None:
    """Rounds until cancelled (one warning per run of failures, e.g. a database outage: the due
    re-checks wait in their table meanwhile)."""
    failures = 0
    while True:
        try:
            done = await sweep_once(engine)
        except Exception as error:  # retried at the next round; nothing is lost
            failures += 1
            if failures == 1:
                logger.warning("segment sweep failed; retrying: %r", error)
            done = 0
        else:
            failures = 0
        if done < ROUND:
            await asyncio.sleep(interval_s)
