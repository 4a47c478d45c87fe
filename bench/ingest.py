"""Ingest benchmark: the real app over HTTP against a raw asyncpg COPY of the same rows.

    python -m bench.ingest [--events 4000] [--batch 1000] [--concurrency 16] [--workers 1]
                           [--batch-concurrency 1] [--no-access-log]

Starts ``hub serve`` as a subprocess on a free port against a scratch database (created on the
server named by ``HUB_BENCH_DATABASE_URL``, default the local PostgreSQL; dropped at the end),
then measures from this process with an asyncio HTTP client:

- single: ``recordInteraction`` calls, ``--concurrency`` in flight, events/s and p50/p99 latency;
- batch:  ``recordInteractions`` with ``--batch`` items per call, one call at a time (and, with
  ``--batch-concurrency N``, again with N calls in flight: new tags, so all fresh people);
- copy:   asyncpg ``COPY`` of the same number of customers, identities and interactions.

Besides rate and latency, each mode reports the CPU it cost per event in the hub's processes
and in the database's backends (from /proc: ``hub cpu``/``db cpu`` ms/event; COPY's own
connection is closed before it is read, so its column stays empty-ish).

Every mode writes fresh people (a new e-mail per event), so each event creates a customer, an
identity, an interaction, a stage-history row and events: the ingest path's worst case.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
from sqlalchemy.ext.asyncio import create_async_engine

from bench.dataset import database_url
from bench.servers import free_port
from hub.access.keys import Role, create_key
from hub.db.engine import sqlalchemy_url
from hub.db.migrations import upgrade

RECORD = (
    "mutation($input: RecordInteractionInput!) { recordInteraction(input: $input) {"
    " interaction { id } } }"
)
RECORD_MANY = (
    "mutation($inputs: [RecordInteractionInput!]!) { recordInteractions(inputs: $inputs) {"
    " stored { index } rejected { index message } } }"
)
TYPES = ["PAGE_VIEW", "PRODUCT_VIEW", "ORDER", "SUPPORT_TICKET", "CHAT_MESSAGE"]


@dataclass
class Result:
    mode: str
    events: int
    seconds: float
    latencies: list[float]
    # CPU seconds spent during the run by the hub's processes and by the database's backends.
    hub_cpu: float | None = None
    db_cpu: float | None = None
    # Of ``seconds``, the wait after the last answer for queued work (bench.audiences: the
    # audiences drainer).
    drain_s: float = 0.0

    @property
    def rate(self) -> float:
        return self.events / self.seconds


def _item(touchpoint: uuid.UUID, tag: str, n: int) -> dict[str, Any]:
    return {
        "identities": [{"kind": "EMAIL", "value": f"{tag}{n}@bench.example"}],
        "touchpointId": str(touchpoint),
        "type": TYPES[n % len(TYPES)],
        "direction": "INBOUND",
        "summary": f"event {n}",
        "attributes": {"n": n},
        "idempotencyKey": f"{tag}-{n}",
    }


async def _wait_ready(client: httpx.AsyncClient, process: asyncio.subprocess.Process) -> None:
    for _ in range(300):
        if process.returncode is not None:
            raise RuntimeError("hub serve exited during start-up")
        try:
            if (await client.get("/readyz")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError("hub serve did not become ready")


# An event's input from its number (default: ``_item``, a new person per event).
ItemMaker = Callable[[int], dict[str, Any]]


async def bench_single(
    client: httpx.AsyncClient,
    touchpoint: uuid.UUID,
    events: int,
    concurrency: int,
    tag: str = "s",
    item: ItemMaker | None = None,
) -> Result:
    make = item or (lambda n: _item(touchpoint, tag, n))
    queue = iter(range(events))
    latencies: list[float] = []

    async def worker() -> None:
        for n in queue:
            started = time.perf_counter()
            response = await client.post(
                "/graphql",
                json={"query": RECORD, "variables": {"input": make(n)}},
            )
            body = response.json()
            if "errors" in body:
                raise RuntimeError(body["errors"])
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return Result(f"single x{concurrency}", events, time.perf_counter() - started, latencies)


async def bench_batch(
    client: httpx.AsyncClient,
    touchpoint: uuid.UUID,
    events: int,
    size: int,
    concurrency: int = 1,
    tag: str | None = None,
    item: ItemMaker | None = None,
) -> Result:
    latencies: list[float] = []
    offsets = iter(range(0, events, size))
    if tag is None:
        tag = "b" if concurrency == 1 else f"b{concurrency}-"
    prefix = tag
    make = item or (lambda n: _item(touchpoint, prefix, n))

    async def sender() -> None:
        for offset in offsets:
            inputs = [make(n) for n in range(offset, min(events, offset + size))]
            call = time.perf_counter()
            response = await client.post(
                "/graphql", json={"query": RECORD_MANY, "variables": {"inputs": inputs}}
            )
            body = response.json()
            if "errors" in body or body["data"]["recordInteractions"]["rejected"]:
                raise RuntimeError(str(body)[:500])
            latencies.append(time.perf_counter() - call)

    started = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(concurrency)))
    mode = f"batch x{size}" + (f" c{concurrency}" if concurrency > 1 else "")
    return Result(mode, events, time.perf_counter() - started, latencies)


async def bench_copy(url: str, touchpoint: uuid.UUID, events: int) -> Result:
    """The floor: COPY the same customers, identities and interactions, no logic at all."""
    connection = await asyncpg.connect(url)
    try:
        now = datetime.now(UTC)
        customers = [(uuid.uuid4(), now, now, now, now) for _ in range(events)]
        identities = [(c[0], "EMAIL", f"c{n}@bench.example") for n, c in enumerate(customers)]
        interactions = [
            (uuid.uuid4(), c[0], touchpoint, "WEB", now, TYPES[n % 5], "INBOUND", f"event {n}")
            for n, c in enumerate(customers)
        ]
        started = time.perf_counter()
        async with connection.transaction():
            await connection.copy_records_to_table(
                "customers",
                records=customers,
                columns=["id", "first_seen_at", "last_seen_at", "created_at", "updated_at"],
            )
            await connection.copy_records_to_table(
                "identities", records=identities, columns=["customer_id", "kind", "value"]
            )
            await connection.copy_records_to_table(
                "interactions",
                records=interactions,
                columns=[
                    "id",
                    "customer_id",
                    "touchpoint_id",
                    "channel_code",
                    "occurred_at",
                    "type",
                    "direction",
                    "summary",
                ],
            )
        return Result("raw COPY", events, time.perf_counter() - started, [])
    finally:
        await connection.close()


CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _processes() -> dict[int, tuple[int, str, float]]:
    """pid → (parent pid, command line, CPU seconds so far) of every process (Linux /proc)."""
    found: dict[int, tuple[int, str, float]] = {}
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                stat = handle.read()
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                command = handle.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        cpu = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
        found[int(entry)] = (int(fields[1]), command, cpu)
    return found


def cpu_seconds(hub_pid: int, database: str) -> tuple[float, float]:
    """CPU seconds so far of the hub process tree and of the database's backends (whose
    process titles name the database). Backends that exited meanwhile are not counted: the
    pools keep theirs for the whole run."""
    table = _processes()
    tree = {hub_pid}
    changed = True
    while changed:
        changed = False
        for pid, (parent, _, _) in table.items():
            if parent in tree and pid not in tree:
                tree.add(pid)
                changed = True
    hub = sum(table[pid][2] for pid in tree if pid in table)
    db = sum(cpu for _, command, cpu in table.values() if f" {database} " in command)
    return hub, db


async def measured(run: Any, hub_pid: int, database: str) -> Result:
    """``await run`` with the CPU the hub and the database spent on it."""
    hub0, db0 = cpu_seconds(hub_pid, database)
    result: Result = await run
    hub1, db1 = cpu_seconds(hub_pid, database)
    result.hub_cpu, result.db_cpu = hub1 - hub0, db1 - db0
    return result


def _per_event(seconds: float | None, events: int) -> str:
    return "-" if seconds is None else f"{seconds / events * 1000:.2f}"


def _ms(values: list[float], q: float) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    return f"{ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000:.1f}"


def report(results: list[Result]) -> str:
    copy = next(r for r in results if r.mode == "raw COPY")
    lines = [
        f"{'mode':<14}{'events':>8}{'seconds':>9}{'events/s':>11}{'vs COPY':>9}"
        f"{'p50 ms':>9}{'p99 ms':>9}{'hub cpu ms/ev':>15}{'db cpu ms/ev':>14}",
    ]
    for r in results:
        lines.append(
            f"{r.mode:<14}{r.events:>8}{r.seconds:>9.2f}{r.rate:>11.0f}"
            f"{r.rate / copy.rate:>9.3f}{_ms(r.latencies, 0.5):>9}{_ms(r.latencies, 0.99):>9}"
            f"{_per_event(r.hub_cpu, r.events):>15}{_per_event(r.db_cpu, r.events):>14}"
        )
    return "\n".join(lines)


@dataclass
class ScratchHub:
    """A scratch database (migrated, one WEB touchpoint) and a ``hub serve`` on it."""

    name: str
    url: str
    touchpoint: uuid.UUID
    port: int
    process: asyncio.subprocess.Process


@contextlib.asynccontextmanager
async def scratch_hub(env: dict[str, str], serve_args: list[str]) -> AsyncIterator[ScratchHub]:
    """Create the database on ``HUB_BENCH_DATABASE_URL``'s server, start ``hub serve`` on it
    (rate limits off: the benchmarks measure ingest, not the per-key limiter; ``env`` and
    ``serve_args`` add to it), and drop both afterwards."""
    server = os.environ.get(
        "HUB_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    name = f"hub_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(database_url(server, "postgres"))
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = database_url(server, name)
    process: asyncio.subprocess.Process | None = None
    try:
        await asyncio.to_thread(upgrade, url)
        db = await asyncpg.connect(url)
        touchpoint = uuid.uuid4()
        await db.execute(
            "INSERT INTO touchpoints (id, channel_code, name, kind) VALUES ($1, 'WEB', 'Bench', "
            "'WEBSITE')",
            touchpoint,
        )
        await db.close()
        port = free_port()
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "hub",
            "serve",
            "--port",
            str(port),
            *serve_args,
            env={
                **os.environ,
                "HUB_DATABASE_URL": url,
                "HUB_MIGRATE_ON_START": "false",
                "HUB_RATE_LIMIT_PER_SECOND": "1000000",
                "HUB_RATE_LIMIT_BURST": "1000000",
                **env,
            },
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        yield ScratchHub(name, url, touchpoint, port, process)
    finally:
        if process is not None:
            process.terminate()
            await asyncio.wait_for(process.wait(), timeout=30)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def main(args: argparse.Namespace) -> None:
    serve_args = ["--workers", str(args.workers)]
    if args.no_access_log:
        serve_args.append("--no-access-log")
    env = {"HUB_POOL_SIZE": str(max(args.concurrency, 10))}
    async with scratch_hub(env, serve_args) as hub:
        url, name, touchpoint, process = hub.url, hub.name, hub.touchpoint, hub.process
        key = await _admin_key(url)
        limits = httpx.Limits(max_connections=args.concurrency + 2)
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{hub.port}",
            timeout=120,
            limits=limits,
            headers={"Authorization": f"Bearer {key}"},
        ) as client:
            await _wait_ready(client, process)
            await bench_single(client, touchpoint, 50, 4)  # warm-up (own tag range below)
            await db_reset(url)
            results = [
                await measured(
                    bench_single(client, touchpoint, args.events, args.concurrency),
                    process.pid,
                    name,
                ),
                await measured(
                    bench_batch(client, touchpoint, args.events, args.batch), process.pid, name
                ),
                *(
                    [
                        await measured(
                            bench_batch(
                                client, touchpoint, args.events, args.batch, args.batch_concurrency
                            ),
                            process.pid,
                            name,
                        )
                    ]
                    if args.batch_concurrency > 1
                    else []
                ),
                await measured(bench_copy(url, touchpoint, args.events), -1, name),
            ]
        print(report(results))


async def _admin_key(url: str) -> str:
    """An ADMIN key in the scratch database: the benchmark goes through the real access gate."""
    engine = create_async_engine(sqlalchemy_url(url))
    try:
        async with engine.begin() as connection:
            created = await create_key(connection, name="bench-ingest", role=Role.ADMIN)
    finally:
        await engine.dispose()
    return created.key


async def db_reset(url: str) -> None:
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(
            "TRUNCATE events, stage_history, interactions, conversations, identities, merges,"
            " consent_history, consents, erasures, audit_log, customers CASCADE"
            # CASCADE: and whatever refers to customers (computed traits, segment members).
        )
    finally:
        await connection.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=4000, help="events per mode")
    parser.add_argument("--batch", type=int, default=1000, help="items per recordInteractions")
    parser.add_argument("--concurrency", type=int, default=16, help="single calls in flight")
    parser.add_argument("--workers", type=int, default=1, help="hub serve worker processes")
    parser.add_argument(
        "--no-access-log",
        action="store_true",
        help="start hub serve with --no-access-log (as bench.read does)",
    )
    parser.add_argument(
        "--batch-concurrency",
        type=int,
        default=1,
        help="also run the batch mode with this many calls in flight",
    )
    asyncio.run(main(parser.parse_args()))
