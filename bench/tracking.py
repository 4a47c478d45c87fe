"""Tracking benchmark: Segment's ``/v1/batch`` against ``recordInteractions``, same server.

    python -m bench.tracking [--batch 1000] [--rounds 3]

Starts ``hub serve`` on a scratch database (created on ``HUB_BENCH_DATABASE_URL``, default the
local PostgreSQL; dropped at the end), with an ADMIN key for the mutation and a SOURCE key for
``/v1/batch``, both on one touchpoint. Each round sends one batch of ``--batch`` ``track``
messages of new people (a user id and an e-mail each; the mapped event ``Product Viewed``) and
one ``recordInteractions`` call with the same number of items of new people (an e-mail and the
CRM id each, type PRODUCT_VIEW), alternating which goes first; prints events/s per call, the
median of each and their ratio, and the median CPU the hub's process spent per event (from
/proc: steadier than rates on a busy machine). Every message must be stored (else it fails).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import statistics
import time
import uuid
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import create_async_engine

from bench.ingest import RECORD_MANY, _admin_key, _wait_ready, scratch_hub
from bench.servers import cpu_seconds, process_tree
from hub.access.keys import Role, create_key
from hub.db.engine import sqlalchemy_url


def _track(tag: str, n: int) -> dict[str, Any]:
    return {
        "type": "track",
        "messageId": f"{tag}-{n}",
        "userId": f"{tag}-user-{n}",
        "event": "Product Viewed",
        "properties": {"product_id": f"p{n % 50}", "price": n % 100},
        "context": {"traits": {"email": f"{tag}{n}@bench.example"}},
        "timestamp": "2026-12-01T10:00:00Z",
    }


def _item(touchpoint: uuid.UUID, tag: str, n: int) -> dict[str, Any]:
    return {
        "identities": [
            {"kind": "CRM_ID", "value": f"{tag}-user-{n}"},
            {"kind": "EMAIL", "value": f"{tag}{n}@bench.example"},
        ],
        "touchpointId": str(touchpoint),
        "type": "PRODUCT_VIEW",
        "direction": "INBOUND",
        "summary": "Product Viewed",
        "occurredAt": "2026-12-01T10:00:00+00:00",
        "attributes": {"source": "segment", "properties": {"product_id": f"p{n % 50}"}},
        "idempotencyKey": f"{tag}-{n}",
    }


async def _source_key(url: str, touchpoint: uuid.UUID) -> str:
    engine = create_async_engine(sqlalchemy_url(url))
    try:
        async with engine.begin() as connection:
            created = await create_key(
                connection, name="bench-source", role=Role.SOURCE, touchpoints=[str(touchpoint)]
            )
    finally:
        await engine.dispose()
    return created.key


def hub_cpu(pid: int) -> float:
    """CPU seconds used so far by ``hub serve`` and its workers."""
    return sum(cpu_seconds(p) for p in process_tree(pid))


async def tracking_batch(client: httpx.AsyncClient, key: str, tag: str, size: int) -> float:
    body = {"batch": [_track(tag, n) for n in range(size)]}
    basic = base64.b64encode(f"{key}:".encode()).decode()
    started = time.perf_counter()
    response = await client.post(
        "/v1/batch", json=body, headers={"Authorization": f"Basic {basic}"}
    )
    seconds = time.perf_counter() - started
    answer = response.json()
    if response.status_code != 200 or answer.get("stored") != size:
        raise RuntimeError(str(answer)[:500])
    return size / seconds


async def mutation_batch(
    client: httpx.AsyncClient, key: str, touchpoint: uuid.UUID, tag: str, size: int
) -> float:
    inputs = [_item(touchpoint, tag, n) for n in range(size)]
    started = time.perf_counter()
    response = await client.post(
        "/graphql",
        json={"query": RECORD_MANY, "variables": {"inputs": inputs}},
        headers={"Authorization": f"Bearer {key}"},
    )
    seconds = time.perf_counter() - started
    body = response.json()
    if "errors" in body or body["data"]["recordInteractions"]["rejected"]:
        raise RuntimeError(str(body)[:500])
    return size / seconds


async def main(args: argparse.Namespace) -> None:
    async with scratch_hub({}, ["--no-access-log"]) as hub:
        url, touchpoint, process = hub.url, hub.touchpoint, hub.process
        admin_key = await _admin_key(url)
        source_key = await _source_key(url, touchpoint)
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{hub.port}", timeout=300
        ) as client:
            await _wait_ready(client, process)
            # Warm-up: both paths once, small.
            await tracking_batch(client, source_key, "wt", 50)
            await mutation_batch(client, admin_key, touchpoint, "wm", 50)
            tracking: list[float] = []
            mutation: list[float] = []
            cpu: dict[int, list[float]] = {0: [], 1: []}
            for round_ in range(args.rounds):
                first_tracking = round_ % 2 == 0
                for which in (0, 1) if first_tracking else (1, 0):
                    before = hub_cpu(process.pid)
                    if which == 0:
                        rate = await tracking_batch(client, source_key, f"t{round_}", args.batch)
                        tracking.append(rate)
                    else:
                        rate = await mutation_batch(
                            client, admin_key, touchpoint, f"m{round_}", args.batch
                        )
                        mutation.append(rate)
                    cpu[which].append((hub_cpu(process.pid) - before) * 1000 / args.batch)
        t, m = statistics.median(tracking), statistics.median(mutation)
        print("/v1/batch events/s:          " + ", ".join(f"{r:,.0f}" for r in tracking))
        print("recordInteractions events/s: " + ", ".join(f"{r:,.0f}" for r in mutation))
        print(f"median: /v1/batch {t:,.0f}, recordInteractions {m:,.0f}, ratio {t / m:.2f}")
        ct, cm = statistics.median(cpu[0]), statistics.median(cpu[1])
        print(f"hub CPU ms/event (median): /v1/batch {ct:.3f}, recordInteractions {cm:.3f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=1000, help="messages per call")
    parser.add_argument("--rounds", type=int, default=3, help="calls of each kind")
    asyncio.run(main(parser.parse_args()))
