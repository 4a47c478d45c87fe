"""Segment's tracking API (/v1/*) on a live hub, driven by Segment's own Python SDK
(segment-analytics-python) and by plain HTTP for what an SDK never sends (bad keys, broken
messages, gzip bombs). The Node SDK's test is tests/sources/test_node_sdk.py."""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest
import websockets
from segment.analytics.client import Client
from segment.analytics.request import APIError

from tests.access.conftest import bearer
from tests.conftest import make_key
from tests.factories import Factory
from tests.live_server import PROTOCOL, ROOT, Server, start_server


@pytest.fixture(scope="module")
def source_server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    started = start_server(database_url, tmp_path_factory.mktemp("sources"), dev_mode="false")
    try:
        yield started
    finally:
        started.stop()


@dataclass
class World:
    server: Server
    touchpoint: uuid.UUID
    source_key: str
    admin_key: str

    def sdk(self, **options: Any) -> Client:
        return Client(self.source_key, host=self.server.http_url, sync_mode=True, **options)

    def graphql(self, query: str, **variables: Any) -> dict[str, Any]:
        response = httpx.post(
            f"{self.server.http_url}/graphql",
            json={"query": query, "variables": variables},
            headers=bearer(self.admin_key),
            timeout=30,
        )
        body: dict[str, Any] = response.json()
        assert "errors" not in body, body
        return body["data"]  # type: ignore[no-any-return]

    def post(self, path: str, body: Any, key: str | None = None, **headers: str) -> httpx.Response:
        return httpx.post(
            f"{self.server.http_url}{path}",
            json=body,
            headers={**basic(key or self.source_key), **headers},
            timeout=30,
        )

    def raw(
        self, path: str, content: bytes = b"", method: str = "POST", **headers: str
    ) -> httpx.Response:
        """A request as built by hand (no SDK): any body, any headers."""
        return httpx.request(
            method, f"{self.server.http_url}{path}", content=content, headers=headers, timeout=30
        )


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


@pytest.fixture
async def world(db: asyncpg.Connection, engine: Any, source_server: Server) -> World:
    touchpoint = await Factory(db).touchpoint("Wren web shop", "WEB", "WEBSITE")
    source_key = await make_key(engine, "SOURCE", touchpoints=[str(touchpoint)])
    return World(source_server, touchpoint, source_key, await make_key(engine, "ADMIN"))


CUSTOMER = """
query Customer($value: String!) {
  customerByIdentity(kind: EMAIL, value: $value) {
    displayName
    traits
    identities { kind value }
    currentStage { code }
    interactions(first: 10) {
      totalCount
      nodes { type direction summary attributes occurredAt touchpoint { name } }
    }
  }
}
"""
TS = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


async def test_python_sdk_identify_track_page_end_in_the_graph(world: World) -> None:
    sdk = world.sdk()
    sdk.page(
        anonymous_id="anon-1",
        name="Home",
        category="Landing",
        properties={"url": "https://wren.example/"},
        context={"userAgent": "Mozilla/5.0 test", "campaign": {"name": "spring", "source": "ig"}},
        timestamp=TS.replace(minute=1),
        message_id="m-page-1",
    )
    sdk.identify(
        user_id="user-1",
        anonymous_id="anon-1",
        traits={"email": " Ana@Example.COM ", "name": "Ana Lima", "plan": "pro"},
        timestamp=TS.replace(minute=2),
        message_id="m-identify-1",
    )
    sdk.track(
        user_id="user-1",
        event="Order Completed",
        properties={"order_id": "o-1", "revenue": 120.5, "currency": "EUR"},
        context={"page": {"url": "https://wren.example/checkout", "path": "/checkout"}},
        timestamp=TS.replace(minute=3),
        message_id="m-order-1",
    )

    customer = world.graphql(CUSTOMER, value="ana@example.com")["customerByIdentity"]
    assert customer["displayName"] == "Ana Lima"
    assert customer["traits"] == {"email": " Ana@Example.COM ", "name": "Ana Lima", "plan": "pro"}
    assert sorted((i["kind"], i["value"]) for i in customer["identities"]) == [
        ("COOKIE", "anon-1"),
        ("CRM_ID", "user-1"),
        ("EMAIL", "ana@example.com"),
    ]
    assert customer["currentStage"] == {"code": "PURCHASE"}
    library = f"analytics-python {sdk_version()}"
    assert customer["interactions"]["totalCount"] == 2
    order, page = customer["interactions"]["nodes"]
    assert order == {
        "type": "ORDER",
        "direction": "INBOUND",
        "summary": "Order Completed",
        "attributes": {
            "source": "segment",
            "event": "Order Completed",
            "properties": {"order_id": "o-1", "revenue": 120.5, "currency": "EUR"},
            "page": {"url": "https://wren.example/checkout", "path": "/checkout"},
            "library": library,
        },
        "occurredAt": "2026-03-01T10:03:00+00:00",
        "touchpoint": {"name": "Wren web shop"},
    }
    assert page == {
        "type": "PAGE_VIEW",
        "direction": "INBOUND",
        "summary": "Home",
        "attributes": {
            "source": "segment",
            "name": "Home",
            "category": "Landing",
            "properties": {"url": "https://wren.example/"},
            "userAgent": "Mozilla/5.0 test",
            "campaign": {"name": "spring", "source": "ig"},
            "library": library,
        },
        "occurredAt": "2026-03-01T10:01:00+00:00",
        "touchpoint": {"name": "Wren web shop"},
    }


def sdk_version() -> str:
    from segment.analytics.version import VERSION

    return str(VERSION)


async def test_a_resent_message_is_stored_once(world: World, db: asyncpg.Connection) -> None:
    message = {
        "type": "track",
        "userId": "user-2",
        "event": "Product Viewed",
        "messageId": "m-resend",
        "timestamp": "2026-03-01T10:00:00Z",
    }
    first = world.post("/v1/batch", {"batch": [message]})
    again = world.post("/v1/track", message)
    assert first.status_code == 200 and again.status_code == 200
    assert first.json() == {
        "success": True,
        "stored": 1,
        "duplicates": 0,
        "rejected": 0,
        "messages": [{"index": 0, "messageId": "m-resend", "status": "stored"}],
    }
    assert again.json()["messages"] == [
        {"index": 0, "messageId": "m-resend", "status": "duplicate"}
    ]
    # The SDK's own re-send of the same message id, too.
    world.sdk().track(user_id="user-2", event="Product Viewed", message_id="m-resend")
    rows = await db.fetch("SELECT type, idempotency_key, touchpoint_id FROM interactions")
    assert [tuple(r) for r in rows] == [("PRODUCT_VIEW", "m-resend", world.touchpoint)]


async def test_gzip_bodies_from_the_sdk_and_a_gzip_bomb(
    world: World, db: asyncpg.Connection
) -> None:
    world.sdk(gzip=True).track(user_id="user-3", event="Cart Viewed", message_id="m-gz")
    assert (
        await db.fetchval("SELECT count(*) FROM interactions WHERE idempotency_key = 'm-gz'") == 1
    )
    bomb = gzip.compress(b'{"batch": [' + b" " * 50_000_000 + b"]}")
    assert len(bomb) < 1_000_000  # within the compressed cap: the decompressed one must stop it
    gzipped = {**basic(world.source_key), "Content-Encoding": "gzip"}
    response = world.raw("/v1/batch", bomb, **gzipped)
    assert response.status_code == 413
    assert response.json() == {
        "success": False,
        "code": "PAYLOAD_TOO_LARGE",
        "message": "the decompressed request body is over 4000000 bytes",
    }
    broken = world.raw("/v1/batch", b"not gzip at all", **gzipped)
    assert (broken.status_code, broken.json()["code"]) == (400, "BAD_REQUEST")


async def test_keys_that_may_not_send_and_sources_on_graphql(world: World, engine: Any) -> None:
    with pytest.raises(APIError) as refused:
        Client("hub_000000000000_" + "x" * 43, host=world.server.http_url, sync_mode=True).track(
            user_id="u", event="Product Viewed"
        )
    assert (refused.value.status, refused.value.code) == (401, "UNAUTHENTICATED")
    no_auth = world.raw("/v1/track", b"{}")
    assert no_auth.status_code == 401
    assert no_auth.headers["www-authenticate"] == 'Basic realm="hub"'
    frontend = await make_key(engine, "FRONTEND")
    response = world.post("/v1/track", {"userId": "u", "event": "x"}, key=frontend)
    assert (response.status_code, response.json()["code"]) == (403, "FORBIDDEN")
    # The source key on GraphQL: refused before anything runs.
    graphql = world.raw(
        "/graphql",
        b'{"query": "{ customers(first: 1) { totalCount } }"}',
        **bearer(world.source_key),
        **{"Content-Type": "application/json"},
    )
    assert graphql.status_code == 403
    assert graphql.json()["errors"][0]["extensions"] == {"code": "FORBIDDEN"}
    assert world.raw("/v1/batch", method="GET").status_code == 405


async def test_each_bad_message_is_reported_and_logged_the_rest_stored(
    world: World, db: asyncpg.Connection
) -> None:
    good = {"type": "track", "userId": "u-4", "event": "Product Viewed", "messageId": "ok-1"}
    batch = [
        good,
        {"type": "track", "event": "Product Viewed", "messageId": "no-id"},
        {
            "type": "track",
            "userId": "u-4",
            "event": "X",
            "messageId": "bad-ts",
            "timestamp": "soon",
        },
        {"type": "fly", "userId": "u-4", "messageId": "bad-type"},
        {
            "type": "identify",
            "userId": "u-4",
            "traits": {"email": "not-an-email"},
            "messageId": "bad-mail",
        },
        "not an object",
    ]
    response = world.post("/v1/batch", {"batch": batch})
    assert response.status_code == 400
    body = response.json()
    assert (body["success"], body["stored"], body["rejected"], body["code"]) == (
        False,
        1,
        5,
        "MESSAGES_REJECTED",
    )
    assert [(m["messageId"], m["status"], m.get("code")) for m in body["messages"]] == [
        ("ok-1", "stored", None),
        ("no-id", "rejected", "BAD_MESSAGE"),
        ("bad-ts", "rejected", "BAD_MESSAGE"),
        ("bad-type", "rejected", "BAD_MESSAGE"),
        ("bad-mail", "rejected", "BAD_USER_INPUT"),
        (None, "rejected", "BAD_MESSAGE"),
    ]
    assert body["messages"][1]["message"] == (
        "a message needs an identifier: one of userId, anonymousId, traits.email, traits.phone"
    )
    assert body["messages"][2]["message"] == "`timestamp` 'soon' is not an ISO 8601 date-time"
    rejections = world.graphql(
        "{ sourceRejections(first: 10) { source messageId messageType event code touchpointId } }"
    )["sourceRejections"]
    assert [(r["messageId"], r["messageType"], r["event"], r["code"]) for r in rejections] == [
        (None, None, None, "BAD_MESSAGE"),
        ("bad-mail", "identify", None, "BAD_USER_INPUT"),
        ("bad-type", None, None, "BAD_MESSAGE"),
        ("bad-ts", "track", "X", "BAD_MESSAGE"),
        ("no-id", "track", "Product Viewed", "BAD_MESSAGE"),
    ]
    assert {r["source"] for r in rejections} == {
        await db.fetchval("SELECT name FROM api_keys WHERE role = 'SOURCE'")
    }
    assert await db.fetchval("SELECT count(*) FROM interactions") == 1
    # The SDK reports a rejection through its error (sync mode raises it).
    with pytest.raises(APIError) as refused:
        world.sdk().track(anonymous_id="a", event="x" * 201)
    assert (refused.value.status, refused.value.code) == (400, "MESSAGES_REJECTED")
    # A body that is not JSON, or a batch that is not a list: the whole request.
    not_json = world.raw("/v1/batch", b"{", **basic(world.source_key))
    assert (not_json.status_code, not_json.json()["code"]) == (400, "BAD_REQUEST")
    assert world.post("/v1/batch", {"batch": {}}).status_code == 400


async def test_unmapped_events_are_kept_listed_and_mappable(world: World) -> None:
    send = world.sdk().track
    send(user_id="u-5", event="Gift Wrapped", message_id="g-1")
    send(user_id="u-5", event="Gift Wrapped", message_id="g-2")
    send(user_id="u-5", event="Size Guide Opened", message_id="s-1")
    unmapped = world.graphql("{ unmappedEvents { event count } }")["unmappedEvents"]
    assert unmapped == [
        {"event": "Gift Wrapped", "count": 2},
        {"event": "Size Guide Opened", "count": 1},
    ]
    mapped = world.graphql(
        'mutation { setSourceEventMapping(event: "Gift Wrapped", type: ORDER) { event type } }'
    )
    assert mapped == {"setSourceEventMapping": {"event": "Gift Wrapped", "type": "ORDER"}}
    send(user_id="u-5", event="Gift Wrapped", message_id="g-3")
    assert world.graphql("{ unmappedEvents { event count } }")["unmappedEvents"] == [
        {"event": "Size Guide Opened", "count": 1}
    ]
    types = world.graphql(
        """{ customerByIdentity(kind: CRM_ID, value: "u-5") {
             interactions(first: 5) { nodes { type summary } } } }"""
    )["customerByIdentity"]["interactions"]["nodes"]
    assert sorted((n["type"], n["summary"]) for n in types) == [
        ("ORDER", "Gift Wrapped"),
        ("TRACKED_EVENT", "Gift Wrapped"),
        ("TRACKED_EVENT", "Gift Wrapped"),
        ("TRACKED_EVENT", "Size Guide Opened"),
    ]


async def test_screen_alias_and_group(world: World, db: asyncpg.Connection) -> None:
    sdk = world.sdk()
    sdk.screen(anonymous_id="device-anon", name="Basket", message_id="sc-1")
    sdk.alias(previous_id="device-anon", user_id="user-7", message_id="al-1")
    sdk.group(user_id="user-7", group_id="acme", traits={"plan": "team"}, message_id="gr-1")
    rows = await db.fetch(
        "SELECT c.traits, array_agg(i.kind || ':' || i.value ORDER BY i.kind) AS ids"
        " FROM customers c JOIN identities i ON i.customer_id = c.id GROUP BY c.id"
    )
    assert [(r["traits"], r["ids"]) for r in rows] == [
        (
            '{"groupId": "acme", "groupTraits": {"plan": "team"}}',
            ["COOKIE:device-anon", "CRM_ID:user-7"],
        )
    ]
    assert await db.fetchval("SELECT type FROM interactions") == "SCREEN_VIEW"


def run_node_sdk(world: World, key: str, prefix: str) -> dict[str, Any]:
    """tests/sources/segment_node.cjs with Segment's Node SDK, from the repository root."""
    done = subprocess.run(
        ["node", "tests/sources/segment_node.cjs"],
        cwd=ROOT,
        env={**os.environ, "HUB_URL": world.server.http_url, "WRITE_KEY": key, "PREFIX": prefix},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


async def test_node_sdk_identify_track_page_end_in_the_graph(
    world: World, db: asyncpg.Connection
) -> None:
    assert run_node_sdk(world, world.source_key, "bo") == {"statuses": [200], "errors": []}
    customer = world.graphql(CUSTOMER, value="bo@example.com")["customerByIdentity"]
    assert customer["displayName"] == "Bo Node"
    assert customer["traits"] == {"email": "bo@example.com", "firstName": "Bo", "lastName": "Node"}
    assert sorted((i["kind"], i["value"]) for i in customer["identities"]) == [
        ("CRM_ID", "bo-user"),
        ("EMAIL", "bo@example.com"),
    ]
    nodes = customer["interactions"]["nodes"]
    assert [(n["type"], n["summary"], n["occurredAt"]) for n in nodes] == [
        ("PAGE_VIEW", "Cart", "2026-03-02T09:02:00+00:00"),
        ("PRODUCT_VIEW", "Product Added", "2026-03-02T09:01:00+00:00"),
    ]
    assert nodes[1]["attributes"]["properties"] == {"sku": "linen-1", "price": 89}
    assert nodes[1]["attributes"]["library"].startswith("@segment/analytics-node ")
    # The journey rules as they are: the cart page after the product (AWARENESS after
    # CONSIDERATION) is a backward step.
    assert customer["currentStage"] == {"code": "AWARENESS"}
    # The same messages again: nothing new.
    assert run_node_sdk(world, world.source_key, "bo") == {"statuses": [200], "errors": []}
    assert await db.fetchval("SELECT count(*) FROM interactions") == 2
    assert await db.fetchval("SELECT count(*) FROM customers") == 1
    # A key that is not one: the SDK sees the 401 and reports each message as failed.
    refused = run_node_sdk(world, "hub_000000000000_" + "y" * 43, "nobody")
    assert refused["statuses"] == [401]
    assert refused["errors"] == ["Error: [401] Unauthorized"] * 3  # one per message


async def test_a_source_key_cannot_open_a_subscription(world: World) -> None:
    async with websockets.connect(world.server.ws_url, subprotocols=[PROTOCOL]) as ws:  # type: ignore[list-item]
        init = {"Authorization": f"Bearer {world.source_key}"}
        await ws.send(json.dumps({"type": "connection_init", "payload": init}))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403


async def test_identify_of_two_customers_erased_people_and_oversized_batches(
    world: World, db: asyncpg.Connection
) -> None:
    sdk = world.sdk()
    sdk.identify(user_id="u-8", traits={"email": "cy@example.com"}, message_id="i-1")
    sdk.identify(user_id="u-9", traits={"email": "di@example.com"}, message_id="i-2")
    # One message claims both people's identifiers: refused alone, the next one stored.
    response = world.post(
        "/v1/batch",
        {
            "batch": [
                {"type": "identify", "userId": "u-8", "traits": {"email": "di@example.com"}},
                {"type": "track", "userId": "u-9", "event": "Product Viewed", "messageId": "t-9"},
            ]
        },
    )
    assert response.status_code == 400
    first, second = response.json()["messages"]
    assert (first["status"], first["code"]) == ("rejected", "CONFLICT")
    assert first["message"] == (
        "these identities belong to different customers; merge them with mergeCustomers"
    )
    assert second == {"index": 1, "messageId": "t-9", "status": "stored"}
    # An erased person's identifiers are not linked again by an identify.
    cy = world.graphql('{ customerByIdentity(kind: EMAIL, value: "cy@example.com") { id } }')
    erase = "mutation($id: ID!) { eraseCustomer(id: $id) { customerId } }"
    world.graphql(erase, id=cy["customerByIdentity"]["id"])
    response = world.post(
        "/v1/identify", {"userId": "u-8", "traits": {"email": "cy@example.com", "name": "Cy"}}
    )
    assert response.status_code == 400
    assert response.json()["messages"][0]["code"] == "ERASED_IDENTITY"
    assert await db.fetchval("SELECT count(*) FROM identities WHERE value = 'cy@example.com'") == 0
    # Over the batch size: refused whole, nothing stored.
    many = [{"type": "track", "userId": "u", "event": "e"}] * 1001
    too_many = world.post("/v1/batch", {"batch": many})
    assert too_many.status_code == 400
    assert too_many.json() == {
        "success": False,
        "code": "BAD_REQUEST",
        "message": "a batch holds at most 1000 messages; got 1001",
    }


async def test_rudderstack_sdk_sends_gzip_batches_that_end_in_the_graph(world: World) -> None:
    from rudderstack.analytics.client import Client as RudderClient

    rudder = RudderClient(world.source_key, host=world.server.http_url, sync_mode=True)
    assert rudder.gzip  # RudderStack's default: every body gzip-encoded
    rudder.identify(user_id="r-1", traits={"email": "ro@example.com", "name": "Ro"})
    rudder.track(user_id="r-1", event="Checkout Started", properties={"value": 30})
    customer = world.graphql(CUSTOMER, value="ro@example.com")["customerByIdentity"]
    assert customer["displayName"] == "Ro"
    [node] = customer["interactions"]["nodes"]
    assert (node["type"], node["summary"], node["attributes"]["properties"]) == (
        "PRODUCT_VIEW",
        "Checkout Started",
        {"value": 30},
    )
    assert node["attributes"]["library"].startswith("analytics-python ")  # RudderStack's name


async def test_a_batch_of_interactions_only_reports_each_bad_one_and_merges_when_needed(
    world: World, db: asyncpg.Connection
) -> None:
    # Interactions only: the compiled ingest's asyncpg path (the server runs with it on).
    batch = [
        {"type": "track", "userId": "u-7", "event": "Order Completed", "messageId": "t-1"},
        {"type": "track", "userId": "u-7", "event": "Wished \ud83d\ude00", "messageId": "t-2"},
        {"type": "track", "userId": "u-7", "event": "nul \u0000 here", "messageId": "t-3"},
        {
            "type": "page",
            "userId": "u-7",
            "context": {"traits": {"email": "not-an-email"}},
            "messageId": "t-4",
        },
        {"type": "screen", "anonymousId": "dev-7", "name": "Home", "messageId": "t-5"},
    ]
    # orjson would refuse a lone surrogate; the NUL travels as the JSON escape \u0000.
    response = world.raw(
        "/v1/batch",
        json.dumps({"batch": batch}).encode(),
        **basic(world.source_key),
        **{"Content-Type": "application/json"},
    )
    assert response.status_code == 400
    body = response.json()
    assert [(m["messageId"], m["status"], m.get("code")) for m in body["messages"]] == [
        ("t-1", "stored", None),
        ("t-2", "stored", None),
        ("t-3", "rejected", "BAD_MESSAGE"),
        ("t-4", "rejected", "BAD_USER_INPUT"),
        ("t-5", "stored", None),
    ]
    assert "NUL" in body["messages"][2]["message"]
    assert "not-an-email" in body["messages"][3]["message"]
    rows = await db.fetch("SELECT type, summary FROM interactions ORDER BY idempotency_key")
    assert [(r["type"], r["summary"]) for r in rows] == [
        ("ORDER", "Order Completed"),
        ("TRACKED_EVENT", "Wished \U0001f600"),
        ("SCREEN_VIEW", "Home"),
    ]
    assert (
        await db.fetchval(
            "SELECT count FROM source_unmapped_events WHERE event = 'Wished \U0001f600'"
        )
        == 1
    )
    logged = await db.fetch("SELECT message_id, code FROM source_rejections ORDER BY message_id")
    assert [(r["message_id"], r["code"]) for r in logged] == [
        ("t-3", "BAD_MESSAGE"),
        ("t-4", "BAD_USER_INPUT"),
    ]
    audit = await db.fetchrow(
        "SELECT action, success, details FROM audit_log WHERE action LIKE 'tracking %'"
    )
    assert (audit["action"], audit["success"], json.loads(audit["details"])) == (
        "tracking /v1/batch",
        False,
        {"messages": 5, "stored": 3, "rejected": 2},
    )
    # The same batch again: the stored ones are duplicates, nothing new.
    again = world.raw(
        "/v1/batch",
        json.dumps({"batch": batch}).encode(),
        **basic(world.source_key),
        **{"Content-Type": "application/json"},
    ).json()
    assert [m["status"] for m in again["messages"]] == [
        "duplicate",
        "duplicate",
        "rejected",
        "rejected",
        "duplicate",
    ]
    assert await db.fetchval("SELECT count(*) FROM interactions") == 3

    # A track whose identifiers belong to two customers: the merge runs (the SQLAlchemy path).
    world.post("/v1/identify", {"userId": "u-8", "traits": {"email": "eve@example.com"}})
    world.post("/v1/identify", {"userId": "u-9", "traits": {"email": "fay@example.com"}})
    before = await db.fetchval("SELECT count(*) FROM customers WHERE merged_into_id IS NULL")
    merged = world.post(
        "/v1/batch",
        {
            "batch": [
                {
                    "type": "track",
                    "userId": "u-8",
                    "event": "Order Completed",
                    "context": {"traits": {"email": "fay@example.com"}},
                    "messageId": "t-merge",
                }
            ]
        },
    )
    assert merged.status_code == 200, merged.text
    after = await db.fetchval("SELECT count(*) FROM customers WHERE merged_into_id IS NULL")
    assert after == before - 1
    assert (
        await db.fetchval(
            "SELECT count(DISTINCT customer_id) FROM identities WHERE value IN ('u-8', 'u-9',"
            " 'eve@example.com', 'fay@example.com')"
        )
        == 1
    )


async def test_track_events_map_to_a_custom_type_whose_schema_is_checked_per_message(
    world: World, db: asyncpg.Connection
) -> None:
    """The vocabulary kept as data on /v1/*: a type defined by an ADMIN (hub.vocabulary) is a
    mapping's target, and its attributes schema rejects a message alone."""
    code = f"LOAN_APPLICATION_{uuid.uuid4().hex[:6].upper()}"
    schema = {
        "type": "object",
        "required": ["properties"],
        "properties": {
            "properties": {
                "type": "object",
                "required": ["amount"],
                "properties": {"amount": {"type": "number", "minimum": 0}},
            }
        },
    }
    world.graphql(
        """mutation($input: DefineInteractionTypeInput!) {
             defineInteractionType(input: $input) { code } }""",
        input={"code": code, "name": "Loan", "description": "Loan", "attributesSchema": schema},
    )
    world.graphql(
        'mutation($t: InteractionType!) { setSourceEventMapping(event: "Loan Applied", type: $t)'
        " { type } }",
        t=code,
    )
    unknown = world.post(
        "/v1/track",
        {"userId": "u-9", "event": "Nope", "messageId": "n-0", "properties": {}},
    )
    assert unknown.status_code == 200  # an unmapped event is kept as TRACKED_EVENT
    batch = [
        {
            "type": "track",
            "userId": "u-9",
            "event": "Loan Applied",
            "messageId": f"l-{n}",
            "properties": properties,
        }
        for n, properties in enumerate([{"amount": 1000}, {"amount": "lots"}, {"amount": 5}])
    ]
    answer = world.post("/v1/batch", {"batch": batch})
    assert answer.status_code == 400
    body = answer.json()
    assert (body["stored"], body["rejected"], body["code"]) == (2, 1, "MESSAGES_REJECTED")
    [rejected] = [m for m in body["messages"] if m["status"] == "rejected"]
    assert (rejected["index"], rejected["code"]) == (1, "INVALID_ATTRIBUTES")
    assert rejected["message"].startswith(
        f"`attributes.properties.amount` breaks the schema of {code}"
    )
    stored = await db.fetch(
        "SELECT idempotency_key FROM interactions WHERE type = $1 ORDER BY idempotency_key", code
    )
    assert [r["idempotency_key"] for r in stored] == ["l-0", "l-2"]
    # An unregistered type cannot be a mapping's target.
    query = 'mutation { setSourceEventMapping(event: "X", type: NOT_REGISTERED) { type } }'
    refused = world.raw(
        "/graphql",
        json.dumps({"query": query}).encode(),
        **{"Content-Type": "application/json", **bearer(world.admin_key)},
    ).json()
    assert refused["errors"][0]["extensions"]["code"] == "UNKNOWN_CODE"
