"""Trusted documents (persisted operations) through a real `hub serve` over real HTTP and
websockets: registration (mutations and CLI), calls by `documentId` and by Apollo's APQ hash, the
per-key REGISTERED_ONLY rule (the production default for FRONTEND and PARTNER keys), and the
cached GET with its ETag."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from starlette.applications import Starlette

from hub.access.documents import document_id, registered_only
from hub.access.keys import Principal, Role
from hub.core.settings import Settings
from hub.db.engine import create_driver_pool
from hub.http.documents import DocumentIds
from hub.http.wire import GraphQLParams, RequestRefused
from tests.conftest import ROOT, make_key
from tests.live_server import Server, connect, free_port, start_server

CHANNELS = "query Channels { channels { code } }"
TOUCHPOINTS = (
    "query Touchpoints($first: Int!) { touchpoints(first: $first) { nodes { name } totalCount } }"
)
SET_CONSENT = (
    "mutation Consent($id: ID!) { setConsent(input: {customerId: $id, purpose: MARKETING, "
    'channel: EMAIL, status: GRANTED, source: "web"}) { status } }'
)
CUSTOMER_UPDATED = "subscription Live($id: ID!) { customerUpdated(id: $id) { customer { id } } }"
REGISTER = """mutation Register($documents: [TrustedDocumentInput!]!) {
  registerTrustedDocuments(documents: $documents) { id operations createdBy }
}"""
GET_HEADERS = {"X-Hub-Request": "1"}


@pytest.fixture(scope="module")
def server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Production: FRONTEND and PARTNER keys run only registered documents by default. A removed
    document stops at once (no cached copy is trusted: HUB_TRUSTED_DOCUMENTS_TTL_S=0)."""
    started = start_server(
        database_url,
        tmp_path_factory.mktemp("trusted"),
        dev_mode="false",
        env="production",
        trusted_documents_ttl_s=0,
        rate_limit_per_second=1_000_000,
        rate_limit_burst=1_000_000,
    )
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
async def http(server: Server, db: asyncpg.Connection) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.http_url) as client:
        yield client


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def post(http: httpx.AsyncClient, key: str, body: dict[str, Any]) -> httpx.Response:
    return await http.post("/graphql", json=body, headers=bearer(key))


async def register(http: httpx.AsyncClient, admin: str, *documents: dict[str, str]) -> Any:
    response = await post(http, admin, {"query": REGISTER, "variables": {"documents": documents}})
    assert response.status_code == 200, response.text
    return response.json()


def code_of(response: httpx.Response) -> str:
    code: str = response.json()["errors"][0]["extensions"]["code"]
    return code


async def test_registration_validates_every_document_and_stores_none_if_one_fails(
    http: httpx.AsyncClient, engine: Any, db: asyncpg.Connection
) -> None:
    admin = await make_key(engine, "ADMIN")
    bad = await register(http, admin, {"document": CHANNELS}, {"document": "{ channels { nope } }"})
    assert bad["data"] is None
    assert bad["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "nothing was registered" in bad["errors"][0]["message"]
    assert "Cannot query field 'nope'" in bad["errors"][0]["message"]
    assert await db.fetchval("SELECT count(*) FROM trusted_documents") == 0

    wrong_hash = await register(http, admin, {"id": "a" * 64, "document": CHANNELS})
    assert wrong_hash["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "SHA-256" in wrong_hash["errors"][0]["message"]

    ok = await register(
        http, admin, {"document": CHANNELS}, {"id": "touchpoints-v1", "document": TOUCHPOINTS}
    )
    assert ok["data"]["registerTrustedDocuments"] == [
        {"id": document_id(CHANNELS), "operations": ["Channels:query"], "createdBy": ok_name(ok)},
        {"id": "touchpoints-v1", "operations": ["Touchpoints:query"], "createdBy": ok_name(ok)},
    ]
    # The same again is a no-op; the same id for another text is a conflict, nothing stored.
    again = await register(http, admin, {"document": CHANNELS})
    assert again["data"]["registerTrustedDocuments"][0]["id"] == document_id(CHANNELS)
    clash = await register(http, admin, {"id": "touchpoints-v1", "document": CHANNELS})
    assert clash["errors"][0]["extensions"]["code"] == "CONFLICT"
    assert await db.fetchval("SELECT count(*) FROM trusted_documents") == 2

    listed = await post(http, admin, {"query": "{ trustedDocuments { id document } }"})
    assert listed.json()["data"]["trustedDocuments"] == [
        {"id": document_id(CHANNELS), "document": CHANNELS},
        {"id": "touchpoints-v1", "document": TOUCHPOINTS},
    ]
    audited = await db.fetch(
        "SELECT action, success FROM audit_log WHERE action LIKE '%TrustedDocuments%' ORDER BY id"
    )
    assert [(row["action"], row["success"]) for row in audited] == [
        ("registerTrustedDocuments", False),
        ("registerTrustedDocuments", False),
        ("registerTrustedDocuments", True),
        ("registerTrustedDocuments", True),
        ("registerTrustedDocuments", False),
    ]


def ok_name(body: Any) -> str:
    name: str = body["data"]["registerTrustedDocuments"][0]["createdBy"]
    assert name.startswith("test-admin-")
    return name


@pytest.mark.parametrize("role", ["FRONTEND", "ANALYST", "PARTNER"])
async def test_only_an_admin_registers_lists_and_removes(
    http: httpx.AsyncClient, engine: Any, role: str
) -> None:
    key = await make_key(engine, role, **({"channels": ["WEB"]} if role == "PARTNER" else {}))
    admin = await make_key(engine, "ADMIN")
    await register(http, admin, {"document": CHANNELS})
    for request in [
        {"query": REGISTER, "variables": {"documents": [{"document": CHANNELS}]}},
        {"query": "query Docs { trustedDocuments { id } }"},
        {"query": 'mutation Rm { removeTrustedDocument(id: "x") { id } }'},
    ]:
        # Registered-only keys may not even send these texts; the others are FORBIDDEN.
        response = await post(http, key, request)
        expected = "FORBIDDEN" if role == "ANALYST" else "PERSISTED_QUERY_REQUIRED"
        assert code_of(response) == expected, response.text


async def test_a_registered_only_key_runs_documents_by_id_and_never_text(
    http: httpx.AsyncClient, engine: Any
) -> None:
    admin = await make_key(engine, "ADMIN")
    frontend = await make_key(engine, "FRONTEND")  # production: REGISTERED_ONLY by default
    await register(http, admin, {"document": CHANNELS}, {"id": "tp", "document": TOUCHPOINTS})

    refused = await post(http, frontend, {"query": CHANNELS})
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/json"
    assert code_of(refused) == "PERSISTED_QUERY_REQUIRED"
    assert "data" not in refused.json()

    by_id = await post(http, frontend, {"documentId": document_id(CHANNELS)})
    assert by_id.status_code == 200
    assert len(by_id.json()["data"]["channels"]) == 6
    with_variables = await post(http, frontend, {"documentId": "tp", "variables": {"first": 2}})
    assert with_variables.json() == {"data": {"touchpoints": {"nodes": [], "totalCount": 0}}}

    unknown = await post(http, frontend, {"documentId": "nope"})
    assert unknown.status_code == 400
    assert code_of(unknown) == "PERSISTED_QUERY_NOT_FOUND"
    both = await post(http, frontend, {"documentId": "tp", "query": TOUCHPOINTS})
    assert both.status_code == 400 and code_of(both) == "BAD_REQUEST"

    # An ANALYST (ANY by default) sends text and ids alike.
    analyst = await make_key(engine, "ANALYST")
    text = await post(http, analyst, {"query": CHANNELS})
    assert text.json() == by_id.json()
    assert (await post(http, analyst, {"documentId": "tp", "variables": {"first": 1}})).json() == {
        "data": {"touchpoints": {"nodes": [], "totalCount": 0}}
    }


async def test_the_per_key_setting_overrides_the_role_default(
    http: httpx.AsyncClient, engine: Any
) -> None:
    admin = await make_key(engine, "ADMIN")
    frontend = await make_key(engine, "FRONTEND", documents="ANY")
    analyst = await make_key(engine, "ANALYST")
    assert (await post(http, frontend, {"query": CHANNELS})).status_code == 200
    assert (await post(http, analyst, {"query": CHANNELS})).status_code == 200

    keys = (await post(http, admin, {"query": "{ apiKeys { name role documents } }"})).json()
    by_role = {k["role"]: k for k in keys["data"]["apiKeys"] if k["role"] != "ADMIN"}
    assert by_role["FRONTEND"]["documents"] == "ANY"
    assert by_role["ANALYST"]["documents"] is None
    set_it = """mutation Set($name: String!, $documents: DocumentPolicy) {
      setApiKeyDocuments(name: $name, documents: $documents) { documents } }"""
    for role, documents in [("ANALYST", "REGISTERED_ONLY"), ("FRONTEND", None)]:
        variables = {"name": by_role[role]["name"], "documents": documents}
        changed = await post(http, admin, {"query": set_it, "variables": variables})
        assert changed.json() == {"data": {"setApiKeyDocuments": {"documents": documents}}}
    for key in (frontend, analyst):  # now both registered-only (FRONTEND by its default)
        refused = await post(http, key, {"query": CHANNELS})
        assert refused.status_code == 403 and code_of(refused) == "PERSISTED_QUERY_REQUIRED"
    invalid = await post(
        http, admin, {"query": set_it, "variables": {"name": "nobody", "documents": "ANY"}}
    )
    assert code_of(invalid) == "NOT_FOUND"


async def test_apollo_apq_miss_register_hit_for_a_key_allowed_any_document(
    http: httpx.AsyncClient, engine: Any
) -> None:
    analyst = await make_key(engine, "ANALYST")
    query = "query Codes { channels { code name } }"
    extensions = {"persistedQuery": {"version": 1, "sha256Hash": document_id(query)}}
    miss = await post(http, analyst, {"extensions": extensions})
    # What Apollo's persisted-query link looks for before it retries with the query.
    assert miss.status_code == 200
    assert miss.json() == {
        "errors": [
            {
                "message": "PersistedQueryNotFound",
                "extensions": {"code": "PERSISTED_QUERY_NOT_FOUND"},
            }
        ]
    }
    registered = await post(http, analyst, {"query": query, "extensions": extensions})
    assert registered.status_code == 200 and len(registered.json()["data"]["channels"]) == 6
    hit = await post(http, analyst, {"extensions": extensions})
    assert hit.json() == registered.json()
    # Apollo's link sends hashed queries by GET when asked to (useGETForHashedQueries).
    get = await http.get(
        "/graphql",
        params={"extensions": json.dumps(extensions)},
        headers={**bearer(analyst), **GET_HEADERS},
    )
    assert get.json() == registered.json()
    # An APQ entry is not a trusted document: no cache headers for it.
    assert "etag" not in get.headers

    mismatch = await post(http, analyst, {"query": CHANNELS, "extensions": extensions})
    assert mismatch.status_code == 400 and code_of(mismatch) == "PERSISTED_QUERY_HASH_MISMATCH"
    for bad in [{"version": 2, "sha256Hash": document_id(query)}, {"version": 1}, "x"]:
        malformed = await post(http, analyst, {"extensions": {"persistedQuery": bad}})
        assert malformed.status_code == 400 and code_of(malformed) == "PERSISTED_QUERY_INVALID"


async def test_apq_never_registers_for_a_registered_only_key(
    http: httpx.AsyncClient, engine: Any
) -> None:
    admin = await make_key(engine, "ADMIN")
    partner = await make_key(engine, "PARTNER", channels=["WEB"])  # REGISTERED_ONLY in production
    query = "query Mine { channels { code } }"
    extensions = {"persistedQuery": {"version": 1, "sha256Hash": document_id(query)}}
    assert code_of(await post(http, partner, {"extensions": extensions})) == (
        "PERSISTED_QUERY_NOT_FOUND"
    )
    refused = await post(http, partner, {"query": query, "extensions": extensions})
    assert refused.status_code == 403 and code_of(refused) == "PERSISTED_QUERY_REQUIRED"
    still = await post(http, partner, {"extensions": extensions})
    assert code_of(still) == "PERSISTED_QUERY_NOT_FOUND"
    # Once an ADMIN registered it, the hash runs it (alone, or with its text).
    await register(http, admin, {"document": query})
    for body in [{"extensions": extensions}, {"query": query, "extensions": extensions}]:
        answer = await post(http, partner, body)
        assert answer.status_code == 200 and len(answer.json()["data"]["channels"]) == 6


async def test_a_trusted_query_by_get_is_privately_cacheable_and_revalidates(
    http: httpx.AsyncClient, engine: Any
) -> None:
    admin = await make_key(engine, "ADMIN")
    frontend = await make_key(engine, "FRONTEND")
    await register(http, admin, {"id": "tp", "document": TOUCHPOINTS})
    params = {"documentId": "tp", "variables": json.dumps({"first": 3})}
    headers = {**bearer(frontend), **GET_HEADERS}
    first = await http.get("/graphql", params=params, headers=headers)
    assert first.status_code == 200
    assert first.json() == {"data": {"touchpoints": {"nodes": [], "totalCount": 0}}}
    etag = first.headers["etag"]
    assert etag == f'"{hashlib.sha256(first.content).hexdigest()[:32]}"'
    assert first.headers["cache-control"] == "private, max-age=0, must-revalidate"
    assert first.headers["vary"] == "Authorization"

    same = await http.get("/graphql", params=params, headers={**headers, "If-None-Match": etag})
    assert same.status_code == 304 and same.content == b""
    assert same.headers["etag"] == etag
    other = await http.get(
        "/graphql", params=params, headers={**headers, "If-None-Match": '"other"'}
    )
    assert other.status_code == 200 and other.headers["etag"] == etag

    # POSTs are not cached, nor is a document sent as text by GET.
    posted = await post(http, frontend, {"documentId": "tp", "variables": {"first": 3}})
    assert "etag" not in posted.headers and "cache-control" not in posted.headers
    analyst = await make_key(engine, "ANALYST")
    as_text = await http.get(
        "/graphql",
        params={"query": TOUCHPOINTS, "variables": json.dumps({"first": 3})},
        headers={**bearer(analyst), **GET_HEADERS},
    )
    assert as_text.status_code == 200 and "etag" not in as_text.headers


async def test_a_trusted_mutation_runs_by_post_only_and_is_never_cached(
    http: httpx.AsyncClient, engine: Any
) -> None:
    admin = await make_key(engine, "ADMIN")
    frontend = await make_key(engine, "FRONTEND")
    await register(http, admin, {"id": "consent", "document": SET_CONSENT})
    missing = "Q3VzdG9tZXI6MDAwMDAwMDAtMDAwMC0wMDAwLTAwMDAtMDAwMDAwMDAwMDAw"
    by_get = await http.get(
        "/graphql",
        params={"documentId": "consent", "variables": json.dumps({"id": missing})},
        headers={**bearer(frontend), **GET_HEADERS},
    )
    assert by_get.status_code == 405 and code_of(by_get) == "METHOD_NOT_ALLOWED"
    assert "etag" not in by_get.headers
    by_post = await post(http, frontend, {"documentId": "consent", "variables": {"id": missing}})
    assert by_post.status_code == 200 and code_of(by_post) == "NOT_FOUND"


async def test_a_removed_document_stops_running(http: httpx.AsyncClient, engine: Any) -> None:
    admin = await make_key(engine, "ADMIN")
    frontend = await make_key(engine, "FRONTEND")
    await register(http, admin, {"document": CHANNELS})
    ident = document_id(CHANNELS)
    assert (await post(http, frontend, {"documentId": ident})).status_code == 200
    remove = "mutation Rm($id: String!) { removeTrustedDocument(id: $id) { id } }"
    removed = await post(http, admin, {"query": remove, "variables": {"id": ident}})
    assert removed.json() == {"data": {"removeTrustedDocument": {"id": ident}}}
    gone = await post(http, frontend, {"documentId": ident})
    assert gone.status_code == 400 and code_of(gone) == "PERSISTED_QUERY_NOT_FOUND"
    again = await post(http, admin, {"query": remove, "variables": {"id": ident}})
    assert code_of(again) == "NOT_FOUND"


async def test_websocket_subscribe_follows_the_same_rule(
    server: Server, http: httpx.AsyncClient, engine: Any
) -> None:
    admin = await make_key(engine, "ADMIN")
    frontend = await make_key(engine, "FRONTEND")
    await register(http, admin, {"id": "live", "document": CUSTOMER_UPDATED})
    async with connect(server, init=False) as client:
        await client.init({"Authorization": f"Bearer {frontend}"})
        await client.send(
            {
                "id": "text",
                "type": "subscribe",
                "payload": {"query": CUSTOMER_UPDATED, "variables": {"id": "x"}},
            }
        )
        refused = await client.receive()
        assert refused["id"] == "text" and refused["type"] == "error"
        assert refused["payload"][0]["extensions"]["code"] == "PERSISTED_QUERY_REQUIRED"
        await client.send({"id": "unknown", "type": "subscribe", "payload": {"documentId": "nope"}})
        unknown = await client.receive()
        assert unknown["payload"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
        # By id it runs: its own (execution) error for a malformed customer id proves it.
        await client.send(
            {
                "id": "by-id",
                "type": "subscribe",
                "payload": {"documentId": "live", "variables": {"id": "x"}},
            }
        )
        errors = await client.errors("by-id")
        assert errors[0]["extensions"]["code"] == "BAD_USER_INPUT"
        # And by APQ hash (a trusted document's own SHA-256 works as its id too).
        await register(http, admin, {"document": CUSTOMER_UPDATED})
        persisted = {"version": 1, "sha256Hash": document_id(CUSTOMER_UPDATED)}
        await client.send(
            {
                "id": "by-hash",
                "type": "subscribe",
                "payload": {"extensions": {"persistedQuery": persisted}, "variables": {"id": "x"}},
            }
        )
        errors = await client.errors("by-hash")
        assert errors[0]["extensions"]["code"] == "BAD_USER_INPUT"


def hub_cli(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HUB_DATABASE_URL": database_url}
    return subprocess.run(
        [sys.executable, "-m", "hub", "documents", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


async def test_the_cli_adds_manifests_and_files_lists_and_removes(
    database_url: str, db: asyncpg.Connection, tmp_path: Path
) -> None:
    query_file = tmp_path / "channels.graphql"
    query_file.write_text(CHANNELS)
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"tp-v1": TOUCHPOINTS, "bad": "{ nope }"}))
    failed = hub_cli(database_url, "add", str(query_file), "--manifest", str(manifest))
    assert failed.returncode == 1
    assert "nothing was registered" in failed.stderr and "'nope'" in failed.stderr
    assert await db.fetchval("SELECT count(*) FROM trusted_documents") == 0

    manifest.write_text(json.dumps({"tp-v1": TOUCHPOINTS}))
    added = hub_cli(database_url, "add", str(query_file), "--manifest", str(manifest))
    assert added.returncode == 0, added.stderr
    assert added.stdout.splitlines() == [
        f"{document_id(CHANNELS)}\tChannels:query",
        "tp-v1\tTouchpoints:query",
    ]
    listed = hub_cli(database_url, "list").stdout.splitlines()
    assert [line.split("\t")[:3] for line in listed] == [
        ["id", "operations", "created_by"],
        [document_id(CHANNELS), "Channels:query", "cli"],
        ["tp-v1", "Touchpoints:query", "cli"],
    ]
    removed = hub_cli(database_url, "remove", "tp-v1")
    assert removed.returncode == 0, removed.stderr
    assert hub_cli(database_url, "remove", "tp-v1").returncode == 1
    assert await db.fetchval("SELECT array_agg(id) FROM trusted_documents") == [
        document_id(CHANNELS)
    ]
    audited = await db.fetch("SELECT action, target_ids FROM audit_log ORDER BY id")
    assert [(row["action"], row["target_ids"]) for row in audited] == [
        ("documents add", [document_id(CHANNELS)]),
        ("documents add", ["tp-v1"]),
        ("documents remove", ["tp-v1"]),
    ]


async def test_a_trusted_document_is_looked_up_once_per_process(
    app: Starlette, db: asyncpg.Connection
) -> None:
    """The process keeps registered documents it found (for HUB_TRUSTED_DOCUMENTS_TTL_S) and
    hands out the same text and parsed document, so the caches keyed by them (the operation
    check, the compiled plans, Strawberry's validation) hit: parsed and planned once."""
    await db.execute(
        "INSERT INTO trusted_documents (id, document, created_by) VALUES ($1, $2, 'test')",
        "one",
        CHANNELS,
    )
    state = app.state.hub
    ids = DocumentIds(state.settings, lambda: state.running.key_pool)
    analyst = Principal(role=Role.ANALYST, name="a")
    params = GraphQLParams("", None, None, None, "one")
    first = await ids.resolve(params, analyst)
    second = await ids.resolve(params, analyst)
    assert first.query == CHANNELS and first.trusted
    assert second.query is first.query
    # Parsed once: Strawberry gets this node (hub.schema.extensions.TrustedDocumentParse).
    assert first.parsed is not None and second.parsed is first.parsed
    assert ids.lookups == 1
    with pytest.raises(RequestRefused) as refused:
        await ids.resolve(GraphQLParams("", None, None, None, "two"), analyst)
    assert refused.value.code == "PERSISTED_QUERY_NOT_FOUND"
    assert ids.lookups == 2


def compiled_answers(server: Server) -> float:
    """The server's count of operations the compiled path answered (from /metrics)."""
    sample = 'hub_graphql_execution_path_total{path="compiled"}'
    for line in httpx.get(f"{server.http_url}/metrics", timeout=5).text.splitlines():
        if line.startswith(sample + " "):
            return float(line.split()[1])
    return 0.0


async def test_a_trusted_query_by_get_takes_the_compiled_path(
    server: Server, http: httpx.AsyncClient, engine: Any
) -> None:
    admin = await make_key(engine, "ADMIN")  # unmasked, unscoped: the compiled path serves it
    customers = "query Customers($first: Int!) { customers(first: $first) { totalCount } }"
    await register(http, admin, {"id": "customers", "document": customers})
    before = compiled_answers(server)
    answer = await http.get(
        "/graphql",
        params={"documentId": "customers", "variables": json.dumps({"first": 1})},
        headers={**bearer(admin), **GET_HEADERS},
    )
    assert answer.json() == {"data": {"customers": {"totalCount": 0}}}
    assert "etag" in answer.headers
    assert compiled_answers(server) == before + 1


@pytest.mark.parametrize(
    ("role", "env", "own", "expected"),
    [
        (Role.FRONTEND, "production", None, True),
        (Role.PARTNER, "production", None, True),
        (Role.ANALYST, "production", None, False),
        (Role.ADMIN, "production", None, False),
        (Role.FRONTEND, "staging", None, False),
        (Role.FRONTEND, "development", None, False),
        (Role.FRONTEND, "production", "ANY", False),
        (Role.ADMIN, "development", "REGISTERED_ONLY", True),
    ],
)
def test_who_must_send_ids(role: Role, env: str, own: str | None, expected: bool) -> None:
    principal = Principal(role=role, name="k", key_id=1, documents=own)
    assert registered_only(principal, env) is expected
    # Development mode's principal never is (it has no key to set).
    assert registered_only(replace(principal, dev=True), env) is False


async def test_a_lookup_while_the_database_is_unreachable_is_a_retryable_503(
    settings: Settings,
) -> None:
    """Nothing listens on the port: the lookup fails as in an outage (no mock), and the request
    is refused with a coded, retryable 503, never a 500."""
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/nothing"
    pool = await create_driver_pool(url, settings, "hub-test-unreachable", 1)
    try:
        ids = DocumentIds(settings, lambda: pool)
        with pytest.raises(RequestRefused) as refused:
            await ids.resolve(
                GraphQLParams("", None, None, None, "any-id"),
                Principal(role=Role.FRONTEND, name="f"),
            )
    finally:
        await pool.close()
    assert refused.value.status == 503
    assert refused.value.code == "SERVICE_UNAVAILABLE"
    assert refused.value.extensions == {"retryable": True}
    assert refused.value.headers == {"Retry-After": "1"}
