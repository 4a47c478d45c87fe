"""The segment sweeper: re-evaluates memberships whose window slid (no nightly job).

``hub serve`` runs ``sweep_forever`` in the background when ``HUB_SEGMENTS_SWEEP_ENABLED``
(default on), on a small pool of its own. Each round locks the customers with a due re-check
(``FOR UPDATE SKIP LOCKED``, in id order as ingest and merges lock them: several processes share
the work without doing it twice, and a customer being changed is left to that change),
re-evaluates them at the current time, and commits; it loops at once while rounds are full and
waits ``HUB_SEGMENTS_SWEEP_SECONDS`` otherwise. A failed round (the database away, a deadlock
with a concurrent change of the same customer) is logged and retried at the next round.
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
    while True:
        try:
            done = await sweep_once(engine)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("segment sweep round failed; retrying at the next round")
            done = 0
        if done < ROUND:
            await asyncio.sleep(interval_s)
