"""Limits that cannot be outrun (issue 20), on a real `hub serve` over HTTP and websockets.

One regression test per finding of the security review: the fragment fan-out (HTTP and
websocket, and the walk counted), the oversized websocket message, the filter width, the list
length, unstorable text in every kind of argument, the audit row that cannot be skipped, and the
deeply nested read that answered 500.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import asyncpg
import httpx
import pytest
import websockets
from graphql import FragmentDefinitionNode, OperationDefinitionNode, parse

from hub.access.limits import measure
from hub.graphql import schema
from tests.factories import T0, Factory, gid, minutes
from tests.live_server import TIMEOUT, Server, connect, start_server


@pytest.fixture(scope="module")
def server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    started = start_server(database_url, tmp_path_factory.mktemp("outrun"))
    try:
        yield started
    finally:
        started.stop()


async def post(server: Server, query: str, variables: dict[str, Any] | None = None) -> Any:
    # json.dumps escapes what UTF-8 cannot carry (a lone surrogate travels as "\ud800").
    body = json.dumps({"query": query, "variables": variables or {}})
    async with httpx.AsyncClient(base_url=server.http_url, timeout=TIMEOUT) as http:
        response = await http.post(
            "/graphql", content=body, headers={"Content-Type": "application/json"}
        )
    assert response.status_code == 200, response.text
    return response.json()


async def only_error(server: Server, query: str, variables: dict[str, Any] | None = None) -> Any:
    body = await post(server, query, variables)
    assert body.get("data") is None, body
    [error] = body["errors"]
    return error


def fan_out(levels: int, on: str, leaf: str) -> str:
    """Fragment i spreads fragment i-1 twice: 2**levels paths through 1 KB of document."""
    fragments = [f"fragment F0 on {on} {{ {leaf} }}"]
    fragments += [f"fragment F{i} on {on} {{ ...F{i - 1} ...F{i - 1} }}" for i in range(1, levels)]
    return "\n".join(fragments)


# ---- 1. fragment fan-out: linear walk, refused before any work ----


def test_the_walk_measures_each_fragment_once() -> None:
    document = parse("query { ...F29 }\n" + fan_out(30, "Query", "customers { totalCount }"))
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    [operation] = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    found = measure(schema._schema, fragments, operation, {}, 20)
    # 59 spreads met (two in each of F1..F29, one in the operation), 30 fragment bodies walked.
    assert found.spreads == 59
    assert found.fragments_walked == 30
    # customers + totalCount, reached along 2**29 paths: the same cost a full walk would count.
    assert found.cost == 2 * 2**29
    assert found.depth == 2


async def test_a_30_level_fragment_fan_out_is_refused_over_http(server: Server) -> None:
    query = "query { ...F29 }\n" + fan_out(30, "Query", "customers { totalCount }")
    assert len(query) < 1_500
    error = await only_error(server, query)
    assert error["extensions"] == {"code": "QUERY_TOO_COMPLEX", "cost": 2**30, "maxCost": 50_000}


async def test_a_30_level_fragment_fan_out_is_refused_over_a_websocket(server: Server) -> None:
    query = "subscription { interactionRecorded { ...F29 } }\n" + fan_out(
        30, "InteractionRecordedEvent", "interaction { id }"
    )
    async with connect(server) as client:
        operation = await client.subscribe(query)
        [error] = await client.errors(operation)
    # interactionRecorded, then interaction + id along 2**29 paths.
    assert error["extensions"] == {
        "code": "QUERY_TOO_COMPLEX",
        "cost": 1 + 2**30,
        "maxCost": 50_000,
    }


# ---- 2. websocket messages: capped in bytes before parsing; token limit ----


async def test_a_5_mb_websocket_message_closes_1009_and_the_server_answers_on(
    server: Server,
) -> None:
    query = "subscription { interactionRecorded { cursor } }" + " " * 5_000_000
    message = {"id": "big", "type": "subscribe", "payload": {"query": query}}
    async with connect(server) as client:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await client.ws.send(json.dumps(message))
            await client.receive()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1009
    # The server still answers, over HTTP and on a new websocket.
    assert (await post(server, "{ __typename }")) == {"data": {"__typename": "Query"}}
    async with connect(server) as client:
        operation = await client.subscribe("subscription { interactionRecorded { cursor } }x")
        [error] = await client.errors(operation)
        assert error["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"


async def test_a_websocket_document_over_the_token_limit_is_refused(server: Server) -> None:
    query = "subscription { interactionRecorded { cursor " + "__typename " * 5_001 + "} }"
    async with connect(server) as client:
        operation = await client.subscribe(query)
        [error] = await client.errors(operation)
    assert error["extensions"] == {"code": "TOO_MANY_TOKENS", "maxTokens": 5_000}


# ---- 3. filter width ----


async def test_a_filter_of_10000_or_clauses_is_refused(server: Server, db: Any) -> None:
    query = "query($f: CustomerFilter) { customers(filter: $f) { totalCount } }"
    wide = {"or": [{"displayName": {"eq": f"name {n}"}} for n in range(10_000)]}
    error = await only_error(server, query, {"f": wide})
    assert error["extensions"] == {"code": "FILTER_TOO_WIDE", "argument": "$f", "maxClauses": 100}
    # 100 filter objects in all (the root and 99 nested ones) are fine.
    narrow = {"and": [{"or": [{"displayName": {"eq": f"n{n}"}} for n in range(98)]}]}
    body = await post(server, query, {"f": narrow})
    assert body == {"data": {"customers": {"totalCount": 0}}}
    inline = "{ customers(filter: {not: {not: {not: {}}}}) { totalCount } }"
    assert (await post(server, inline)) == {"data": {"customers": {"totalCount": 0}}}


# ---- 4. list lengths ----


async def test_a_100000_item_list_is_refused(server: Server, db: Any) -> None:
    query = "query($ids: [ID!]!) { previewMerge(customerIds: $ids) { survivor { id } } }"
    error = await only_error(server, query, {"ids": ["x"] * 100_000})
    assert error["extensions"] == {"code": "LIST_TOO_LONG", "argument": "$ids", "maxLength": 1000}
    literal = "{ customers(orderBy: [" + "CREATED_AT_ASC " * 1001 + "]) { totalCount } }"
    error = await only_error(server, literal)
    assert error["extensions"] == {
        "code": "LIST_TOO_LONG",
        "argument": "customers.orderBy",
        "maxLength": 1000,
    }


# ---- 5. text PostgreSQL cannot store, in every kind of argument ----

NUL_CASES = [
    # (document, variables, the argument path named)
    (
        '{ customerByIdentity(kind: EMAIL, value: "a\\u0000@example.com") { id } }',
        {},
        "customerByIdentity.value",
    ),
    (
        "query($v: String!) { customerByIdentity(kind: EMAIL, value: $v) { id } }",
        {"v": "a\x00@example.com"},
        "$v",
    ),
    (
        '{ previewMerge(customerIds: ["x", "y\\u0000"]) { survivor { id } } }',
        {},
        "previewMerge.customerIds[1]",
    ),
    (
        'mutation { upsertCustomer(input: {displayName: "Ann\\u0000", identities: '
        '[{kind: EMAIL, value: "ann@example.com"}]}) { created } }',
        {},
        "upsertCustomer.input.displayName",
    ),
    (
        "mutation($i: UpsertCustomerInput!) { upsertCustomer(input: $i) { created } }",
        {"i": {"identities": [{"kind": "EMAIL", "value": "ann\x00@example.com"}]}},
        "$i.identities[0].value",
    ),
    (
        'mutation { updateTraits(customerId: "x", traits: {note: {deep: ["ok", "no\\u0000"]}})'
        " { id } }",
        {},
        "updateTraits.traits.note.deep[1]",
    ),
    (
        'mutation($t: JSON!) { updateTraits(customerId: "x", traits: $t) { id } }',
        {"t": {"ok": 1, "bad\x00key": 2}},
        "$t (a key)",
    ),
]


@pytest.mark.parametrize(("query", "variables", "argument"), NUL_CASES)
async def test_unstorable_text_is_bad_user_input_naming_the_argument(
    server: Server, db: asyncpg.Connection, query: str, variables: dict[str, Any], argument: str
) -> None:
    error = await only_error(server, query, variables)
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "argument": argument}
    assert "which cannot be stored" in error["message"]
    assert await db.fetchval("SELECT count(*) FROM customers") == 0
    assert await db.fetchval("SELECT count(*) FROM audit_log") == 0


async def test_a_lone_surrogate_in_the_body_is_refused_before_graphql(
    server: Server, db: asyncpg.Connection
) -> None:
    """A lone surrogate ("\\ud800" in the JSON text) is not Unicode: over HTTP the body is
    refused as a whole (hub.http.wire, strict UTF-8 JSON), before any GraphQL work; the argument
    check above catches it on transports that decode it (websockets)."""
    body = json.dumps(
        {
            "query": "query($f: CustomerFilter) { customers(filter: $f) { totalCount } }",
            "variables": {"f": {"or": [{"trait": {"key": "plan", "eq": "\ud800"}}]}},
        }
    )
    assert "\\ud800" in body
    async with httpx.AsyncClient(base_url=server.http_url, timeout=TIMEOUT) as http:
        response = await http.post(
            "/graphql", content=body, headers={"Content-Type": "application/json"}
        )
    assert response.status_code == 400
    assert response.json() == {
        "errors": [
            {
                "message": "the request body is not valid JSON",
                "extensions": {"code": "BAD_REQUEST"},
            }
        ]
    }
    assert await db.fetchval("SELECT count(*) FROM audit_log") == 0


# ---- 6. the audit row cannot be skipped ----

TWO_FIELDS = """mutation {
  a: upsertCustomer(input: {identities: [{kind: EMAIL, value: "first@example.com"}]}) { created }
  b: upsertCustomer(input: {identities: [{kind: EMAIL, value: "second\\u0000@example.com"}]})
    { created }
}"""


async def test_a_mutation_with_a_nul_in_its_second_field_changes_nothing(
    server: Server, db: asyncpg.Connection
) -> None:
    error = await only_error(server, TWO_FIELDS)
    assert error["extensions"] == {
        "code": "BAD_USER_INPUT",
        "argument": "upsertCustomer.input.identities[0].value",
    }
    assert await db.fetchval("SELECT count(*) FROM customers") == 0
    assert await db.fetchval("SELECT count(*) FROM identities") == 0
    assert await db.fetchval("SELECT count(*) FROM audit_log") == 0
    # Without the NUL both run, under one audit row that names both fields.
    body = await post(server, TWO_FIELDS.replace("\\u0000", ""))
    assert body == {"data": {"a": {"created": True}, "b": {"created": True}}}
    rows = await db.fetch("SELECT action, success, details FROM audit_log")
    assert [dict(row) for row in rows] == [
        {
            "action": "upsertCustomer,upsertCustomer",
            "success": True,
            "details": json.dumps({"errors": [], "operationName": None}),
        }
    ]


async def test_a_mutation_whose_audit_row_cannot_be_written_does_not_run(
    server: Server, db: asyncpg.Connection
) -> None:
    # A real failure of the audit insert (a trigger refusing it), not a fake one.
    await db.execute(
        "CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS"
        " $$ BEGIN RAISE EXCEPTION 'audit refused for this test'; END $$"
    )
    await db.execute(
        "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log"
        " FOR EACH ROW EXECUTE FUNCTION refuse_audit()"
    )
    try:
        error = await only_error(server, TWO_FIELDS.replace("\\u0000", ""))
    finally:
        await db.execute("DROP TRIGGER refuse_audit ON audit_log")
        await db.execute("DROP FUNCTION refuse_audit()")
    assert error["extensions"] == {"code": "AUDIT_UNAVAILABLE"}
    assert "nothing was changed" in error["message"]
    assert await db.fetchval("SELECT count(*) FROM customers") == 0
    assert await db.fetchval("SELECT count(*) FROM audit_log") == 0


# ---- 7. the deeply nested read ----


async def test_a_deeply_nested_read_through_merges_answers(
    server: Server, db: asyncpg.Connection
) -> None:
    factory = Factory(db)
    await factory.touchpoint("web", "WEB", "WEBSITE")
    survivor = await factory.customer("Survivor", identities=[("EMAIL", "s@example.com")])
    merged = await factory.customer("Merged", identities=[("EMAIL", "m@example.com")])
    await factory.interaction(survivor, "web", at=T0 + minutes(1))
    body = await post(
        server,
        "mutation($s: ID!, $m: [ID!]!) {"
        " mergeCustomers(input: {survivorId: $s, mergedIds: $m}) { merge { id } } }",
        {"s": gid("Customer", survivor), "m": [gid("Customer", merged)]},
    )
    assert "errors" not in body, body
    nested = "merges { survivor { consents { purpose } } }"
    for _ in range(3):
        nested = f"lastInteraction {{ customer {{ {nested} }} }}"
    query = f'{{ customer(id: "{gid("Customer", survivor)}") {{ {nested} }} }}'
    body = await post(server, query)
    assert "errors" not in body, body
    level = body["data"]["customer"]
    for _ in range(3):
        level = level["lastInteraction"]["customer"]
    assert level["merges"] == [{"survivor": {"consents": []}}]
    # The 500's cause: a field failing (here a page over the limit) beside a pending
    # lastInteraction cancels it, and the loader's future it shares with `b` with it.
    customer = gid("Customer", survivor)
    query = (
        f'{{ a: customer(id: "{customer}") {{ lastInteraction {{ id }}'
        " interactions(first: 101) { totalCount } }"
        f' b: customer(id: "{customer}") {{ lastInteraction {{ customer {{ displayName }} }} }} }}'
    )
    body = await post(server, query)  # a 500 (a CancelledError) before the loaders' shields
    assert body["data"] is None  # `customer` is non-null: the error nulls the whole answer
    [error] = body["errors"]
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "maxPageSize": 100}
    assert error["path"] == ["a", "interactions"]
