"""Connection rules and slow consumers, against a real `hub serve` over real websockets."""

from __future__ import annotations

import asyncio
import base64
import json
import random
import socket
from collections.abc import Iterator
from typing import Any

import asyncpg
import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.bounded import bounded
from tests.factories import Factory
from tests.feed_sync import await_live, interaction_probe
from tests.live_server import TIMEOUT, Server, Writer, connect, start_server

FEED = "subscription { interactionRecorded { cursor interaction { id summary } } }"


@pytest.fixture(scope="module")
def server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    started = start_server(
        database_url,
        tmp_path_factory.mktemp("serve"),
        ws_connection_init_timeout_s=1,
        ws_max_subscriptions=2,
        ws_allowed_origins=["https://partner.example"],
        ws_keepalive_s=0.3,
        subscriber_queue_size=16,
        # Longer than the slow-consumer test can take on a loaded machine (300 events for the
        # fast client first): a cut-off client is dropped unread after the grace, which would
        # turn the expected 4008 close into a dropped connection.
        subscriber_cutoff_grace_s=600,
    )
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
async def writer(engine: Any, db: asyncpg.Connection) -> Writer:
    factory = Factory(db)
    touchpoint = await factory.touchpoint("Shop", "WEB", "WEBSITE")
    customer = await factory.customer("Ada")
    return Writer(engine, customer, "Shop", touchpoint, "WEB")


async def closed_with(ws: websockets.ClientConnection) -> int | None:
    """Read until the server closes; the close code it sent."""
    with pytest.raises(ConnectionClosed) as closed:
        async with asyncio.timeout(TIMEOUT):  # keep-alive pings alone would never end it
            while True:
                await ws.recv()
    return closed.value.rcvd.code if closed.value.rcvd else None


async def test_a_connection_that_does_not_initialise_in_time_is_closed_4408(
    server: Server,
) -> None:
    async with connect(server, init=False) as client:
        assert await closed_with(client.ws) == 4408


async def test_subscribing_before_the_acknowledgement_is_refused_4401(server: Server) -> None:
    async with connect(server, init=False) as client:
        await client.subscribe(FEED)
        assert await closed_with(client.ws) == 4401


async def test_active_subscriptions_per_connection_are_capped(
    server: Server, writer: Writer
) -> None:
    async with connect(server) as client:
        first = await client.subscribe(FEED)
        second = await client.subscribe(FEED)
        third = await client.subscribe(FEED)
        [error] = await client.errors(third)
        assert error["extensions"]["code"] == "TOO_MANY_SUBSCRIPTIONS"
        # The server handles one connection's messages in order: the `complete` frees the slot
        # before the next `subscribe` is read.
        await client.send({"id": first, "type": "complete"})
        await client.send({"id": second, "type": "complete"})
        fourth = await client.subscribe(FEED)
        # The freed slot was accepted: the fourth operation delivers events.
        await await_live(client, {fourth: "interactionRecorded"}, interaction_probe(writer))


async def test_only_allowed_origins_may_connect(server: Server) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(server, origin="https://evil.example"):  # type: ignore[arg-type]
            pass
    assert refused.value.response.status_code == 403
    async with connect(server, origin="https://partner.example") as client:  # type: ignore[arg-type]
        await client.subscribe(FEED)


async def test_the_legacy_protocol_is_off_by_default(server: Server) -> None:
    async with websockets.connect(server.ws_url, subprotocols=["graphql-ws"]) as ws:  # type: ignore[list-item]
        assert ws.subprotocol is None
        assert await closed_with(ws) == 4406


async def test_the_server_sends_keep_alive_pings(server: Server) -> None:
    async with connect(server) as client:
        message = json.loads(await asyncio.wait_for(client.ws.recv(), 10))
        assert message == {"type": "ping"}


@pytest.mark.parametrize(
    "frame",
    [
        "not json",
        b"\x00binary",
        "[1, 2]",
        "42",
        '{"type": 5}',
        '{"type": "subscribe", "id": "x", "payload": {"variables": {}}}',
        '{"type": "subscribe", "id": 7, "payload": {"query": "subscription { x }"}}',
        '{"type": "subscribe", "id": "x", "payload": "query"}',
        '{"type": "nonsense"}',
    ],
)
async def test_malformed_messages_close_the_connection_with_4400(
    server: Server, frame: str | bytes
) -> None:
    async with connect(server) as client:
        await client.ws.send(frame)
        assert await closed_with(client.ws) == 4400
    # The server is unharmed: health, and a new subscription works.
    async with httpx.AsyncClient() as http:
        assert (await http.get(f"{server.http_url}/healthz")).status_code == 200
    async with connect(server) as client:
        op = await client.subscribe("subscription { interactionRecorded { cursor } ")
        [error] = await client.errors(op)
        assert error["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"


async def test_a_slow_consumer_is_cut_off_while_a_fast_one_keeps_up(
    server: Server, writer: Writer
) -> None:
    total = 300
    # Large, incompressible payloads (per-message deflate is on) fill the socket buffers.
    big = base64.b64encode(random.Random(1).randbytes(30_000)).decode()
    # The slow client reads nothing: its library stops reading after one queued frame, and its
    # kernel receive buffer is pinned small.
    slow_socket = socket.socket()
    slow_socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow_socket.connect(("127.0.0.1", server.port))
    slow_socket.setblocking(False)
    # No client keep-alive on the slow one: its pongs wait behind the unread frames, and on a
    # loaded machine the library's own 20 s ping timeout closed it (1011) before the hub did.
    slow_options: dict[str, Any] = {"max_queue": 1, "sock": slow_socket, "ping_interval": None}
    async with connect(server) as fast, connect(server, **slow_options) as slow:
        fast_op = await fast.subscribe(FEED)
        slow_op = await slow.subscribe(FEED)
        # Both receive before the test begins (the slow one reads only these probes).
        await await_live(slow, {slow_op: "interactionRecorded"}, interaction_probe(writer))
        await await_live(fast, {fast_op: "interactionRecorded"}, interaction_probe(writer))

        received: list[dict[str, Any]] = []
        for _ in range(total // 4):
            # In steps of 4, so the fast one is never more than 4 events behind by construction.
            for _ in range(4):
                await writer.record(summary=big)
            received += [(await fast.next_data())["interactionRecorded"] for _ in range(4)]
        assert len({event["interaction"]["id"] for event in received}) == total

        # Now the slow one reads: what was already on the wire, then the cut-off notice. It only
        # reads: the keep-alive pings queued before the cut-off are skipped, not answered. Once
        # the library has parsed the server's close frame, a pong waits for the connection to
        # end, which needs the frames still unread behind it: the reader stalled for the
        # library's close timeout (10 s) and the test failed, 1 run in 5 under `stress`.
        messages: list[dict[str, Any]] = []
        with pytest.raises(ConnectionClosed) as closed:
            for _ in bounded(total + 100, "the slow consumer's backlog"):
                async with asyncio.timeout(TIMEOUT):
                    message = json.loads(await slow.ws.recv())
                if message["type"] != "ping":
                    messages.append(message)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4008
        assert "SUBSCRIBER_TOO_SLOW" in closed.value.rcvd.reason
        nexts = [m for m in messages if m["type"] == "next"]
        assert 0 < len(nexts) < total
        assert messages[-1]["id"] == slow_op and messages[-1]["type"] == "error"
        [error] = messages[-1]["payload"]
        assert error["extensions"]["code"] == "SUBSCRIBER_TOO_SLOW"
        assert "last cursor" in error["message"]
