"""Bounded loops: a paging or retry loop that fails instead of hanging."""

from __future__ import annotations

from collections.abc import Iterator


def bounded(limit: int, what: str = "paging") -> Iterator[int]:
    """``for _ in bounded(100):`` instead of ``while True:`` — the loop ``break``s (or returns)
    when done; if it has not after ``limit`` rounds (a cursor that never advances, a page that
    repeats), the test fails here with ``what`` instead of hanging."""
    yield from range(limit)
    raise AssertionError(f"{what} did not end after {limit} rounds")
