"""Segment analytics: sizes over time and overlaps, for analysts.

Sizes come from ``segment_size_changes`` (migration 0021): every statement that writes
membership changes appends, in the same statement, the entries and exits it made per segment
under the UTC hour of its evaluation instant. A segment's size at the end of a bucket is the sum
of ``entered - exited`` of its rows before the bucket's end: exact, and as fine as an hour.
Overlaps are counted from the materialised membership (``segment_members``) as it is now.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncEngine

from hub.analytics.parts import execute

MAX_POINTS = 5000  # buckets times segments in one answer


class SegmentSizeBucket(StrEnum):
    HOUR = "HOUR"
    DAY = "DAY"


_STEP = {SegmentSizeBucket.HOUR: timedelta(hours=1), SegmentSizeBucket.DAY: timedelta(days=1)}


class SegmentAnalyticsError(ValueError):
    """The question cannot be answered as asked (unknown segment, empty range, too long)."""


@dataclass(frozen=True)
class SizePoint:
    """One bucket ``[start, start + step)``: customers who entered and exited in it, and the
    segment's size at its end (its size now for the bucket holding now)."""

    start: datetime
    entered: int
    exited: int
    size: int


@dataclass(frozen=True)
class SizeSeries:
    segment: str
    points: list[SizePoint]


def bucket_start(moment: datetime, bucket: SegmentSizeBucket) -> datetime:
    """The UTC hour or day that holds ``moment``."""
    moment = moment.astimezone(UTC)
    if bucket is SegmentSizeBucket.DAY:
        return moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return moment.replace(minute=0, second=0, microsecond=0)


async def known_segments(engine: AsyncEngine, keys: Sequence[str]) -> list[str]:
    """``keys`` without repeats, in order; an unknown one is an error."""
    wanted = list(dict.fromkeys(keys))
    if not wanted:
        return wanted
    async with engine.connect() as connection:
        rows = await execute(
            connection, "SELECT key FROM segments WHERE key = ANY(:keys)", {"keys": wanted}
        )
    unknown = sorted(set(wanted) - {row["key"] for row in rows})
    if unknown:
        raise SegmentAnalyticsError(f"unknown segment key(s): {', '.join(unknown)}")
    return wanted


async def _some_segments(engine: AsyncEngine, keys: Sequence[str]) -> list[str]:
    if not keys:
        raise SegmentAnalyticsError("name at least one segment in `keys`")
    return await known_segments(engine, keys)


async def segment_sizes(
    engine: AsyncEngine,
    keys: Sequence[str],
    since: datetime,
    until: datetime,
    bucket: SegmentSizeBucket,
) -> list[SizeSeries]:
    """One dense series per segment (in the order of ``keys``): every bucket from the one
    holding ``since`` to the one holding the instant just before ``until``."""
    if since >= until:
        raise SegmentAnalyticsError("`since` must be earlier than `until`")
    wanted = await _some_segments(engine, keys)
    step = _STEP[bucket]
    try:
        first = bucket_start(since, bucket)
        last = bucket_start(until - timedelta(microseconds=1), bucket)
        (last + step).astimezone(UTC)  # the end must be a representable moment too
    except OverflowError:
        raise SegmentAnalyticsError("`since` or `until` is out of range") from None
    count = (last - first) // step + 1
    if count * len(wanted) > MAX_POINTS:
        raise SegmentAnalyticsError(
            f"more than {MAX_POINTS} points: choose a coarser bucket, a shorter range or fewer"
            " segments"
        )
    end = last + step
    async with engine.connect() as connection:
        rows = await execute(
            connection,
            """
            SELECT segment_key,
                   CASE WHEN hour < :first THEN NULL
                        ELSE date_bin(CAST(:step AS interval), hour, CAST(:first AS timestamptz))
                   END AS start,
                   sum(entered)::bigint AS entered, sum(exited)::bigint AS exited
            FROM segment_size_changes
            WHERE segment_key = ANY(:keys) AND hour < :end
            GROUP BY 1, 2
            """,
            {"keys": wanted, "first": first, "end": end, "step": step},
        )
    before: dict[str, int] = {}
    moves: dict[tuple[str, datetime], tuple[int, int]] = {}
    for row in rows:
        if row["start"] is None:
            before[row["segment_key"]] = int(row["entered"]) - int(row["exited"])
        else:
            moves[(row["segment_key"], row["start"])] = (int(row["entered"]), int(row["exited"]))
    series = []
    for key in wanted:
        size = before.get(key, 0)
        points = []
        for n in range(count):
            start = first + n * step
            entered, exited = moves.get((key, start), (0, 0))
            size += entered - exited
            points.append(SizePoint(start, entered, exited, size))
        series.append(SizeSeries(key, points))
    return series


@dataclass(frozen=True)
class Overlap:
    """Customers who are members of both ``a`` and ``b`` now (``a == b``: the segment's size)."""

    a: str
    b: str
    customers: int


async def segment_overlap(engine: AsyncEngine, keys: Sequence[str]) -> list[Overlap]:
    """Every pair of the given segments (each segment with itself first, then the pairs in the
    order of ``keys``), zeros included; counted on ``engine`` (a scoped engine counts its scope)."""
    wanted = await _some_segments(engine, keys)
    async with engine.connect() as connection:
        rows = await execute(
            connection,
            """
            SELECT a.segment_key AS a, b.segment_key AS b, count(*) AS customers
            FROM segment_members a
            JOIN segment_members b
              ON b.customer_id = a.customer_id AND b.segment_key >= a.segment_key
            WHERE a.segment_key = ANY(:keys) AND b.segment_key = ANY(:keys)
            GROUP BY 1, 2
            """,
            {"keys": wanted},
        )
    counts = {(row["a"], row["b"]): int(row["customers"]) for row in rows}

    def both(a: str, b: str) -> int:
        return counts.get((min(a, b), max(a, b)), 0)

    result = [Overlap(key, key, both(key, key)) for key in wanted]
    for i, a in enumerate(wanted):
        for b in wanted[i + 1 :]:
            result.append(Overlap(a, b, both(a, b)))
    return result
