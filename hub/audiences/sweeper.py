"""The audiences sweeper: computed-trait windows and segment windows slide without a nightly job.

Every ``audiences_sweep_s`` seconds a ``hub serve`` process (``HUB_AUDIENCES_SWEEP_S``; 0: none
in this process) runs ``hub.audiences.refresh.sweep`` in rounds of at most ``SWEEP_LIMIT``
customers, one transaction each, until nothing is due: computed values whose window moved, the
memberships of those customers, then memberships with a due re-check. Several processes may sweep
at once: a customer locked by one (or by a change being written) is skipped by the others
(``FOR UPDATE SKIP LOCKED``) and left to it. A failed round (the database away) is logged once
per run of failures and retried; the due rows wait in their tables meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from hub.audiences.queue import drain_all
from hub.audiences.refresh import sweep
from hub.core.periodic import every

logger = logging.getLogger("hub.audiences")
SWEEP_LIMIT = 1000


async def sweep_due(engine: AsyncEngine, *, limit: int = SWEEP_LIMIT) -> int:
    """Sweep until nothing is due now; how many customers the rounds handled."""
    total = 0
    while True:
        async with engine.begin() as connection:
            done = await sweep(connection, datetime.now(UTC), limit=limit)
        total += done
        if done < limit:
            return total


async def sweep_forever(engine: AsyncEngine, interval_s: float) -> None:
    """``sweep_due`` every ``interval_s``."""
    await every(interval_s, lambda: sweep_due(engine), logger, "audiences sweep")


DRAINERS = 2
DRAIN_ROUND = 500


async def drain_forever(engine: AsyncEngine, interval_s: float) -> None:
    """``hub.audiences.queue.drain_all`` every ``interval_s``: what ingest queued. ``DRAINERS``
    loops at once, rounds of ``DRAIN_ROUND`` customers (a round claims its rows: two never take
    the same), so a burst (a batch of 1,000) is evaluated on two connections, by two PostgreSQL
    backends, while the next ingest runs on a third."""

    async def loop() -> None:
        await every(
            interval_s, lambda: drain_all(engine, limit=DRAIN_ROUND), logger, "audiences drain"
        )

    await asyncio.gather(*(loop() for _ in range(DRAINERS)))
