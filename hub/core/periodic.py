"""Background work repeated at an interval (analytics catch-up, the vocabulary check)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable


async def every(
    interval_s: float, work: Callable[[], Awaitable[object]], logger: logging.Logger, what: str
) -> None:
    """Run ``work`` every ``interval_s`` until cancelled; one warning per run of failures (e.g.
    a database outage), then retried at the next interval."""
    failures = 0
    while True:
        await asyncio.sleep(interval_s)
        try:
            await work()
        except Exception as error:  # retried at the next interval
            failures += 1
            if failures == 1:
                logger.warning("%s failed; retrying: %r", what, error)
        else:
            failures = 0
