"""What the live-event broker costs the database with several hub processes (issue 8).

    python bench/scale_out.py --server-url postgresql://postgres@127.0.0.1:5432/postgres \\
        --processes 4 --seconds 10

Creates a scratch database, migrates it, then for each broker (`postgres`, `redis`) starts
``--processes`` idle `hub serve` processes and counts the transactions they run on that
database (``pg_stat_database``: commits + rollbacks) over ``--seconds``, after a warm-up. Idle
means no request and no event: what is left is the brokers' outbox polling (and, for `redis`,
the one leader's). The scratch database is dropped at the end; the Redis keys use a prefix of
their own and are deleted.
"""

# Benchmark script: blocking process control in a synchronous script.

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.dataset import database_url  # noqa: E402
from bench.servers import free_port  # noqa: E402
from hub.db.engine import asyncpg_dsn  # noqa: E402
from hub.db.migrations import upgrade  # noqa: E402

STATS = "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = $1"


async def admin(url: str, sql: str) -> None:
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


async def transactions(url: str, name: str) -> int:
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await connection.execute("SELECT pg_stat_clear_snapshot()")
        return int(await connection.fetchval(STATS, name))
    finally:
        await connection.close()


def start(url: str, settings: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {
        **os.environ,
        "HUB_DATABASE_URL": url,
        "HUB_MIGRATE_ON_START": "false",
        "HUB_DEV_MODE": "true",
        **{f"HUB_{k.upper()}": v for k, v in settings.items()},
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "hub", "serve", "--port", str(port), "--no-access-log"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    for _ in range(600):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return process, port
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    raise SystemExit(f"server did not start:\n{log.read_text()}")


def measure(
    server_url: str, url: str, name: str, processes: int, seconds: float, settings: dict[str, str]
) -> float:
    tmp = Path(tempfile.mkdtemp(prefix="hub-scale-"))
    started = [start(url, settings, tmp / f"hub-{i}.log") for i in range(processes)]
    try:
        time.sleep(3)  # warm-up: leader elected, pools open
        before = asyncio.run(transactions(server_url, name))
        time.sleep(seconds)
        after = asyncio.run(transactions(server_url, name))
    finally:
        for process, _ in started:
            process.terminate()
            process.wait(timeout=20)
        shutil.rmtree(tmp, ignore_errors=True)
    # Our own two reads run in another database (server_url's), so they are not counted.
    return (after - before) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server-url", required=True, help="a database URL on the server")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    name = f"hub_scale_{uuid.uuid4().hex[:8]}"
    asyncio.run(admin(args.server_url, f'CREATE DATABASE "{name}"'))
    url = database_url(args.server_url, name)
    prefix = f"hubbench-{uuid.uuid4().hex[:8]}:"
    try:
        upgrade(url)
        results = {}
        for broker, settings in (
            ("postgres", {"broker": "postgres"}),
            (
                "redis",
                {"broker": "redis", "redis_url": args.redis_url, "redis_key_prefix": prefix},
            ),
        ):
            rate = measure(args.server_url, url, name, args.processes, args.seconds, settings)
            results[broker] = round(rate, 1)
        print(json.dumps({"processes": args.processes, "transactions_per_s": results}))
        print("| broker | idle hub processes | database transactions/s |")
        print("|---|---|---|")
        for broker, rate in results.items():
            print(f"| `{broker}` | {args.processes} | {rate} |")
    finally:
        asyncio.run(admin(args.server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        import redis

        client = redis.Redis.from_url(args.redis_url)
        client.delete(f"{prefix}events", f"{prefix}leader")
        client.close()


if __name__ == "__main__":
    main()
