"""Segment materialisation on the benchmark data set (issue #18 target: ≤ 5 s at 100k customers
/ 2M interactions for a segment of typical complexity).

    python -m bench.audiences --server postgresql://postgres@127.0.0.1:5432/postgres

Uses (and reuses) a scratch database of its own, ``hub_bench_audiences``; creates three segments
of increasing complexity through ``hub.audiences.membership.materialise`` (the statement
``createSegment`` runs), times each in its own transaction (rolled back), and then times
``on_customers_changed`` for one customer with all three defined.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import asyncpg
from sqlalchemy.ext.asyncio import create_async_engine

from bench.dataset import ensure_dataset
from hub.audiences.membership import materialise, on_customers_changed
from hub.db.engine import asyncpg_dsn, sqlalchemy_url

SEGMENTS = {
    "stage": {
        "filter": {"stage": {"in_": ["PURCHASE", "RETENTION"]}},
        "activity": [],
        "computed": [],
    },
    "buyers-90d": {
        "filter": {"channels_used": {"any": ["WEB", "MOBILE"]}},
        "activity": [
            {"interactions": {"types": ["ORDER"]}, "within_days": 90, "min": 1, "max": None}
        ],
        "computed": [],
    },
    "engaged-not-buying": {
        "filter": {"stage": {"in_": ["CONSIDERATION"]}},
        "activity": [
            {"interactions": {"channels": ["WEB"]}, "within_days": 30, "min": 2, "max": None},
            {"interactions": {"types": ["ORDER"]}, "within_days": 60, "min": None, "max": 0},
        ],
        "computed": [],
    },
}


async def main(server: str, customers: int, source: str) -> None:
    url, label = await ensure_dataset(server, "hub_bench_audiences", customers, 7, source)
    raw = await asyncpg.connect(asyncpg_dsn(url))
    counts = await raw.fetchrow(
        "SELECT (SELECT count(*) FROM customers) AS c, (SELECT count(*) FROM interactions) AS i"
    )
    print(f"{label}: {counts['c']} customers, {counts['i']} interactions")
    engine = create_async_engine(sqlalchemy_url(url))
    try:
        for key, definition in SEGMENTS.items():
            async with engine.connect() as connection:
                transaction = await connection.begin()
                await connection.exec_driver_sql(
                    "INSERT INTO segments (key, name, definition, created_by)"
                    " VALUES ($1, $1, $2::jsonb, 'bench')",
                    (key, json.dumps(definition)),
                )
                started = time.perf_counter()
                outcome = await materialise(connection, key, emit=False)
                elapsed = time.perf_counter() - started
                print(f"materialise {key}: {len(outcome.changes)} members in {elapsed:.2f} s")
                await transaction.rollback()
        async with engine.connect() as connection:
            transaction = await connection.begin()
            for key, definition in SEGMENTS.items():
                await connection.exec_driver_sql(
                    "INSERT INTO segments (key, name, definition, created_by)"
                    " VALUES ($1, $1, $2::jsonb, 'bench')",
                    (key, json.dumps(definition)),
                )
            ids = [r["id"] for r in await raw.fetch("SELECT id FROM customers LIMIT 200")]
            await on_customers_changed(connection, ids[:1], reason="INGEST")  # compile, cache
            started = time.perf_counter()
            for cid in ids[1:]:
                await on_customers_changed(connection, [cid], reason="INGEST")
            per = (time.perf_counter() - started) / (len(ids) - 1) * 1000
            print(f"on_customers_changed, 1 customer, {len(SEGMENTS)} segments: {per:.2f} ms")
            await transaction.rollback()
    finally:
        await engine.dispose()
        await raw.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--source", default="sql", choices=["sql", "seed", "auto"])
    args = parser.parse_args()
    asyncio.run(main(args.server, args.customers, args.source))
