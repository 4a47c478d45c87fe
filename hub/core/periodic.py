"""Background work repeated every N seconds, for the tasks ``hub serve`` runs beside requests
(the analytics catch-up, the audiences sweeper, the vocabulary check)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable


async def every(
    interval_s: float, work: Callable[[], Awaitable[object]], logger: logging.Logger, what: str
) -> None:
    """``work()`` every ``interval_s``, forever; one warning per run of failures (e.g. a
    database outage: the work is retried at the next interval, nothing is lost)."""
    failures = 0
    while True:
        await asyncio.sleep(interval_s)
        try:
            await work()
        except Exception as error:
            failures += 1
            if failures == 1:
                logger.warning("%s failed; retrying: %r", what, error)
        else:
            failures = 0
