"""``hub demo`` as README promises: migrations, demo data when the database is empty (not
again when it is not), then a server in development mode with the explorer and the journeys page.

It runs against an empty database of its own on the test PostgreSQL (``HUB_DATABASE_URL``), on a
free port; readiness is the server's own start-up line, read from its output.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import uuid

import asyncpg
import httpx
import pytest

from hub.db.engine import asyncpg_dsn
from tests.conftest import ROOT, _server_url, _with_database
from tests.live_server import free_port

WAIT_S = 120
CUSTOMERS = 30


@pytest.fixture
async def empty_database(drop_at_exit: list[str]) -> str:
    """An empty database of its own, dropped when the session ends (``drop_at_exit``)."""
    server = _server_url()
    name = f"hub_demo_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(asyncpg_dsn(_with_database(server, "postgres")))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    drop_at_exit.append(name)
    return _with_database(server, name)


async def run_demo(database_url: str) -> tuple[str, int]:
    """Starts ``hub demo``, answers what a visitor would ask, stops it with SIGTERM; returns the
    console output and the exit code."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hub",
        "demo",
        "--port",
        str(port),
        "--customers",
        str(CUSTOMERS),
        cwd=ROOT,
        env={**os.environ, "HUB_DATABASE_URL": database_url, "COLUMNS": "200"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert process.stdout is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(WAIT_S):
            while "Application startup complete" not in (lines[-1] if lines else ""):
                line = (await process.stdout.readline()).decode()
                assert line, "hub demo exited before serving:\n" + "".join(lines)
                lines.append(line)
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            # Development mode: no API key, personal data visible.
            response = await http.post(
                "/graphql",
                json={"query": "{ customers(first: 1) { totalCount } touchpoints { totalCount } }"},
            )
            assert response.status_code == 200, response.text
            data = response.json()["data"]
            assert data["customers"]["totalCount"] == CUSTOMERS
            assert data["touchpoints"]["totalCount"] > 0
            page = await http.get("/graphql", headers={"Accept": "text/html"})
            assert page.status_code == 200 and "graphiql" in page.text.lower()
            journeys = await http.get("/journeys")
            assert journeys.status_code == 200, journeys.text[:500]
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(WAIT_S):
            rest, _ = await process.communicate()
        lines.append(rest.decode())
        assert process.returncode is not None
        return "".join(lines), process.returncode
    finally:
        if process.returncode is None:
            process.kill()
            with contextlib.suppress(ProcessLookupError):
                await process.wait()


async def test_demo_seeds_an_empty_database_once_and_serves(empty_database: str) -> None:
    out, code = await run_demo(empty_database)
    assert code == 128 + signal.SIGTERM, out
    assert f"seeding {CUSTOMERS} demo customers" in out, out
    assert "development mode" in out, out
    assert "GraphiQL: http://127.0.0.1:" in out, out
    connection = await asyncpg.connect(asyncpg_dsn(empty_database))
    try:
        assert await connection.fetchval("SELECT count(*) FROM customers") == CUSTOMERS
        # Migrated by the demo itself: the same head as the test database.
        assert await connection.fetchval("SELECT count(*) FROM alembic_version") == 1
    finally:
        await connection.close()
    # Not empty any more: served as it is, not seeded again (the count stays, see run_demo).
    out, code = await run_demo(empty_database)
    assert code == 128 + signal.SIGTERM, out
    assert "seeding" not in out, out
