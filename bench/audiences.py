"""Audiences benchmark: issue #18's three targets on the benchmark data set, measured through a
real ``hub serve`` with real keys.

    python -m bench.audiences            # 100k customers / ~2M interactions (seeds.demo)
    python -m bench.audiences --quick    # 10k customers, fewer events and rounds (a smoke run)

The data set is ``bench.dataset``'s (``hub_bench_audiences``, filled once, reused while its size
matches). Two copies of it (``CREATE DATABASE … TEMPLATE``, dropped at the end): **plain** (no
segment, no computed trait) and **audiences**; a ``hub serve`` on each, with an ADMIN key.

(a) **Definitions**: on *audiences*, over HTTP, ``defineComputedTrait`` once per aggregate (10
    traits: the nine aggregates and a windowed COUNT) and ``createSegment`` 20 times (stage,
    channels, consent, activity windows, computed-trait conditions), each timed from the client
    (the mutation checks, writes and materialises / backfills before it answers).
(b) **Latency**: a websocket subscriber of ``segmentMembershipChanged(keys: ["live-buyers"])``;
    ``--latency-events`` ORDER events of new people, one at a time, each making its customer
    enter ``live-buyers``; latency = from sending the ``recordInteraction`` request to the
    ENTERED message arriving (p50/p99).
(c) **Ingest**: single calls 16 in flight and batches of 1,000, by two workloads
    (``--workloads new,known``): ``bench.ingest``'s (every event a new person) and events of
    known customers (the data set's, drawn by a seeded sequence; types cycling through
    ``bench.ingest.TYPES``), on *plain* and on *audiences* (20 segments, 10 traits), in
    alternated rounds (ABBA...); medians of events/s, and the CPU per event of the hub process
    and of its database backends (from /proc), which does not depend on the machine's load.
    A round ends when the audiences queue is empty (``hub.audiences.queue``: the server's
    drainer has evaluated every event), so the rate counts the evaluation; the wait after the
    last answer is reported as the drain wait.
    Then round trips per event: each server again, through a counting TCP proxy in front of
    PostgreSQL (messages ending a round trip: Sync and simple Query), with the background
    poller slowed and the sweeper off so that only ingest talks to the database.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import struct
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx

from bench.dataset import ensure_dataset
from bench.ingest import (
    RECORD,
    TYPES,
    Result,
    _admin_key,
    _wait_ready,
    bench_batch,
    bench_single,
    measured,
)
from bench.servers import free_port
from bench.write import clone, drop
from hub.db.engine import asyncpg_dsn

SOURCE_DB = "hub_bench_audiences"
DEFINE = (
    "mutation($input: DefineComputedTraitInput!) { defineComputedTrait(input: $input) { key } }"
)
CREATE = (
    "mutation($input: CreateSegmentInput!) { createSegment(input: $input) { key memberCount } }"
)
FEED = (
    'subscription { segmentMembershipChanged(keys: ["live-buyers"]) {'
    " cursor change reason customerId } }"
)

# One trait per aggregate, and a windowed COUNT: 10 computed traits.
TRAITS: list[dict[str, Any]] = [
    {"key": "orders", "aggregate": "COUNT", "interactions": {"types": ["ORDER"]}},
    {"key": "orders_30d", "aggregate": "COUNT", "interactions": {"types": ["ORDER"]},
     "withinDays": 30},
    {"key": "lifetime_value", "aggregate": "SUM", "interactions": {"types": ["ORDER"]},
     "attribute": "attributes.amount"},
    {"key": "smallest_order", "aggregate": "MIN", "interactions": {"types": ["ORDER"]},
     "attribute": "attributes.amount"},
    {"key": "largest_order", "aggregate": "MAX", "interactions": {"types": ["ORDER"]},
     "attribute": "attributes.amount"},
    {"key": "basket", "aggregate": "AVG", "interactions": {"types": ["ORDER"]},
     "attribute": "attributes.amount"},
    {"key": "first_channel", "aggregate": "FIRST", "interactions": {"directions": ["INBOUND"]},
     "attribute": "channel"},
    {"key": "last_channel", "aggregate": "LAST", "interactions": {"directions": ["INBOUND"]},
     "attribute": "channel"},
    {"key": "preferred_channel", "aggregate": "MOST_FREQUENT",
     "interactions": {"directions": ["INBOUND"]}, "attribute": "channel", "withinDays": 90},
    {"key": "products_seen", "aggregate": "DISTINCT_COUNT",
     "interactions": {"types": ["PRODUCT_VIEW"]}, "attribute": "attributes.sku"},
]  # fmt: skip


def _segments() -> list[dict[str, Any]]:
    """20 segments of everyday shapes; ``live-buyers`` is the one (b) subscribes to."""
    stages = ["AWARENESS", "CONSIDERATION", "PURCHASE", "POST_PURCHASE", "RETENTION"]
    channels = ["WEB", "MOBILE", "ASSISTED", "SOCIAL", "PHYSICAL"]
    found: list[dict[str, Any]] = [
        {"key": "live-buyers", "name": "Ordered today",
         "activity": [{"interactions": {"types": ["ORDER"]}, "withinDays": 1, "min": 1}]},
        {"key": "web-buyers-90d", "name": "Web buyers",
         "filter": {"channelsUsed": {"any": ["WEB", "MOBILE"]}},
         "activity": [{"interactions": {"types": ["ORDER"]}, "withinDays": 90, "min": 1}]},
        {"key": "engaged-not-buying", "name": "Engaged, not buying",
         "filter": {"stage": {"in": ["CONSIDERATION"]}},
         "activity": [
             {"interactions": {"channels": ["WEB"]}, "withinDays": 30, "min": 2},
             {"interactions": {"types": ["ORDER"]}, "withinDays": 60, "max": 0}]},
        {"key": "marketable", "name": "Marketable",
         "filter": {"hasConsent": {"purpose": "MARKETING"}}},
        {"key": "high-value", "name": "High value",
         "computed": [{"key": "lifetime_value", "gt": 500}]},
        {"key": "frequent", "name": "Frequent buyers",
         "computed": [{"key": "orders_30d", "gt": 1}]},
        {"key": "support-heavy", "name": "Support heavy",
         "activity": [{"interactions": {"types": ["SUPPORT_TICKET"]}, "withinDays": 30,
                       "min": 2}]},
        {"key": "lapsed", "name": "Lapsed",
         "filter": {"stage": {"in": ["RETENTION", "POST_PURCHASE"]}},
         "activity": [{"interactions": {"directions": ["INBOUND"]}, "withinDays": 60, "max": 0}]},
    ]  # fmt: skip
    for stage in stages:
        found.append(
            {"key": f"stage-{stage.lower()}", "name": stage, "filter": {"stage": {"in": [stage]}}}
        )
    for channel in channels:
        found.append(
            {
                "key": f"active-{channel.lower()}",
                "name": f"Active on {channel}",
                "activity": [{"interactions": {"channels": [channel]}, "withinDays": 30, "min": 1}],
            }
        )
    found.append(
        {
            "key": "viewers-no-order",
            "name": "Viewed, did not order",
            "activity": [
                {"interactions": {"types": ["PRODUCT_VIEW"]}, "withinDays": 7, "min": 1},
                {"interactions": {"types": ["ORDER"]}, "withinDays": 7, "max": 0},
            ],
        }
    )
    found.append(
        {
            "key": "gold-web",
            "name": "Gold on the web",
            "filter": {
                "and": [
                    {"stage": {"in": ["RETENTION"]}},
                    {"channelsUsed": {"all": ["WEB", "MOBILE"]}},
                ]
            },
            "computed": [{"key": "orders", "gt": 2}],
        }
    )
    assert len(found) == 20, len(found)
    return found


# ---- servers ----


@dataclass
class Hub:
    name: str
    url: str
    process: asyncio.subprocess.Process
    client: httpx.AsyncClient
    port: int
    key: str
    tags: int = 0

    def tag(self) -> str:
        self.tags += 1
        return f"{self.name[0]}{self.tags}r{uuid.uuid4().hex[:6]}-"

    async def gql(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        response = await self.client.post("/graphql", json={"query": query, "variables": variables})
        body: dict[str, Any] = response.json()
        if "errors" in body:
            raise RuntimeError(body["errors"])
        return body["data"]  # type: ignore[no-any-return]

    async def stop(self) -> None:
        await self.client.aclose()
        if self.process.returncode is None:
            self.process.terminate()
            await asyncio.wait_for(self.process.wait(), timeout=30)


def _server_log(name: str) -> Any:
    """Where a server's log goes: ``BENCH_SERVER_LOGS``/<name>.log when that folder is set (to
    see why a server failed), else nowhere."""
    folder = os.environ.get("BENCH_SERVER_LOGS")
    if not folder:
        return asyncio.subprocess.DEVNULL
    os.makedirs(folder, exist_ok=True)
    return open(os.path.join(folder, f"{name}.log"), "ab")  # the server writes it till it ends


async def start_hub(
    name: str, url: str, key: str, *, database_url_: str | None = None, **env: str
) -> Hub:
    port = free_port()
    environment = {
        **os.environ,
        "HUB_DATABASE_URL": database_url_ or url,
        "HUB_MIGRATE_ON_START": "false",
        "HUB_POOL_SIZE": "18",
        "HUB_RATE_LIMIT_PER_SECOND": "1000000",
        "HUB_RATE_LIMIT_BURST": "1000000",
        **env,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hub",
        "serve",
        "--port",
        str(port),
        "--no-access-log",
        env=environment,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=_server_log(name),
    )
    client = httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}",
        timeout=300,
        limits=httpx.Limits(max_connections=20),
        headers={"Authorization": f"Bearer {key}"},
    )
    hub = Hub(name, url, process, client, port, key)
    try:
        await _wait_ready(client, process)
    except BaseException:
        await hub.stop()
        raise
    return hub


def load() -> str:
    return " ".join(f"{v:.1f}" for v in os.getloadavg())


# ---- (a) definitions ----


async def define_all(hub: Hub) -> tuple[list[tuple[str, float]], list[tuple[str, float, int]]]:
    traits: list[tuple[str, float]] = []
    for trait in TRAITS:
        started = time.perf_counter()
        await hub.gql(DEFINE, {"input": trait})
        took = time.perf_counter() - started
        traits.append((f"{trait['key']} ({trait['aggregate']})", took))
        print(f"  defineComputedTrait {trait['key']:18} {took:6.2f} s", flush=True)
    segments: list[tuple[str, float, int]] = []
    for segment in _segments():
        started = time.perf_counter()
        created = (await hub.gql(CREATE, {"input": segment}))["createSegment"]
        took = time.perf_counter() - started
        segments.append((segment["key"], took, created["memberCount"]))
        print(
            f"  createSegment {segment['key']:20} {took:6.2f} s  {created['memberCount']:>7,}"
            " members",
            flush=True,
        )
    return traits, segments


# ---- (b) latency ----


async def latency(hub: Hub, touchpoint: str, events: int) -> list[float]:
    import websockets

    tag = hub.tag()
    found: list[float] = []
    async with websockets.connect(
        f"ws://127.0.0.1:{hub.port}/graphql",
        subprotocols=[websockets.Subprotocol("graphql-transport-ws")],
        max_size=None,
    ) as ws:
        await ws.send(
            json.dumps(
                {"type": "connection_init", "payload": {"Authorization": f"Bearer {hub.key}"}}
            )
        )
        ack = json.loads(await asyncio.wait_for(ws.recv(), 30))
        assert ack["type"] == "connection_ack", ack
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": FEED}}))
        # Warm: one event delivered end to end before measuring.
        for n in range(-1, events):
            item = {
                "identities": [{"kind": "EMAIL", "value": f"{tag}{n}@live.example"}],
                "touchpointId": touchpoint,
                "type": "ORDER",
                "direction": "INBOUND",
                "attributes": {"amount": 10 + n % 50},
            }
            started = time.perf_counter()
            data = await hub.gql(RECORD, {"input": item})
            assert data["recordInteraction"]["interaction"]["id"]
            while True:
                message = json.loads(await asyncio.wait_for(ws.recv(), 60))
                if message["type"] == "ping":  # the server's keep-alive
                    await ws.send(json.dumps({"type": "pong"}))
                    continue
                if message["type"] != "next":
                    raise RuntimeError(message)
                event = message["payload"]["data"]["segmentMembershipChanged"]
                if event["change"] == "ENTERED" and event["reason"] == "INGEST":
                    break
            if n >= 0:
                found.append(time.perf_counter() - started)
    return found


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# ---- (c) ingest ----


@dataclass
class Series:
    results: list[Result] = field(default_factory=list)

    def median_rate(self) -> float:
        return statistics.median(r.rate for r in self.results)

    def cpu(self) -> tuple[float, float]:
        events = sum(r.events for r in self.results)
        hub = sum(r.hub_cpu or 0 for r in self.results) / events * 1000
        db = sum(r.db_cpu or 0 for r in self.results) / events * 1000
        return hub, db


# The workloads: events of new people (each event a new customer: every segment is evaluated,
# most memberships are entries) and of known customers (the data set's, by a seeded draw: the
# usual traffic, traits re-aggregating each customer's history).
MODES = {
    "single": "single x16, new people",
    "batch": "batch x1000, new people",
    "single-known": "single x16, known customers",
    "batch-known": "batch x1000, known customers",
}


def known_items(touchpoint: uuid.UUID, emails: list[str], tag: str, seed: int) -> Any:
    """Events of known customers: the n-th's e-mail drawn by ``random.Random(seed)`` (the same
    sequence on both copies of the data set), its type cycling through the bench's types."""
    draw = random.Random(seed)
    chosen: dict[int, str] = {}

    def make(n: int) -> dict[str, Any]:
        if n not in chosen:
            chosen[n] = draw.choice(emails)
        return {
            "identities": [{"kind": "EMAIL", "value": chosen[n]}],
            "touchpointId": str(touchpoint),
            "type": TYPES[n % len(TYPES)],
            "direction": "INBOUND",
            "summary": f"event {n}",
            "attributes": {"n": n, "amount": 10 + n % 90, "sku": f"sku{n % 50}"},
            "idempotencyKey": f"{tag}-{n}",
        }

    return make


async def ingest_targets(url: str) -> tuple[uuid.UUID, list[str]]:
    """The touchpoint the ingest workloads use (the first active WEB one) and the e-mails of
    the data set's live customers (the known-customers workload draws from them)."""
    db = await asyncpg.connect(asyncpg_dsn(url))
    try:
        touchpoint: uuid.UUID = await db.fetchval(
            "SELECT id FROM touchpoints WHERE channel_code = 'WEB' AND active ORDER BY id LIMIT 1"
        )
        rows = await db.fetch(
            "SELECT i.value FROM identities i JOIN customers c ON c.id = i.customer_id"
            " WHERE i.kind = 'EMAIL' AND c.merged_into_id IS NULL AND c.erased_at IS NULL"
            " ORDER BY i.id"
        )
    finally:
        await db.close()
    return touchpoint, [r["value"] for r in rows]


async def ingest_round(
    hub: Hub,
    database: str,
    touchpoint: uuid.UUID,
    mode: str,
    events: int,
    emails: list[str],
    seed: int,
) -> Result:
    pid = hub.process.pid
    tag = hub.tag()
    item = known_items(touchpoint, emails, tag, seed) if mode.endswith("-known") else None
    if mode.startswith("single"):
        run = bench_single(hub.client, touchpoint, events, 16, tag=tag, item=item)
    else:
        run = bench_batch(hub.client, touchpoint, events, 1000, tag=tag, item=item)
    return await measured(until_drained(run, hub.url), pid, database)


async def drained(url: str) -> None:
    """Until the audiences queue (hub.audiences.queue) is empty: what ingest queued has been
    evaluated by the server's drainer. Polled every 2 ms on a connection of its own."""
    db = await asyncpg.connect(asyncpg_dsn(url))
    try:
        while True:
            if not await db.fetchval("SELECT EXISTS (SELECT FROM audience_queue)"):
                return
            await asyncio.sleep(0.002)
    finally:
        await db.close()


async def until_drained(run: Any, url: str) -> Result:
    """``await run``, then wait for the drainer: the ingest's rate counts the evaluation of
    every event it took (the wait is added to its seconds and kept as ``drain_s``)."""
    result: Result = await run
    started = time.perf_counter()
    await drained(url)
    result.drain_s = time.perf_counter() - started
    result.seconds += result.drain_s
    return result


# ---- round trips through a counting proxy ----


class CountingProxy:
    """A TCP proxy in front of PostgreSQL counting the frontend messages that end a round trip
    (Sync 'S' of the extended protocol, 'Q' simple queries)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.round_trips = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(self.host, self.port)

        async def downstream() -> None:
            try:
                while data := await up_reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            finally:
                writer.close()

        task = asyncio.create_task(downstream())
        try:
            buffer = b""
            startup = True
            while data := await reader.read(65536):
                up_writer.write(data)
                buffer += data
                while True:
                    if startup:  # untyped: SSLRequest / StartupMessage (length first)
                        if len(buffer) < 8:
                            break
                        (length,) = struct.unpack("!I", buffer[:4])
                        if len(buffer) < length:
                            break
                        (code,) = struct.unpack("!I", buffer[4:8])
                        buffer = buffer[length:]
                        if code != 80877103:  # not an SSLRequest: the startup message
                            startup = False
                        continue
                    if len(buffer) < 5:
                        break
                    kind = buffer[0:1]
                    (length,) = struct.unpack("!I", buffer[1:5])
                    if len(buffer) < 1 + length:
                        break
                    if kind in (b"S", b"Q"):
                        self.round_trips += 1
                    buffer = buffer[1 + length :]
                await up_writer.drain()
        finally:
            up_writer.close()
            await task


async def round_trips(
    name: str, url: str, key: str, database: str, touchpoint: uuid.UUID, events: int
) -> tuple[float, float]:
    """Round trips per event (single calls, then batches of 1,000) of a fresh ``hub serve``
    through the counting proxy."""
    parts = httpx.URL(url)
    proxy = CountingProxy(parts.host or "127.0.0.1", parts.port or 5432)
    port = await proxy.start()
    proxied = url.replace(f"{parts.host}:{parts.port or 5432}", f"127.0.0.1:{port}")
    hub = await start_hub(
        name,
        url,
        key,
        database_url_=proxied,
        HUB_EVENTS_POLL_INTERVAL_MS="600000",
        HUB_EVENTS_LISTEN_WAKEUP="false",
        HUB_AUDIENCES_SWEEP_S="0",
    )
    try:
        await bench_single(hub.client, touchpoint, 32, 16, tag=hub.tag())  # warm the pools
        await drained(url)
        before = proxy.round_trips
        await bench_single(hub.client, touchpoint, events, 16, tag=hub.tag())
        await drained(url)  # the drainer's round trips count (its idle polls too)
        single = (proxy.round_trips - before) / events
        before = proxy.round_trips
        await bench_batch(hub.client, touchpoint, 1000, 1000, tag=hub.tag())
        await drained(url)
        batch = (proxy.round_trips - before) / 1000
    finally:
        await hub.stop()
        await proxy.close()
    return single, batch


# ---- main ----


async def main(args: argparse.Namespace) -> None:
    quick = args.quick
    customers = 10_000 if quick else args.customers
    source_db = f"{SOURCE_DB}_quick" if quick else SOURCE_DB
    latency_events = 50 if quick else args.latency_events
    rounds = 2 if quick else args.rounds
    single_events = 200 if quick else args.single_events
    batch_events = 1000 if quick else args.batch_events
    workloads = set(args.workloads.split(","))
    print(f"load average at start: {load()}", flush=True)
    source_url, label = await ensure_dataset(args.server, source_db, customers, 7, args.source)
    raw = await asyncpg.connect(asyncpg_dsn(source_url))
    counts = await raw.fetchrow(
        "SELECT (SELECT count(*) FROM customers) AS c, (SELECT count(*) FROM interactions) AS i"
    )
    await raw.close()
    print(f"{label}: {counts['c']:,} customers, {counts['i']:,} interactions", flush=True)
    names = {"plain": f"{source_db}_plain", "audiences": f"{source_db}_aud"}
    hubs: dict[str, Hub] = {}
    try:
        urls = {k: await clone(args.server, source_db, v) for k, v in names.items()}
        keys = {k: await _admin_key(v) for k, v in urls.items()}
        touchpoint, emails = await ingest_targets(urls["plain"])
        for k in names:
            hubs[k] = await start_hub(k, urls[k], keys[k])

        print(f"(a) definitions on {names['audiences']}, load {load()}", flush=True)
        traits, segments = await define_all(hubs["audiences"])

        print(f"(b) latency, {latency_events} events, load {load()}", flush=True)
        latencies = await latency(hubs["audiences"], str(touchpoint), latency_events)
        p50, p99 = percentile(latencies, 0.5) * 1000, percentile(latencies, 0.99) * 1000
        print(f"  ENTERED delivered: p50 {p50:.1f} ms, p99 {p99:.1f} ms, load {load()}")

        print(f"(c) ingest, {rounds} rounds, load {load()}", flush=True)
        modes = [m for m in MODES if ("known" if m.endswith("-known") else "new") in workloads]
        series = {(k, m): Series() for k in names for m in modes}
        loads: list[float] = []
        for r in range(rounds):
            order = ["plain", "audiences"] if r % 2 == 0 else ["audiences", "plain"]
            for mode in modes:
                events = single_events if mode.startswith("single") else batch_events
                for k in order:
                    loads.append(os.getloadavg()[0])
                    result = await ingest_round(
                        hubs[k], names[k], touchpoint, mode, events, emails, seed=r
                    )
                    series[(k, mode)].results.append(result)
                    print(
                        f"  round {r + 1} {mode:6} {k:9} {result.rate:8.0f} events/s"
                        f"  load {loads[-1]:.1f}",
                        flush=True,
                    )
        for hub in hubs.values():
            await hub.stop()
        hubs.clear()
        trips = {
            k: await round_trips(
                k, urls[k], keys[k], names[k], touchpoint, 200 if quick else args.trip_events
            )
            for k in names
        }
        report(traits, segments, latencies, series, loads, trips, label, counts)
    finally:
        for hub in hubs.values():
            await hub.stop()
        if not args.keep:
            for name in names.values():
                await drop(args.server, name)


def report(
    traits: list[tuple[str, float]],
    segments: list[tuple[str, float, int]],
    latencies: list[float],
    series: dict[tuple[str, str], Series],
    loads: list[float],
    trips: dict[str, tuple[float, float]],
    label: str,
    counts: Any,
) -> None:
    print()
    print(f"data set: {counts['c']:,} customers, {counts['i']:,} interactions ({label})")
    print("| definition | seconds |\n|---|---:|")
    for name, took in traits:
        print(f"| defineComputedTrait {name} | {took:.2f} |")
    times = [s[1] for s in segments]
    print(
        f"| createSegment, 20 segments: median / max | {statistics.median(times):.2f} /"
        f" {max(times):.2f} |"
    )
    for key, seconds, members in segments:
        print(f"| createSegment {key} ({members:,} members) | {seconds:.2f} |")
    print()
    print(
        f"ENTERED delivered to a websocket subscriber, {len(latencies)} events: p50"
        f" {percentile(latencies, 0.5) * 1000:.1f} ms, p99 {percentile(latencies, 0.99) * 1000:.1f}"
        f" ms, max {max(latencies) * 1000:.1f} ms"
    )
    print()
    print(
        f"ingest, {len(next(iter(series.values())).results)} alternated rounds, load average"
        f" (1 min) {min(loads):.1f}-{max(loads):.1f}, median {statistics.median(loads):.1f}"
    )
    print(
        "| scenario | plain events/s (median) | audiences events/s (median) | ratio |"
        " CPU ms/event hub + db, plain → audiences | ratio by CPU | round trips/event,"
        " plain → audiences | drain wait s/round |\n|---|---:|---:|---:|---:|---:|---:|---:|"
    )
    for mode, label_ in MODES.items():
        if ("plain", mode) not in series:
            continue
        a, b = series[("plain", mode)], series[("audiences", mode)]
        (ah, ad), (bh, bd) = a.cpu(), b.cpu()
        trip = 0 if mode.startswith("single") else 1  # round trips: counted with new people
        print(
            f"| {label_} | {a.median_rate():,.0f} | {b.median_rate():,.0f} |"
            f" {b.median_rate() / a.median_rate():.2f} | {ah:.2f} + {ad:.2f} → {bh:.2f} +"
            f" {bd:.2f} | {(ah + ad) / (bh + bd):.2f} | {trips['plain'][trip]:.2f} →"
            f" {trips['audiences'][trip]:.2f} |"
            f" {statistics.median(r.drain_s for r in b.results):.3f} |"
        )
    print(f"load average at the end: {load()}")


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--source", default="seed", choices=["sql", "seed", "auto"])
    parser.add_argument("--quick", action="store_true", help="10k customers, few events")
    parser.add_argument("--latency-events", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=4, help="alternated A/B ingest rounds")
    parser.add_argument("--single-events", type=int, default=800)
    # 15 batches a round: the drainer evaluates while the next batch is ingested, so a round's
    # rate is its sustained rate plus one drain tail (with 3 batches, the tail weighed a fifth).
    parser.add_argument("--batch-events", type=int, default=15000)
    parser.add_argument("--trip-events", type=int, default=200)
    parser.add_argument("--keep", action="store_true", help="keep the two copies")
    parser.add_argument(
        "--workloads", default="new,known", help="ingest by new people, known customers or both"
    )
    asyncio.run(main(parser.parse_args()))


if __name__ == "__main__":
    cli()
