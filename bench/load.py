"""The load generator: a separate process sending one request shape at fixed concurrency.

``python -m bench.load --url URL --body '{"query": ..., "variables": {"id": "__ID__"}}'
--ids ids.txt --concurrency 16 --warmup 3 --duration 10 --seed 1`` prints one JSON line:
requests/s, p50/p99 latency (ms), requests and errors counted after the warm-up.

Customer ids are drawn from ``--ids`` by a ``random.Random(seed)``: every server gets the same
sequence. A response counts as an error when it is not HTTP 200 or carries ``"errors"``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time
from pathlib import Path

import aiohttp


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def run(
    url: str,
    body: str,
    ids: list[str],
    concurrency: int,
    warmup: float,
    duration: float,
    seed: int,
) -> dict[str, float]:
    rng = random.Random(seed)
    sequence = [rng.choice(ids) for _ in range(200_000)] if ids else [""]
    position = 0
    latencies: list[float] = []
    errors = 0
    completed = 0  # including the warm-up: what the servers' CPU time is divided by
    started = time.perf_counter()
    measure_from = started + warmup
    stop_at = measure_from + duration
    headers = {"content-type": "application/json", "accept": "application/json"}

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal position, errors, completed
        while True:
            now = time.perf_counter()
            if now >= stop_at:
                return
            customer_id = sequence[position % len(sequence)]
            position += 1
            payload = body.replace("__ID__", customer_id).encode()
            async with session.post(url, data=payload, headers=headers) as response:
                content = await response.read()
            finished = time.perf_counter()
            completed += 1
            if now >= measure_from and finished <= stop_at:
                latencies.append(finished - now)
                if response.status != 200 or b'"errors"' in content:
                    errors += 1

    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    count = len(latencies)
    return {
        "requests": count,
        "completed": completed,
        "errors": errors,
        "rps": count / duration,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "mean_ms": (statistics.fmean(latencies) * 1000) if latencies else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--body", required=True, help="JSON body; __ID__ is replaced by an id")
    parser.add_argument("--ids", type=Path, help="File of customer ids, one a line")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    ids = args.ids.read_text().split() if args.ids else []
    result = asyncio.run(
        run(args.url, args.body, ids, args.concurrency, args.warmup, args.duration, args.seed)
    )
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
