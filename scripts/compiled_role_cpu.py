"""Server CPU per request, compiled read path vs resolvers, per role (docs/compiled-reads.md).

    .venv/bin/python scripts/compiled_role_cpu.py postgresql://postgres@127.0.0.1:5432/postgres

Creates a scratch database (dropped at the end), seeds it, starts two `hub serve` processes
(one worker each, keys required; one with HUB_COMPILED_READS=false) and, per role, sends N
requests of scenario 1 (one customer's 360° view, bench/scenarios.py's selection) and scenario 2
(50 customers with 20 interactions each) to each, one at a time, reading the server process's
utime+stime from /proc/PID/stat before and after. CPU time, not wall time: the machine is shared.

Round trips per request are counted at the driver (every SQL text asyncpg sends, transaction
control included; liveness pings and the key's once-a-minute ``last_used_at`` left out), on an
in-process app with the same settings, over ``TRIPS`` requests after a warm-up. Scenario 4 (one
event recorded by ``recordInteraction``, a known customer by e-mail) runs for the roles that may
write, on the compiled ingest path (the resolver server's column is then empty).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from tempfile import mkdtemp
from typing import Any

import asyncpg
import httpx
from starlette.applications import Starlette

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hub.access.keys import Role, create_key  # noqa: E402
from hub.app import create_app  # noqa: E402
from hub.core.settings import Settings  # noqa: E402
from hub.db.engine import asyncpg_dsn, create_engine  # noqa: E402
from hub.db.migrations import aupgrade  # noqa: E402
from tests.driver_statements import driver_statements  # noqa: E402
from tests.live_server import start_server  # noqa: E402

VIEW = """fragment View on Customer {
  id displayName traits createdAt lastSeenAt
  currentStage { code name }
  identities { kind value }
  interactions(first: 20) { nodes {
    id occurredAt type direction summary sentiment attributes
    touchpoint { id name kind channel { code name } } } } }"""
ONE = "query One($id: ID!) { customer(id: $id) { ...View } }\n" + VIEW
MANY = (
    "query Many { customers(first: 50) { nodes { id displayName interactions(first: 20) {"
    " nodes { id occurredAt type summary attributes channel { code } } } } } }"
)
ROLES: dict[str, dict[str, Any]] = {
    "ADMIN": {"role": Role.ADMIN},
    "FRONTEND pii": {"role": Role.FRONTEND, "pii": True},
    "FRONTEND masked": {"role": Role.FRONTEND},
    "ANALYST masked": {"role": Role.ANALYST},
    "PARTNER 2 channels": {"role": Role.PARTNER, "channels": ["WEB", "MOBILE"]},
}
RECORD = (
    "mutation($input: RecordInteractionInput!) { recordInteraction(input: $input) {"
    " created duplicate interaction { id summary } } }"
)
WRITERS = {"ADMIN", "FRONTEND pii", "FRONTEND masked"}
CUSTOMERS = 400
TRIPS = int(os.environ.get("TRIPS", "5"))
# Requests per cell: scenario 1, scenario 2 (several hundred ms of CPU each on the resolvers).
N = int(os.environ.get("N", "300"))
N2 = int(os.environ.get("N2", "30"))


async def seed(url: str) -> tuple[list[uuid.UUID], uuid.UUID]:
    db = await asyncpg.connect(asyncpg_dsn(url))
    rng = random.Random(7)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    touchpoints = []
    for channel, kind in (("WEB", "WEBSITE"), ("MOBILE", "MOBILE_APP"), ("ASSISTED", "VOICE")):
        tid = uuid.uuid4()
        await db.execute(
            "INSERT INTO touchpoints (id, channel_code, name, kind) VALUES ($1, $2, $3, $4)",
            tid,
            channel,
            f"{channel} one",
            kind,
        )
        touchpoints.append((tid, channel))
    ids = []
    for n in range(CUSTOMERS):
        cid = uuid.uuid4()
        ids.append(cid)
        traits = {"tier": "gold", "email": f"c{n}@example.com", "address": {"city": "Lyon"}}
        await db.execute(
            "INSERT INTO customers (id, display_name, traits, current_stage, created_at,"
            " updated_at, last_seen_at) VALUES ($1, $2, $3::jsonb, 'CONSIDERATION', $4, $4, $4)",
            cid,
            f"Customer {n}",
            json.dumps(traits),
            t0 + timedelta(minutes=n),
        )
        await db.executemany(
            "INSERT INTO identities (customer_id, kind, value) VALUES ($1, $2, $3)",
            [(cid, "EMAIL", f"c{n}@example.com"), (cid, "PHONE", f"+4915100{n:05d}")],
        )
        rows = []
        for k in range(25):
            tid, channel = touchpoints[rng.randrange(3)]
            rows.append(
                (
                    uuid.uuid4(),
                    cid,
                    tid,
                    channel,
                    t0 + timedelta(hours=k, minutes=n),
                    "PAGE_VIEW",
                    "INBOUND",
                    f"note {k} from c{n}@example.com",
                    json.dumps({"page": "/p", "phone": "+33123456789"}),
                )
            )
        await db.executemany(
            "INSERT INTO interactions (id, customer_id, touchpoint_id, channel_code, occurred_at,"
            " type, direction, summary, attributes) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9::jsonb)",
            rows,
        )
        if n % 2 == 0:
            await db.execute(
                "INSERT INTO consents (customer_id, purpose, channel, status, granted_at)"
                " VALUES ($1, 'PARTNER_SHARING', '', 'GRANTED', now())",
                cid,
            )
    await db.execute("ANALYZE")
    await db.close()
    return ids, touchpoints[0][0]


def event(n: int, touchpoint: uuid.UUID) -> dict[str, Any]:
    """Scenario 4's body: a page view of a known customer (by e-mail)."""
    return {
        "query": RECORD,
        "variables": {
            "input": {
                "identities": [{"kind": "EMAIL", "value": f"c{n % CUSTOMERS}@example.com"}],
                "touchpointId": str(touchpoint),
                "type": "PAGE_VIEW",
                "direction": "INBOUND",
                "summary": f"viewed page {n}",
            }
        },
    }


async def round_trips(app: Starlette, key: str, bodies: list[dict[str, Any]]) -> float:
    """Round trips per request at the driver, over ``bodies`` after warming up on the first."""
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://hub.test", headers=headers
    ) as http:
        for _ in range(3):  # the key cached, the pools' connections opened, types known
            assert (await http.post("/graphql", json=bodies[0])).status_code == 200
        with driver_statements() as counted:
            for body in bodies[1:]:
                response = await http.post("/graphql", json=body)
                assert response.status_code == 200 and "errors" not in response.json()
        trips = counted.round_trips
    return len(trips) / (len(bodies) - 1)


async def keys(url: str) -> dict[str, str]:
    engine = create_engine(url, Settings(database_url=url))
    out = {}
    async with engine.begin() as connection:
        for name, scopes in ROLES.items():
            created = await create_key(connection, name=f"cpu {name}", **scopes)
            out[name] = created.key
    await engine.dispose()
    return out


def cpu_ticks(pid: int) -> int:
    """utime + stime of ``pid`` and its children still running (clock ticks)."""
    total = 0
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    for p in pids:
        fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total


async def run(url: str, key: str, body: dict[str, Any], pid: int, n: int) -> tuple[float, Any]:
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as http:
        last = None
        for _ in range(10):  # warm up: plans, statement caches
            last = (await http.post("/graphql", json=body)).json()
        before = cpu_ticks(pid)
        for _ in range(n):
            response = await http.post("/graphql", json=body)
            assert response.status_code == 200
        after = cpu_ticks(pid)
    return (after - before) * 1000 / os.sysconf("SC_CLK_TCK") / n, last


async def main(server_url: str) -> None:
    name = f"hub_rolecpu_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(asyncpg_dsn(server_url))
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = server_url.rsplit("/", 1)[0] + f"/{name}"
    servers = []
    try:
        await aupgrade(url)
        ids, touchpoint = await seed(url)
        secret = await keys(url)
        tmp = Path(mkdtemp())
        limits = {"dev_mode": "false", "rate_limit_per_second": 100000, "rate_limit_burst": 100000}
        compiled = start_server(url, tmp, **limits)
        servers.append(compiled)
        resolvers = start_server(url, tmp, compiled_reads="false", **limits)
        servers.append(resolvers)
        settings = Settings(
            database_url=url,
            migrate_on_start=False,
            dev_mode=False,
            rate_limit_per_second=100000,
            rate_limit_burst=100000,
        )
        app = create_app(settings)
        print(f"N={N}/{N2} requests per cell (scenario 1/2), CPU ms per request (utime+stime);")
        print(f"round trips per request at the driver (mean over {TRIPS - 1})")
        print("| role | scenario | compiled | resolvers | resolvers / compiled | round trips |")
        print("|---|---|---:|---:|---:|---:|")
        written = 0
        async with app.router.lifespan_context(app):
            for role, key in secret.items():
                cells = [
                    ("1: one customer", {"query": ONE, "variables": {"id": str(ids[0])}}, N),
                    ("2: 50 x 20", {"query": MANY}, N2),
                ]
                if role in WRITERS:
                    cells.append(("4: one event", event(written, touchpoint), N))
                for label, body, n in cells:
                    if label.startswith("4"):
                        bodies = [event(written + k, touchpoint) for k in range(TRIPS)]
                        written += TRIPS
                        trips = await round_trips(app, key, bodies)
                        fast, a = await run(compiled.http_url, key, body, compiled.process.pid, n)
                        assert "errors" not in a, a
                        print(
                            f"| {role} | {label} | {fast:.2f} | - | - | {trips:.1f} |", flush=True
                        )
                        continue
                    trips = await round_trips(app, key, [body] * TRIPS)
                    fast, a = await run(compiled.http_url, key, body, compiled.process.pid, n)
                    slow, b = await run(resolvers.http_url, key, body, resolvers.process.pid, n)
                    assert a == b, (role, label)
                    assert "errors" not in a, a
                    print(
                        f"| {role} | {label} | {fast:.2f} | {slow:.2f}"
                        f" | {slow / max(fast, 1e-9):.1f}x | {trips:.1f} |",
                        flush=True,
                    )
    finally:
        for server in servers:
            server.stop()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
