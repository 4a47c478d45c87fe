"""Access control on the wire: a real uvicorn process, real HTTP and websockets.

The key is revoked from this (test) process, so the server learns of it only through the
database: this is what another worker process would see.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from hub.access.keys import revoke_key, verify_key
from tests.conftest import ROOT, make_key

pytestmark = pytest.mark.slow

RECHECK_S = 0.2
REVOCATION_ALLOWANCE_S = 0.8


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(database_url: str) -> Iterator[str]:
    port = _free_port()
    env = {
        **os.environ,
        "HUB_DATABASE_URL": database_url,
        "HUB_MIGRATE_ON_START": "false",
        "HUB_RATE_LIMIT_BURST": "5",
        "HUB_RATE_LIMIT_PER_SECOND": "0.01",
        "HUB_MAX_BODY_BYTES": "2000",
        "HUB_KEY_RECHECK_SECONDS": str(RECHECK_S),
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "hub.app:create_app",
            "--factory",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("the server did not start")
            time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)


async def test_http_401_413_429(server: str, engine: Any, db: object) -> None:
    key = await make_key(engine, "ANALYST")
    auth = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=server) as http:
        anonymous = await http.post("/graphql", json={"query": "{ __typename }"})
        assert anonymous.status_code == 401
        assert anonymous.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        big = await http.post(
            "/graphql", json={"query": "{ __typename }" + " " * 3000}, headers=auth
        )
        assert big.status_code == 413

        # A chunked body has no Content-Length: it is counted as it streams.
        async def chunks() -> Any:
            for _ in range(30):
                yield b" " * 100

        chunked = await http.post(
            "/graphql", content=chunks(), headers={**auth, "Content-Type": "application/json"}
        )
        assert chunked.status_code == 413
        statuses = [
            (
                await http.post("/graphql", json={"query": "{ __typename }"}, headers=auth)
            ).status_code
            for _ in range(6)
        ]
        assert statuses[:2] == [200, 200] and statuses[-1] == 429
        limited = await http.post("/graphql", json={"query": "{ __typename }"}, headers=auth)
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1


async def _connect(server: str, payload: dict[str, Any]) -> Any:
    url = server.replace("http://", "ws://") + "/graphql"
    socket_ = await websockets.connect(url, subprotocols=["graphql-transport-ws"])  # type: ignore[list-item]
    await socket_.send(json.dumps({"type": "connection_init", "payload": payload}))
    return socket_


async def test_websocket_needs_a_key(server: str, db: object) -> None:
    for payload in [{}, {"Authorization": "Bearer hub_wrong_" + "x" * 40}]:
        socket_ = await _connect(server, payload)
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(socket_.recv(), 10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403


async def test_revoked_key_closes_open_websocket(server: str, engine: Any, db: object) -> None:
    key = await make_key(engine, "PARTNER", channels=["WEB"])
    kept = await make_key(engine, "PARTNER", channels=["WEB"])
    socket_ = await _connect(server, {"Authorization": f"Bearer {key}"})
    other = await _connect(server, {"Authorization": f"Bearer {kept}"})
    for s in (socket_, other):
        ack = json.loads(await asyncio.wait_for(s.recv(), 10))
        assert ack["type"] == "connection_ack"
    async with engine.begin() as connection:
        principal = await verify_key(engine, key)
        assert principal is not None
        await revoke_key(connection, principal.name)
    committed = time.monotonic()
    with pytest.raises(ConnectionClosed) as closed:
        async with asyncio.timeout(10):  # fails instead of hanging
            while True:  # pings may arrive before the close
                await socket_.recv()
    closed_after = time.monotonic() - committed
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403
    assert closed.value.rcvd.reason == "API key revoked"
    # The promise (docs/security.md): closed within one second with the default 1 s re-check,
    # i.e. by the next re-check. Measured from the revocation's commit to the close frame.
    # This server re-checks every RECHECK_S, so the 1 s bound leaves 0.8 s for the re-check
    # query and a server descheduled on a loaded 2-core machine; the old 10 s wait could not
    # tell a working re-check from one that took several seconds.
    assert closed_after <= RECHECK_S + REVOCATION_ALLOWANCE_S, closed_after
    # The other key's socket stays open and answers.
    await other.send(json.dumps({"type": "ping"}))
    assert json.loads(await asyncio.wait_for(other.recv(), 10))["type"] == "pong"
    await other.close()
