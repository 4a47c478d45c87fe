"""Operations under faults, with real processes: PostgreSQL restarting or cut off under ingest
load, and SIGTERM under load (graceful shutdown, websockets resuming on another instance).

The database tests run a PostgreSQL of their own (tests/private_postgres.py): the machine's
server is never stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterator, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import websockets
from sqlalchemy.ext.asyncio import create_async_engine

from hub.access.keys import Role, create_key
from hub.app import create_app
from hub.core.settings import Settings
from hub.db.engine import asyncpg_dsn, sqlalchemy_url
from hub.db.locks import lock_key
from hub.db.migrations import upgrade
from tests.factories import Factory, gid
from tests.live_server import PROTOCOL, Server, start_server
from tests.ops_load import (
    RECORD,
    WAIT_S,
    Follower,
    IngestLoad,
    eventually,
    record_marker,
    start_cursor,
)
from tests.private_postgres import CuttableProxy, PrivatePostgres

READY_AFTER_DATABASE_S = 15.0  # the bound: ready again within 15 s of the database


@dataclass
class World:
    url: str  # the hub database on the private server
    pg: PrivatePostgres
    touchpoint: str  # global id
    key: str  # an ADMIN key with pii
    # A key no server has seen: during an outage it cannot be checked (a key verified less than
    # a second ago is still served from the process's key cache, hub/access/key_cache.py).
    unchecked_key: str


@pytest.fixture(scope="module")
def private_pg() -> Iterator[PrivatePostgres]:
    pg = PrivatePostgres()
    try:
        pg.start()
        yield pg
    finally:
        pg.destroy()


async def _world(pg: PrivatePostgres) -> World:
    admin = await asyncpg.connect(asyncpg_dsn(pg.url()))
    name = f"hub_{uuid.uuid4().hex[:8]}"
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = pg.url(name)
    await asyncio.to_thread(upgrade, url)
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        touchpoint = await Factory(connection).touchpoint("Shop", "WEB", "WEBSITE")
    finally:
        await connection.close()
    engine = create_async_engine(sqlalchemy_url(url))
    try:
        async with engine.begin() as sa_connection:
            created = await create_key(sa_connection, name="ops", role=Role.ADMIN, pii=True)
            unchecked = await create_key(sa_connection, name="unchecked", role=Role.ANALYST)
    finally:
        await engine.dispose()
    return World(url, pg, gid("Touchpoint", touchpoint), created.key, unchecked.key)


async def stored_interactions(url: str) -> set[str]:
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        rows = await connection.fetch("SELECT id FROM interactions")
    finally:
        await connection.close()
    return {gid("Interaction", row["id"]) for row in rows}


async def readiness(server: Server) -> int | None:
    async with httpx.AsyncClient(timeout=10) as http:
        try:
            return (await http.get(f"{server.http_url}/readyz")).status_code
        except httpx.TransportError:
            return None


async def until_readiness(server: Server, status: int) -> None:
    deadline = time.monotonic() + WAIT_S
    while True:
        if await readiness(server) == status:
            return
        assert time.monotonic() < deadline, f"/readyz never answered {status}"
        await asyncio.sleep(0.1)


@pytest.fixture
async def world(private_pg: PrivatePostgres) -> World:
    return await _world(private_pg)


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        server.stop()


# The load is about outages and shutdown, not the per-key rate limit: it must never answer 429.
UNLIMITED = {"rate_limit_per_second": 1_000_000, "rate_limit_burst": 1_000_000}


def serve(started: list[Server], url: str, tmp: Path, **settings: Any) -> Server:
    server = start_server(
        url,
        tmp,
        db_connect_timeout_s=2,
        db_pool_timeout_s=3,
        events_poll_interval_ms=50,
        **UNLIMITED,
        **settings,
    )
    started.append(server)
    return server


async def _outage(
    load: IngestLoad, server: Server, stop: Any, start: Any, unchecked: dict[str, str] | None
) -> None:
    """Take the database away under load, bring it back, check readiness both ways."""
    await load.until("ok", 15)
    await asyncio.to_thread(stop)
    await until_readiness(server, 503)
    if unchecked:
        # A websocket whose key cannot be checked now is told to come back later (1013).
        async with websockets.connect(server.ws_url, subprotocols=[PROTOCOL]) as ws:  # type: ignore[list-item]
            await ws.send(json.dumps({"type": "connection_init", "payload": unchecked}))
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), WAIT_S)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
    await load.until("retryable", 4)  # requests during the outage: retryable errors only
    await load.until("retryable", 1, reads=True)
    await asyncio.to_thread(start)
    back = time.monotonic()
    await until_readiness(server, 200)
    assert time.monotonic() - back < READY_AFTER_DATABASE_S
    await load.until("ok", 15)  # and writes succeed again


def _check_answers(load: IngestLoad) -> None:
    assert not load.of("bad"), load.of("bad")[:3]
    assert not load.of("transport"), load.of("transport")[:3]  # the hub stayed up throughout


async def _check_events(follower: Follower, url: str, load: IngestLoad) -> None:
    acknowledged = {answer.interaction for answer in load.of("ok")}
    stored = await stored_interactions(url)
    assert acknowledged <= stored  # nothing that was acknowledged is lost
    await follower.until_seen(stored)  # every committed interaction reaches the subscriber
    # Then a final marker: delivery is in order, so when it arrives, anything sent twice
    # would have arrived before it.
    marker = await record_marker(load)
    await follower.until_seen({marker})
    await follower.stop()
    assert follower.seen[-1] == marker
    assert len(follower.seen) == len(set(follower.seen))  # none twice
    assert set(follower.seen) == stored | {marker}
    assert not follower.bad, follower.bad[:3]


async def _under_load(
    world: World, server: Server, *outages: tuple[Any, Any], keys: bool = True
) -> None:
    """A subscriber, four ingest clients and a reader (with an ADMIN key, or in development
    mode) while each (stop, start) outage runs; then every check of the issue."""
    auth = {"Authorization": f"Bearer {world.key}"} if keys else {}
    follower = Follower([server], await start_cursor(world.url), init_payload=auth)
    follower.start()
    await eventually(follower.subscribed.is_set, "the subscription")
    load = IngestLoad([server], world.touchpoint, headers=auth, clients=4, readers=1)
    load.start()
    try:
        for stop, start in outages:
            unchecked = {"Authorization": f"Bearer {world.unchecked_key}"} if keys else None
            await _outage(load, server, stop, start, unchecked)
    finally:
        await load.stop()
    _check_answers(load)
    # Reads on the compiled path (its own asyncpg pool) failed and recovered the same way.
    assert not [a for a in load.reads if a.kind not in ("ok", "retryable")], load.reads[:3]
    assert load.reads[-1].kind == "ok", load.reads[-3:]
    await _check_events(follower, world.url, load)
    # The notifier and its LISTEN connection noticed the outage and came back by themselves
    # (the LISTEN connection retries with a backoff of up to 5 s, so its line may come later).
    await eventually(lambda: "outbox polling recovered" in server.log.read_text(), "the poller")
    await eventually(lambda: "LISTEN wake-up restored" in server.log.read_text(), "LISTEN")


async def test_postgres_restarts_during_ingest_lose_nothing_acknowledged(
    world: World, servers: list[Server], tmp_path: Path
) -> None:
    server = serve(servers, world.url, tmp_path, dev_mode="false")
    pg = world.pg
    # A clean fast shutdown (sessions terminated), then a crash (recovery from the WAL).
    await _under_load(
        world, server, (lambda: pg.stop("fast"), pg.start), (lambda: pg.stop("immediate"), pg.start)
    )


async def test_a_cut_network_is_an_outage_the_hub_recovers_from(
    world: World, servers: list[Server], tmp_path: Path
) -> None:
    proxy = CuttableProxy(world.pg.port)
    await proxy.start()
    try:
        url = world.pg.url(world.url.rsplit("/", 1)[1], port=proxy.port)
        # In a thread: the proxy serves from this event loop, which must keep running.
        # Development mode (no key checks): requests reach the resolvers and the compiled read
        # path while the database is away, instead of stopping at the key check.
        server = await asyncio.to_thread(serve, servers, url, tmp_path, dev_mode="true")
        # Reset and refused, then reset and silent: new connections are only given up by
        # HUB_DB_CONNECT_TIMEOUT_S (2 s here), and still answered SERVICE_UNAVAILABLE.
        await _under_load(
            world, server, (proxy.cut, proxy.restore), (proxy.blackhole, proxy.restore), keys=False
        )
        log = server.log.read_text()
        assert "database unreachable (compiled read)" in log
    finally:
        await proxy.close()


# ---- graceful shutdown ----

DEADLINE_S = 10.0


@pytest.fixture
async def shop(db: asyncpg.Connection) -> str:
    return gid("Touchpoint", await Factory(db).touchpoint("Shop", "WEB", "WEBSITE"))


@pytest.fixture
async def sigterm_servers(
    database_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[Server, Server]]:
    workers: int = request.param
    leaving = start_server(
        database_url,
        tmp_path,
        workers,
        shutdown_deadline_s=DEADLINE_S,
        shutdown_drain_s=2.0,
        events_poll_interval_ms=50,
        **UNLIMITED,
    )
    staying = start_server(database_url, tmp_path, events_poll_interval_ms=50, **UNLIMITED)
    try:
        yield leaving, staying
    finally:
        leaving.stop()
        staying.stop()


@pytest.mark.parametrize(
    "sigterm_servers", [1, 2], ids=["one-process", "two-workers"], indirect=True
)
async def test_sigterm_under_load_drains_and_subscribers_resume_elsewhere(
    sigterm_servers: tuple[Server, Server], shop: str, database_url: str
) -> None:
    leaving, staying = sigterm_servers
    args = [str(a) for a in leaving.process.args]  # type: ignore[union-attr]
    workers = int(args[args.index("--workers") + 1])
    follower = Follower([leaving, staying], await start_cursor(database_url))
    follower.start()
    await eventually(follower.subscribed.is_set, "the subscription")
    load = IngestLoad([leaving, staying], shop, clients=4)
    load.start()
    try:
        await load.until("ok", 20)
        terminated_at = time.monotonic()
        leaving.process.send_signal(signal.SIGTERM)
        # Not ready from the signal on, while the drain window still keeps the port open.
        async with asyncio.timeout(WAIT_S):
            status = await readiness(leaving)
            while status == 200:
                status = await readiness(leaving)
        assert status == 503
        exit_code = await asyncio.to_thread(leaving.process.wait, DEADLINE_S + 5)
        await load.until("ok", 20)  # the load carries on against the other instance
    finally:
        await load.stop()
    # It exited by itself through the normal path, not the deadline backstop (exit code 1):
    # `hub serve` re-raises SIGTERM as SystemExit(128 + 15); uvicorn's worker supervisor exits
    # 0 once its workers are done. Each worker ran the hub's shutdown sequence.
    log = leaving.log.read_text()
    assert exit_code == (128 + signal.SIGTERM if workers == 1 else 0), log[-3000:]
    assert log.count("SIGTERM received: draining") == workers
    assert "shutdown deadline" not in log
    # Every request sent before SIGTERM got a complete answer; later ones were answered too or
    # found the listener closed (the client then went to the other instance).
    assert not load.of("bad"), load.of("bad")[:3]
    cut = [a for a in load.of("transport") if a.sent_at < terminated_at]
    assert not cut, cut[:3]
    # The subscriber was told to reconnect (1012) and resumed on the other instance.
    assert 1012 in follower.closes, (follower.closes, follower.stream_errors)
    await _check_events(follower, database_url, load)


async def test_a_request_hanging_past_the_deadline_does_not_hold_up_the_exit(
    database_url: str, db: asyncpg.Connection, shop: str, tmp_path: Path
) -> None:
    deadline = 4.0
    server = await asyncio.to_thread(
        start_server, database_url, tmp_path, shutdown_deadline_s=deadline
    )
    try:
        email = "slow@example.org"
        item = {
            "identities": [{"kind": "EMAIL", "value": email}],
            "touchpointId": shop,
            "type": "PAGE_VIEW",
            "direction": "INBOUND",
        }
        # Ingest locks each identifier: holding that lock here parks the request in the hub.
        async with db.transaction():
            await db.execute(
                "SELECT pg_advisory_xact_lock($1)", lock_key("identity", "EMAIL", email)
            )
            async with httpx.AsyncClient(timeout=WAIT_S) as http:
                hanging = asyncio.create_task(
                    http.post(
                        f"{server.http_url}/graphql",
                        json={"query": RECORD, "variables": {"input": item}},
                    )
                )
                await eventually_waiting_for_lock(db)
                server.process.send_signal(signal.SIGTERM)
                exit_code = await asyncio.to_thread(server.process.wait, deadline + 5)
                with contextlib.suppress(httpx.TransportError):
                    await hanging  # cut: it outlived the deadline
        log = server.log.read_text()
        # Uvicorn stopped waiting for it before the deadline and the process exited normally.
        assert "timeout graceful shutdown exceeded" in log, log[-3000:]
        # Not the backstop (which exits with 1 and logs "shutdown deadline ... exiting now").
        assert exit_code == 128 + signal.SIGTERM, log[-3000:]
        assert "shutdown deadline" not in log, log[-3000:]
    finally:
        server.stop()


async def eventually_waiting_for_lock(db: asyncpg.Connection) -> None:
    deadline = time.monotonic() + WAIT_S
    query = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
    while await db.fetchval(query) == 0:
        assert time.monotonic() < deadline, "the request never reached the lock"
        await asyncio.sleep(0.05)


async def test_a_shutting_down_app_is_not_ready_and_refuses_new_requests(
    settings: Settings,
) -> None:
    app = create_app(settings.model_copy(update={"dev_mode": True}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as http:
            query = {"query": "{ journeyStages { code } }"}
            assert (await http.get("/readyz")).status_code == 200
            shutdown = app.state.hub.shutdown
            shutdown.draining = True  # what SIGTERM sets first (drain window: still serving)
            ready = await http.get("/readyz")
            assert (ready.status_code, ready.json()) == (503, {"status": "shutting down"})
            assert (await http.post("/graphql", json=query)).status_code == 200
            shutdown.refusing = True  # after the drain window
            refused = await http.post("/graphql", json=query)
            assert refused.status_code == 503
            assert refused.headers["retry-after"] == "1"
            assert refused.headers["connection"] == "close"
            [error] = refused.json()["errors"]
            assert error["extensions"] == {"code": "SERVICE_UNAVAILABLE", "retryable": True}
            assert "shutting down" in error["message"]
        # A new websocket (straight through ASGI: httpx has no websockets) is accepted with its
        # subprotocol and closed at once with 1012.
        sent: list[MutableMapping[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "websocket.connect"}

        async def send(message: MutableMapping[str, Any]) -> None:
            sent.append(message)

        scope = {
            "type": "websocket",
            "path": "/graphql",
            "raw_path": b"/graphql",
            "root_path": "",
            "scheme": "ws",
            "query_string": b"",
            "headers": [(b"host", b"hub.test")],
            "subprotocols": ["graphql-transport-ws"],
            "client": ("127.0.0.1", 50000),
            "server": ("hub.test", 80),
            "asgi": {"version": "3.0"},
        }
        await app(scope, receive, send)
        assert [m["type"] for m in sent] == ["websocket.accept", "websocket.close"]
        assert sent[0]["subprotocol"] == "graphql-transport-ws"
        assert sent[1]["code"] == 1012
