"""Side-by-side ingest benchmark (scenarios 3 and 4): the hub, PostGraphile V5 and raw asyncpg.

    python -m bench.write --customers 100000

Runs on a copy of the read benchmark's data set (``CREATE DATABASE … TEMPLATE hub_bench``, made
afresh each run and dropped at the end), so every server writes into the same 100k customers and
~2M interactions and the read data set stays as it was. Each event is an interaction of a known
customer, named by e-mail for the hub and the raw endpoint (they resolve the identity) and by
customer id for PostGraphile (its generated ``createInteraction`` cannot look an e-mail up):

3. batch: 1,000 events per request (the hub's ``recordInteractions``; PostGraphile: 1,000
   aliased ``createInteraction`` mutations in one document; raw: one ``unnest`` statement);
4. single: one event per request from 16 concurrent clients.

The servers do different amounts of work per event, and the table says so: the hub validates,
resolves the identity, applies the journey rules, joins conversations, checks idempotency and
consent, writes the outbox event and the audit entry; the raw endpoint resolves the e-mail,
inserts, moves ``last_seen_at`` and writes the outbox event in one statement; PostGraphile
inserts the row. Before timing, each server records one event for the same customer and the
stored rows are compared.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bench import report
from bench.dataset import database_url, ensure_dataset
from bench.load import Bodies
from bench.read import measure
from bench.servers import NODE, ROOT, Server, language, start_servers
from hub.db.engine import asyncpg_dsn

# hub: a FRONTEND key (what a real frontend sends); hub-dev: development mode, the extra row.
SERVERS = ["hub", "postgraphile", "raw", "hub-dev"]
TITLES = {3: "batch ingest, 1,000 events per request", 4: "single-event ingest, 16 clients"}

HUB_RECORD = (
    "mutation($input: RecordInteractionInput!) { recordInteraction(input: $input) {"
    " interaction { id } } }"
)
HUB_RECORD_MANY = (
    "mutation($inputs: [RecordInteractionInput!]!) { recordInteractions(inputs: $inputs) {"
    " stored { index } rejected { index code message } } }"
)


@dataclass(frozen=True)
class WriteRequest:
    path: str
    body: str  # JSON text with __ID__/__UUID__/__N__/__AT__ or __ITEMS__ (bench.load)
    ids: str  # "email" or "customer": what __ID__ stands for
    item: str | None = None
    items: int = 1
    join: str = ","
    fail_if: list[str] = field(default_factory=list)


def _hub_input(touchpoint: str, tag: str) -> dict[str, Any]:
    return {
        "identities": [{"kind": "EMAIL", "value": "__ID__"}],
        "touchpointId": touchpoint,
        "type": "PAGE_VIEW",
        "direction": "INBOUND",
        "occurredAt": "__AT__",
        "summary": f"{tag} __N__",
    }


def _raw_item(touchpoint: str, tag: str) -> dict[str, Any]:
    return {
        "email": "__ID__",
        "id": "__UUID__",
        "touchpointId": touchpoint,
        "type": "PAGE_VIEW",
        "direction": "INBOUND",
        "occurredAt": "__AT__",
        "summary": f"{tag} __N__",
    }


PGL_CREATE = "createInteraction(input: {interaction: $v__K__}) { interaction { rowId } }"


def _postgraphile_values(touchpoint: str, channel: str, tag: str) -> dict[str, Any]:
    return {
        "rowId": "__UUID__",
        "customerId": "__ID__",
        "touchpointId": touchpoint,
        "channelCode": channel,
        "occurredAt": "__AT__",
        "type": "PAGE_VIEW",
        "direction": "INBOUND",
        "summary": f"{tag} __N__",
    }


def _postgraphile_batch_document(size: int) -> str:
    """One document for every batch (variables carry the rows), so that PostGraphile plans it
    once, as it would for a client that sends the same mutation again and again."""
    variables = ", ".join(f"$v{k}: InteractionInput!" for k in range(size))
    fields = " ".join(f"m{k}: " + PGL_CREATE.replace("__K__", str(k)) for k in range(size))
    return f"mutation({variables}) {{ {fields} }}"


def requests(scenario: int, touchpoint: str, channel: str, batch: int) -> dict[str, WriteRequest]:
    """Each server language's request (every hub variant speaks the hub's: ``language``)."""
    tag = "bench"
    if scenario == 4:
        return {
            "hub": WriteRequest(
                "/graphql",
                json.dumps(
                    {"query": HUB_RECORD, "variables": {"input": _hub_input(touchpoint, tag)}}
                ),
                "email",
            ),
            "postgraphile": WriteRequest(
                "/graphql",
                json.dumps(
                    {
                        "query": "mutation($v: InteractionInput!) { "
                        + PGL_CREATE.replace("$v__K__", "$v")
                        + " }",
                        "variables": {"v": _postgraphile_values(touchpoint, channel, tag)},
                    }
                ),
                "customer",
            ),
            "raw": WriteRequest("/record", json.dumps(_raw_item(touchpoint, tag)), "email"),
        }
    return {
        "hub": WriteRequest(
            "/graphql",
            json.dumps({"query": HUB_RECORD_MANY, "variables": {"inputs": ["__ITEMS__"]}}).replace(
                '"__ITEMS__"', "__ITEMS__"
            ),
            "email",
            item=json.dumps(_hub_input(touchpoint, tag)),
            items=batch,
            fail_if=['"rejected":[{'],
        ),
        "postgraphile": WriteRequest(
            "/graphql",
            json.dumps(
                {"query": _postgraphile_batch_document(batch), "variables": "__ITEMS__"}
            ).replace('"__ITEMS__"', "{__ITEMS__}"),
            "customer",
            item='"v__K__": ' + json.dumps(_postgraphile_values(touchpoint, channel, tag)),
            items=batch,
        ),
        "raw": WriteRequest(
            "/record",
            '{"items": [__ITEMS__]}',
            "email",
            item=json.dumps(_raw_item(touchpoint, tag)),
            items=batch,
        ),
    }


async def clone(server_url: str, source: str, name: str) -> str:
    """A fresh copy of the data set (PostgreSQL copies the files: seconds, not a re-seed)."""
    admin = await asyncpg.connect(asyncpg_dsn(database_url(server_url, "postgres")))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{source}"')
    finally:
        await admin.close()
    return database_url(server_url, name)


async def drop(server_url: str, name: str) -> None:
    admin = await asyncpg.connect(asyncpg_dsn(database_url(server_url, "postgres")))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def people(url: str) -> tuple[list[str], list[str], str, str]:
    """Aligned lists (line n of each is the same customer: e-mail, id) and a web touchpoint."""
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        rows = await connection.fetch(
            "SELECT DISTINCT ON (c.id) i.value, c.id::text FROM identities i"
            " JOIN customers c ON c.id = i.customer_id"
            " WHERE i.kind = 'EMAIL' AND c.merged_into_id IS NULL ORDER BY c.id, i.id"
        )
        touchpoint = await connection.fetchrow(
            "SELECT id::text, channel_code FROM touchpoints WHERE kind = 'WEBSITE' AND active"
            " ORDER BY name LIMIT 1"
        )
    finally:
        await connection.close()
    return [r[0] for r in rows], [r[1] for r in rows], touchpoint[0], touchpoint[1]


def _post(server: Server, request: WriteRequest, body: str) -> None:
    response = httpx.post(
        server.base_url + request.path,
        content=body,
        headers={"content-type": "application/json", **server.headers},
        timeout=300,
    )
    text = response.text
    if response.status_code != 200 or '"errors"' in text:
        raise SystemExit(f"{server.name} refused a request: {text[:500]}")


async def check_equivalent(
    servers: dict[str, Server], url: str, single: dict[str, WriteRequest], email: str, cid: str
) -> None:
    """Each server records one event for the same customer; the stored rows must agree on
    customer, touchpoint, channel, type and direction."""
    stored = {}
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        for name, server in servers.items():
            request = single[language(name)]
            marker = f"check-{name}"
            body = (
                request.body.replace("__ID__", email if request.ids == "email" else cid)
                .replace("__UUID__", str(uuid.uuid4()))
                .replace("__AT__", "2026-01-01T12:00:00+00:00")
                .replace("bench __N__", marker)
            )
            _post(server, request, body)
            row = await connection.fetchrow(
                "SELECT customer_id::text, touchpoint_id::text, channel_code, type, direction"
                " FROM interactions WHERE summary = $1",
                marker,
            )
            if row is None:
                raise SystemExit(f"{name}: the check event was not stored")
            stored[name] = tuple(row)
    finally:
        await connection.close()
    if len(set(stored.values())) != 1:
        raise SystemExit(f"the servers stored different rows: {stored}")
    print(f"  write scenarios: the stored rows agree ({next(iter(stored.values()))})")


def prime(server: Server, request: WriteRequest, ids: list[str]) -> None:
    """One request of the scenario before any timing: PostGraphile plans a 1,000-mutation
    document once (about 17 s here), which a few seconds of warm-up would not absorb."""
    bodies = Bodies(request.body, ids, 0, request.item, request.items, request.join)
    _post(server, request, bodies.next().decode())


def load(
    server: Server, request: WriteRequest, ids_file: Path, args: argparse.Namespace, url: str
) -> dict[str, float]:
    single = request.item is None
    concurrency = args.concurrency if single else args.batch_concurrency
    duration = args.duration if single else args.batch_duration
    options = ["--ids", str(ids_file), "--concurrency", str(concurrency), "--seed", str(args.seed)]
    options += ["--warmup", str(args.warmup), "--duration", str(duration)]
    if not single:
        options += ["--item", str(request.item), "--items", str(request.items)]
        options += ["--join", request.join]
    for marker in request.fail_if:
        options += ["--fail-if", marker]
    result = measure(server, url, request.path, request.body, options, per_request=request.items)
    result["events_per_s"] = result["rps"] * request.items
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--server-url",
        default=os.environ.get(
            "HUB_BENCH_SERVER_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
    )
    parser.add_argument("--database", default="hub_bench")
    parser.add_argument("--dataset", choices=["auto", "seed", "sql"], default="auto")
    parser.add_argument("--scenarios", default="3,4")
    parser.add_argument("--servers", default=",".join(SERVERS))
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16, help="scenario 4 clients")
    parser.add_argument("--batch-concurrency", type=int, default=2, help="scenario 3 clients")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--duration", type=float, default=10.0, help="scenario 4 window")
    parser.add_argument(
        "--batch-duration",
        type=float,
        default=30.0,
        help="scenario 3 window: several of PostGraphile's 1,000-mutation requests must fit",
    )
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes per server: the hub's --workers, PostGraphile's cluster (raw: one)",
    )
    parser.add_argument("--port", type=int, default=18400, help="first of the servers' ports")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--no-write", action="store_true", help="print, do not touch the docs")
    args = parser.parse_args()
    command = "python -m bench.write " + " ".join(shlex.quote(a) for a in sys.argv[1:])

    numbers = [int(n) for n in args.scenarios.split(",")]
    names = args.servers.split(",")
    asyncio.run(
        ensure_dataset(args.server_url, args.database, args.customers, args.seed, args.dataset)
    )
    copy_name = f"{args.database}_write"
    url = asyncio.run(clone(args.server_url, args.database, copy_name))
    try:
        emails, customer_ids, touchpoint, channel = asyncio.run(people(url))
        scenarios = {n: requests(n, touchpoint, channel, args.batch) for n in numbers}
        single = requests(4, touchpoint, channel, args.batch)
        results: dict[tuple[int, str], report.Measurement] = {}
        load_before = os.getloadavg()
        with tempfile.TemporaryDirectory() as scratch:
            id_files = {
                "email": Path(scratch) / "emails.txt",
                "customer": Path(scratch) / "ids.txt",
            }
            id_files["email"].write_text("\n".join(emails))
            id_files["customer"].write_text("\n".join(customer_ids))
            print("starting servers…", flush=True)
            logs = Path(tempfile.gettempdir()) / "hub-bench-logs"
            with start_servers(names, url, args.port, logs, args.workers) as servers:
                asyncio.run(check_equivalent(servers, url, single, emails[0], customer_ids[0]))
                ids = {"email": emails, "customer": customer_ids}
                for number in numbers:
                    for name in names:
                        request = scenarios[number][language(name)]
                        prime(servers[name], request, ids[request.ids])
                for round_number in range(args.rounds):
                    order = names[round_number % len(names) :] + names[: round_number % len(names)]
                    for number in numbers:
                        for name in order:
                            request = scenarios[number][language(name)]
                            result = load(servers[name], request, id_files[request.ids], args, url)
                            m = results.setdefault((number, name), report.Measurement())
                            m.statements = "-"
                            m.add(result, "events_per_s")
                            print(
                                f"  round {round_number + 1} scenario {number} {name:13} "
                                f"{result['events_per_s']:9.0f} events/s  "
                                f"p50 {result['p50_ms']:7.1f} ms  p99 {result['p99_ms']:7.1f} ms"
                                f"  CPU {result['cpu_ms']:6.3f} ms/event  "
                                f"errors {result['errors']}",
                                flush=True,
                            )
    finally:
        asyncio.run(drop(args.server_url, copy_name))

    body = report.table(
        results, {n: TITLES[n] for n in numbers}, names, unit="events/s", per="event"
    )
    print()
    print(body)
    if not args.no_write:
        details = [
            f"data set: a fresh copy of {args.database} ({args.customers:,} customers), seed "
            f"{args.seed}; events for known customers (e-mail for hub and raw, id for "
            "PostGraphile)",
            f"load: scenario 3 {args.batch_concurrency} clients, {args.batch} events per "
            f"request ({args.batch_duration:g} s measured), scenario 4 {args.concurrency} "
            f"clients, 1 event ({args.duration:g} s measured); {args.warmup:g} s warm-up after "
            f"one priming request per server, median of {args.rounds} rounds",
            f"Python {sys.version.split()[0]}, PostGraphile on Node {report.node_version(NODE)}; "
            + (
                "every server is one process"
                if args.workers == 1
                else f"hub and PostGraphile {args.workers} processes each, raw one"
            ),
            "keys: hub = FRONTEND key without pii, hub-dev = development mode (no key); "
            "PostGraphile and raw check no key and write no audit row",
            f"machine load average (1 min) {load_before[0]:.1f} at the start, "
            f"{os.getloadavg()[0]:.1f} at the end",
        ]
        block = "write" if args.workers == 1 else f"write-workers{args.workers}"
        report.write(args.output, command, body, details, block=block)
        print(f"\nwritten to {args.output}")


if __name__ == "__main__":
    main()
