"""Side-by-side read benchmark: the hub, PostGraphile V5 and the raw asyncpg ceiling.

    python -m bench.read --customers 100000

Fills (or reuses) a scratch database, starts every server on it, checks that their answers to
each scenario are equivalent, then loads each server in turn from a separate process
(``bench.load``) and writes the table into docs/benchmarks.md. All servers run in the same
invocation on the same data, so their ratios are comparable even on a busy machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bench import report
from bench.dataset import ensure_dataset, prewarm
from bench.scenarios import READ_SCENARIOS, Request, Scenario, trusted_documents
from bench.servers import (
    HUB_SERVERS,
    NODE,
    PARTNER_CHANNELS,
    POSTGRAPHILE_DIR,
    ROOT,
    Server,
    cpu_seconds,
    language,
    process_tree,
    start_servers,
)
from bench.statements import hub_statements
from hub.db.engine import asyncpg_dsn

SERVERS = ["hub", "hub-trusted", "hub-partner", "postgraphile", "raw", "hub-dev"]
# Also available (bench/servers.py): "hub-granian", the hub under granian; "hub-dataloader",
# the hub with compiled reads off (slow: add it on purpose); "hub-otel", the hub with
# OpenTelemetry tracing on, exporting to a local OTLP sink.
# Servers answering with a FRONTEND key without pii: masked personal fields, all else identical.
MASKED = {name for name, key in HUB_SERVERS.items() if key in ("frontend", "trusted")}
# The PARTNER key's scenario: only scenario 1 runs with it (the rows).
PARTNER_SCENARIOS = {1}
# Statements per request of the servers the harness cannot count inside: the raw endpoint runs
# its one statement; PostGraphile V5 plans one SQL query per request for these selections
# (checked with log_statement = 'all', see docs/benchmarks.md).
KNOWN_STATEMENTS = {"raw": "1", "postgraphile": "1"}


async def customer_ids(url: str) -> list[str]:
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        rows = await connection.fetch(
            "SELECT id::text FROM customers WHERE merged_into_id IS NULL ORDER BY id"
        )
    finally:
        await connection.close()
    return [row[0] for row in rows]


async def partner_ids(url: str) -> list[str]:
    """The customers the benchmark's PARTNER key sees (row scope, docs/security.md): those who
    granted PARTNER_SHARING and have an interaction on one of its channels. A data set without
    any PARTNER_SHARING consent gets one for every second customer first (once; recorded with
    source 'bench')."""
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        shared = "SELECT EXISTS (SELECT FROM consents WHERE purpose = 'PARTNER_SHARING')"
        if not await connection.fetchval(shared):
            await connection.execute(
                "INSERT INTO consents (customer_id, purpose, channel, status, source,"
                " granted_at, updated_at)"
                " SELECT id, 'PARTNER_SHARING', '', 'GRANTED', 'bench', now(), now() FROM ("
                "  SELECT id, row_number() OVER (ORDER BY id) AS n FROM customers"
                "  WHERE merged_into_id IS NULL) c WHERE n % 2 = 0"
            )
        rows = await connection.fetch(
            "SELECT c.customer_id::text FROM consents c"
            " WHERE c.purpose = 'PARTNER_SHARING' AND c.channel = '' AND c.status = 'GRANTED'"
            " AND EXISTS (SELECT FROM interactions i WHERE i.customer_id = c.customer_id"
            " AND i.channel_code = ANY($1::text[])) ORDER BY 1",
            list(PARTNER_CHANNELS),
        )
    finally:
        await connection.close()
    return [row[0] for row in rows]


def request_of(scenario: Scenario, name: str) -> Request:
    """The request a server is sent: its own where it has one (``hub-trusted``: by id), else
    its language's."""
    return scenario.requests.get(name) or scenario.requests[language(name)]


def fetch(server: Server, scenario: Scenario, customer_id: str) -> Any:
    request = request_of(scenario, server.name)
    response = httpx.post(
        server.base_url + request.path,
        content=request.body.replace("__ID__", customer_id),
        headers={"content-type": "application/json", **server.headers},
        timeout=60,
    )
    response.raise_for_status()
    body = response.json()
    if "errors" in body:
        raise SystemExit(f"{server.name} answered scenario {scenario.number} with {body['errors']}")
    return body


# What a key without pii sees masked (hub/access/masking.py): compared as "masked or null".
MASKED_FIELDS = ("displayName", "traits")


def _unmasked_part(customer: Any) -> Any:
    """A neutral customer without what masking changes: identity values, names, traits and
    interaction summaries (identity kinds, ids, times, stages, channels stay)."""
    if customer is None:
        return None
    kept = {k: v for k, v in customer.items() if k not in (*MASKED_FIELDS, "identities")}
    kept["identities"] = [kind for kind, _ in customer["identities"]]
    kept["interactions"] = [row[:4] + row[5:] for row in customer["interactions"]]
    return kept


def _masked_answer(answer: Any, reference: Any) -> Any:
    if isinstance(answer, list):
        return [_unmasked_part(c) for c in answer], [_unmasked_part(c) for c in reference]
    return _unmasked_part(answer), _unmasked_part(reference)


def _check_partner(answer: Any, reference: Any, customer_id: str) -> None:
    """A PARTNER sees a customer in its scope only with interactions in its channels."""
    if answer is None:
        raise SystemExit(f"hub-partner does not see {customer_id}, which is in its scope")
    channels = {row[9] for row in answer["interactions"]}
    if not channels <= set(PARTNER_CHANNELS) or answer["id"] != reference["id"]:
        raise SystemExit(f"hub-partner answered out of scope for {customer_id}: {answer}")
    if any(value != "•••" for value in (answer["displayName"],) if value is not None):
        raise SystemExit(f"hub-partner saw a personal field unmasked for {customer_id}")


def check_equivalent(
    servers: dict[str, Server], scenario: Scenario, sample: list[str], partner: list[str]
) -> None:
    """Every server's normalised answer equals the raw endpoint's, for every sampled id; keyed
    hub servers' answers equal it but for what their key masks (FRONTEND) or scopes away
    (PARTNER)."""
    reference_name = "raw" if "raw" in servers else next(iter(servers))
    for customer_id in sample + partner:
        reference = scenario.normalise[language(reference_name)](
            fetch(servers[reference_name], scenario, customer_id)
        )
        for name, server in servers.items():
            if (HUB_SERVERS.get(name) == "partner") != (customer_id in partner):
                continue  # the partner is asked for customers in its scope, the others not
            answer = scenario.normalise[language(name)](fetch(server, scenario, customer_id))
            if HUB_SERVERS.get(name) == "partner":
                _check_partner(answer, reference, customer_id)
                continue
            compared, expected = (answer, reference)
            if name in MASKED:
                compared, expected = _masked_answer(answer, reference)
            if compared != expected:
                raise SystemExit(
                    f"scenario {scenario.number}: {name} differs from {reference_name} for "
                    f"{customer_id}:\n{compared}\n!=\n{expected}"
                )
    print(f"  scenario {scenario.number}: answers equivalent on {len(sample)} ids", flush=True)


async def backend_pids(url: str) -> list[int]:
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        rows = await connection.fetch(
            "SELECT pid FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    finally:
        await connection.close()
    return [row[0] for row in rows]


def cpu_snapshot(server: Server, backends: list[int]) -> dict[int, float]:
    """CPU seconds of the server process and of every PostgreSQL backend on the database."""
    snapshot = {}
    for pid in [*process_tree(server.process.pid), *backends]:
        try:
            snapshot[pid] = cpu_seconds(pid)
        except (OSError, IndexError, ValueError):  # a backend that has gone, or no /proc
            continue
    return snapshot


def measure(
    server: Server,
    url: str,
    path: str,
    body: str,
    options: list[str],
    *,
    per_request: int = 1,
) -> dict[str, float]:
    """One ``bench.load`` run (``options``: its flags after ``--url``/``--body``), plus the CPU
    milliseconds per unit of work (a request, or each of ``per_request`` events) that the server
    and its PostgreSQL backends spent, which a busy machine distorts far less than rates."""
    before = cpu_snapshot(server, asyncio.run(backend_pids(url)))
    command = [sys.executable, "-m", "bench.load", "--url", server.base_url + path]
    command += [f"--header={name}: {value}" for name, value in server.headers.items()]
    done = subprocess.run(
        [*command, "--body", body, *options], cwd=ROOT, capture_output=True, text=True
    )
    if done.returncode != 0:  # e.g. the server dropped connections: a failed run, not a crash
        print(f"  the load against {server.name} failed:\n{done.stderr[-1500:]}", flush=True)
        nothing = float("nan")
        return {
            "rps": 0.0,
            "p50_ms": nothing,
            "p99_ms": nothing,
            "errors": 1.0,
            "completed": 0.0,
            "cpu_ms": nothing,
        }
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    after = cpu_snapshot(server, asyncio.run(backend_pids(url)))
    spent = sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())
    units = result["completed"] * per_request
    result["cpu_ms"] = spent * 1000 / units if units else float("nan")
    return result


def load(
    server: Server, scenario: Scenario, ids_file: Path, args: argparse.Namespace, url: str
) -> dict[str, float]:
    """One load run; the PARTNER's customers are drawn from those in its scope."""
    if HUB_SERVERS.get(server.name) == "partner":
        ids_file = ids_file.with_name("partner-ids.txt")
    request = request_of(scenario, server.name)
    options = ["--ids", str(ids_file), "--concurrency", str(args.concurrency)]
    options += ["--warmup", str(args.warmup), "--duration", str(args.duration)]
    return measure(server, url, request.path, request.body, [*options, "--seed", str(args.seed)])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--server-url",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="PostgreSQL server to create the scratch database on",
    )
    parser.add_argument("--database", default="hub_bench")
    parser.add_argument("--dataset", choices=["auto", "seed", "sql"], default="auto")
    parser.add_argument("--scenarios", default="1,2")
    parser.add_argument("--servers", default=",".join(SERVERS))
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes per server: the hub's --workers, PostGraphile's cluster (raw: one)",
    )
    parser.add_argument("--port", type=int, default=18300, help="first of the servers' ports")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--no-write", action="store_true", help="print, do not touch the docs")
    args = parser.parse_args()
    command = "python -m bench.read " + " ".join(shlex.quote(a) for a in sys.argv[1:])

    scenarios = [READ_SCENARIOS[int(n)] for n in args.scenarios.split(",")]
    names = args.servers.split(",")
    url, source = asyncio.run(
        ensure_dataset(args.server_url, args.database, args.customers, args.seed, args.dataset)
    )
    asyncio.run(prewarm(url))
    ids = asyncio.run(customer_ids(url))
    sample = random.Random(args.seed).sample(ids, 5)
    partner: list[str] = []
    if "hub-partner" in names:
        in_scope = asyncio.run(partner_ids(url))
        partner = random.Random(args.seed).sample(in_scope, min(3, len(in_scope)))

    results: dict[tuple[int, str], report.Measurement] = {}
    for scenario in scenarios:
        for name in names:
            if name == "hub-partner" and scenario.number not in PARTNER_SCENARIOS:
                continue
            measurement = results.setdefault((scenario.number, name), report.Measurement())
            if name in KNOWN_STATEMENTS:
                measurement.statements = KNOWN_STATEMENTS[name]
            elif name == "hub-dev":  # counted in development mode (bench/statements.py)
                counted = asyncio.run(hub_statements(url, scenario, sample[0], compiled=True))
                measurement.statements = str(counted)
            else:  # keyed: not counted in-process
                measurement.statements = "-"

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as scratch:
        ids_file = Path(scratch) / "ids.txt"
        ids_file.write_text("\n".join(ids))
        if partner:
            ids_file.with_name("partner-ids.txt").write_text("\n".join(in_scope))
        print("starting servers…", flush=True)
        with start_servers(
            names,
            url,
            args.port,
            Path(tempfile.gettempdir()) / "hub-bench-logs",
            args.workers,
            documents=trusted_documents(),
        ) as servers:
            for scenario in scenarios:
                scoped = partner if scenario.number in PARTNER_SCENARIOS else []
                check_equivalent(servers, scenario, sample, scoped)
            for round_number in range(args.rounds):
                # Rotate the order each round so no server always runs first or last.
                order = names[round_number % len(names) :] + names[: round_number % len(names)]
                for scenario in scenarios:
                    for name in order:
                        if name == "hub-partner" and scenario.number not in PARTNER_SCENARIOS:
                            continue
                        result = load(servers[name], scenario, ids_file, args, url)
                        results[(scenario.number, name)].add(result)
                        print(
                            f"  round {round_number + 1} scenario {scenario.number} {name:15} "
                            f"{result['rps']:8.0f} req/s  p50 {result['p50_ms']:6.1f} ms  "
                            f"p99 {result['p99_ms']:6.1f} ms  CPU {result['cpu_ms']:5.2f} ms/req  "
                            f"errors {result['errors']}",
                            flush=True,
                        )

    titles = {s.number: s.title for s in scenarios}
    body = report.table(results, titles, names)
    print()
    print(body)
    if not args.no_write:
        postgraphile = (
            json.loads(
                (POSTGRAPHILE_DIR / "node_modules" / "postgraphile" / "package.json").read_text()
            )["version"]
            if (POSTGRAPHILE_DIR / "node_modules" / "postgraphile").exists()
            else "?"
        )
        details = [
            f"data set: {args.customers:,} customers ({source}), seed {args.seed}",
            f"load: {args.concurrency} concurrent clients, {args.warmup:g} s warm-up, "
            f"{args.duration:g} s measured, median of {args.rounds} rounds",
            f"Python {sys.version.split()[0]}, PostGraphile {postgraphile} on Node "
            f"{node_version()}; "
            + (
                "every server is one process"
                if args.workers == 1
                else f"hub and PostGraphile {args.workers} processes each, raw one"
            ),
            "keys: hub = FRONTEND key without pii (masked), hub-trusted = the same calling "
            "registered documents by documentId with a key allowed nothing else, hub-partner = "
            f"PARTNER key on {' and '.join(PARTNER_CHANNELS)} (scenario 1 only), hub-dev = "
            "development mode (no key); PostGraphile and raw check no key, mask nothing and "
            "scope nothing",
            f"machine load average (1 min) {load_before[0]:.1f} at the start, "
            f"{os.getloadavg()[0]:.1f} at the end (the benchmark's own servers and clients "
            "count in it: 16 clients keep two cores busy)",
        ]
        block = "results" if args.workers == 1 else f"results-workers{args.workers}"
        report.write(args.output, command, body, details, block=block)
        print(f"\nwritten to {args.output}")


def node_version() -> str:
    return report.node_version(NODE)


if __name__ == "__main__":
    main()
