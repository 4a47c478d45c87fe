"""Federation: a real gateway (deploy/gateway: GraphQL Hive Gateway runtime, run by node)
composes the hub's `_service { sdl }` into a supergraph at start-up and answers through it.

Real processes only: `hub serve`, `node deploy/gateway/gateway.mjs`, and for entity resolution a
second small subgraph (tests/gateway_subgraph.py). Node and the gateway's packages are required:
without them the tests fail and say how to install them (CI has both).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.conftest import make_key
from tests.factories import T0, Factory, gid, minutes
from tests.live_server import ROOT, Server, free_port, start_server

GATEWAY_DIR = ROOT / "deploy" / "gateway"
READY_S = 60.0  # upper bound for a process to come up; never asserted as a duration

CUSTOMER_360 = """
query Customer360($email: String!) {
  customerByIdentity(kind: EMAIL, value: $email) {
    id
    displayName
    traits
    identities { kind value }
    currentStage { code name }
    lastInteraction { occurredAt type summary channel { code } touchpoint { name } }
    channelsUsed { channel { code } interactionCount firstSeenAt lastSeenAt }
    interactions(first: 10) {
      totalCount
      nodes { occurredAt type direction summary touchpoint { name kind channel { code } } }
    }
  }
}
"""


def node_binary() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.fail(
            "the federation gateway test needs Node.js (>= 20) on PATH: apt-get install -y "
            "nodejs npm, then scripts/setup --dev (it runs npm ci in deploy/gateway)"
        )
    if not (GATEWAY_DIR / "node_modules" / "@graphql-hive" / "gateway-runtime").is_dir():
        pytest.fail(
            "the gateway's packages are not installed: run scripts/setup --dev, or "
            "`npm ci --omit=dev` in deploy/gateway"
        )
    return node


@dataclass
class Gateway:
    process: subprocess.Popen[bytes]
    url: str
    log: Path
    supergraph: Path

    def post(self, query: str, variables: dict[str, Any], **headers: str) -> dict[str, Any]:
        response = httpx.post(
            self.url, json={"query": query, "variables": variables}, headers=headers, timeout=30
        )
        body: dict[str, Any] = response.json()
        return body


def wait_until_up(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + READY_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{url} exited early:\n{log.read_text()}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not come up:\n{log.read_text()}")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def gateway(tmp: Path, subgraphs: dict[str, str], sdl_key: str) -> Iterator[Gateway]:
    port = free_port()
    log, supergraph = tmp / f"gateway-{port}.log", tmp / f"supergraph-{port}.graphql"
    env = {
        **os.environ,
        "GATEWAY_SUBGRAPHS": ",".join(f"{name}={url}" for name, url in subgraphs.items()),
        "GATEWAY_SDL_AUTHORIZATION": f"Bearer {sdl_key}",
        "GATEWAY_PORT": str(port),
        "GATEWAY_SUPERGRAPH_OUT": str(supergraph),
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [node_binary(), "gateway.mjs"],
            cwd=GATEWAY_DIR,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until_up(process, f"http://127.0.0.1:{port}/healthcheck", log)
        yield Gateway(process, f"http://127.0.0.1:{port}/graphql", log, supergraph)
    finally:
        stop(process)


@pytest.fixture(scope="module")
def hub(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A `hub serve` with API keys required (no development mode)."""
    started = start_server(database_url, tmp_path_factory.mktemp("gateway"), dev_mode="false")
    try:
        yield started
    finally:
        started.stop()


async def ana(db: asyncpg.Connection) -> str:
    """A customer with a journey on two channels; returns her global id."""
    factory = Factory(db)
    await factory.touchpoint("Web shop", "WEB", "WEBSITE")
    await factory.touchpoint("Store London", "PHYSICAL", "STORE")
    customer = await factory.customer(
        "Ana Lima",
        traits={"tier": "gold", "email": "ana@example.com"},
        stage="PURCHASE",
        identities=[("EMAIL", "ana@example.com"), ("PHONE", "+442079460958")],
    )
    await factory.interaction(customer, "Web shop", at=T0, type="PAGE_VIEW", summary="jackets")
    await factory.interaction(
        customer, "Store London", at=T0 + minutes(90), type="ORDER", summary="blue jacket"
    )
    return gid("Customer", customer)


async def test_a_customer_360_through_the_gateway_equals_the_direct_answer(
    hub: Server, db: asyncpg.Connection, engine: Any, tmp_path: Path
) -> None:
    customer_id = await ana(db)
    admin = await make_key(engine, "ADMIN")
    masked = await make_key(engine, "FRONTEND")  # no pii: personal fields masked
    # The processes and their blocking HTTP calls run off the event loop.
    await asyncio.to_thread(
        customer_360_through_the_gateway, hub, tmp_path, customer_id, admin, masked
    )


def customer_360_through_the_gateway(
    hub: Server, tmp_path: Path, customer_id: str, admin: str, masked: str
) -> None:
    variables = {"email": "ana@example.com"}
    with gateway(tmp_path, {"hub": f"{hub.http_url}/graphql"}, admin) as gw:
        supergraph = gw.supergraph.read_text()
        assert "join__graph" in supergraph
        assert '@join__type(graph: HUB, key: "id")' in supergraph  # Customer's entity key
        for key in (admin, masked):
            headers = {"Authorization": f"Bearer {key}"}
            direct = httpx.post(
                f"{hub.http_url}/graphql",
                json={"query": CUSTOMER_360, "variables": variables},
                headers=headers,
            ).json()
            through = gw.post(CUSTOMER_360, variables, **headers)
            assert "errors" not in direct, direct
            assert through == direct
            assert through["data"]["customerByIdentity"]["id"] == customer_id
        # The caller's key is what the hub sees: masked for FRONTEND, visible for ADMIN.
        shown = gw.post(CUSTOMER_360, variables, Authorization=f"Bearer {admin}")
        hidden = gw.post(CUSTOMER_360, variables, Authorization=f"Bearer {masked}")
        assert shown["data"]["customerByIdentity"]["traits"]["email"] == "ana@example.com"
        # A personal trait keeps its key and loses its value: fully masked, or (once masking
        # recognises e-mail addresses inside JSON) in the e-mail mask's exact form.
        assert hidden["data"]["customerByIdentity"]["traits"]["email"] in (
            "•••",
            "a•••@example.com",
        )
        assert hidden["data"]["customerByIdentity"]["traits"]["tier"] == "gold"
        assert hidden["data"]["customerByIdentity"]["displayName"] == "•••"
        assert sorted(
            (i["kind"], i["value"]) for i in hidden["data"]["customerByIdentity"]["identities"]
        ) == [("EMAIL", "a•••@example.com"), ("PHONE", "•••58")]
        # No key: the hub refuses the subgraph request, so the gateway has no data for it.
        anonymous = gw.post(CUSTOMER_360, variables)
        assert anonymous.get("data") in (None, {"customerByIdentity": None}), anonymous
        assert anonymous["errors"], anonymous
        # The gateway forwards X-Request-Id: the hub's request line carries the caller's id.
        gw.post(
            CUSTOMER_360,
            variables,
            **{"Authorization": f"Bearer {admin}", "X-Request-Id": "via-gateway-1"},
        )
    lines = [
        json.loads(line)
        for line in hub.log.read_text().splitlines()
        if "via-gateway-1" in line and '"hub.requests"' in line
    ]
    assert lines and all(line["status"] == 200 for line in lines)
    assert lines[0]["principal"].startswith("test-admin-")


async def test_entities_resolve_across_the_hub_and_a_second_subgraph(
    hub: Server, db: asyncpg.Connection, engine: Any, tmp_path: Path
) -> None:
    customer_id = await ana(db)
    admin = await make_key(engine, "ADMIN")
    await asyncio.to_thread(entities_across_subgraphs, hub, tmp_path, customer_id, admin)


def entities_across_subgraphs(hub: Server, tmp_path: Path, customer_id: str, admin: str) -> None:
    points = tmp_path / "points.json"
    points.write_text(json.dumps({customer_id: 1200}))
    port = free_port()
    log = tmp_path / "loyalty.log"
    with log.open("wb") as out:
        loyalty = subprocess.Popen(
            [sys.executable, "-m", "tests.gateway_subgraph", str(port), str(points)],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        loyalty_url = f"http://127.0.0.1:{port}/graphql"
        wait_until_up(loyalty, loyalty_url, log)
        subgraphs = {"hub": f"{hub.http_url}/graphql", "loyalty": loyalty_url}
        with gateway(tmp_path, subgraphs, admin) as gw:
            auth = {"Authorization": f"Bearer {admin}"}
            # The loyalty subgraph lists ids; the hub resolves the rest through `_entities`.
            leaders = gw.post(
                "{ loyaltyLeaders { id loyaltyPoints displayName currentStage { code } } }",
                {},
                **auth,
            )
            leader = {
                "id": customer_id,
                "loyaltyPoints": 1200,
                "displayName": "Ana Lima",
                "currentStage": {"code": "PURCHASE"},
            }
            assert leaders == {"data": {"loyaltyLeaders": [leader]}}
            # And the other way: a hub customer gains the loyalty subgraph's field.
            mine = gw.post(
                "query($id: ID!) { customer(id: $id) { displayName loyaltyPoints } }",
                {"id": customer_id},
                **auth,
            )
            expected = {"displayName": "Ana Lima", "loyaltyPoints": 1200}
            assert mine == {"data": {"customer": expected}}
    finally:
        stop(loyalty)
