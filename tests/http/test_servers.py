"""`hub serve --server uvicorn|granian --workers N`: the same app, real HTTP and websockets.

Each server and worker count answers a keyed query, refuses a wrong key with the coded 401,
delivers a live event to a websocket subscriber and closes a websocket without a key with 4403.
(The whole live suite runs under granian too: ``HUB_TEST_SERVER=granian``.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from tests.conftest import make_key
from tests.factories import gid
from tests.feed_sync import await_live, interaction_probe
from tests.live_server import PROTOCOL, Client, Server, Writer, shop_writer, start_server

pytestmark = pytest.mark.slow

FEED = "subscription { interactionRecorded { cursor interaction { id type } } }"


@pytest.fixture(
    scope="module",
    params=[("uvicorn", 1), ("granian", 1), ("granian", 2)],
    ids=lambda p: f"{p[0]}-{p[1]}",
)
def served(
    request: pytest.FixtureRequest, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    kind, workers = request.param
    tmp: Path = tmp_path_factory.mktemp(f"{kind}-{workers}")
    server = start_server(database_url, tmp, workers=workers, server=kind, dev_mode="false")
    try:
        yield server
    finally:
        server.stop()


async def test_http_with_and_without_a_key(served: Server, engine: Any, db: object) -> None:
    key = await make_key(engine, "FRONTEND")
    async with httpx.AsyncClient(base_url=served.http_url, timeout=10) as http:
        ok = await http.post(
            "/graphql",
            json={"query": "{ channels { code } }"},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert ok.status_code == 200, ok.text
        assert {c["code"] for c in ok.json()["data"]["channels"]} >= {"WEB", "MOBILE"}
        assert ok.headers["x-request-id"]
        refused = await http.post(
            "/graphql",
            json={"query": "{ channels { code } }"},
            headers={"Authorization": f"Bearer {key[:-4]}zzzz"},
        )
        assert refused.status_code == 401
        assert refused.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_a_websocket_subscriber_gets_live_events(
    served: Server, engine: Any, db: Any
) -> None:
    writer: Writer = await shop_writer(engine, db)
    key = await make_key(engine, "ADMIN")
    async with websockets.connect(served.ws_url, subprotocols=[PROTOCOL]) as ws:  # type: ignore[list-item]
        client = Client(ws)
        await client.init({"Authorization": f"Bearer {key}"})
        op = await client.subscribe(FEED)
        await await_live(client, {op: "interactionRecorded"}, interaction_probe(writer))
        recorded = await writer.record(type="ORDER")
        data = await client.next_data()
    interaction = data["interactionRecorded"]["interaction"]
    assert interaction == {"id": gid("Interaction", recorded), "type": "ORDER"}


async def test_a_websocket_without_a_key_is_closed_4403(served: Server, db: object) -> None:
    async with websockets.connect(served.ws_url, subprotocols=[PROTOCOL]) as ws:  # type: ignore[list-item]
        await ws.send('{"type": "connection_init", "payload": {}}')
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403
