"""The whole benchmark suite in one command: ``python -m bench``.

Runs, one after the other and on the same data set (100k customers, ~2M interactions from the
seed generator, filled once into ``hub_bench`` and reused):

- scenarios 1 and 2, reads: ``bench.read`` (hub, PostGraphile V5, raw asyncpg);
- scenarios 3 and 4, ingest: ``bench.write`` (the same three, on a fresh copy of the data set);
- scenario 5, subscription fan-out to 1,000 websocket subscribers: ``bench.subscriptions`` (the
  hub alone, on another fresh copy).

Each part writes its own block of docs/benchmarks.md. ``--quick`` runs a small smoke version
(2,000 customers, short windows, one round) that checks the harness, not the speed, and writes
nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
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


def fanout(args: argparse.Namespace) -> None:
    """Scenario 5 on a copy of the data set; its numbers go into the ``fanout`` block."""
    copy = f"{args.database}_fanout"
    url = asyncio.run(clone(args.server_url, args.database, copy))
    try:
        arguments = [
            "--database-url",
            url,
            "--subscribers",
            str(args.subscribers),
            "--rate",
            str(args.rate),
            "--seconds",
            str(args.seconds),
        ]
        print(f"\n$ python -m bench.subscriptions {' '.join(arguments)}", flush=True)
        done = subprocess.run(
            [sys.executable, "-m", "bench.subscriptions", *arguments],
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        )
    finally:
        asyncio.run(drop(args.server_url, copy))
    text = done.stdout
    results = json.loads(text[: text.index("\n}\n") + 2])
    print(json.dumps(results, indent=2))
    if args.quick:
        return
    rows = "\n".join(f"| {key} | {value} |" for key, value in results.items())
    body = (
        "Scenario 5, subscription fan-out: the hub alone (PostGraphile V5 and the raw endpoint"
        " have no subscription to the outbox; see *Scenario 5* below).\n\n"
        f"| metric | value |\n|---|---|\n{rows}"
    )
    details = [
        f"data set: a fresh copy of {args.database}; {args.subscribers} subscribers in a "
        f"separate client process, writers paced at {args.rate:g} events/s for "
        f"{args.seconds:g} s, then unthrottled",
        f"started {datetime.now(UTC):%H:%M} UTC, machine load average (1 min) "
        f"{os.getloadavg()[0]:.1f}",
    ]
    report.write(
        args.output,
        "python -m bench.subscriptions " + " ".join(arguments),
        body,
        details,
        block="fanout",
    )


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
    quick = ["--duration", "3", "--warmup", "1", "--no-write"] if args.quick else []
    asyncio.run(ensure_dataset(args.server_url, args.database, args.customers, args.seed))
    parts = args.parts.split(",")
    if "read" in parts:
        run("bench.read", *common, *quick)
    if "write" in parts:
        run("bench.write", *common, *quick, *(["--batch-duration", "8"] if args.quick else []))
    if "fanout" in parts:
        fanout(args)


if __name__ == "__main__":
    main()
