"""Operations: Prometheus metrics at /metrics and the JSON request log, through real apps."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import event

from hub.ops.logs import JsonFormatter
from tests.conftest import StatementCounter, make_key
from tests.ingest_support import interaction, touchpoints
from tests.live_server import Server, connect, start_server
from tests.waiting import until, until_sync

STAGES = "query Stages { journeyStages { code } }"
RECORD = """
mutation Record($input: RecordInteractionInput!) { recordInteraction(input: $input) { created } }
"""
RECORD_MANY = """
mutation RecordMany($inputs: [RecordInteractionInput!]!) {
  recordInteractions(inputs: $inputs) { stored { index } rejected { index } }
}
"""
COMPILED = "query Customers { customers(first: 5) { totalCount nodes { id } } }"
FEED = "subscription { interactionRecorded { cursor } }"
POLL_S = 10.0  # upper bound of a bounded poll; never asserted as a duration


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus exposition, by (name, sorted labels)."""
    parsed: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            parsed[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return parsed


async def scrape(http: httpx.AsyncClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = await http.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return samples(response.text)


def requests_of(scraped: dict[Any, float], operation: str, outcome: str) -> float:
    key = ("hub_graphql_requests_total", (("operation", operation), ("outcome", outcome)))
    return scraped.get(key, 0.0)


def value(scraped: dict[Any, float], name: str) -> float:
    return scraped.get((name, ()), 0.0)


async def post(http: httpx.AsyncClient, body: dict[str, Any], **headers: str) -> httpx.Response:
    response = await http.post("/graphql", json=body, headers=headers)
    assert response.status_code == 200, response.text
    return response


@contextlib.asynccontextmanager
async def own_app(
    app_with: Any, **overrides: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, Any, StatementCounter]]:
    """An app of the test's own (its own metrics registry and pools: no other test's traffic,
    no background work of a shared app, moves its numbers), an ADMIN client to it, and a
    counter of the statements its request engine runs."""
    async with app_with(**overrides) as (http, engine):
        http.headers["Authorization"] = f"Bearer {await make_key(engine, 'ADMIN')}"
        counter = StatementCounter()
        event.listen(engine.sync_engine, "before_cursor_execute", counter)
        try:
            yield http, engine, counter
        finally:
            event.remove(engine.sync_engine, "before_cursor_execute", counter)


async def test_requests_are_counted_by_operation_and_outcome_with_latency(
    app_with: Any, db: asyncpg.Connection
) -> None:
    tp = await touchpoints(db)
    async with own_app(app_with) as (client, _engine, count_statements):
        await _count_requests(client, db, tp, count_statements)


async def _count_requests(
    client: httpx.AsyncClient,
    db: asyncpg.Connection,
    tp: dict[str, str],
    count_statements: StatementCounter,
) -> None:
    before = await scrape(client)
    # A fresh app: nothing was counted before this test's own requests.
    assert requests_of(before, "Customers", "ok") == 0
    assert value(before, "hub_graphql_request_duration_seconds_count") == 0
    # Named, on the compiled read path (an ADMIN key sees everything unmasked): it runs no
    # statement on the resolvers' engine.
    await post(client, {"query": COMPILED, "operationName": "Customers"})
    assert count_statements.count == 0, count_statements.report()
    # Named, on the resolver path.
    await post(client, {"query": STAGES, "operationName": "Stages"})
    assert count_statements.count > 0
    # Anonymous: no name sent; a name over 64 characters; one that is not a plain identifier
    # (which no document can define: a 400).
    await post(client, {"query": "{ journeyStages { code } }"})
    long_name = "A" * 65
    await post(
        client,
        {"query": f"query {long_name} {{ journeyStages {{ code }} }}", "operationName": long_name},
    )
    odd = await client.post("/graphql", json={"query": STAGES, "operationName": "Stages; DROP"})
    assert odd.status_code == 400
    # Failing: a field that does not exist (200 with errors), named.
    failed = await post(client, {"query": "query Broken { nope }", "operationName": "Broken"})
    assert failed.json()["errors"]
    # A mutation on the resolver path: stores one interaction; its replay stores none.
    item = interaction(tp["web"], ("EMAIL", "ana@example.com"), idempotencyKey="m-1")
    for _ in range(2):
        body = {"query": RECORD, "variables": {"input": item}, "operationName": "Record"}
        await post(client, body)
    # A batch: two new interactions stored, one rejected.
    batch = [
        interaction(tp["web"], ("EMAIL", "ben@example.com")),
        interaction(tp["call"], ("EMAIL", "cy@example.com")),
        interaction(tp["web"], ("EMAIL", "not-an-email")),
    ]
    body = {"query": RECORD_MANY, "variables": {"inputs": batch}, "operationName": "RecordMany"}
    response = await post(client, body)
    assert len(response.json()["data"]["recordInteractions"]["stored"]) == 2
    after = await scrape(client)

    def moved(operation: str, outcome: str) -> float:
        return requests_of(after, operation, outcome) - requests_of(before, operation, outcome)

    assert moved("Customers", "ok") == 1
    assert moved("Stages", "ok") == 1
    assert moved("anonymous", "ok") == 2
    assert moved("anonymous", "error") == 1
    assert moved("Broken", "error") == 1
    assert moved("Broken", "ok") == 0
    assert moved("Record", "ok") == 2
    assert moved("RecordMany", "ok") == 1
    count = "hub_graphql_request_duration_seconds_count"
    assert value(after, count) - value(before, count) == 9
    total = "hub_graphql_request_duration_seconds_sum"
    assert value(after, total) > value(before, total)
    stored = "hub_ingest_interactions_stored_total"
    assert value(after, stored) - value(before, stored) == 3
    assert await db.fetchval("SELECT count(*) FROM interactions") == 3

    def labelled(name: str, path: str) -> float:
        key = (name, (("path", path),))
        return after.get(key, 0.0) - before.get(key, 0.0)

    # How each operation was answered, and the SQL each path sent: the compiled paths answered
    # the read and the three ingest calls (one statement for the read, a few per ingest call);
    # every statement of the resolver path is counted, as the test's own counter saw.
    assert labelled("hub_graphql_execution_path_total", "compiled") == 4
    assert labelled("hub_graphql_execution_path_total", "resolvers") >= 4
    assert labelled("hub_sql_statements_total", "compiled") > 4
    assert labelled("hub_sql_statements_total", "resolvers") == count_statements.count > 0


async def test_requests_the_gate_rejects_are_counted_as_errors(
    app_with: Any, db: asyncpg.Connection
) -> None:
    async with own_app(app_with) as (client, _engine, _counter):
        before = await scrape(client)
        key = client.headers.pop("Authorization")
        response = await client.post("/graphql", json={"query": STAGES, "operationName": "S"})
        assert response.status_code == 401
        client.headers["Authorization"] = key
        after = await scrape(client)
    # The gate answers before the body is read: the operation is not known.
    assert requests_of(before, "anonymous", "error") == 0
    assert requests_of(after, "anonymous", "error") == 1
    assert value(after, "hub_graphql_request_duration_seconds_count") == 1


async def test_pool_usage_is_read_at_scrape_time(app_with: Any, db: asyncpg.Connection) -> None:
    # The app's own pool: only this test checks connections out of it (a scrape takes none).
    async with own_app(app_with, pool_size=4) as (client, engine, _counter):
        before = await scrape(client)
        async with engine.connect(), engine.connect():
            during = await scrape(client)
        after = await scrape(client)
    in_use = "hub_db_pool_checked_out"
    assert value(before, "hub_db_pool_size") == 4
    assert (value(before, in_use), value(during, in_use), value(after, in_use)) == (0, 2, 0)


async def test_broker_lag_follows_delivered_events(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    tp = await touchpoints(db)
    item = interaction(tp["web"], ("EMAIL", "lag@example.com"))
    await post(client, {"query": RECORD, "variables": {"input": item}})
    created = await db.fetchval(
        "SELECT max(created_at) FROM events WHERE kind = 'INTERACTION_RECORDED'"
    )
    name = "hub_broker_last_event_created_timestamp_seconds"

    async def delivered() -> bool:
        return value(await scrape(client), name) >= created.timestamp()

    await until(delivered, "the broker to deliver the event", POLL_S)
    scraped = await scrape(client)
    # The exposition prints floats exactly enough for a millisecond; no other event is newer.
    assert value(scraped, name) == pytest.approx(created.timestamp(), rel=0, abs=1e-3)
    assert value(scraped, "hub_broker_lag_seconds") >= 0


async def test_metrics_can_be_switched_off(app_with: Any) -> None:
    async with app_with(metrics=False) as (http, _engine):
        assert (await http.get("/metrics")).status_code == 404
    async with app_with() as (http, _engine):
        assert (await http.get("/metrics")).status_code == 200


async def test_each_request_logs_one_json_line_with_its_request_id(
    client: httpx.AsyncClient, engine: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="hub.requests")
    secret_value = "never-logged-variable"
    response = await post(
        client,
        {
            "query": "query Stages($x: String!) { __type(name: $x) { name } }",
            "operationName": "Stages",
            "variables": {"x": secret_value},
        },
        **{"X-Request-Id": "trace-42.a_b"},
    )
    assert response.headers["x-request-id"] == "trace-42.a_b"
    [record] = [r for r in caplog.records if r.name == "hub.requests"]
    line = json.loads(JsonFormatter().format(record))
    assert line["request_id"] == "trace-42.a_b"
    assert line["method"] == "POST" and line["path"] == "/graphql"
    assert line["status"] == 200 and line["outcome"] == "ok"
    assert line["operation"] == "Stages"
    assert line["principal"].startswith("test-admin-")
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
    assert line["level"] == "INFO" and line["logger"] == "hub.requests"
    key = client.headers["authorization"].removeprefix("Bearer ")
    text = JsonFormatter().format(record)
    assert key not in text and secret_value not in text

    # An unsafe or overlong id is replaced by a generated one (and echoed).
    caplog.clear()
    generated = []
    for given in ("has space", "x" * 65, "semi;colon"):
        response = await post(client, {"query": STAGES}, **{"X-Request-Id": given})
        generated.append(response.headers["x-request-id"])
        assert generated[-1] != given and len(generated[-1]) == 32
    assert [getattr(r, "request_id", None) for r in caplog.records] == generated


async def test_a_rejected_request_is_logged_without_a_principal(
    app: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="hub.requests")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://hub.test"
    ) as anonymous:
        response = await anonymous.post(
            "/graphql",
            json={"query": STAGES},
            headers={"Authorization": "Bearer not-a-real-key"},
        )
    assert response.status_code == 401
    [record] = [r for r in caplog.records if r.name == "hub.requests"]
    line = json.loads(JsonFormatter().format(record))
    assert line["status"] == 401 and line["outcome"] == "error" and line["principal"] is None
    assert line["request_id"] == response.headers["x-request-id"]
    assert "not-a-real-key" not in JsonFormatter().format(record)


# ---- a real `hub serve`: websocket gauges and the JSON log on stderr ----


@pytest.fixture(scope="module")
def server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    started = start_server(database_url, tmp_path_factory.mktemp("ops"))
    try:
        yield started
    finally:
        started.stop()


async def wait_for_gauges(http: httpx.AsyncClient, connections: int, subscriptions: int) -> None:
    deadline = time.monotonic() + POLL_S
    while True:
        scraped = await scrape(http)
        seen = (
            value(scraped, "hub_websocket_connections"),
            value(scraped, "hub_subscriptions_active"),
        )
        if seen == (connections, subscriptions) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert seen == (connections, subscriptions)


async def test_websocket_gauges_follow_connections_and_subscriptions(
    server: Server, db: asyncpg.Connection
) -> None:
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        await wait_for_gauges(http, 0, 0)
        async with connect(server) as client:
            await wait_for_gauges(http, 1, 0)
            await client.subscribe(FEED)
            await wait_for_gauges(http, 1, 1)
            async with connect(server) as other:
                await other.subscribe(FEED)
                await other.subscribe(FEED)
                await wait_for_gauges(http, 2, 3)
        await wait_for_gauges(http, 0, 0)


def test_the_server_writes_json_request_lines(server: Server) -> None:
    response = httpx.post(
        f"{server.http_url}/graphql",
        json={"query": STAGES, "operationName": "Stages"},
        headers={"X-Request-Id": "live-request-1"},
    )
    assert response.status_code == 200 and response.headers["x-request-id"] == "live-request-1"
    until_sync(lambda: "live-request-1" in Path(server.log).read_text(), "the request line", POLL_S)
    text = Path(server.log).read_text()
    [line] = [json.loads(line) for line in text.splitlines() if "live-request-1" in line]
    assert line["logger"] == "hub.requests" and line["operation"] == "Stages"
    assert line["status"] == 200 and line["principal"] == "development-mode"


async def test_metrics_by_default_only_for_loopback(app: Any) -> None:
    # The defaults: no HUB_METRICS_TOKEN, HUB_METRICS_ALLOWED_NETWORKS loopback only. The
    # clients are in-process (httpx's ASGI transport), each with the peer address it names.
    for address, status in [("203.0.113.5", 403), ("10.1.2.3", 403), ("127.0.0.1", 200)]:
        transport = httpx.ASGITransport(app=app, client=(address, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as http:
            response = await http.get("/metrics")
        assert response.status_code == status, address
        if status == 403:
            assert response.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
