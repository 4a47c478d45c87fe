"""What read routing to a replica costs per query (issue 8, HUB_READ_DATABASE_URL).

    python bench/replica_routing.py --requests 300

Starts a private primary + streaming replica (tests/replica_cluster.py, same machine), migrates,
creates one customer and an ADMIN key, then times ``--requests`` sequential
``customer(id)`` queries (the compiled read path) against one `hub serve`:

* ``primary only``: no replica configured;
* ``replica``: HUB_READ_DATABASE_URL set, the caller has never written (reads the replica,
  after the fence lookup on the primary);
* ``primary after own write``: the same, right after the caller's mutation with replay paused
  (every query reads the primary: fence lookup + primary).

Same machine, same disks: this measures the routing's overhead, not a replica's relief of the
primary. Latency is client-side wall time per request (p50/p90), after 30 warm-up requests.
"""

# Benchmark script: blocking process control in a synchronous script.

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
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

from hub.access.keys import Role, create_key  # noqa: E402
from hub.core.settings import Settings  # noqa: E402
from hub.db.engine import asyncpg_dsn, create_engine  # noqa: E402
from hub.db.migrations import upgrade  # noqa: E402
from tests.factories import Factory, gid  # noqa: E402
from tests.live_server import start_server, wait_until  # noqa: E402
from tests.replica_cluster import replica_cluster  # noqa: E402

QUERY = "query($id: ID!) { customer(id: $id) { id displayName } }"
RECORD = (
    "mutation($tp: ID!, $key: String!) { recordInteraction(input: {identities: [{kind: EMAIL,"
    ' value: "bench@example.com"}], touchpointId: $tp, type: ORDER, direction: INBOUND,'
    " idempotencyKey: $key}) { interaction { id } } }"
)


async def execute(url: str, sql: str) -> Any:
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        return await connection.fetchval(sql)
    finally:
        await connection.close()


async def replayed(url: str) -> bool:
    """Whether the replica shows the bench's key yet."""
    try:
        return bool(await execute(url, "SELECT count(*) FROM api_keys") == 1)
    except (OSError, asyncpg.PostgresError):
        return False


async def seed(url: str) -> tuple[str, str, str]:
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        factory = Factory(connection)
        touchpoint = await factory.touchpoint("Shop", "WEB", "WEBSITE")
        customer = await factory.customer("Ada")
    finally:
        await connection.close()
    engine = create_engine(url, Settings(database_url=url))
    try:
        async with engine.begin() as transaction:
            key = (await create_key(transaction, name="bench", role=Role.ADMIN)).key
    finally:
        await engine.dispose()
    return gid("Customer", customer), gid("Touchpoint", touchpoint), key


def timed(base: str, key: str, customer: str, requests: int) -> dict[str, float]:
    headers = {"Authorization": f"Bearer {key}"}
    body = {"query": QUERY, "variables": {"id": customer}}
    seconds = []
    with httpx.Client(base_url=base, headers=headers) as http:
        for index in range(30 + requests):
            started = time.perf_counter()
            response = http.post("/graphql", json=body)
            elapsed = time.perf_counter() - started
            assert response.status_code == 200 and "errors" not in response.json(), response.text
            if index >= 30:
                seconds.append(elapsed)
    ordered = sorted(seconds)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p90_ms": round(ordered[int(0.9 * len(ordered))] * 1000, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    tmp = Path(tempfile.mkdtemp(prefix="hub-routing-"))
    with replica_cluster() as cluster:
        asyncio.run(execute(cluster.primary_url(), 'CREATE DATABASE "hub"'))
        primary, replica = cluster.primary_url("hub"), cluster.replica_url("hub")
        upgrade(primary)
        customer, touchpoint, key = asyncio.run(seed(primary))
        wait_until(lambda: asyncio.run(replayed(replica)), "the replica")
        settings: dict[str, Any] = {"dev_mode": False, "rate_limit_per_second": 1_000_000}
        server = start_server(primary, tmp, **settings)
        try:
            results["primary only"] = timed(server.http_url, key, customer, args.requests)
        finally:
            server.stop()
        server = start_server(primary, tmp, read_database_url=replica, **settings)
        try:
            results["replica"] = timed(server.http_url, key, customer, args.requests)
            asyncio.run(execute(replica, "SELECT pg_wal_replay_pause()"))
            try:
                answer = httpx.post(
                    f"{server.http_url}/graphql",
                    json={
                        "query": RECORD,
                        "variables": {"tp": touchpoint, "key": uuid.uuid4().hex},
                    },
                    headers={"Authorization": f"Bearer {key}"},
                ).json()
                assert "errors" not in answer, answer
                results["primary after own write"] = timed(
                    server.http_url, key, customer, args.requests
                )
            finally:
                asyncio.run(execute(replica, "SELECT pg_wal_replay_resume()"))
        finally:
            server.stop()
    shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps({"requests": args.requests, "results": results}))
    print("| reads | p50 | p90 |")
    print("|---|---|---|")
    for name, numbers in results.items():
        print(f"| {name} | {numbers['p50_ms']} ms | {numbers['p90_ms']} ms |")


if __name__ == "__main__":
    main()
