"""Benchmark of live subscriptions: fan-out to many websocket subscribers and ingest cost.

    python bench/subscriptions.py --database-url postgresql://postgres@127.0.0.1:5432/hub_bench

Starts one `hub serve` process on the database (migrating it), then:

1. ingest throughput with no subscriber: concurrent writers, each transaction one interaction row
   plus its outbox event (what the ingest mutations do), for a fixed duration;
2. N subscribers (a separate client process, one websocket each, the same query) while writers
   record interactions at a fixed rate: deliveries per second and commit-to-client latency
   (p50/p99; the writer stamps the time after COMMIT returns, the client the time a `next`
   arrives — one machine, one clock);
3. ingest throughput again, unthrottled, with the N subscribers connected and receiving.

Results are printed as JSON and a Markdown table (copy into docs/subscriptions.md).
"""

# Benchmark script: blocking setup and file I/O in async code are fine here.
# ruff: noqa: ASYNC110, ASYNC220, ASYNC240

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.servers import free_port  # noqa: E402
from hub.core.ids import to_global_id  # noqa: E402
from hub.db.engine import asyncpg_dsn  # noqa: E402

FEED = "subscription { interactionRecorded { cursor interaction { id type occurredAt } } }"
# The same feed on PostGraphile (bench/postgraphile/graphile.config.mjs adds the field); the raw
# endpoint ignores the query and sends the hub's shape without the cursor.
FEEDS = {
    "hub": FEED,
    "raw": FEED,
    "postgraphile": (
        "subscription { interactionRecorded { interaction { rowId type occurredAt } } }"
    ),
}
# PostGraphile and the raw endpoint hear each recorded interaction through this NOTIFY (the hub
# polls its outbox and ignores it); installed for every server so that writers do the same work.
NOTIFY_TRIGGER = """
CREATE SCHEMA IF NOT EXISTS bench;
CREATE OR REPLACE FUNCTION bench.notify_interaction_recorded() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('bench_interaction_recorded', NEW.subject_id::text);
  RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS bench_notify_interaction_recorded ON events;
CREATE TRIGGER bench_notify_interaction_recorded AFTER INSERT ON events
FOR EACH ROW WHEN (NEW.kind = 'INTERACTION_RECORDED')
EXECUTE FUNCTION bench.notify_interaction_recorded();
"""
# Connected but idle: a filter no benchmark event matches (isolates the broker's own cost).
IDLE_FEED = (
    "subscription { interactionRecorded(filter: {types: [RENEWAL]})"
    " { cursor interaction { id type occurredAt } } }"
)
INSERT_INTERACTION = (
    "INSERT INTO interactions (id, customer_id, touchpoint_id, channel_code, occurred_at, type,"
    " direction, attributes) VALUES ($1, $2, $3, 'WEB', now(), 'PAGE_VIEW', 'INBOUND', '{}')"
)
INSERT_EVENT = (
    "INSERT INTO events (kind, customer_id, subject_id, channel_code, touchpoint_id)"
    " VALUES ('INTERACTION_RECORDED', $1, $2, 'WEB', $3)"
)


# ---- client process: many websocket subscribers ----

DRAIN_LIMIT_S = 30.0


async def client_main(url: str, count: int, out: Path, idle: float, query: str) -> None:
    import websockets

    arrivals: dict[str, list[float]] = {}
    errors: dict[str, int] = {}
    ready = asyncio.Semaphore(0)
    last_message = [time.time()]

    async def subscriber(index: int) -> None:
        async with websockets.connect(
            url, subprotocols=["graphql-transport-ws"], max_size=None, open_timeout=60
        ) as ws:
            await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
            assert json.loads(await ws.recv())["type"] == "connection_ack"
            await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": query}}))
            ready.release()
            try:
                async for raw in ws:
                    now = time.time()
                    last_message[0] = now
                    message = json.loads(raw)
                    if message["type"] == "next":
                        event = message["payload"]["data"]["interactionRecorded"]["interaction"]
                        key = event["id"] if "id" in event else global_id(uuid.UUID(event["rowId"]))
                        arrivals.setdefault(key, []).append(now)
                    elif message["type"] == "ping":
                        await ws.send('{"type":"pong"}')
                    elif message["type"] == "error":
                        code = message["payload"][0]["extensions"]["code"]
                        errors[code] = errors.get(code, 0) + 1
            except websockets.ConnectionClosed:
                pass

    tasks = []
    for index in range(count):
        tasks.append(asyncio.create_task(subscriber(index)))
        if index % 50 == 49:
            await asyncio.sleep(0.05)  # do not stampede the accept queue
    for _ in range(count):
        await ready.acquire()
    await asyncio.sleep(1.0)  # let every subscription register with the broker
    print("ready", flush=True)

    async def progress() -> None:
        while True:
            await asyncio.sleep(0.5)
            print(f"delivered {sum(len(t) for t in arrivals.values())}", flush=True)

    reporter = asyncio.create_task(progress())
    # Run until the parent says "stop" on stdin and the stream has gone quiet.
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.readline)
    # Drain until the stream has been quiet for ``idle`` seconds, but at most DRAIN_LIMIT_S: a
    # server far behind (PostGraphile loads each event once per subscriber) would otherwise keep
    # the run going for many minutes; the rate is measured over what arrived.
    drain_until = time.time() + DRAIN_LIMIT_S
    while time.time() - last_message[0] < idle and time.time() < drain_until:
        await asyncio.sleep(0.2)
    reporter.cancel()
    for task in tasks:
        task.cancel()
    out.write_text(json.dumps({"arrivals": arrivals, "errors": errors}))


# ---- parent: server, writers, report ----


class Writers:
    def __init__(self, pool: asyncpg.Pool, customer: uuid.UUID, touchpoint: uuid.UUID) -> None:
        self.pool = pool
        self.customer = customer
        self.touchpoint = touchpoint
        self.committed: dict[str, float] = {}

    async def record(self) -> None:
        interaction = uuid.uuid4()
        async with self.pool.acquire() as connection, connection.transaction():
            await connection.execute(
                INSERT_INTERACTION, interaction, self.customer, self.touchpoint
            )
            await connection.execute(INSERT_EVENT, self.customer, interaction, self.touchpoint)
        self.committed[global_id(interaction)] = time.time()

    async def unthrottled(self, writers: int, seconds: float) -> float:
        """Transactions per second with ``writers`` concurrent writers."""
        deadline = time.monotonic() + seconds
        done = [0]

        async def one() -> None:
            while time.monotonic() < deadline:
                await self.record()
                done[0] += 1

        start = time.monotonic()
        await asyncio.gather(*(one() for _ in range(writers)))
        return done[0] / (time.monotonic() - start)

    async def paced(self, rate: float, seconds: float) -> int:
        total = int(rate * seconds)
        start = time.monotonic()
        pending = []
        for n in range(total):
            delay = start + n / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            pending.append(asyncio.create_task(self.record()))
        await asyncio.gather(*pending)
        return total


def global_id(interaction: uuid.UUID) -> str:
    return to_global_id("Interaction", str(interaction))


def start_server(
    database_url: str, port: int, shared: bool, queue_size: int, log: Path
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "HUB_DATABASE_URL": database_url,
        "HUB_MIGRATE_ON_START": "false",  # parent_main has migrated (the trigger needs it)
        "HUB_WS_SHARED_EXECUTION": "true" if shared else "false",
        "HUB_WS_MAX_SUBSCRIPTIONS": "5",
        "HUB_SUBSCRIBER_QUEUE_SIZE": str(queue_size),
        # Development mode: 1,000 connections without keys (the key check at connection_init
        # is not what this measures), and no per-key rate limit on the writers.
        "HUB_DEV_MODE": "true",
        "HUB_RATE_LIMIT_PER_SECOND": "1000000",
        "HUB_RATE_LIMIT_BURST": "1000000",
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "hub", "serve", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    import httpx

    for _ in range(600):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        if process.poll() is not None:
            break
        time.sleep(0.1)
    process.kill()
    raise SystemExit(f"server did not start:\n{log.read_text()}")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def parent_main(args: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    from hub.db.migrations import upgrade

    await asyncio.to_thread(upgrade, args.database_url)  # the trigger needs the outbox table
    setup = await asyncpg.connect(asyncpg_dsn(args.database_url))
    try:
        await setup.execute(NOTIFY_TRIGGER)
    finally:
        await setup.close()
    others = contextlib.ExitStack()
    if args.server == "hub":
        server = start_server(
            args.database_url, port, not args.no_shared, args.queue_size, work / "server.log"
        )
    else:
        from bench.servers import start_servers

        started = others.enter_context(
            start_servers([args.server], args.database_url, port, work / "logs")
        )
        server = started[args.server].process
    client: subprocess.Popen[str] | None = None
    pool = await asyncpg.create_pool(asyncpg_dsn(args.database_url), min_size=2, max_size=16)
    try:
        async with pool.acquire() as connection:
            touchpoint = await connection.fetchval(
                "INSERT INTO touchpoints (id, channel_code, name, kind) VALUES ($1, 'WEB',"
                " $2, 'WEBSITE') RETURNING id",
                uuid.uuid4(),
                f"bench-{uuid.uuid4().hex[:6]}",
            )
            customer = await connection.fetchval(
                "INSERT INTO customers (id, display_name, traits, created_at, updated_at)"
                " VALUES ($1, 'Bench', '{}', now(), now()) RETURNING id",
                uuid.uuid4(),
            )
        writers = Writers(pool, customer, touchpoint)
        results: dict[str, Any] = {
            "subscribers": args.subscribers,
            "shared_execution": not args.no_shared,
            "writers": args.writers,
        }
        results["ingest_tx_per_s_without_subscribers"] = round(
            await writers.unthrottled(args.writers, args.seconds), 1
        )

        out = work / "arrivals.json"
        client = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "client",
                "--url",
                f"ws://127.0.0.1:{port}/graphql",
                "--subscribers",
                str(args.subscribers),
                "--server",
                args.server,
                "--out",
                str(out),
                *(["--idle-subscribers"] if args.idle_subscribers else []),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert client.stdout is not None and client.stdin is not None
        line = await asyncio.get_running_loop().run_in_executor(None, client.stdout.readline)
        if line.strip() != "ready":
            raise SystemExit("client did not get ready")

        writers.committed.clear()
        events = await writers.paced(args.rate, args.seconds)
        paced_ids = set(writers.committed)
        paced_commits = dict(writers.committed)
        # Let the paced events drain to every subscriber before flooding.
        expected = 0 if args.idle_subscribers else events * args.subscribers
        last, stalled_since = -1, time.monotonic()
        while time.monotonic() - stalled_since < 5:
            line = await asyncio.get_running_loop().run_in_executor(None, client.stdout.readline)
            count = int(line.split()[1])
            if count >= expected:
                break
            if count != last:
                last, stalled_since = count, time.monotonic()
        writers.committed.clear()
        results["ingest_tx_per_s_with_subscribers"] = round(
            await writers.unthrottled(args.writers, args.seconds), 1
        )
        flood_commits = dict(writers.committed)
        client.stdin.write("stop\n")
        client.stdin.flush()
        drain = asyncio.get_running_loop().run_in_executor(None, client.stdout.read)
        await drain
        await asyncio.get_running_loop().run_in_executor(None, client.wait)
        # Again without subscribers: the machine's load drifts, so bracket the measurement.
        results["ingest_tx_per_s_without_subscribers_after"] = round(
            await writers.unthrottled(args.writers, args.seconds), 1
        )
        report = json.loads(out.read_text())
        arrivals: dict[str, list[float]] = report["arrivals"]
        latencies = [
            (arrived - paced_commits[key]) * 1000
            for key, times in arrivals.items()
            if key in paced_ids
            for arrived in times
        ]
        delivered = len(latencies)
        first_commit = min(paced_commits.values())
        last_arrival = max(
            (t for key, times in arrivals.items() if key in paced_ids for t in times),
            default=first_commit,
        )
        flood_times = [t for key, times in arrivals.items() if key in flood_commits for t in times]
        flooded = len(flood_times)
        flood_last = max(flood_times, default=0.0)
        results.update(
            {
                "idle_subscribers": args.idle_subscribers,
                "paced_rate_events_per_s": args.rate,
                "paced_events": events,
                "deliveries_expected": events * args.subscribers,
                "deliveries": delivered,
                "deliveries_per_s": round(delivered / max(last_arrival - first_commit, 1e-9)),
                "latency_ms_p50": round(statistics.median(latencies), 1) if latencies else None,
                "latency_ms_max": round(max(latencies), 1) if latencies else None,
                "latency_ms_p99": round(percentile(latencies, 0.99), 1) if latencies else None,
                "deliveries_during_unthrottled_ingest": flooded,
                "deliveries_per_s_during_unthrottled_ingest": round(
                    flooded / max(flood_last - min(flood_commits.values()), 1e-9)
                )
                if flooded
                else 0,
                "subscriber_errors": report["errors"],
            }
        )
        return results
    finally:
        await pool.close()
        if client is not None and client.poll() is None:
            client.kill()
        if args.server == "hub":
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
        others.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode")
    client = sub.add_parser("client", help="(internal) the subscriber process")
    client.add_argument("--url", required=True)
    client.add_argument("--subscribers", type=int, required=True)
    client.add_argument("--out", required=True)
    client.add_argument("--idle", type=float, default=3.0)
    client.add_argument("--idle-subscribers", action="store_true")
    client.add_argument("--server", choices=sorted(FEEDS), default="hub")
    parser.add_argument("--database-url", default=os.environ.get("HUB_DATABASE_URL"))
    parser.add_argument(
        "--server",
        choices=sorted(FEEDS),
        default="hub",
        help="hub, PostGraphile V5 (bench/postgraphile) or the raw websocket ceiling",
    )
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=50.0, help="Paced events per second.")
    parser.add_argument("--queue-size", type=int, default=1000, help="subscriber_queue_size")
    parser.add_argument(
        "--idle-subscribers",
        action="store_true",
        help="Subscribers whose filter matches nothing: the cost of being connected.",
    )
    parser.add_argument("--no-shared", action="store_true", help="Disable shared execution.")
    parser.add_argument(
        "--work-dir",
        default=str(Path(tempfile.gettempdir()) / "hub-bench-subscriptions"),
        help="Server log and the client's arrival times go here.",
    )
    args = parser.parse_args()
    if args.mode == "client":
        query = IDLE_FEED if args.idle_subscribers else FEEDS[args.server]
        asyncio.run(client_main(args.url, args.subscribers, Path(args.out), args.idle, query))
        return
    if not args.database_url:
        raise SystemExit("--database-url (or HUB_DATABASE_URL) is required")
    results = asyncio.run(parent_main(args))
    print(json.dumps(results, indent=2))
    print("\n| metric | value |\n|---|---|")
    for key, value in results.items():
        print(f"| {key} | {value} |")


if __name__ == "__main__":
    main()
