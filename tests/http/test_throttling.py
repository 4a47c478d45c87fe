"""Throttling before authentication, per websocket, and /metrics access on a real `hub serve`.

Each test sends from its own loopback address (127.0.0.x as the client socket's source), so the
per-address budgets of one test do not spend another's.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import websockets
from prometheus_client.parser import text_string_to_metric_families
from websockets.exceptions import ConnectionClosed

from tests.conftest import make_key
from tests.live_server import PROTOCOL, TIMEOUT, Client, Server, start_server

pytestmark = pytest.mark.slow

SCRAPE_TOKEN = "scrape-secret-for-tests"
WRONG_KEY = "hub_" + "a" * 12 + "_" + "b" * 32  # well formed: looked up, found wanting
FEED = "subscription { interactionRecorded { cursor } }"


@pytest.fixture(scope="module")
def server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    started = start_server(
        database_url,
        tmp_path_factory.mktemp("throttling"),
        dev_mode="false",
        failed_key_burst=3,
        failed_key_per_second=0.001,  # no refill within a test
        ws_subscribe_burst=3,
        ws_subscribe_per_second=0.001,
        metrics_token=SCRAPE_TOKEN,
        metrics_allowed_networks="127.0.0.9/32",
        metrics_max_operation_names=5,
    )
    yield started
    started.stop()


@asynccontextmanager
async def client_from(server: Server, address: str, **headers: str) -> AsyncIterator[Any]:
    transport = httpx.AsyncHTTPTransport(local_address=address)
    async with httpx.AsyncClient(
        transport=transport, base_url=server.http_url, headers=headers, timeout=TIMEOUT
    ) as http:
        yield http


async def scrape(server: Server) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with client_from(server, "127.0.0.1", Authorization=f"Bearer {SCRAPE_TOKEN}") as http:
        response = await http.get("/metrics")
    assert response.status_code == 200, response.text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


async def close_code_after_init(server: Server, address: str, key: str) -> int:
    """The close code a websocket from ``address`` gets after connection_init with ``key``."""
    async with websockets.connect(
        server.ws_url,
        subprotocols=[PROTOCOL],  # type: ignore[list-item]
        local_addr=(address, 0),
    ) as ws:
        init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {key}"}}
        await ws.send(json.dumps(init))
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), TIMEOUT)
    assert closed.value.rcvd is not None, "closed without a close frame"
    return closed.value.rcvd.code


def key_checks(scraped: dict[Any, float], outcome: str) -> float:
    return scraped.get(("hub_api_key_checks_total", (("outcome", outcome),)), 0.0)


async def test_failed_keys_are_throttled_per_address_before_any_lookup(
    server: Server, engine: Any, db: object
) -> None:
    valid = await make_key(engine, "ADMIN")
    before = await scrape(server)
    async with client_from(server, "127.0.0.5", Authorization=f"Bearer {WRONG_KEY}") as http:
        for _ in range(3):  # the burst: each looked up, each a 401
            response = await http.post("/graphql", json={"query": "{ __typename }"})
            assert response.status_code == 401
            assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        middle = await scrape(server)
        assert key_checks(middle, "invalid") - key_checks(before, "invalid") == 3
        for _ in range(4):  # over budget: refused before the lookup
            response = await http.post("/graphql", json={"query": "{ __typename }"})
            assert response.status_code == 429
            assert response.headers["content-type"] == "application/json"
            assert response.json()["errors"][0]["extensions"]["code"] == "TOO_MANY_FAILED_KEYS"
            assert 1 <= int(response.headers["retry-after"]) <= 1000
        # From that address even a valid key waits (it cannot be told apart without a lookup).
        response = await http.post(
            "/graphql",
            json={"query": "{ __typename }"},
            headers={"Authorization": f"Bearer {valid}"},
        )
        assert response.status_code == 429
    # The websocket's connection_init asks the same budget: closed 4429, no lookup either.
    assert await close_code_after_init(server, "127.0.0.5", valid) == 4429
    after = await scrape(server)
    assert key_checks(after, "invalid") - key_checks(before, "invalid") == 3  # no more lookups
    assert key_checks(after, "throttled") - key_checks(before, "throttled") == 6
    # Another address is untouched, and its valid key is served.
    async with client_from(server, "127.0.0.6", Authorization=f"Bearer {valid}") as http:
        response = await http.post("/graphql", json={"query": "{ __typename }"})
    assert response.status_code == 200 and response.json() == {"data": {"__typename": "Query"}}


async def test_subscribe_messages_are_limited_per_websocket(
    server: Server, engine: Any, db: object
) -> None:
    key = await make_key(engine, "ADMIN")
    async with websockets.connect(
        server.ws_url,
        subprotocols=[PROTOCOL],  # type: ignore[list-item]
        local_addr=("127.0.0.7", 0),
    ) as ws:
        client = Client(ws)
        await client.init({"Authorization": f"Bearer {key}"})
        for index in range(3):  # the burst: three live subscriptions
            await client.subscribe(FEED, id=f"s{index}")
        await client.subscribe(FEED, id="s3")
        refused = await client.receive()
        assert refused["id"] == "s3" and refused["type"] == "error", refused
        [error] = refused["payload"]
        assert error["message"] == "too many subscribe messages on this connection; retry later"
        assert error["extensions"]["code"] == "RATE_LIMITED"
        assert 1 <= int(error["extensions"]["retryAfter"]) <= 1000
        # The connection and its three operations stay.
        await client.send({"type": "ping"})
        assert await client.receive() == {"type": "pong"}
        scraped = await scrape(server)
        assert scraped[("hub_subscriptions_active", ())] == 3.0


async def test_metrics_need_the_token_or_an_allowed_address(server: Server) -> None:
    async with client_from(server, "127.0.0.1") as http:
        refused = await http.get("/metrics")
        assert refused.status_code == 403
        assert refused.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        wrong = await http.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 403
        allowed = await http.get("/metrics", headers={"Authorization": f"Bearer {SCRAPE_TOKEN}"})
        assert allowed.status_code == 200
        assert allowed.headers["content-type"].startswith("text/plain")
    async with client_from(server, "127.0.0.9") as http:  # HUB_METRICS_ALLOWED_NETWORKS
        assert (await http.get("/metrics")).status_code == 200
        wrong = await http.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 403


async def test_operation_name_labels_are_bounded(server: Server, engine: Any, db: object) -> None:
    key = await make_key(engine, "ADMIN")
    async with client_from(server, "127.0.0.8", Authorization=f"Bearer {key}") as http:
        for index in range(12):
            name = f"Op{index}"
            body = {"query": f"query {name} {{ __typename }}", "operationName": name}
            assert (await http.post("/graphql", json=body)).status_code == 200
    scraped = await scrape(server)
    named = {
        dict(labels)["operation"]: count
        for (metric, labels), count in scraped.items()
        if metric == "hub_graphql_requests_total" and dict(labels)["operation"] != "anonymous"
    }
    # The first five names (HUB_METRICS_MAX_OPERATION_NAMES) get a label; the other 7: "other".
    assert named == {"Op0": 1, "Op1": 1, "Op2": 1, "Op3": 1, "Op4": 1, "other": 7}


async def test_a_key_postgresql_cannot_store_is_just_invalid(server: Server) -> None:
    # A NUL in the lookup prefix (only a websocket payload can carry one): refused as any
    # wrong key (4403), not a failed database statement.
    key = "hub_" + "\u0000" * 12 + "_" + "b" * 32
    assert await close_code_after_init(server, "127.0.0.10", key) == 4403
