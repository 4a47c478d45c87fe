"""Real `hub serve` processes and a real graphql-transport-ws client for the subscription tests."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import websockets
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hub.events.emit import EventKind, NewEvent, emit
from tests.factories import T0, Factory
from tests.patience import PATIENT

ROOT = Path(__file__).resolve().parent.parent
PROTOCOL = "graphql-transport-ws"
TIMEOUT = 10.0  # generous upper bound for one expected message; never asserted as a duration


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/graphql"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        # `--workers N` runs worker processes in the server's own process group (its session):
        # none of them may outlive the test, even if the supervisor was killed.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)


def _spawn(
    database_url: str,
    tmp: Path,
    workers: int = 1,
    cwd: Path = ROOT,
    server: str | None = None,
    **settings: Any,
) -> Server:
    server = server or os.environ.get("HUB_TEST_SERVER", "uvicorn")
    port = free_port()
    env = {
        **os.environ,
        "HUB_DATABASE_URL": database_url,
        "HUB_MIGRATE_ON_START": "false",
        "HUB_GRAPHIQL": "false",
        # Development mode unless a test says otherwise: most subscription tests are about
        # delivery, not keys (tests/subscriptions/test_access.py runs with keys).
        "HUB_DEV_MODE": "true",
    }
    # The suite's patient timeouts (tests/conftest.py PATIENT), unless the test sets its own.
    for name, value in {**PATIENT, **settings}.items():
        env[f"HUB_{name.upper()}"] = json.dumps(value) if isinstance(value, list) else str(value)
    log = tmp / f"server-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "hub", "serve", "--port", str(port)),
                *("--workers", str(workers), "--server", server),
            ],
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Server(process, port, log)


def _await_ready(started: Server) -> None:
    """Polls /readyz (bounded); stops the process and raises if it exits or never answers."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if started.process.poll() is not None:
            raise RuntimeError(f"server exited early:\n{started.log.read_text()}")
        try:
            if httpx.get(f"{started.http_url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    started.stop()
    raise RuntimeError(f"server did not become ready:\n{started.log.read_text()}")


def start_server(database_url: str, tmp: Path, workers: int = 1, **options: Any) -> Server:
    """`python -m hub serve` on a free port, configured by HUB_* variables; waits until ready.
    ``workers`` > 1: `hub serve --workers N` (the server's worker supervisor). ``cwd=``: the
    folder it runs in (the checkout, whose top-level folders are then importable, unless said).
    ``server=``: `--server uvicorn|granian`; by default ``HUB_TEST_SERVER`` (so the live suites
    can run under either: ``HUB_TEST_SERVER=granian pytest tests/subscriptions``), else uvicorn.
    Other keywords are settings."""
    return start_servers(1, database_url, tmp, workers=workers, **options)[0]


def start_servers(count: int, database_url: str, tmp: Path, **options: Any) -> list[Server]:
    """``count`` processes as ``start_server`` starts one, started side by side (their imports
    and start-ups overlap instead of queueing); all ready, or all stopped and an error."""
    started = [_spawn(database_url, tmp, **options) for _ in range(count)]
    try:
        for one in started:
            _await_ready(one)
    except BaseException:
        for one in started:
            one.stop()
        raise
    return started


class Client:
    """A minimal graphql-transport-ws client over the `websockets` library."""

    def __init__(self, connection: websockets.ClientConnection) -> None:
        self.ws = connection

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(message))

    async def receive(self, timeout: float = TIMEOUT) -> dict[str, Any]:  # noqa: ASYNC109
        """The next message other than a ping (answered); TimeoutError after ``timeout``."""
        async with asyncio.timeout(timeout):
            while True:
                message: dict[str, Any] = json.loads(await self.ws.recv())
                if message["type"] == "ping":
                    await self.send({"type": "pong"})
                    continue
                return message

    async def init(self, payload: dict[str, Any] | None = None) -> None:
        """connection_init with ``payload`` (e.g. ``{"Authorization": "Bearer …"}``); acked."""
        await self.send({"type": "connection_init", "payload": payload or {}})
        assert (await self.receive())["type"] == "connection_ack"

    async def subscribe(
        self, query: str, variables: dict[str, Any] | None = None, id: str | None = None
    ) -> str:
        operation_id = id or uuid.uuid4().hex[:8]
        await self.send(
            {
                "id": operation_id,
                "type": "subscribe",
                "payload": {"query": query, "variables": variables or {}},
            }
        )
        return operation_id

    async def errors(self, operation_id: str) -> list[dict[str, Any]]:
        """The errors ending an operation: an `error`, or `next` with errors and `complete`."""
        message = await self.receive()
        assert message["id"] == operation_id, message
        if message["type"] == "error":
            errors: list[dict[str, Any]] = message["payload"]
            return errors
        assert message["type"] == "next" and message["payload"]["errors"], message
        assert await self.receive() == {"id": operation_id, "type": "complete"}
        errors = message["payload"]["errors"]
        return errors

    async def next_data(self, timeout: float = TIMEOUT) -> dict[str, Any]:  # noqa: ASYNC109
        message = await self.receive(timeout)
        assert message["type"] == "next", message
        assert "errors" not in message["payload"], message
        data: dict[str, Any] = message["payload"]["data"]
        return data


@asynccontextmanager
async def connect(server: Server, *, init: bool = True, **options: Any) -> AsyncIterator[Client]:
    async with websockets.connect(server.ws_url, subprotocols=[PROTOCOL], **options) as ws:  # type: ignore[list-item]
        client = Client(ws)
        if init:
            await client.init()
        yield client


SHARED_REDIS_URL = "redis://127.0.0.1:6379/0"


@functools.cache
def redis_url() -> str:
    """The Redis the broker tests use: ``HUB_TEST_REDIS_URL``, else the local one on 6379 if it
    answers, else a private `redis-server` started for this test run (stopped at exit)."""
    import redis

    configured = os.environ.get("HUB_TEST_REDIS_URL")
    if configured:
        return configured
    probe = redis.Redis.from_url(SHARED_REDIS_URL, socket_connect_timeout=1)
    try:
        probe.ping()
        return SHARED_REDIS_URL
    except redis.RedisError:
        pass
    finally:
        probe.close()
    binary = shutil.which("redis-server")
    assert binary, "the broker tests need Redis: set HUB_TEST_REDIS_URL or install redis-server"
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    atexit.register(lambda: (process.terminate(), process.wait(timeout=10)))
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    try:
        wait_until(lambda: answers(client), "the test redis-server to start")
    finally:
        client.close()
    return url


def answers(client: Any) -> bool:
    """Whether a Redis client gets an answer to PING."""
    import redis

    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


@contextmanager
def redis_broker_settings() -> Iterator[dict[str, str]]:
    """Settings of the redis broker on the test Redis, under a key prefix of its own (so runs
    never collide); its keys are deleted afterwards."""
    import redis

    prefix = f"hubtest-{uuid.uuid4().hex[:12]}:"
    try:
        yield {"broker": "redis", "redis_url": redis_url(), "redis_key_prefix": prefix}
    finally:
        client = redis.Redis.from_url(redis_url())
        try:
            client.delete(f"{prefix}events", f"{prefix}leader")
        finally:
            client.close()


def readyz(server: Server) -> tuple[int, dict[str, Any]]:
    """GET /readyz: status code and body."""
    response = httpx.get(f"{server.http_url}/readyz", timeout=5)
    return response.status_code, response.json()


def sample(server: Server, name: str) -> float | None:
    """One sample of the server's /metrics (``name`` with its labels, if any); None if absent."""
    for line in httpx.get(f"{server.http_url}/metrics", timeout=5).text.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    return None


def metric(server: Server, name: str) -> float:
    """One sample of the server's /metrics, which must be there."""
    value = sample(server, name)
    if value is None:
        raise AssertionError(f"{name} not in /metrics")
    return value


def assert_redis_carried(broker: dict[str, str], *servers: Server) -> None:
    """With the redis broker: the events went through its stream (not a fallback outbox poll),
    every process reads the stream, and exactly one of them leads."""
    if broker.get("broker") != "redis":
        return
    import redis

    client = redis.Redis.from_url(redis_url())
    try:
        assert client.xlen(f"{broker['redis_key_prefix']}events") > 0
    finally:
        client.close()
    for server in servers:
        assert httpx.get(f"{server.http_url}/readyz", timeout=5).json()["broker"] == "redis"
        assert metric(server, "hub_broker_redis_connected") == 1
    assert sum(metric(server, "hub_broker_redis_leader") for server in servers) == 1


@dataclass
class OpenTransaction:
    """A writer's transaction: the factory writes rows in it, ``connection`` emits events."""

    factory: Factory
    connection: AsyncConnection


@dataclass
class Writer:
    """Records interactions the way ingest will: the row and its event in one transaction."""

    engine: AsyncEngine
    customer_id: uuid.UUID
    touchpoint: str
    touchpoint_id: uuid.UUID
    channel: str
    written: list[uuid.UUID] = field(default_factory=list)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[OpenTransaction]:
        async with self.engine.begin() as connection:
            raw = await connection.get_raw_connection()
            # The asyncpg connection under SQLAlchemy's: the same transaction.
            factory = Factory(raw.driver_connection)  # type: ignore[arg-type]
            factory.touchpoints[self.touchpoint] = self.touchpoint_id
            yield OpenTransaction(factory, connection)

    async def record_in(self, transaction: OpenTransaction, **fields: Any) -> uuid.UUID:
        interaction_id = await transaction.factory.interaction(
            self.customer_id, self.touchpoint, at=T0, **fields
        )
        await emit(
            transaction.connection,
            NewEvent(
                EventKind.INTERACTION_RECORDED,
                customer_id=self.customer_id,
                subject_id=interaction_id,
                channel_code=self.channel,
                touchpoint_id=self.touchpoint_id,
            ),
        )
        return interaction_id

    async def record(self, **fields: Any) -> uuid.UUID:
        async with self.transaction() as transaction:
            interaction_id = await self.record_in(transaction, **fields)
        self.written.append(interaction_id)
        return interaction_id


async def shop_writer(engine: AsyncEngine, db: Any) -> Writer:
    """A writer recording for customer Ada at the web touchpoint "Shop"."""
    factory = Factory(db)
    touchpoint = await factory.touchpoint("Shop", "WEB", "WEBSITE")
    customer = await factory.customer("Ada")
    return Writer(engine, customer, "Shop", touchpoint, "WEB")


def wait_until(condition: Any, what: str, timeout: float = 30.0) -> None:
    """Poll until ``condition()`` is true (an upper bound, never asserted as a duration)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
