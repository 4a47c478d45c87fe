"""The app as operators run it: probes, the embedded PostgreSQL default, the CLI, a real server."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil
import pytest
from starlette.applications import Starlette

from hub.app import create_app
from hub.core.settings import Settings
from hub.db.engine import asyncpg_dsn
from tests.conftest import ROOT

UNREACHABLE = "postgresql://postgres@127.0.0.1:1/nope"


@pytest.fixture
def pg_dir() -> Iterator[Path]:
    """A fresh folder for an embedded PostgreSQL. Not pytest's ``tmp_path``: as root, pgserver
    runs PostgreSQL as the user ``pgserver``, and every pytest session that starts on the
    machine makes /tmp/pytest-of-root private again, locking that user out mid-test."""
    folder = Path(tempfile.mkdtemp(prefix="hub-test-pg-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[tuple[Starlette, httpx.AsyncClient]]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as client:
            yield app, client


async def test_probes_with_the_database_up(client: httpx.AsyncClient) -> None:
    health = await client.get("/healthz")
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    ready = await client.get("/readyz")
    assert (ready.status_code, ready.json()) == (
        200,
        {"status": "ready", "database": "ok", "broker": "postgres"},
    )


async def test_probes_and_queries_with_the_database_down() -> None:
    # The app starts although the database is unreachable (no migration on start), so that
    # /readyz can say so instead of the process crash-looping.
    async with running(
        Settings(database_url=UNREACHABLE, migrate_on_start=False, dev_mode=True)
    ) as (_, client):
        assert (await client.get("/healthz")).status_code == 200
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json() == {
            "status": "unavailable",
            "database": "unreachable",
            "broker": "postgres",
        }
        response = await client.post("/graphql", json={"query": "{ channels { code } }"})
        assert response.status_code == 200
        error = response.json()["errors"][0]
        assert error["extensions"] == {"code": "SERVICE_UNAVAILABLE", "retryable": True}
        assert error["message"] == "The database is unavailable; try again shortly."


async def test_graphiql_page(client: httpx.AsyncClient) -> None:
    page = await client.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "graphiql" in page.text.lower()


def _postmaster_pid(data_dir: Path) -> int | None:
    pid_file = data_dir / "postmaster.pid"
    return int(pid_file.read_text().split()[0]) if pid_file.exists() else None


def _assert_stopped(data_dir: Path, pid: int | None) -> None:
    assert not (data_dir / "postmaster.pid").exists(), "embedded PostgreSQL still running"
    if pid is not None:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"


async def test_embedded_default_start_stop_restart_keeps_data(pg_dir: Path) -> None:
    data_dir = pg_dir / "pg"
    settings = Settings(database_url=None, data_dir=data_dir, dev_mode=True)
    customer_id = uuid.uuid4()
    async with running(settings) as (app, client):
        pid = _postmaster_pid(data_dir)
        assert pid is not None and psutil.pid_exists(pid)
        body = (await client.post("/graphql", json={"query": "{ channels { code } }"})).json()
        assert len(body["data"]["channels"]) == 6  # migrated: the taxonomy is there
        assert (await client.get("/readyz")).status_code == 200
        url = app.state.hub.running.location.url
        connection = await asyncpg.connect(asyncpg_dsn(url))
        try:
            await connection.execute(
                "INSERT INTO customers (id, display_name) VALUES ($1, 'Persisted')", customer_id
            )
        finally:
            await connection.close()
    _assert_stopped(data_dir, pid)

    async with running(settings) as (_, client):
        body = (
            await client.post("/graphql", json={"query": "{ customers { nodes { displayName } } }"})
        ).json()
        assert body == {"data": {"customers": {"nodes": [{"displayName": "Persisted"}]}}}
        pid = _postmaster_pid(data_dir)
    _assert_stopped(data_dir, pid)


def _hub(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hub", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _env(**extra: str) -> dict[str, str]:
    # Development mode: these tests are about the runtime, not about keys (tests/test_access_*).
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    return {**env, "HUB_DEV_MODE": "true", **extra}


async def test_hub_migrate_uses_the_embedded_database(pg_dir: Path) -> None:
    data_dir = pg_dir / "cli-pg"
    env = _env(HUB_DATA_DIR=str(data_dir))
    for _ in range(2):  # the second run finds nothing to do
        result = await asyncio.to_thread(_hub, "migrate", env=env)
        assert result.returncode == 0, result.stderr
        assert "database is up to date" in result.stderr
        # The process let go of PostgreSQL when it exited.
        _assert_stopped(data_dir, None)
    settings = Settings(database_url=None, data_dir=data_dir, migrate_on_start=False, dev_mode=True)
    async with running(settings) as (_, client):
        body = (await client.post("/graphql", json={"query": "{ journeyStages { code } }"})).json()
        assert len(body["data"]["journeyStages"]) == 5
    _assert_stopped(data_dir, None)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def _wait_ready(base: str, process: subprocess.Popen[Any]) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=2) as http:
        for _ in range(300):
            assert process.poll() is None, "hub serve exited early"
            try:
                if (await http.get("/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("hub serve did not become ready")


def _spawn_server(env: dict[str, str], port: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "hub", "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


async def _serve(env: dict[str, str]) -> tuple[str, subprocess.Popen[str]]:
    port = _free_port()
    process = _spawn_server(env, port)
    base = f"http://127.0.0.1:{port}"
    try:
        await _wait_ready(base, process)
    except BaseException:
        await _stop(process)
        raise
    return base, process


async def _stop(process: subprocess.Popen[str]) -> str:
    """SIGTERM, as an orchestrator would; returns what the server logged."""
    process.terminate()
    try:
        _, stderr = await asyncio.to_thread(process.communicate, timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise
    return stderr


async def test_hub_serve_answers_over_http(database_url: str) -> None:
    base, process = await _serve(_env(HUB_DATABASE_URL=database_url))
    try:
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:
            response = await http.post(
                "/graphql", json={"query": "{ channels { code } journeyStages { code } }"}
            )
            assert response.status_code == 200
            data = response.json()["data"]
            assert [c["code"] for c in data["channels"]][:2] == ["WEB", "MOBILE"]
            assert len(data["journeyStages"]) == 5
            page = await http.get("/graphql", headers={"Accept": "text/html"})
            assert page.status_code == 200 and "graphiql" in page.text.lower()
    finally:
        stderr = await _stop(process)
    assert "Application shutdown complete" in stderr
    assert process.returncode == 128 + 15, stderr  # SIGTERM, after a graceful shutdown
    port = int(base.rsplit(":", 1)[1])
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0


async def test_hub_serve_embedded_stops_its_postgres(pg_dir: Path) -> None:
    data_dir = pg_dir / "serve-pg"
    base, process = await _serve(_env(HUB_DATA_DIR=str(data_dir)))
    try:
        pid = _postmaster_pid(data_dir)
        assert pid is not None and psutil.pid_exists(pid)
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:
            body = (await http.post("/graphql", json={"query": "{ channels { code } }"})).json()
            assert len(body["data"]["channels"]) == 6
    finally:
        stderr = await _stop(process)
    assert process.returncode == 128 + 15, stderr
    _assert_stopped(data_dir, pid)
