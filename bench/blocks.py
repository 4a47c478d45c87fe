"""What an ingested event costs PostgreSQL in shared blocks, by statement kind: a measure that,
unlike events/s or CPU seconds, does not move with the machine's load (issue #18's work was
measured this way while test suites ran beside it).

    python -m bench.blocks                       # 10k customers, known and new people
    python -m bench.blocks --workloads known --batch-events 5000

On ``bench.audiences``' data set (10k customers by default, filled once and reused), two
fresh copies: *plain* (no definitions) and *audiences* (``bench.audiences``' 10 computed traits
and 20 segments, defined over HTTP). On each, a real ``hub serve`` with an ADMIN key (the
sweeper off, so only ingest talks to the database) takes, per workload: 64 warm-up events, then
``pg_stat_statements`` is reset and batches of 1,000 (``--batch-events``) or single calls, 16 in
flight (``--single-events``), run. The statements of the copy's database are then summed:
blocks hit or read, per event, split into the trait refresh, the segment statements and the
rest. Needs the ``pg_stat_statements`` extension loaded by the server
(``shared_preload_libraries``).
"""

from __future__ import annotations

import argparse
import asyncio
import uuid
from typing import Any

import asyncpg
import httpx

from bench.audiences import (
    SOURCE_DB,
    Hub,
    define_all,
    drained,
    ingest_targets,
    known_items,
    start_hub,
)
from bench.dataset import database_url, ensure_dataset
from bench.ingest import _admin_key, bench_batch, bench_single
from bench.write import clone, drop
from hub.db.engine import asyncpg_dsn

WORKLOADS = ("batch-known", "single-known", "batch-new", "single-new")
_KINDS = (
    ("traits", ("INSERT INTO customer_traits_computed",)),
    ("segments", ("segment_members", "segment_checks")),
)


def kind_of(query: str) -> str:
    """Which part of ingest a statement belongs to (the first kind whose marker it holds)."""
    for kind, markers in _KINDS:
        if any(marker in query for marker in markers):
            return kind
    return "other"


async def _workload(
    hub: Hub,
    admin: asyncpg.Connection,
    database: str,
    touchpoint: uuid.UUID,
    emails: list[str],
    mode: str,
    events: int,
    top: int = 0,
) -> dict[str, float]:
    tag = f"b{uuid.uuid4().hex[:6]}-"
    item = known_items(touchpoint, emails, tag, 3) if mode.endswith("-known") else None
    # Connections idle since the last workload may be closing (the server's keep-alive):
    # a new client. The warm-up opens all 16 pool connections before counting (a backend's
    # first statements read the catalogs, which pg_stat_statements would count as ingest's).
    await hub.client.aclose()
    hub.client = httpx.AsyncClient(
        base_url=str(hub.client.base_url), timeout=300, headers=dict(hub.client.headers)
    )
    await bench_single(hub.client, touchpoint, 64, 16, tag=tag + "w", item=item)
    await admin.execute("SELECT pg_stat_statements_reset()")
    await drained(hub.url)  # what the warm-up queued is evaluated before counting
    await admin.execute("SELECT pg_stat_statements_reset()")
    if mode.startswith("batch"):
        await bench_batch(hub.client, touchpoint, events, 1000, tag=tag, item=item)
    else:
        await bench_single(hub.client, touchpoint, events, 16, tag=tag, item=item)
    # The audiences drainer evaluates what ingest queued (hub.audiences.queue): its statements
    # are the audiences' cost, counted once the queue is empty.
    await drained(hub.url)
    rows = await admin.fetch(
        "SELECT s.query, s.calls, s.total_exec_time AS ms, s.total_plan_time AS plan_ms,"
        " s.shared_blks_hit + s.shared_blks_read AS blocks"
        " FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = $1",
        database,
    )
    per_kind: dict[str, float] = {"traits": 0.0, "segments": 0.0, "other": 0.0}
    for row in rows:
        per_kind[kind_of(row["query"])] += row["blocks"] / events
    for row in sorted(rows, key=lambda r: -r["ms"])[:top]:
        query = " ".join(row["query"].split())[:110]
        print(
            f"    {row['ms'] / events * 1000:7.1f} µs/event (planning"
            f" {row['plan_ms'] / events * 1000:5.1f}) {row['blocks'] / events:6.1f}"
            f" blocks/event {row['calls']:6} calls  {query}"
        )
    return per_kind


def source_db(customers: int) -> str:
    """``bench.audiences``' data set of that size (``--quick``'s at 10k)."""
    return f"{SOURCE_DB}_quick" if customers == 10_000 else SOURCE_DB


async def measure(
    args: argparse.Namespace, name: str, template: str, key: str | None
) -> dict[str, dict[str, float]]:
    """Every workload on a fresh copy of ``template``."""
    copy = f"{source_db(args.customers)}_blocks_{name}"
    url = await clone(args.server, template, copy)
    key = key or await _admin_key(url)
    touchpoint, emails = await ingest_targets(url)
    admin = await asyncpg.connect(asyncpg_dsn(database_url(args.server, "postgres")))
    hub: Hub | None = None
    try:
        hub = await start_hub(name, url, key, HUB_AUDIENCES_SWEEP_S="0")
        results = {}
        for mode in args.workloads.split(","):
            events = args.batch_events if mode.startswith("batch") else args.single_events
            results[mode] = await _workload(
                hub, admin, copy, touchpoint, emails, mode, events, args.top
            )
            print(f"  {name:9} {mode:12} {sum(results[mode].values()):7.1f} blocks/event")
        return results
    finally:
        if hub is not None:
            await hub.stop()
        await admin.close()
        await drop(args.server, copy)


async def main(args: argparse.Namespace) -> None:
    for mode in args.workloads.split(","):
        if mode not in WORKLOADS:
            raise SystemExit(f"unknown workload {mode!r}: {', '.join(WORKLOADS)}")
    admin = await asyncpg.connect(asyncpg_dsn(database_url(args.server, "postgres")))
    try:
        preloaded = await admin.fetchval("SHOW shared_preload_libraries")
        if "pg_stat_statements" not in preloaded:
            raise SystemExit(
                "the server must preload pg_stat_statements (shared_preload_libraries)"
            )
        await admin.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    finally:
        await admin.close()
    source = source_db(args.customers)
    await ensure_dataset(args.server, source, args.customers, 7, "seed")
    template = f"{source}_blocks_defined"
    url = await clone(args.server, source, template)
    try:
        key = await _admin_key(url)
        definer = await start_hub("definitions", url, key)
        try:
            await define_all(definer)
        finally:
            await definer.stop()
        plain = await measure(args, "plain", source, None)
        audiences = await measure(args, "audiences", template, key)
    finally:
        await drop(args.server, template)
    print(report(plain, audiences))


def report(plain: dict[str, dict[str, float]], audiences: dict[str, dict[str, float]]) -> str:
    lines = [
        "| workload | plain | audiences | of which traits | of which segments | ratio |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for mode, parts in audiences.items():
        base, total = sum(plain[mode].values()), sum(parts.values())
        lines.append(
            f"| {mode} | {base:.1f} | {total:.1f} | {parts['traits']:.1f}"
            f" | {parts['segments']:.1f} | {total / base:.2f} |"
        )
    return "\n".join(lines)


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--batch-events", type=int, default=3000)
    parser.add_argument("--single-events", type=int, default=400)
    parser.add_argument(
        "--top", type=int, default=0, help="print the N statements of most time per workload"
    )
    arguments: Any = parser.parse_args()
    asyncio.run(main(arguments))


if __name__ == "__main__":
    cli()
