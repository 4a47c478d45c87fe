"""Server CPU per request: a document sent as text vs by id (trusted documents, APQ hash).

    python -m bench.trusted_documents --url postgresql://postgres@127.0.0.1:5432/postgres

Creates a scratch database on that server, seeds it (``hub seed``), registers scenario 1's
query (one customer's 360° view), starts ``hub serve`` with keys, then sends the same request
``--requests`` times, one at a time, per variant and key, and reads the server process's CPU
time (user + system, ``/proc``) before and after: CPU per request, which a busy machine disturbs
far less than throughput. Prints a Markdown table; drops the database at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bench.scale_out import admin
from bench.scenarios import HUB_CUSTOMER
from bench.servers import ROOT, cpu_seconds
from hub.access.documents import document_id
from hub.access.keys import Role, create_key
from hub.core.ids import to_global_id
from hub.core.settings import Settings
from hub.db.engine import asyncpg_dsn, create_engine
from tests.live_server import start_server

QUERY = "query One($id: ID!) { customer(id: $id) { ...View } }\n" + HUB_CUSTOMER


def _with_database(url: str, name: str) -> str:
    return url.rsplit("/", 1)[0] + "/" + name


async def _keys(url: str) -> dict[str, str]:
    engine = create_engine(url, Settings(database_url=url))
    keys = {}
    try:
        async with engine.begin() as connection:
            for name, role, documents in [
                ("admin", Role.ADMIN, None),
                ("frontend-any", Role.FRONTEND, "ANY"),
                ("frontend", Role.FRONTEND, None),
            ]:
                created = await create_key(
                    connection, name=f"bench-{name}", role=role, documents=documents
                )
                keys[name] = created.key
    finally:
        await engine.dispose()
    return keys


async def _customer_ids(url: str) -> list[str]:
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        rows = await connection.fetch("SELECT id::text FROM customers ORDER BY id LIMIT 200")
    finally:
        await connection.close()
    return [to_global_id("Customer", row[0]) for row in rows]


def measure(
    server: Any, key: str, body: Any, ids: list[str], requests: int, method: str = "POST"
) -> tuple[float, int]:
    """CPU milliseconds per request on the server, and the last status."""
    headers = {"Authorization": f"Bearer {key}", "X-Hub-Request": "1"}
    rng = random.Random(7)
    with httpx.Client(base_url=server.http_url, headers=headers) as client:
        for _ in range(50):  # warm-up: caches, prepared statements, pools
            status = _send(client, method, body, rng.choice(ids))
        before = cpu_seconds(server.process.pid)
        for _ in range(requests):
            status = _send(client, method, body, rng.choice(ids))
        after = cpu_seconds(server.process.pid)
    return (after - before) * 1000 / requests, status


def _send(client: httpx.Client, method: str, body: dict[str, Any], id: str) -> int:
    payload = {**body, "variables": {"id": id}}
    if method == "GET":
        params = {k: json.dumps(v) if isinstance(v, dict) else v for k, v in payload.items()}
        response = client.get("/graphql", params=params)
    else:
        response = client.post("/graphql", json=payload)
    assert response.status_code == 200 and "errors" not in response.json(), response.text
    return response.status_code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True, help="a PostgreSQL server (its admin database)")
    parser.add_argument("--customers", type=int, default=500)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    name = f"hub_bench_trusted_{uuid.uuid4().hex[:8]}"
    asyncio.run(admin(args.url, f'CREATE DATABASE "{name}"'))
    url = _with_database(args.url, name)
    server = None
    try:
        env = {**os.environ, "HUB_DATABASE_URL": url}
        subprocess.run(
            [sys.executable, "-m", "hub", "seed", "--customers", str(args.customers)],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
        )
        keys = asyncio.run(_keys(url))
        ids = asyncio.run(_customer_ids(url))
        ident = document_id(QUERY)
        asyncio.run(
            admin(
                url,
                "INSERT INTO trusted_documents (id, document, created_by) VALUES "
                f"('{ident}', $${QUERY}$$, 'bench')",
            )
        )
        server = start_server(
            url,
            Path(tempfile.mkdtemp()),
            dev_mode="false",
            env="production",
            rate_limit_per_second=1_000_000,
            rate_limit_burst=1_000_000,
        )
        apq = {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": ident}}}
        variants = [
            ("ADMIN (compiled path)", "admin", "text, POST", {"query": QUERY}, "POST"),
            ("ADMIN (compiled path)", "admin", "documentId, POST", {"documentId": ident}, "POST"),
            ("ADMIN (compiled path)", "admin", "APQ hash, POST", apq, "POST"),
            ("ADMIN (compiled path)", "admin", "documentId, GET", {"documentId": ident}, "GET"),
            ("FRONTEND ANY (resolvers)", "frontend-any", "text, POST", {"query": QUERY}, "POST"),
            (
                "FRONTEND REGISTERED_ONLY (resolvers)",
                "frontend",
                "documentId, POST",
                {"documentId": ident},
                "POST",
            ),
        ]
        print("| key | request | server CPU per request (ms) |")
        print("|---|---|---:|")
        for who, key, what, body, method in variants:
            cpu, _ = measure(server, keys[key], body, ids, args.requests, method)
            print(f"| {who} | {what} | {cpu:.3f} |")
    finally:
        if server is not None:
            server.stop()
        asyncio.run(admin(args.url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
