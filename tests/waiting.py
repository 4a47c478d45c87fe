"""Bounded polling, in one place: the only helpers of the suite that sleep (between polls).

A test waits for an explicit, observable condition (a row, a lock wait, a log line, a metric, a
readiness probe), never for time to pass. ``timeout`` is an upper bound that fails the test
instead of hanging; it is never asserted as a duration. tests/test_no_sleeps.py enforces this.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable

POLL_S = 0.05
BOUND_S = 30.0


async def until(
    check: Callable[[], bool | Awaitable[bool]],
    what: str,
    timeout: float = BOUND_S,  # noqa: ASYNC109 (a bound on the polling, as in until_sync)
) -> None:
    """Poll ``check`` (sync or async) until it is true; AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(POLL_S)


def until_sync(check: Callable[[], bool], what: str, timeout: float = BOUND_S) -> None:
    """``until`` for code outside an event loop (fixtures starting processes)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(POLL_S)


async def loop_steps(count: int) -> None:
    """Let the event loop run ``count`` iterations, to place a cancellation at a counted point
    of another task (a sweep over every point); it waits for nothing to happen."""
    for _ in range(count):
        await asyncio.sleep(0)
