"""Time every analytics query against a database (e.g. one filled by ``hub seed --customers
100000`` or bench/analytics_1m.sql), as the resolvers run it.

    python bench/explain_analytics.py postgresql://postgres@127.0.0.1:5432/scratch
        [--parts=2] [--repeat=3] [--line=Fashion] [--plans] [--work-mem=64MB]

Scopes are relative to the data: the last 30 days before the newest interaction, one business
line (``--line``, default: the first one stored), two and five channels. Each query runs
``--repeat`` times; the median wall time of the call (statement, transfer and the Python that
shapes the rows) is printed, with the range. ``--parts`` is ``HUB_ANALYTICS_PARTS`` for the
filtered transitions. ``--plans`` instead runs every statement once under ``EXPLAIN (ANALYZE,
BUFFERS)`` (filtered transitions as one statement) and prints the plans.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from hub.analytics import parts as analytics_parts
from hub.analytics import reports as analytics
from hub.db.engine import sqlalchemy_url

PLANS: list[str] = []


async def explain(connection: AsyncConnection, sql: str, params: dict[str, Any]) -> list[Any]:
    result = await connection.execute(sa.text(f"EXPLAIN (ANALYZE, BUFFERS) {sql}"), params)
    PLANS.append("\n".join(row[0] for row in result))
    return []


async def main(
    url: str, show_plans: bool, work_mem: str | None, repeat: int, line: str | None, parts: int
) -> None:
    settings = {"work_mem": work_mem} if work_mem else {}
    engine = create_async_engine(sqlalchemy_url(url), connect_args={"server_settings": settings})
    async with engine.connect() as connection:
        newest = await connection.scalar(sa.text("SELECT max(occurred_at) FROM interactions"))
        lines = await analytics.business_lines(engine)
    line = line or (lines[0] if lines else "retail")
    now = newest or datetime.now(UTC)
    if show_plans:
        # Every statement, filtered transitions included, reads through analytics_parts.execute.
        analytics_parts.execute = explain  # type: ignore[assignment]
        parts, repeat = 1, 1
    since = now - timedelta(days=30)
    scopes = {
        "all time": analytics.Scope(),
        "last 30 days": analytics.Scope(since=since),
        f"all time, {line}": analytics.Scope(business_lines=(line,)),
        "all time, WEB+MOBILE": analytics.Scope(channels=("WEB", "MOBILE")),
        "all time, 5 channels": analytics.Scope(
            channels=("WEB", "MOBILE", "OUTBOUND", "SOCIAL", "ASSISTED")
        ),
        f"30 days, {line}": analytics.Scope(since=since, business_lines=(line,)),
    }
    grouping = analytics.TransitionGrouping
    if "parts" not in inspect.signature(analytics.transitions).parameters:
        # An older checkout (``PYTHONPATH=OTHER``, for a before/after): one statement.
        transitions = analytics.transitions
        analytics.transitions = lambda *a, parts, **k: transitions(*a, **k)  # type: ignore[assignment]
    cases = {
        "channelMix": lambda s: analytics.channel_mix(engine, s),
        "channelTransitions CHANNEL": lambda s: analytics.transitions(
            engine, s, grouping.CHANNEL, None, parts=parts
        ),
        "channelTransitions CHANNEL gap 7d": lambda s: analytics.transitions(
            engine, s, grouping.CHANNEL, timedelta(days=7), parts=parts
        ),
        "channelTransitions TOUCHPOINT": lambda s: analytics.transitions(
            engine, s, grouping.TOUCHPOINT, None, parts=parts
        ),
        "channelTransitions STAGE": lambda s: analytics.transitions(
            engine, s, grouping.STAGE, None, parts=parts
        ),
        "stageFunnel": lambda s: analytics.stage_funnel(engine, s),
        "touchpointPerformance": lambda s: analytics.touchpoint_performance(engine, s),
        "interactionsOverTime DAY": lambda s: analytics.interactions_over_time(
            engine, s, analytics.TimeBucket.DAY
        ),
    }
    for name, run in cases.items():
        for label, scope in scopes.items():
            times: list[float] = []
            for _ in range(repeat):
                PLANS.clear()
                started = time.perf_counter()
                # Under --plans the (empty) rows may not satisfy the post-processing.
                with contextlib.suppress(StopIteration, IndexError, KeyError, TypeError):
                    await run(scope)
                times.append((time.perf_counter() - started) * 1000)
            if show_plans:
                for plan in PLANS:
                    print(f"{name} / {label}\n{plan}\n", flush=True)
                continue
            print(
                f"{name:36} {label:24} {statistics.median(times):8.0f} ms"
                f"  ({min(times):.0f}-{max(times):.0f})",
                flush=True,
            )
    await engine.dispose()


if __name__ == "__main__":

    def option(name: str) -> str | None:
        values = [a.split("=", 1)[1] for a in sys.argv if a.startswith(f"--{name}=")]
        return values[0] if values else None

    asyncio.run(
        main(
            sys.argv[1],
            "--plans" in sys.argv,
            option("work-mem"),
            int(option("repeat") or 3),
            option("line"),
            int(option("parts") or 2),
        )
    )
