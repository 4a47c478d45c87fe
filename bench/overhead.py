"""Server CPU time per request on the hot path, with a real FRONTEND key (issue 15).

    python -m bench.overhead --customers 2000 --requests 3000
    python -m bench.overhead --checkout /path/to/other/checkout   # the same, for another version
    python -m bench.overhead --server granian --workers 2

Starts ``hub serve`` (from ``--checkout``'s ``.venv``, default this one) on the benchmark's data
set, creates a FRONTEND key without PII, sends ``--requests`` requests of each query from a
separate load process, and reports the CPU seconds the server's processes (the supervisor and
its workers: utime + stime from ``/proc``) spent per request. CPU time, unlike throughput, is
robust on a busy machine. ``--profile out.txt`` additionally records py-spy samples of the
server under load, one file per query, as collapsed stacks (flamegraph.pl's input).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import httpx

from bench.dataset import ensure_dataset
from bench.read import customer_ids
from bench.scenarios import SCENARIO_1
from bench.servers import ROOT, cpu_seconds, free_port, process_tree, wait_until_ready
from hub.access.keys import Role, create_key
from hub.db.engine import create_engine

QUERIES = {
    "typename": json.dumps({"query": "{ __typename }"}),
    "scenario1": SCENARIO_1.requests["hub"].body,
}


async def frontend_key(url: str) -> str:
    from hub.core.settings import Settings

    engine = create_engine(url, Settings(database_url=url))
    try:
        async with engine.begin() as connection:
            created = await create_key(
                connection, name=f"bench-overhead-{uuid.uuid4().hex[:8]}", role=Role.FRONTEND
            )
    finally:
        await engine.dispose()
    return created.key


def tree_cpu(pid: int) -> float:
    total = 0.0
    for member in process_tree(pid):
        try:
            total += cpu_seconds(member)
        except (OSError, IndexError, ValueError):
            continue
    return total


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--server-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--database", default="hub_bench_overhead")
    parser.add_argument(
        "--dataset",
        choices=["auto", "seed", "sql"],
        default="sql",
        help="how to fill the database (auto: reuse whatever it holds, e.g. hub_bench's seed)",
    )
    parser.add_argument("--checkout", type=Path, default=ROOT)
    parser.add_argument("--server", choices=["uvicorn", "granian"], default="uvicorn")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--requests", type=int, default=3000, help="per query")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--queries", default="typename,scenario1")
    parser.add_argument("--profile", type=Path, help="write py-spy samples (collapsed stacks) here")
    args = parser.parse_args()

    url, _ = asyncio.run(
        ensure_dataset(args.server_url, args.database, args.customers, 1, args.dataset)
    )
    key = asyncio.run(frontend_key(url))
    ids = asyncio.run(customer_ids(url))
    python = args.checkout / ".venv" / "bin" / "python"
    port = free_port()
    command = [str(python), "-m", "hub", "serve", "--port", str(port), "--no-access-log"]
    command += ["--workers", str(args.workers)]
    if args.server != "uvicorn":
        command += ["--server", args.server]
    env = {
        **os.environ,
        "HUB_DATABASE_URL": url,
        "HUB_MIGRATE_ON_START": "false",
        "HUB_GRAPHIQL": "false",
        "HUB_DEV_MODE": "false",
        "HUB_RATE_LIMIT_PER_SECOND": "1000000",
        "HUB_RATE_LIMIT_BURST": "1000000",
        "HUB_ANALYTICS_CATCH_UP_S": "0",
    }
    base = f"http://127.0.0.1:{port}"
    auth = f"Authorization: Bearer {key}"
    with tempfile.TemporaryDirectory() as scratch:
        ids_file = Path(scratch) / "ids.txt"
        ids_file.write_text("\n".join(ids))
        log = Path(scratch) / "server.log"
        with log.open("wb") as sink:
            server = subprocess.Popen(
                command, cwd=args.checkout, env=env, stdout=sink, stderr=subprocess.STDOUT
            )
        try:
            wait_until_ready(server, base + "/readyz", log)
            probe = httpx.post(
                base + "/graphql",
                content=QUERIES["typename"],
                headers={"content-type": "application/json", "authorization": f"Bearer {key}"},
            )
            if probe.status_code != 200:
                raise SystemExit(f"the FRONTEND key was refused: {probe.text}")
            for name in args.queries.split(","):
                profiler = None
                if args.profile is not None:
                    out = args.profile.with_name(f"{args.profile.stem}-{name}.txt")
                    spy = str(Path(sys.executable).with_name("py-spy"))
                    record = [
                        spy,
                        "record",
                        "--subprocesses",
                        "--nonblocking",
                        "--format",
                        "raw",
                        "--rate",
                        "500",
                    ]
                    record += ["--pid", str(server.pid), "--output", str(out)]
                    profiler = subprocess.Popen(record)
                before = tree_cpu(server.pid)
                load = [sys.executable, "-m", "bench.load", "--url", base + "/graphql"]
                load += ["--body", QUERIES[name], "--ids", str(ids_file), "--header", auth]
                load += ["--concurrency", str(args.concurrency), "--warmup", "0"]
                load += ["--duration", "3600", "--max-requests", str(args.requests)]
                done = subprocess.run(
                    load,
                    cwd=ROOT,
                    capture_output=True,
                    text=True,
                    check=True,
                )
                spent = tree_cpu(server.pid) - before
                if profiler is not None:
                    profiler.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
                    profiler.wait(timeout=30)
                result = json.loads(done.stdout.strip().splitlines()[-1])
                per_request = spent * 1000 / result["completed"]
                print(
                    f"{name:10} {args.server} x{args.workers} {args.checkout}: "
                    f"{per_request:.3f} ms CPU/request over {result['completed']} requests, "
                    f"{result['errors']} errors, {result['rps']:.0f} req/s",
                    flush=True,
                )
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
