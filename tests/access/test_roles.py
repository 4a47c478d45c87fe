"""Keys and roles: who may do what, key management, audit log, development mode."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import httpx
import pytest

from tests.access_world import World, build_world, share_with_partners
from tests.conftest import ROOT, GraphQLClient, make_key
from tests.factories import Factory

GqlAs = Callable[..., Awaitable[GraphQLClient]]
SET_CONSENT = """mutation($id: ID!) { setConsent(input: {customerId: $id, purpose: MARKETING,
    channel: EMAIL, status: GRANTED, source: "web form"}) { status } }"""


@pytest.fixture
async def world(db: asyncpg.Connection) -> World:
    world = await build_world(db)
    await share_with_partners(db, world.ana, world.bob)
    return world


async def test_no_key_or_a_wrong_key_is_401(client: httpx.AsyncClient, db: object) -> None:
    for headers in [{"Authorization": ""}, {"Authorization": "Bearer hub_nope_" + "x" * 40}]:
        response = await client.post(
            "/graphql", json={"query": "{ channels { code } }"}, headers=headers
        )
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_a_revoked_key_is_401_at_once(gql: GraphQLClient, engine: Any) -> None:
    key = await make_key(engine, "ANALYST")
    headers = {"Authorization": f"Bearer {key}"}
    ok = await gql.http.post("/graphql", json={"query": "{ channels { code } }"}, headers=headers)
    assert ok.status_code == 200
    keys = await gql.data("{ apiKeys { name role } }")
    name = next(k["name"] for k in keys["apiKeys"] if k["role"] == "ANALYST")
    await gql.data("mutation($n: String!) { revokeApiKey(name: $n) { revokedAt } }", {"n": name})
    refused = await gql.http.post(
        "/graphql", json={"query": "{ channels { code } }"}, headers=headers
    )
    assert refused.status_code == 401


@pytest.mark.parametrize("role", ["ANALYST", "PARTNER"])
async def test_read_only_roles_cannot_mutate(gql_as: GqlAs, world: World, role: str) -> None:
    scopes = {"channels": ["WEB"]} if role == "PARTNER" else {}
    client = await gql_as(role, **scopes)
    error = await client.error(SET_CONSENT, {"id": world.id("Customer", world.ana)})
    assert error["extensions"]["code"] == "FORBIDDEN"


async def test_frontend_writes_customer_data(gql_as: GqlAs, world: World) -> None:
    frontend = await gql_as("FRONTEND")
    data = await frontend.data(SET_CONSENT, {"id": world.id("Customer", world.ana)})
    assert data["setConsent"]["status"] == "GRANTED"


@pytest.mark.parametrize("role", ["FRONTEND", "ANALYST", "PARTNER"])
async def test_only_admin_manages_keys_and_reads_audit(
    gql_as: GqlAs, world: World, role: str
) -> None:
    client = await gql_as(role, **({"channels": ["WEB"]} if role == "PARTNER" else {}))
    for query in [
        "{ apiKeys { name } }",
        "{ auditLog { action } }",
        'mutation { createApiKey(input: {name: "x", role: ADMIN}) { key } }',
        'mutation { revokeApiKey(name: "x") { name } }',
        f'{{ exportCustomer(id: "{world.id("Customer", world.ana)}") }}',
        f'mutation {{ eraseCustomer(id: "{world.id("Customer", world.ana)}") {{ customerId }} }}',
    ]:
        error = await client.error(query)
        assert error["extensions"]["code"] == "FORBIDDEN", (role, query)


async def test_admin_creates_a_scoped_partner_key_that_works(
    gql: GraphQLClient, world: World
) -> None:
    created = await gql.data(
        """mutation { createApiKey(input: {name: "acme", role: PARTNER, channels: [WEB]}) {
            key apiKey { name role pii channels } } }"""
    )
    assert created["createApiKey"]["apiKey"] == {
        "name": "acme",
        "role": "PARTNER",
        "pii": False,
        "channels": ["WEB"],
    }
    key = created["createApiKey"]["key"]
    response = await gql.http.post(
        "/graphql",
        json={"query": "{ interactions { totalCount } }"},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert response.json()["data"]["interactions"]["totalCount"] == 1
    listed = await gql.data("{ apiKeys { name } }")
    assert "acme" in [k["name"] for k in listed["apiKeys"]]
    assert key not in str(listed)


async def test_invalid_key_scopes_are_refused(gql: GraphQLClient) -> None:
    for mutation in [
        'mutation { createApiKey(input: {name: "p", role: PARTNER}) { key } }',
        'mutation { createApiKey(input: {name: "p", role: PARTNER, channels: [WEB], pii: true})'
        " { key } }",
        'mutation { createApiKey(input: {name: "a", role: ANALYST, channels: [WEB]}) { key } }',
        'mutation { createApiKey(input: {name: "t", role: PARTNER, touchpointIds:'
        ' ["00000000-0000-0000-0000-000000000001"]}) { key } }',
    ]:
        error = await gql.error(mutation)
        assert error["extensions"]["code"] == "BAD_USER_INPUT", mutation
    await gql.data('mutation { createApiKey(input: {name: "twice", role: ANALYST}) { key } }')
    error = await gql.error(
        'mutation { createApiKey(input: {name: "twice", role: ANALYST}) { key } }'
    )
    assert error["extensions"]["code"] == "CONFLICT"


async def test_every_mutation_is_audited(gql: GraphQLClient, gql_as: GqlAs, world: World) -> None:
    customer = world.id("Customer", world.ana)
    frontend = await gql_as("FRONTEND")
    await frontend.data(SET_CONSENT, {"id": customer})
    analyst = await gql_as("ANALYST")
    await analyst.error(SET_CONSENT, {"id": customer})
    log = await gql.data(
        """query($t: String!) { auditLog(targetId: $t) {
            actor role action targetIds success details } }""",
        {"t": customer},
    )
    entries = log["auditLog"]
    assert [(e["role"], e["action"], e["success"]) for e in entries] == [
        ("ANALYST", "setConsent", False),
        ("FRONTEND", "setConsent", True),
    ]
    assert entries[0]["details"]["errors"] == ["FORBIDDEN"]
    assert entries[1]["actor"].startswith("test-frontend-")
    await gql.data('mutation { createApiKey(input: {name: "audited", role: ANALYST}) { key } }')
    await gql.data('mutation { revokeApiKey(name: "audited") { name } }')
    keys = await gql.data('{ auditLog(targetId: "audited") { action success } }')
    assert keys["auditLog"] == [
        {"action": "revokeApiKey", "success": True},
        {"action": "createApiKey", "success": True},
    ]


async def test_introspection_only_for_admin_and_analyst(gql: GraphQLClient, gql_as: GqlAs) -> None:
    query = "{ __schema { queryType { name } } }"
    for role, scopes in [("FRONTEND", {}), ("PARTNER", {"channels": ["WEB"]})]:
        client = await gql_as(role, **scopes)
        error = await client.error(query)
        assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
        assert "introspection" in error["message"]
        sdl = await client.error("{ _service { sdl } }")
        assert "introspection" in sdl["message"]
        typo = await client.error("{ customerz { totalCount } }")
        assert "Did you mean" not in typo["message"]
        assert (await client.data("{ __typename }"))["__typename"] == "Query"
    analyst = await gql_as("ANALYST")
    assert (await analyst.data(query))["__schema"]["queryType"]["name"] == "Query"
    assert (await gql.data(query))["__schema"]["queryType"]["name"] == "Query"
    assert "type Query" in (await analyst.data("{ _service { sdl } }"))["_service"]["sdl"]
    typo = await analyst.error("{ customerz { totalCount } }")
    assert "Did you mean" in typo["message"]


async def test_development_mode_needs_no_key_and_says_so(
    app_with: Any, db: object, caplog: pytest.LogCaptureFixture
) -> None:
    async with app_with(dev_mode=True) as (http, _):
        assert "HUB_DEV_MODE IS ON" in caplog.text
        response = await http.post("/graphql", json={"query": "{ apiKeys { name } }"})
        assert response.status_code == 200
        assert response.json()["data"] == {"apiKeys": []}
    async with app_with(dev_mode=False) as (http, _):
        response = await http.post("/graphql", json={"query": "{ apiKeys { name } }"})
        assert response.status_code == 401


def test_cli_creates_lists_and_revokes_keys(database_url: str) -> None:
    env = {**os.environ, "HUB_DATABASE_URL": database_url}

    def hub(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "hub", "keys", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )

    created = hub(
        "create",
        "--role",
        "PARTNER",
        "--name",
        "cli-partner",
        "--channels",
        "WEB,MOBILE",
        "--registered-only",
    )
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("hub_")
    listed = hub("list")
    assert "cli-partner" in listed.stdout and "channel:MOBILE" in listed.stdout
    assert key not in listed.stdout
    assert hub("revoke", "cli-partner").returncode == 0
    [line] = [line for line in hub("list").stdout.splitlines() if line.startswith("cli-partner")]
    assert line.split("\t")[-1] != "-"  # the revocation time
    assert line.split("\t")[3] == "REGISTERED_ONLY"  # documents (docs/trusted-documents.md)
    wrong = hub("create", "--role", "PARTNER", "--name", "no-scope")
    assert wrong.returncode == 1 and "at least one channel" in wrong.stderr


async def test_cli_creates_a_source_key_for_one_touchpoint(
    database_url: str, db: asyncpg.Connection
) -> None:
    touchpoint = await Factory(db).touchpoint("shop", "WEB", "WEBSITE")
    env = {**os.environ, "HUB_DATABASE_URL": database_url}

    def hub(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "hub", "keys", "create", "--role", "SOURCE", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )

    created = hub("--name", "web-source", "--touchpoints", str(touchpoint))
    assert created.returncode == 0, created.stderr
    assert created.stdout.strip().startswith("hub_")
    assert "Segment SDK's write key" in created.stderr
    row = await db.fetchrow("SELECT role, scopes FROM api_keys WHERE name = 'web-source'")
    assert (row["role"], row["scopes"]) == ("SOURCE", [f"touchpoint:{touchpoint}"])
    for wrong in (
        ["--name", "s2"],
        ["--name", "s3", "--touchpoints", f"{touchpoint},{uuid.uuid4()}"],
        ["--name", "s4", "--touchpoints", str(touchpoint), "--channels", "WEB"],
        ["--name", "s5", "--touchpoints", str(touchpoint), "--pii"],
    ):
        refused = hub(*wrong)
        assert refused.returncode == 1 and "exactly one touchpoint" in refused.stderr, wrong


async def test_admin_creates_a_source_key_with_the_mutation(
    gql: GraphQLClient, world: World
) -> None:
    site = world.id("Touchpoint", world.site)
    created = await gql.data(
        """mutation($tp: ID!) { createApiKey(input: {name: "web", role: SOURCE,
            touchpointIds: [$tp]}) { key apiKey { role pii channels touchpointIds } } }""",
        {"tp": site},
    )
    assert created["createApiKey"]["apiKey"] == {
        "role": "SOURCE",
        "pii": False,
        "channels": [],
        "touchpointIds": [site],
    }
    error = await gql.error('mutation { createApiKey(input: {name: "w", role: SOURCE}) { key } }')
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    # Its key reads nothing: refused before any resolver.
    response = await gql.http.post(
        "/graphql",
        json={"query": "{ channels { code } }"},
        headers={"Authorization": f"Bearer {created['createApiKey']['key']}"},
    )
    assert response.status_code == 403
    assert response.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_key_checks_do_not_count_as_data_statements(
    gql: GraphQLClient, count_statements: Any
) -> None:
    await gql.data("{ channels { code } }")
    assert count_statements.count == 1, count_statements.report()
