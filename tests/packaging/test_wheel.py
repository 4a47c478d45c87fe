"""The wheel, installed where a user would install it: no checkout, no Node.js, PyPI's `schema`.

``pip wheel .`` builds the one artefact the container image installs too (Dockerfile). The test
installs it into a fresh virtual environment in a temporary folder, beside PyPI's ``schema``
package, and runs ``hub demo`` from another temporary folder with a PATH holding nothing but
that environment (so no ``node``, no ``npm``), against a database it creates on the test
PostgreSQL. The demo must migrate, seed, serve the explorer and /journeys with their browser
libraries from the installed package, and answer a query about Ana.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import sys
import time
import uuid
import zipfile
from pathlib import Path

import asyncpg
import httpx
import pytest

from hub.db.engine import asyncpg_dsn
from tests.conftest import ROOT, _server_url, _with_database
from tests.live_server import free_port, wait_until

pytestmark = pytest.mark.slow

DEMO_CUSTOMERS = 300
VENDOR_FILES = {
    "@graphiql/plugin-explorer/dist/index.umd.js",
    "@graphiql/plugin-explorer/dist/style.css",
    "d3/LICENSE",
    "d3/dist/d3.min.js",
    "d3-sankey/LICENSE",
    "d3-sankey/dist/d3-sankey.min.js",
    "graphiql/LICENSE",
    "graphiql/graphiql.min.css",
    "graphiql/graphiql.min.js",
    "react/LICENSE",
    "react/umd/react.production.min.js",
    "react-dom/LICENSE",
    "react-dom/umd/react-dom.production.min.js",
}
CONTENT_TYPES = {".js": "text/javascript", ".css": "text/css"}


def _run(*command: str | Path, **options: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(c) for c in command], capture_output=True, text=True, check=False, **options
    )  # type: ignore[call-overload]
    assert result.returncode == 0, f"{command}:\n{result.stdout}\n{result.stderr}"
    return result  # type: ignore[no-any-return]


def _admin(sql: str) -> None:
    async def run() -> None:
        connection = await asyncpg.connect(asyncpg_dsn(_with_database(_server_url(), "postgres")))
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    asyncio.run(run())


@pytest.fixture
def empty_database(drop_at_exit: list[str]) -> str:
    """A database of its own on the test server, created empty (``hub demo`` migrates it);
    dropped when the session ends (``drop_at_exit``)."""
    name = f"hub_wheel_{uuid.uuid4().hex[:10]}"
    _admin(f'CREATE DATABASE "{name}"')
    drop_at_exit.append(name)
    return _with_database(_server_url(), name)


def test_the_wheel_runs_the_demo_outside_the_checkout_without_node(
    tmp_path: Path, empty_database: str
) -> None:
    timings: dict[str, float] = {}
    started = time.monotonic()
    dist = tmp_path / "dist"
    _run(sys.executable, "-m", "pip", "wheel", ROOT, "--no-deps", "-q", "-w", dist, cwd=ROOT)
    [wheel] = dist.glob("hub-*.whl")
    timings["build"] = time.monotonic() - started
    names = set(zipfile.ZipFile(wheel).namelist())
    vendored = {n.removeprefix("hub/http/vendor/") for n in names if "/vendor/" in n}
    assert vendored == VENDOR_FILES
    for packaged in (
        "hub/alembic/env.py",
        "hub/alembic/script.py.mako",
        "hub/alembic/versions/0001_initial_schema.py",
        "hub/schema/schema.graphql",
        "hub/seeds/story.py",
        "hub/http/static/explorer.html",
        "hub/http/static/journeys.js",
    ):
        assert packaged in names, packaged

    started = time.monotonic()
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", venv)
    _run(venv / "bin" / "python", "-m", "pip", "install", "-q", wheel, "schema")
    timings["install"] = time.monotonic() - started

    # Nothing on PATH but the new environment: no node, no npm, no checkout tools.
    path = str(venv / "bin")
    assert shutil.which("node", path=path) is None and shutil.which("npm", path=path) is None
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {"PATH": path, "HOME": str(tmp_path), "HUB_DATABASE_URL": empty_database}

    probe = _run(
        venv / "bin" / "python",
        "-c",
        "import schema, hub, hub.graphql; print(schema.__file__); print(hub.__file__);"
        "print(schema.SchemaError.__name__)",
        cwd=elsewhere,
        env=env,
    ).stdout.split()
    site = str(venv / "lib")
    assert probe[0].startswith(site) and probe[1].startswith(site), probe
    assert probe[2] == "SchemaError"  # PyPI's validation library owns the bare name

    port = free_port()
    log = (tmp_path / "demo.log").open("wb")
    started = time.monotonic()
    demo = subprocess.Popen(
        [venv / "bin" / "hub", "demo", "--port", str(port), "--customers", str(DEMO_CUSTOMERS)],
        cwd=elsewhere,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        assert demo.poll() is None, (tmp_path / "demo.log").read_text()
        try:
            return httpx.get(f"{base}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(healthy, "hub demo to migrate, seed and serve", timeout=300)
        timings["demo start"] = time.monotonic() - started
        assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200

        installed_vendor = next((venv / "lib").glob("python*/site-packages/hub/http/vendor"))
        for page in ("/graphql", "/journeys"):
            response = httpx.get(f"{base}{page}", headers={"Accept": "text/html"}, timeout=10)
            assert response.status_code == 200, page
            assert response.headers["content-type"].startswith("text/html")
            sources = re.findall(r'(?:src|href)="(/static/[^"]+)"', response.text)
            assert any(s.startswith("/static/vendor/") for s in sources), page
            for source in sources:
                asset = httpx.get(f"{base}{source}", timeout=10)
                assert asset.status_code == 200, source
                kind = CONTENT_TYPES[Path(source).suffix]
                assert asset.headers["content-type"].startswith(kind), (source, asset.headers)
                if source.startswith("/static/vendor/"):
                    # Served from the installed package, byte for byte.
                    packaged = installed_vendor / source.removeprefix("/static/vendor/")
                    assert asset.content == packaged.read_bytes(), source

        answer = httpx.post(
            f"{base}/graphql",
            json={
                "query": '{ customerByIdentity(kind: EMAIL, value: " Ana@Example.COM ")'
                " { displayName currentStage { code } conversations { key status } } "
                "customers(first: 1) { totalCount } }"
            },
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        assert answer.json() == {
            "data": {
                "customerByIdentity": {
                    "displayName": "Ana Silva",
                    "currentStage": {"code": "CONSIDERATION"},
                    "conversations": [{"key": "CASE-ANA-JACKET", "status": "OPEN"}],
                },
                "customers": {"totalCount": DEMO_CUSTOMERS},
            }
        }
    finally:
        demo.terminate()
        try:
            demo.wait(timeout=20)
        finally:
            if demo.poll() is None:
                demo.kill()
                demo.wait()
            log.close()
    # Measured, never asserted: printed for whoever tunes the suite (pytest -s shows it).
    print({phase: round(seconds, 1) for phase, seconds in timings.items()})
