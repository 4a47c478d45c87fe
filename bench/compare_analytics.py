"""Compare every analytics answer of this checkout with another version of hub/analytics/reports.py
(e.g. main's, which computes from the base tables) on the same database.

    python bench/compare_analytics.py /path/to/other/hub/analytics.py postgresql://…/db

Nine scopes (all time, since-only, a closed range, until-only, a business line, two channels,
combinations), every query, every transition grouping with no gap and 1 h / 1 day / 7 days;
prints each difference and the count. Average sentiments are compared to 6 decimals (float sums
in another order).
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from dataclasses import asdict, is_dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from hub.analytics import reports as new
from hub.analytics.rollup import catch_up
from hub.db.engine import sqlalchemy_url


def _load(path: str) -> Any:
    spec = importlib.util.spec_from_file_location("other_analytics", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["other_analytics"] = module
    spec.loader.exec_module(module)
    return module


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return _plain(asdict(value))
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, float):
        return round(value, 6)
    return value


async def main(other_path: str, url: str) -> int:
    old = _load(other_path)
    engine = create_async_engine(sqlalchemy_url(url))
    # What is merely marked would otherwise show as differences (the resolver catches up too).
    await catch_up(engine)
    async with engine.connect() as connection:
        newest = await connection.scalar(sa.text("SELECT max(occurred_at) FROM interactions"))
    lines = await new.business_lines(engine)
    d30, d90 = newest - timedelta(days=30), newest - timedelta(days=90)
    middle = newest - timedelta(days=200, hours=5, minutes=7)
    scopes: dict[str, dict[str, Any]] = {
        "all time": {},
        "30 days": {"since": d30},
        "90 days": {"since": d90},
        "closed range": {"since": middle, "until": d90},
        "until only": {"until": middle},
        "one line": {"business_lines": tuple(lines[:1])},
        "WEB+MOBILE": {"channels": ("WEB", "MOBILE")},
        "30 days, one line": {"since": d30, "business_lines": tuple(lines[-1:])},
        "range, WEB": {"since": middle, "until": d30, "channels": ("WEB",)},
    }
    differences = 0
    for label, bounds in scopes.items():
        a, b = old.Scope(**bounds), new.Scope(**bounds)
        cases = [
            ("channelMix", old.channel_mix(engine, a), new.channel_mix(engine, b)),
            ("stageFunnel", old.stage_funnel(engine, a), new.stage_funnel(engine, b)),
            (
                "touchpointPerformance",
                old.touchpoint_performance(engine, a),
                new.touchpoint_performance(engine, b),
            ),
        ]
        for bucket in ("DAY", "WEEK"):
            cases.append(
                (
                    f"interactionsOverTime {bucket}",
                    old.interactions_over_time(engine, a, old.TimeBucket[bucket]),
                    new.interactions_over_time(engine, b, new.TimeBucket[bucket]),
                )
            )
        for grouping in ("CHANNEL", "TOUCHPOINT", "STAGE"):
            for minutes in (None, 60, 1440, 10080):
                gap = timedelta(minutes=minutes) if minutes else None
                cases.append(
                    (
                        f"channelTransitions {grouping} gap {minutes}",
                        old.transitions(engine, a, old.TransitionGrouping[grouping], gap),
                        new.transitions(engine, b, new.TransitionGrouping[grouping], gap),
                    )
                )
        for name, before, after in cases:
            if _plain(await before) != _plain(await after):
                differences += 1
                print(f"DIFFERENT  {label:18} {name}", flush=True)
        print(f"compared   {label}", flush=True)
    await engine.dispose()
    print(f"{differences} differences")
    return differences


if __name__ == "__main__":
    sys.exit(1 if asyncio.run(main(sys.argv[1], sys.argv[2])) else 0)
