"""EXPLAIN ANALYZE every analytics statement against a database (e.g. one filled by
bench/analytics_1m.sql) and print the execution times.

    python bench/explain_analytics.py postgresql://postgres@127.0.0.1:5432/scratch [--plans]
        [--work-mem=64MB]
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from hub import analytics
from hub.database import sqlalchemy_url

PLANS: list[str] = []


async def explain(engine: AsyncEngine, sql: str, params: dict[str, Any]) -> list[Any]:
    async with engine.connect() as connection:
        result = await connection.execute(sa.text(f"EXPLAIN (ANALYZE, BUFFERS) {sql}"), params)
        PLANS.append("\n".join(row[0] for row in result))
    return []


async def main(url: str, show_plans: bool, work_mem: str | None) -> None:
    settings = {"work_mem": work_mem} if work_mem else {}
    engine = create_async_engine(sqlalchemy_url(url), connect_args={"server_settings": settings})
    analytics._rows = explain  # type: ignore[assignment]
    now = datetime.now(UTC)
    scopes = {
        "all time": analytics.Scope(),
        "30 days, one line": analytics.Scope(
            since=now - timedelta(days=30), business_lines=("retail",)
        ),
    }
    grouping = analytics.TransitionGrouping
    cases = {
        "channelMix": lambda s: analytics.channel_mix(engine, s),
        "channelTransitions CHANNEL": lambda s: analytics.transitions(
            engine, s, grouping.CHANNEL, None
        ),
        "channelTransitions CHANNEL gap 7d": lambda s: analytics.transitions(
            engine, s, grouping.CHANNEL, timedelta(days=7)
        ),
        "channelTransitions TOUCHPOINT": lambda s: analytics.transitions(
            engine, s, grouping.TOUCHPOINT, None
        ),
        "channelTransitions STAGE": lambda s: analytics.transitions(
            engine, s, grouping.STAGE, None
        ),
        "stageFunnel": lambda s: analytics.stage_funnel(engine, s),
        "touchpointPerformance": lambda s: analytics.touchpoint_performance(engine, s),
        "interactionsOverTime DAY": lambda s: analytics.interactions_over_time(
            engine, s, analytics.TimeBucket.DAY
        ),
    }
    for name, run in cases.items():
        for label, scope in scopes.items():
            PLANS.clear()
            # The fake (empty) rows may not satisfy the post-processing; the plan is what counts.
            with contextlib.suppress(StopIteration, IndexError, KeyError, TypeError):
                await run(scope)
            plan = PLANS[0]
            ms = re.search(r"Execution Time: ([\d.]+) ms", plan)
            print(f"{name:36} {label:18} {float(ms.group(1)) if ms else -1:8.0f} ms", flush=True)
            if show_plans:
                print(plan, "\n")
    await engine.dispose()


if __name__ == "__main__":
    memory = [a.split("=", 1)[1] for a in sys.argv if a.startswith("--work-mem=")]
    asyncio.run(main(sys.argv[1], "--plans" in sys.argv, memory[0] if memory else None))
