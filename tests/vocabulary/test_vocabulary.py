"""The vocabulary kept as data (hub.vocabulary, docs/sources.md#vocabulary): interaction types and
identity kinds defined at run time, checked on ingest, masked on both read paths."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from starlette.applications import Starlette

from hub.access.masking import personal_keys
from hub.app import create_app
from hub.core.enums import IdentityKind, InteractionType, TouchpointKind
from hub.core.settings import Settings
from hub.vocabulary.registry import latest
from tests.compiled.test_roles_differential import compiled_answers
from tests.conftest import GraphQLClient, make_key
from tests.factories import Factory
from tests.ingest_support import RECORD, RECORD_MANY, interaction, touchpoints
from tests.live_server import Server, start_server
from tests.waiting import until

DEFINE_TYPE = """
mutation($input: DefineInteractionTypeInput!) {
  defineInteractionType(input: $input) {
    code name description attributesSchema personalAttributes stage builtIn
  }
}
"""
DEFINE_KIND = """
mutation($input: DefineIdentityKindInput!) {
  defineIdentityKind(input: $input) { code name normaliser builtIn }
}
"""
TYPES = "{ interactionTypes { code builtIn stage personalAttributes } }"


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8].upper()}"


async def define_type(gql: GraphQLClient, code: str, **fields: Any) -> dict[str, Any]:
    definition = {"code": code, "name": code.title(), "description": f"{code} for a test."}
    data = await gql.data(DEFINE_TYPE, {"input": {**definition, **fields}})
    result: dict[str, Any] = data["defineInteractionType"]
    return result


# ---- two processes --------------------------------------------------------------------------


@pytest.fixture
def two_servers(database_url: str, tmp_path: Path) -> Iterator[tuple[Server, Server]]:
    first = start_server(database_url, tmp_path)
    try:
        second = start_server(database_url, tmp_path)
        try:
            yield first, second
        finally:
            second.stop()
    finally:
        first.stop()


async def _post(http: httpx.AsyncClient, query: str, variables: dict[str, Any]) -> Any:
    response = await http.post("/graphql", json={"query": query, "variables": variables})
    assert response.status_code == 200, response.text
    return response.json()


async def test_a_type_defined_in_one_process_is_recorded_by_another_at_once(
    db: asyncpg.Connection, two_servers: tuple[Server, Server]
) -> None:
    a, b = two_servers
    tp = await touchpoints(db)
    code = unique("LOAN_APPLICATION")
    item = interaction(tp["web"], ("EMAIL", "ana@example.com"), type=code, idempotencyKey="l-1")
    async with (
        httpx.AsyncClient(base_url=a.http_url, timeout=30) as on_a,
        httpx.AsyncClient(base_url=b.http_url, timeout=30) as on_b,
    ):
        # Process B has read the vocabulary (a recording) and does not know the code yet.
        warm = interaction(tp["web"], ("EMAIL", "ana@example.com"), type="PAGE_VIEW")
        assert "errors" not in await _post(on_b, RECORD, {"input": warm})
        refused = await _post(on_b, RECORD, {"input": item})
        assert refused["errors"][0]["extensions"]["code"] == "UNKNOWN_CODE"

        defined = await _post(
            on_a,
            DEFINE_TYPE,
            {
                "input": {
                    "code": code,
                    "name": "Loan application",
                    "description": "A customer applied for a loan.",
                    "stage": "PURCHASE",
                }
            },
        )
        assert defined["data"]["defineInteractionType"]["stage"] == "PURCHASE"

        # At once in B: no restart, no wait.
        stored = await _post(on_b, RECORD, {"input": item})
        assert "errors" not in stored, stored
        result = stored["data"]["recordInteraction"]
        assert (result["interaction"]["type"], result["customer"]["currentStage"]) == (
            code,
            {"code": "PURCHASE"},
        )
        listed = (await _post(on_b, TYPES, {}))["data"]["interactionTypes"]
        mine = [t for t in listed if t["code"] == code]
        assert mine == [
            {"code": code, "builtIn": False, "stage": "PURCHASE", "personalAttributes": []}
        ]
    assert await db.fetchval("SELECT count(*) FROM interactions WHERE type = $1", code) == 1


# ---- one process ----------------------------------------------------------------------------


async def test_the_seeded_vocabulary_is_the_former_enums(gql: GraphQLClient) -> None:
    types = (await gql.data(TYPES))["interactionTypes"]
    assert sorted(t["code"] for t in types) == sorted(t.value for t in InteractionType)
    assert all(t["builtIn"] for t in types)
    kinds = (await gql.data("{ identityKinds { code normaliser } }"))["identityKinds"]
    assert {k["code"]: k["normaliser"] for k in kinds} == {
        **{k.value: "TRIMMED" for k in IdentityKind},
        "EMAIL": "EMAIL",
        "PHONE": "PHONE",
        "SOCIAL_HANDLE": "SOCIAL_HANDLE",
    }


async def test_schema_violations_are_rejected_per_item_and_the_rest_is_stored(
    gql: GraphQLClient, db: asyncpg.Connection
) -> None:
    tp = await touchpoints(db)
    code = unique("SIM_SWAP")
    schema = {
        "type": "object",
        "required": ["msisdn"],
        "properties": {
            "msisdn": {"type": "string"},
            "items": {"type": "array", "items": {"properties": {"sku": {"type": "string"}}}},
        },
    }
    await define_type(gql, code, attributesSchema=schema)
    good = {"msisdn": "x-1", "items": [{"sku": "a"}]}
    inputs = [
        interaction(tp["web"], ("EMAIL", f"u{n}@example.com"), type=code, attributes=attributes)
        for n, attributes in enumerate(
            [good, {"msisdn": 7}, good, {"msisdn": "x", "items": [{"sku": "a"}, {"sku": 2}]}, {}]
        )
    ]
    result = (await gql.data(RECORD_MANY, {"inputs": inputs}))["recordInteractions"]
    assert [s["index"] for s in result["stored"]] == [0, 2]
    assert [(r["index"], r["code"]) for r in result["rejected"]] == [
        (1, "INVALID_ATTRIBUTES"),
        (3, "INVALID_ATTRIBUTES"),
        (4, "INVALID_ATTRIBUTES"),
    ]
    messages = [r["message"] for r in result["rejected"]]
    assert messages[0].startswith(f"`attributes.msisdn` breaks the schema of {code}: 7 is not")
    assert messages[1].startswith(f"`attributes.items[1].sku` breaks the schema of {code}")
    assert messages[2].startswith(f"`attributes` breaks the schema of {code}: 'msisdn' is")
    assert await db.fetchval("SELECT count(*) FROM interactions WHERE type = $1", code) == 2

    # One call: the error carries the path; nothing is stored.
    single = await gql.error(RECORD, {"input": inputs[1]})
    assert single["extensions"] == {
        "code": "INVALID_ATTRIBUTES",
        "attributePath": "attributes.msisdn",
        "interactionType": code,
    }
    assert await db.fetchval("SELECT count(*) FROM interactions WHERE type = $1", code) == 2


async def test_an_invalid_schema_or_code_is_refused_at_definition(gql: GraphQLClient) -> None:
    bad_schema = await gql.error(
        DEFINE_TYPE,
        {
            "input": {
                "code": "X_Y",
                "name": "x",
                "description": "x",
                "attributesSchema": {"type": 5},
            }
        },
    )
    assert bad_schema["extensions"]["code"] == "BAD_USER_INPUT"
    assert "not a valid JSON Schema" in bad_schema["message"]
    bad_code = await gql.error(
        DEFINE_TYPE, {"input": {"code": "loan-app", "name": "x", "description": "x"}}
    )
    assert bad_code["extensions"]["code"] == "BAD_USER_INPUT"
    types = (await gql.data(TYPES))["interactionTypes"]
    assert [t for t in types if t["code"] in ("X_Y", "loan-app")] == []


async def test_defining_is_for_admin_keys_only(gql_as: Any) -> None:
    analyst = await gql_as("ANALYST")
    refused = await analyst.error(
        DEFINE_TYPE, {"input": {"code": "NOT_MINE", "name": "x", "description": "x"}}
    )
    assert refused["extensions"]["code"] == "FORBIDDEN"
    types = (await analyst.data(TYPES))["interactionTypes"]
    assert [t for t in types if t["code"] == "NOT_MINE"] == []


async def test_an_unknown_code_is_a_clear_error_alone(
    gql: GraphQLClient, db: asyncpg.Connection
) -> None:
    tp = await touchpoints(db)
    unknown = interaction(tp["web"], ("EMAIL", "ana@example.com"), type="NO_SUCH_TYPE")
    error = await gql.error(RECORD, {"input": unknown})
    assert error["extensions"] == {
        "code": "UNKNOWN_CODE",
        "vocabulary": "interactionType",
        "value": "NO_SUCH_TYPE",
    }
    assert "'NO_SUCH_TYPE' is not a registered interaction type" in error["message"]
    bad_kind = interaction(tp["web"], ("MEMBER_NO", "1"), type="PAGE_VIEW")
    good = interaction(tp["web"], ("EMAIL", "bob@example.com"))
    batch = (await gql.data(RECORD_MANY, {"inputs": [unknown, good, bad_kind]}))[
        "recordInteractions"
    ]
    assert [s["index"] for s in batch["stored"]] == [1]
    assert [(r["index"], r["code"]) for r in batch["rejected"]] == [
        (0, "UNKNOWN_CODE"),
        (2, "UNKNOWN_CODE"),
    ]
    assert "'MEMBER_NO' is not a registered identity kind" in batch["rejected"][1]["message"]
    # Not a code at all: refused by the scalar, before anything runs.
    malformed = await gql.error(RECORD, {"input": {**good, "type": "page view"}})
    assert malformed["extensions"]["code"] == "BAD_USER_INPUT"
    assert await db.fetchval("SELECT count(*) FROM interactions") == 1


async def test_documents_written_for_the_enums_keep_working(
    gql: GraphQLClient, db: asyncpg.Connection
) -> None:
    tp = await touchpoints(db)
    literal = f"""
    mutation {{
      recordInteraction(input: {{
        identities: [
          {{kind: EMAIL, value: "ana@example.com"}}, {{kind: "PHONE", value: "+44 20 7946 0958"}}
        ]
        touchpointId: "{tp["web"]}", type: PRODUCT_VIEW, direction: INBOUND
      }}) {{ interaction {{ type }} customer {{ identities {{ kind }} }} }}
    }}
    """
    data = (await gql.data(literal))["recordInteraction"]
    assert data["interaction"] == {"type": "PRODUCT_VIEW"}
    assert sorted(i["kind"] for i in data["customer"]["identities"]) == ["EMAIL", "PHONE"]
    typed = """
    query($t: InteractionType!, $k: IdentityKind!) {
      stageRules { interactionType }
      customerByIdentity(kind: $k, value: "ana@example.com") {
        interactions(first: 5, filter: {types: [$t, PAGE_VIEW]}) { nodes { type } }
      }
    }
    """
    found = await gql.data(typed, {"t": "PRODUCT_VIEW", "k": "EMAIL"})
    assert found["customerByIdentity"]["interactions"]["nodes"] == [{"type": "PRODUCT_VIEW"}]
    introspected = await gql.data(
        '{ a: __type(name: "InteractionType") { kind } b: __type(name: "IdentityKind") { kind } }'
    )
    assert introspected == {"a": {"kind": "SCALAR"}, "b": {"kind": "SCALAR"}}


async def test_a_custom_identity_kind_is_normalised_and_resolves_identities(
    gql: GraphQLClient, db: asyncpg.Connection
) -> None:
    tp = await touchpoints(db)
    kind = unique("MEMBER_NO")
    defined = await gql.data(
        DEFINE_KIND,
        {
            "input": {
                "code": kind,
                "name": "Member",
                "description": "Club",
                "normaliser": "LOWER_CASE",
            }
        },
    )
    assert defined["defineIdentityKind"] == {
        "code": kind,
        "name": "Member",
        "normaliser": "LOWER_CASE",
        "builtIn": False,
    }
    first = (await gql.data(RECORD, {"input": interaction(tp["web"], (kind, "  AB-12 "))}))[
        "recordInteraction"
    ]
    second = (
        await gql.data(
            RECORD,
            {"input": interaction(tp["app"], (kind, "ab-12"), ("EMAIL", "ana@example.com"))},
        )
    )["recordInteraction"]
    assert second["created"] is False
    assert second["customer"]["id"] == first["customer"]["id"]
    assert sorted((i["kind"], i["value"]) for i in second["customer"]["identities"]) == sorted(
        [(kind, "ab-12"), ("EMAIL", "ana@example.com")]
    )
    looked_up = await gql.data(
        'query($k: IdentityKind!) { customerByIdentity(kind: $k, value: " AB-12") { id } }',
        {"k": kind},
    )
    assert looked_up["customerByIdentity"] == {"id": first["customer"]["id"]}
    assert await db.fetchval("SELECT count(*) FROM customers") == 1
    assert await db.fetchval("SELECT value FROM identities WHERE kind = $1", kind) == "ab-12"
    # Negative control: a kind that is only trimmed keeps the two spellings apart.
    trimmed = unique("BADGE_NO")
    await gql.data(
        DEFINE_KIND,
        {"input": {"code": trimmed, "name": "B", "description": "B", "normaliser": "TRIMMED"}},
    )
    for value in ("  AB-12 ", "ab-12"):
        await gql.data(RECORD, {"input": interaction(tp["web"], (trimmed, value))})
    assert await db.fetchval("SELECT count(*) FROM customers") == 3
    assert sorted(await db.fetch("SELECT value FROM identities WHERE kind = $1", trimmed)) == [
        ("AB-12",),
        ("ab-12",),
    ]
    # The normaliser is fixed once values are stored.
    changed = await gql.error(
        DEFINE_KIND,
        {"input": {"code": kind, "name": "Member", "description": "Club", "normaliser": "AS_IS"}},
    )
    assert changed["extensions"]["code"] == "CONFLICT"


# ---- personal attributes on both read paths -------------------------------------------------

READ = """
query($id: ID!) {
  customer(id: $id) { interactions(first: 5) { edges { node { type attributes } } } }
}
"""


async def _read(app: Starlette, key: str, customer_id: str) -> Any:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://hub.test",
        headers={"Authorization": f"Bearer {key}"},
    ) as http:
        response = await http.post(
            "/graphql", json={"query": READ, "variables": {"id": customer_id}}
        )
    body = response.json()
    assert "errors" not in body, body
    return [e["node"] for e in body["data"]["customer"]["interactions"]["edges"]]


async def test_personal_attributes_are_masked_per_role_on_both_read_paths(
    gql: GraphQLClient, db: asyncpg.Connection, app: Starlette, engine: Any, settings: Settings
) -> None:
    tp = await touchpoints(db)
    code = unique("LOAN_APPLICATION")
    personal = unique("applicantIncome").lower()
    await define_type(gql, code, personalAttributes=[personal])
    attributes = {personal: 52000, "product": "mortgage"}
    recorded = (
        await gql.data(
            RECORD,
            {
                "input": interaction(
                    tp["web"], ("EMAIL", "ana@example.com"), type=code, attributes=attributes
                )
            },
        )
    )["recordInteraction"]
    customer = recorded["customer"]["id"]
    masked = [{"type": code, "attributes": {personal: "•••", "product": "mortgage"}}]
    plain = [{"type": code, "attributes": attributes}]
    keys = {
        "ANALYST": await make_key(engine, "ANALYST"),
        "FRONTEND": await make_key(engine, "FRONTEND"),
        "FRONTEND_PII": await make_key(engine, "FRONTEND", pii=True),
        "ADMIN": await make_key(engine, "ADMIN"),
    }
    expected = {"ANALYST": masked, "FRONTEND": masked, "FRONTEND_PII": plain, "ADMIN": plain}
    # The compiled read path (the session app), counted so a fallback cannot pass for it.
    before = compiled_answers(app)
    for role, key in keys.items():
        assert await _read(app, key, customer) == expected[role], role
    assert compiled_answers(app) == before + len(keys)
    # The resolver path: an app with compiled reads off.
    resolvers = create_app(settings.model_copy(update={"compiled_reads": False}))
    async with resolvers.router.lifespan_context(resolvers):
        for role, key in keys.items():
            assert await _read(resolvers, key, customer) == expected[role], role
        assert compiled_answers(resolvers) == 0


@pytest.mark.parametrize(
    "role, scopes",
    [("PARTNER", {"channels": ["WEB"]}), ("FRONTEND", {}), ("ANALYST", {})],
)
async def test_every_reading_role_reads_the_vocabulary(
    gql_as: Any, role: str, scopes: dict[str, Any]
) -> None:
    reader = await gql_as(role, **scopes)
    data = await reader.data("{ interactionTypes { code } identityKinds { code } }")
    assert sorted(t["code"] for t in data["interactionTypes"]) == sorted(
        t.value for t in InteractionType
    )
    assert sorted(k["code"] for k in data["identityKinds"]) == sorted(k.value for k in IdentityKind)


# ---- touchpoint kinds and consent purposes --------------------------------------------------

SET_CONSENT = """
mutation($id: ID!, $p: ConsentPurpose!) {
  setConsent(input: {customerId: $id, purpose: $p, channel: EMAIL, status: GRANTED}) {
    purpose active
  }
}
"""


async def test_a_custom_consent_purpose_is_settable_and_filters_customers(
    gql: GraphQLClient, db: asyncpg.Connection
) -> None:
    tp = await touchpoints(db)
    recorded = (await gql.data(RECORD, {"input": interaction(tp["web"], ("EMAIL", "a@x.io"))}))[
        "recordInteraction"
    ]
    customer = recorded["customer"]["id"]
    purpose = unique("PROFILING")
    unknown = await gql.error(SET_CONSENT, {"id": customer, "p": purpose})
    assert unknown["extensions"] == {
        "code": "UNKNOWN_CODE",
        "vocabulary": "consentPurpose",
        "value": purpose,
    }
    defined = await gql.data(
        """mutation($input: DefineConsentPurposeInput!) {
             defineConsentPurpose(input: $input) { code name builtIn } }""",
        {"input": {"code": purpose, "name": "Profiling", "description": "Automated profiling."}},
    )
    assert defined["defineConsentPurpose"] == {
        "code": purpose,
        "name": "Profiling",
        "builtIn": False,
    }
    granted = await gql.data(SET_CONSENT, {"id": customer, "p": purpose})
    assert granted["setConsent"] == {"purpose": purpose, "active": True}
    audience = """query($p: ConsentPurpose!) {
      customers(first: 5, filter: {hasConsent: {purpose: $p, channel: EMAIL}}) { totalCount }
    }"""
    assert (await gql.data(audience, {"p": purpose}))["customers"]["totalCount"] == 1
    # Negative control: a built-in purpose this customer never granted.
    assert (await gql.data(audience, {"p": "MARKETING"}))["customers"]["totalCount"] == 0
    purposes = (await gql.data("{ consentPurposes { code builtIn } }"))["consentPurposes"]
    assert sorted(p["code"] for p in purposes if not p["builtIn"]) == [purpose]


async def test_a_custom_touchpoint_kind_is_listed_and_filters_touchpoints(
    gql: GraphQLClient, db: asyncpg.Connection
) -> None:
    kind = unique("KIOSK")
    defined = await gql.data(
        """mutation($input: DefineTouchpointKindInput!) {
             defineTouchpointKind(input: $input) { code builtIn } }""",
        {"input": {"code": kind, "name": "Kiosk", "description": "An in-store kiosk."}},
    )
    assert defined["defineTouchpointKind"] == {"code": kind, "builtIn": False}
    await touchpoints(db)
    await Factory(db).touchpoint("Lobby kiosk", "PHYSICAL", kind)
    found = await gql.data(
        "query($k: TouchpointKind!) { touchpoints(filter: {kinds: [$k]}) { nodes { name kind } } }",
        {"k": kind},
    )
    assert found["touchpoints"]["nodes"] == [{"name": "Lobby kiosk", "kind": kind}]
    kinds = (await gql.data("{ touchpointKinds { code } }"))["touchpointKinds"]
    assert sorted(k["code"] for k in kinds) == sorted([*(k.value for k in TouchpointKind), kind])


async def test_erasure_removes_a_types_personal_attributes(
    gql: GraphQLClient, db: asyncpg.Connection
) -> None:
    tp = await touchpoints(db)
    code = unique("LOAN_APPLICATION")
    personal = unique("income").lower()
    await define_type(gql, code, personalAttributes=[personal])
    item = interaction(
        tp["web"], ("EMAIL", "ana@example.com"), type=code, attributes={personal: 1, "product": "x"}
    )
    customer = (await gql.data(RECORD, {"input": item}))["recordInteraction"]["customer"]["id"]
    await gql.data("mutation($id: ID!) { eraseCustomer(id: $id) { customerId } }", {"id": customer})
    kept = await db.fetchval("SELECT attributes FROM interactions WHERE type = $1", code)
    assert json.loads(kept) == {"product": "x"}


async def test_a_process_that_only_reads_learns_of_a_change_in_the_background(
    db: asyncpg.Connection, settings: Settings
) -> None:
    """Another process's change (here: written straight to the tables, as it commits it) reaches
    this process's snapshot through the background check alone: nothing else runs here."""
    personal = unique("secret").lower()
    code = unique("BACKGROUND")
    await db.execute(
        "INSERT INTO interaction_types (code, name, description, personal_attributes)"
        " VALUES ($1, 'b', 'b', ARRAY[$2::text])",
        code,
        personal,
    )
    await db.execute("UPDATE vocabulary_version SET version = version + 1")
    assert personal not in latest().personal_attributes
    checking = create_app(settings.model_copy(update={"vocabulary_refresh_s": 0.05}))
    async with checking.router.lifespan_context(checking):
        await until(lambda: personal in latest().personal_attributes, "the background check")
    assert personal_keys(settings).is_personal(personal)
