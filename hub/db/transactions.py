"""Running a writing transaction again when PostgreSQL aborted it over a concurrent one.

PostgreSQL breaks a deadlock by aborting one of the transactions in it (SQLSTATE 40P01), and a
SERIALIZABLE transaction can fail with 40001: in both cases nothing of it was committed and the
same work, started over, normally goes through. Ingest takes its advisory locks in sorted order,
so two batches never deadlock on them, but row locks taken by set-based statements (customers
updated by two batches in different orders) can still cross. The caller's work opens, runs and
commits its own transaction, so each attempt starts from a clean slate.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from hub.core.faults import transaction_conflict

logger = logging.getLogger(__name__)

T = TypeVar("T")

ATTEMPTS = 3
# Up to this many seconds (times the attempt number) before trying again, at random: the two
# transactions that collided should not start over in lockstep.
_JITTER_S = 0.02


async def retry_conflicts(work: Callable[[], Awaitable[T]], attempts: int = ATTEMPTS) -> T:
    """``await work()``, again (up to ``attempts`` times in all) while it fails with a
    transaction conflict; the last conflict, or any other error, is raised."""
    for attempt in range(1, attempts + 1):
        try:
            return await work()
        except Exception as error:
            if attempt == attempts or not transaction_conflict(error):
                raise
            logger.info("transaction conflict (attempt %d of %d): %r", attempt, attempts, error)
            await asyncio.sleep(random.uniform(0, _JITTER_S * attempt))
    raise AssertionError("unreachable")  # the loop returns or raises
