"""The load generator: a separate process sending one request shape at fixed concurrency.

``python -m bench.load --url URL --body '{"query": ..., "variables": {"id": "__ID__"}}'
--ids ids.txt --concurrency 16 --warmup 3 --duration 10 --seed 1`` prints one JSON line:
requests/s, p50/p99 latency (ms), requests and errors counted after the warm-up.

Customer ids are drawn from ``--ids`` by a ``random.Random(seed)``: every server gets the same
sequence. A response counts as an error when it is not HTTP 200 or carries ``"errors"``.

Write scenarios need a fresh body per request: ``__UUID__`` becomes a new UUID, ``__N__`` a
counter and ``__AT__`` the current time (ISO 8601). ``--items K --item TEMPLATE`` replaces
``__ITEMS__`` in the body with K copies of the template joined by ``--join`` (each copy with its
own id, UUID and number, and ``__K__`` its position in the batch): a batch of K events per
request.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import aiohttp


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


class Bodies:
    """Request bodies: ids in the seeded sequence, fresh UUIDs and numbers for writes."""

    def __init__(
        self, body: str, ids: list[str], seed: int, item: str | None, items: int, join: str
    ) -> None:
        rng = random.Random(seed)
        self.sequence = [rng.choice(ids) for _ in range(200_000)] if ids else [""]
        self.body, self.item, self.items, self.join = body, item, items, join
        self.position = 0

    def _fill(self, template: str, index: int = 0) -> str:
        self.position += 1
        if "__K__" in template:
            template = template.replace("__K__", str(index))
        text = template.replace("__ID__", self.sequence[self.position % len(self.sequence)])
        if "__UUID__" in text:
            text = text.replace("__UUID__", str(uuid.uuid4()))
        if "__AT__" in text:
            text = text.replace("__AT__", datetime.now(UTC).isoformat())
        return text.replace("__N__", str(self.position))

    def next(self) -> bytes:
        if self.item is None:
            return self._fill(self.body).encode()
        batch = self.join.join(self._fill(self.item, k) for k in range(self.items))
        return self.body.replace("__ITEMS__", batch).encode()


async def run(
    url: str,
    bodies: Bodies,
    concurrency: int,
    warmup: float,
    duration: float,
    failures: tuple[bytes, ...] = (b'"errors"',),
    extra_headers: dict[str, str] | None = None,
    max_requests: int | None = None,
) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    completed = 0  # including the warm-up: what the servers' CPU time is divided by
    # Throughput and latencies count every answer that arrives inside the window, whenever it
    # was asked: a request longer than the window (a big batch on a slow server) still counts.
    finished_in_window = 0
    started = time.perf_counter()
    measure_from = started + warmup
    stop_at = measure_from + duration
    headers = {"content-type": "application/json", "accept": "application/json"}
    headers.update(extra_headers or {})

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal errors, completed, finished_in_window
        while True:
            now = time.perf_counter()
            if now >= stop_at or (max_requests is not None and completed >= max_requests):
                return
            payload = bodies.next()
            async with session.post(url, data=payload, headers=headers) as response:
                content = await response.read()
            finished = time.perf_counter()
            completed += 1
            failed = response.status != 200 or any(marker in content for marker in failures)
            if measure_from <= finished <= stop_at:
                finished_in_window += 1
                errors += failed
                latencies.append(finished - now)

    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    window = min(duration, time.perf_counter() - measure_from)
    return {
        "requests": finished_in_window,
        "completed": completed,
        "errors": errors,
        "rps": finished_in_window / window if window > 0 else float("nan"),
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
    parser.add_argument("--item", help="Template of one batch item (replaces __ITEMS__)")
    parser.add_argument("--items", type=int, default=1, help="Items per request")
    parser.add_argument("--join", default=",", help="Separator between items")
    parser.add_argument(
        "--fail-if",
        action="append",
        default=['"errors"'],
        help="A response containing this text counts as an error (repeatable)",
    )
    parser.add_argument(
        "--max-requests", type=int, help="Stop after this many requests (all clients together)"
    )
    parser.add_argument(
        "--header",
        action="append",
        default=[],
        help="An extra request header, 'Name: value' (repeatable; e.g. the API key)",
    )
    args = parser.parse_args()
    extra = {
        name.strip(): value.strip() for name, _, value in (h.partition(":") for h in args.header)
    }
    ids = args.ids.read_text().split() if args.ids else []
    bodies = Bodies(args.body, ids, args.seed, args.item, args.items, args.join)
    result = asyncio.run(
        run(
            args.url,
            bodies,
            args.concurrency,
            args.warmup,
            args.duration,
            tuple(marker.encode() for marker in args.fail_if),
            extra,
            args.max_requests,
        )
    )
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
