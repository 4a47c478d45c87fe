"""The fixed calendar the demo data lives in.

Every timestamp the generator writes is an offset in seconds from ``EPOCH``, never the wall
clock, so the same seed gives byte-identical rows whenever it runs.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

EPOCH = datetime(2025, 1, 1, tzinfo=UTC)
"""The first moment of the demo data."""

END = datetime(2026, 6, 30, 23, 59, 59, tzinfo=UTC)
"""The last moment of the demo data: "now" as far as the data set is concerned."""

SPAN_SECONDS = int((END - EPOCH).total_seconds())
UNIX_MS = int(EPOCH.timestamp()) * 1000
"""``EPOCH`` in Unix milliseconds (the time field of version-7 UUIDs)."""
MINUTE = 60
HOUR = 60 * MINUTE
DAY = 24 * HOUR
WEEK = 7 * DAY


def at(seconds: int) -> datetime:
    """The moment ``seconds`` after ``EPOCH``."""
    return EPOCH + timedelta(seconds=seconds)


def offset(day: date) -> int:
    """Seconds from ``EPOCH`` to the start of ``day`` (UTC)."""
    return (day - EPOCH.date()).days * DAY
