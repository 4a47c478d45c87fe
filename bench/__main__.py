"""The whole benchmark suite in one command: ``python -m bench``.

Runs, one after the other and on the same data set (100k customers, ~2M interactions from the
seed generator, filled once into ``hub_bench`` and reused):

- scenarios 1 and 2, reads: ``bench.read`` (the hub with a FRONTEND key, scenario 1 also with
  a PARTNER key, PostGraphile V5, raw asyncpg, the hub in development mode);
- scenarios 3 and 4, ingest: ``bench.write`` (the same but the PARTNER, on a fresh copy of the
  data set);
- scenario 5, subscription fan-out to 1,000 websocket subscribers: ``bench.subscriptions`` once
  per server (the same three), each on its own fresh copy.

Each part writes its own block of docs/benchmarks.md. ``--quick`` runs a small smoke version
(2,000 customers, short windows, one round) that checks the harness, not the speed, and writes
nothing. ``--workers 2`` runs the read and write parts with two processes per server (the
scale-out rows, a block of their own).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from bench import report
from bench.dataset import ensure_dataset
from bench.servers import ROOT
from bench.write import clone, drop

SERVER_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def run(module: str, *arguments: str) -> None:
    command = [sys.executable, "-m", module, *arguments]
    print(f"\n$ python -m {module} {' '.join(arguments)}", flush=True)
    subprocess.run(command, cwd=ROOT, check=True)


FANOUT_SERVERS = ["hub", "postgraphile", "raw"]


def fanout_once(args: argparse.Namespace, server: str) -> dict[str, object]:
    """Scenario 5 for one server, on its own fresh copy of the data set."""
    copy = f"{args.database}_fanout"
    url = asyncio.run(clone(args.server_url, args.database, copy))
    arguments = ["--server", server, "--subscribers", str(args.subscribers)]
    arguments += ["--rate", str(args.rate), "--seconds", str(args.seconds)]
    try:
        print(f"\n$ python -m bench.subscriptions {' '.join(arguments)}", flush=True)
        done = subprocess.run(
            [sys.executable, "-m", "bench.subscriptions", "--database-url", url, *arguments],
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        )
    finally:
        asyncio.run(drop(args.server_url, copy))
    text = "\n" + done.stdout  # progress lines, then the indented JSON, then a table
    results: dict[str, object] = json.loads(text[text.index("\n{\n") : text.index("\n}\n") + 2])
    print(json.dumps(results))
    return results


def fanout_table(results: dict[str, dict[str, object]]) -> str:
    lines = [
        "| server | deliveries/s at the paced rate | latency p50 ms | latency p99 ms "
        "| deliveries/s while writers run unthrottled | writer tx/s without subscribers "
        "| writer tx/s with subscribers | subscriber errors |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for server, r in results.items():
        lines.append(
            f"| {server} | {r['deliveries_per_s']:,} | {r['latency_ms_p50']} | "
            f"{r['latency_ms_p99']} | {r['deliveries_per_s_during_unthrottled_ingest']:,} | "
            f"{r['ingest_tx_per_s_without_subscribers']} | "
            f"{r['ingest_tx_per_s_with_subscribers']} | {r['subscriber_errors'] or 0} |"
        )
    hub = results.get("hub")

    def ratio(other: str) -> str:
        them = results.get(other)
        if hub is None or them is None:
            return "-"
        key = "deliveries_per_s_during_unthrottled_ingest"
        mine, theirs = float(str(hub[key])), float(str(them[key]))
        return f"{mine / theirs:.2f}" if theirs else "-"

    lines += [
        "",
        "Ratios of deliveries per second while the writers run unthrottled (the fan-out "
        f"capacity): hub / PostGraphile {ratio('postgraphile')}, hub / raw {ratio('raw')}.",
    ]
    return "\n".join(lines)


def fanout(args: argparse.Namespace) -> None:
    """Scenario 5 for each server; the table goes into the ``fanout`` block."""
    load_before = os.getloadavg()
    results = {server: fanout_once(args, server) for server in FANOUT_SERVERS}
    body = fanout_table(results)
    print(body)
    if args.quick:
        return
    details = [
        f"data set: a fresh copy of {args.database} per server; {args.subscribers} websocket "
        "subscribers in a separate client process, all with the same subscription; writers "
        f"paced at {args.rate:g} events/s for {args.seconds:g} s, then 8 writers unthrottled "
        f"for {args.seconds:g} s",
        "every writer transaction stores an interaction and its outbox event; a trigger sends "
        "its id by NOTIFY (PostGraphile's `listen` and the raw endpoint use it; the hub polls "
        "its outbox)",
        f"machine load average (1 min) {load_before[0]:.1f} at the start, "
        f"{os.getloadavg()[0]:.1f} at the end",
    ]
    command = (
        f"python -m bench --parts fanout --subscribers {args.subscribers} --rate {args.rate:g}"
        f" --seconds {args.seconds:g}"
    )
    report.write(args.output, command, body, details, block="fanout")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--server-url", default=os.environ.get("HUB_BENCH_SERVER_URL", SERVER_URL))
    parser.add_argument("--database", default="hub_bench")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--parts", default="read,write,fanout")
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=5.0, help="scenario 5 paced events/s")
    parser.add_argument("--seconds", type=float, default=5.0, help="scenario 5 phase length")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--quick", action="store_true", help="smoke run: small, short, no docs")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="read and write parts: processes per server (hub --workers, PostGraphile cluster)",
    )
    args = parser.parse_args()
    if args.quick:
        args.customers, args.database, args.rounds = 2000, "hub_bench_quick", 1
        args.subscribers, args.seconds = 50, 2.0
    common = [
        "--customers",
        str(args.customers),
        "--seed",
        str(args.seed),
        "--server-url",
        args.server_url,
        "--database",
        args.database,
        "--rounds",
        str(args.rounds),
    ]
    scale = ["--workers", str(args.workers)]
    quick = ["--duration", "3", "--warmup", "1", "--no-write"] if args.quick else []
    asyncio.run(ensure_dataset(args.server_url, args.database, args.customers, args.seed))
    parts = args.parts.split(",")
    if "read" in parts:
        run("bench.read", *common, *scale, *quick)
    if "write" in parts:
        quick_write = ["--batch-duration", "8"] if args.quick else []
        run("bench.write", *common, *scale, *quick, *quick_write)
    if "fanout" in parts:
        fanout(args)


if __name__ == "__main__":
    main()
