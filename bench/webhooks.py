"""Benchmark of webhook delivery: deliveries per second to many webhooks, commit-to-receiver
latency.

    python bench/webhooks.py --database-url postgresql://postgres@127.0.0.1:5432/postgres

Creates a scratch database on that server (dropped at the end), starts one `hub serve` process
on it (bench/scale_out.py's, development mode; HUB_WEBHOOK_ALLOW_PRIVATE so it may POST to
127.0.0.1), registers
``--webhooks`` webhooks (the same `interactionRecorded` document) pointing at one receiver in
this process, then records ``--events`` interactions at ``--rate`` per second (each transaction
one interaction row and its outbox event, as ingest writes them). The receiver notes when each
delivery arrives; the writer notes when each COMMIT returned (one machine, one clock). Reported:
deliveries per second (all deliveries over the time from the first commit to the last arrival)
and commit-to-receiver latency p50/p99. The receiver verifies the Standard Webhooks signature of
every delivery with the official `standardwebhooks` package (its cost is in the numbers).
Results are printed as JSON and a Markdown row (docs/webhooks.md).
"""

# Benchmark script: blocking setup and process handling in async code are fine here.
# ruff: noqa: ASYNC110

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.scale_out import start  # noqa: E402
from hub.core.ids import to_global_id  # noqa: E402
from hub.db.engine import asyncpg_dsn  # noqa: E402
from tests.webhooks.receiver import Receiver, receiving  # noqa: E402

FEED = "subscription { interactionRecorded { cursor interaction { id type occurredAt } } }"
INSERT_INTERACTION = (
    "INSERT INTO interactions (id, customer_id, touchpoint_id, channel_code, occurred_at, type,"
    " direction, attributes) VALUES ($1, $2, $3, 'WEB', now(), 'PAGE_VIEW', 'INBOUND', '{}')"
)
INSERT_EVENT = (
    "INSERT INTO events (kind, customer_id, subject_id, channel_code, touchpoint_id)"
    " VALUES ('INTERACTION_RECORDED', $1, $2, 'WEB', $3)"
)
CREATE = "mutation($i: CreateWebhookInput!) { createWebhook(input: $i) { secret } }"


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def run(args: argparse.Namespace, database_url: str) -> dict[str, Any]:
    from hub.db.migrations import upgrade

    await asyncio.to_thread(upgrade, database_url)
    pool = await asyncpg.create_pool(asyncpg_dsn(database_url), min_size=2, max_size=4)
    customer, touchpoint = uuid.uuid4(), uuid.uuid4()
    await pool.execute(
        "INSERT INTO touchpoints (id, channel_code, name, kind) VALUES ($1, 'WEB', 'Bench',"
        " 'WEBSITE')",
        touchpoint,
    )
    await pool.execute(
        "INSERT INTO customers (id, display_name, traits, created_at, updated_at)"
        " VALUES ($1, 'Bench', '{}', now(), now())",
        customer,
    )
    work = Path(tempfile.mkdtemp(prefix="hub-bench-webhooks-"))
    settings = {"webhook_allow_private": "true", "webhook_lease_s": "3"}
    process, port = start(database_url, settings, work / "server.log")
    arrivals: dict[str, list[float]] = {}
    committed: dict[str, float] = {}
    try:
        async with receiving(Receiver()) as receiver:
            # Notes each verified delivery's arrival by the interaction it carries.
            original = receiver.requests

            class Noting(list[Any]):
                def append(self, request: Any) -> None:
                    if request.verified:
                        interaction = json.loads(request.body)["data"]["interactionRecorded"]
                        arrivals.setdefault(interaction["interaction"]["id"], []).append(
                            time.perf_counter()
                        )
                    super().append(request)

            receiver.requests = Noting(original)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
                for index in range(args.webhooks):
                    answer = await http.post(
                        "/graphql",
                        json={
                            "query": CREATE,
                            "variables": {"i": {"url": f"{receiver.url}/{index}", "query": FEED}},
                        },
                    )
                    secret = answer.json()["data"]["createWebhook"]["secret"]
                    receiver.secret_by_path[f"/hook/{index}"] = secret
            # Every webhook is leased and its task reads the outbox before the clock starts.
            async with asyncio.timeout(60):
                while (
                    await pool.fetchval(
                        "SELECT count(*) FROM webhooks WHERE lease_owner IS NOT NULL"
                    )
                    < args.webhooks
                ):
                    await asyncio.sleep(0.1)

            async def record() -> None:
                interaction = uuid.uuid4()
                async with pool.acquire() as connection, connection.transaction():
                    await connection.execute(INSERT_INTERACTION, interaction, customer, touchpoint)
                    await connection.execute(INSERT_EVENT, customer, interaction, touchpoint)
                committed[to_global_id("Interaction", str(interaction))] = time.perf_counter()

            started = time.perf_counter()
            writes = []
            for n in range(args.events):
                writes.append(asyncio.create_task(record()))
                await asyncio.sleep(max(0.0, started + (n + 1) / args.rate - time.perf_counter()))
            await asyncio.gather(*writes)
            expected = args.events * args.webhooks
            deadline = time.perf_counter() + args.drain_s
            while sum(map(len, arrivals.values())) < expected and time.perf_counter() < deadline:
                await asyncio.sleep(0.05)
    finally:
        process.terminate()
        process.wait(timeout=30)
        await pool.close()
    latencies = [(at - committed[key]) * 1000 for key, times in arrivals.items() for at in times]
    delivered = len(latencies)
    last = max((t for times in arrivals.values() for t in times), default=started)
    return {
        "webhooks": args.webhooks,
        "events": args.events,
        "rate_per_s": args.rate,
        "deliveries": delivered,
        "expected": args.events * args.webhooks,
        "deliveries_per_s": round(delivered / (last - started), 1) if delivered else 0.0,
        "latency_ms_p50": round(percentile(latencies, 0.5), 1) if latencies else None,
        "latency_ms_p99": round(percentile(latencies, 0.99), 1) if latencies else None,
        "latency_ms_mean": round(statistics.fmean(latencies), 1) if latencies else None,
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    name = f"hub_bench_webhooks_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(asyncpg_dsn(args.database_url))
    await admin.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = args.database_url.rpartition("/")
    try:
        return await run(args, f"{base}/{name}")
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", required=True, help="A server URL (any database).")
    parser.add_argument("--webhooks", type=int, default=100)
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--rate", type=float, default=20.0, help="Interactions per second.")
    parser.add_argument("--drain-s", type=float, default=120.0, help="Most wait for the rest.")
    result = asyncio.run(main(parser.parse_args()))
    print(json.dumps(result, indent=2))
    print(
        f"| {result['webhooks']} | {result['events']} @ {result['rate_per_s']:g}/s"
        f" | {result['deliveries']}/{result['expected']} | {result['deliveries_per_s']}"
        f" | {result['latency_ms_p50']} | {result['latency_ms_p99']} |"
    )
