"""Custom vocabulary codes work wherever the built-in ones do (issue #16): segments and computed
traits, the export filter (HTTP and CLI), the customers and interactions filters on both read
paths, journey stages and analytics, and touchpoints of a custom kind (``createTouchpoint``)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
from starlette.applications import Starlette

from hub.app import create_app
from hub.audiences.queue import settled
from hub.core.ids import to_global_id
from hub.core.settings import Settings
from tests.audiences.support import Rule, expected_members, stored_members
from tests.compiled.test_roles_differential import compiled_answers
from tests.conftest import GraphQLClient
from tests.ingest_support import interaction, record, row_id, touchpoints
from tests.sources.test_import_export import hub

DEFINE = """
mutation {
  defineInteractionType(input: {code: "LOAN_APPLICATION", name: "Loan application",
    description: "A loan was applied for.", stage: PURCHASE}) { code }
  defineIdentityKind(input: {code: "MEMBER_NO", name: "Member number",
    description: "Club membership", normaliser: LOWER_CASE}) { code }
  defineConsentPurpose(input: {code: "PROFILING", name: "Profiling",
    description: "Automated profiling."}) { code }
  defineTouchpointKind(input: {code: "KIOSK", name: "Kiosk",
    description: "An in-store kiosk."}) { code }
}
"""
SET_CONSENT = """
mutation($input: SetConsentInput!) { setConsent(input: $input) { purpose status } }
"""
CREATE_SEGMENT = """
mutation($input: CreateSegmentInput!) { createSegment(input: $input) { key memberCount } }
"""
DEFINE_TRAIT = """
mutation($input: DefineComputedTraitInput!) {
  defineComputedTrait(input: $input) { key interactions }
}
"""
CUSTOMERS = """
query($f: CustomerFilter) { customers(filter: $f, first: 50) { nodes { id } } }
"""
CUSTOMER_INTERACTIONS = """
query($id: ID!, $f: InteractionFilter) {
  customer(id: $id) { interactions(first: 50, filter: $f) { totalCount nodes { id type } } }
}
"""
CREATE_TOUCHPOINT = """
mutation($input: CreateTouchpointInput!) {
  createTouchpoint(input: $input) {
    id kind name address businessLine active channel { code }
  }
}
"""
UPDATE_TOUCHPOINT = """
mutation($input: UpdateTouchpointInput!) {
  updateTouchpoint(input: $input) { id kind name address businessLine active channel { code } }
}
"""


async def _world(gql: GraphQLClient, db: asyncpg.Connection) -> dict[str, Any]:
    """Ana: member number ' M-17 ', two loan applications, a page view, PROFILING granted.
    Bob: a page view only, PROFILING denied (the negative control of every filter)."""
    await gql.data(DEFINE)
    tp = await touchpoints(db)
    ana = ("EMAIL", "ana@example.com")
    for n in range(2):
        await record(
            gql,
            interaction(
                tp["web"],
                ana,
                ("MEMBER_NO", " M-17 "),
                type="LOAN_APPLICATION",
                idempotencyKey=f"loan-{n}",
            ),
        )
    ana_id = (await record(gql, interaction(tp["web"], ana)))["customer"]["id"]
    bob_id = (await record(gql, interaction(tp["web"], ("EMAIL", "bob@example.com"))))["customer"][
        "id"
    ]
    for who, status in ((ana_id, "GRANTED"), (bob_id, "DENIED")):
        await gql.data(
            SET_CONSENT, {"input": {"customerId": who, "purpose": "PROFILING", "status": status}}
        )
    return {"ana": ana_id, "bob": bob_id, "tp": tp}


async def _ids(db: asyncpg.Connection, sql: str, *args: Any) -> set[uuid.UUID]:
    return {row[0] for row in await db.fetch(sql, *args)}


async def _loan_counts(db: asyncpg.Connection) -> dict[uuid.UUID, float]:
    """Loan applications per customer, recounted from the rows."""
    rows = await db.fetch("SELECT customer_id, type FROM interactions")
    counts: dict[uuid.UUID, float] = {}
    for r in rows:
        if r["type"] == "LOAN_APPLICATION":
            counts[r["customer_id"]] = counts.get(r["customer_id"], 0) + 1
    return counts


async def _trait_numbers(db: asyncpg.Connection, key: str) -> dict[uuid.UUID, float]:
    rows = await db.fetch(
        "SELECT customer_id, number FROM customer_traits_computed WHERE trait_key = $1", key
    )
    return {r["customer_id"]: r["number"] for r in rows if r["number"]}


# ---- segments and computed traits -----------------------------------------------------------


async def test_segments_and_computed_traits_take_custom_codes(
    gql: GraphQLClient, db: asyncpg.Connection, engine: Any
) -> None:
    w = await _world(gql, db)
    ana, bob = row_id(w["ana"]), row_id(w["bob"])
    loans = {
        "key": "loan-applicants",
        "name": "Loan applicants",
        "activity": [{"interactions": {"types": ["LOAN_APPLICATION"]}, "withinDays": 30, "min": 2}],
    }
    members = {
        "key": "club",
        "name": "Club member M-17",
        "filter": {"identity": {"kind": "MEMBER_NO", "value": "m-17"}},
    }
    profiled = {
        "key": "profiled",
        "name": "May be profiled",
        "filter": {"or": [{"hasConsent": {"purpose": "PROFILING"}}]},
    }
    for segment in (loans, members, profiled):
        await gql.data(CREATE_SEGMENT, {"input": segment})
    await gql.data(
        DEFINE_TRAIT,
        {
            "input": {
                "key": "loans",
                "aggregate": "COUNT",
                "interactions": {"types": ["LOAN_APPLICATION"]},
            }
        },
    )

    rule = Rule(types=("LOAN_APPLICATION",), days=30, low=2, high=None)
    expected = await expected_members(db, rule, datetime.now(UTC))
    assert expected == {ana}  # Bob has no loan: the rule is not trivially true
    assert await stored_members(db, "loan-applicants") == expected
    club = await _ids(
        db, "SELECT customer_id FROM identities WHERE kind = 'MEMBER_NO' AND value = 'm-17'"
    )
    assert club == {ana}
    assert await stored_members(db, "club") == club
    granted = await _ids(
        db, "SELECT customer_id FROM consents WHERE purpose = 'PROFILING' AND status = 'GRANTED'"
    )
    assert granted == {ana}  # Bob denied it
    assert await stored_members(db, "profiled") == granted
    assert await _trait_numbers(db, "loans") == await _loan_counts(db) == {ana: 2.0}

    # Ingest keeps both exact with the custom type: Bob applies twice.
    for n in range(2):
        await record(
            gql,
            interaction(
                w["tp"]["app"],
                ("EMAIL", "bob@example.com"),
                type="LOAN_APPLICATION",
                idempotencyKey=f"bob-loan-{n}",
            ),
        )
    # What the drainer of a running hub does (hub.audiences.queue): this app runs none.
    await settled(engine)
    expected = await expected_members(db, rule, datetime.now(UTC))
    assert expected == {ana, bob}
    assert await stored_members(db, "loan-applicants") == expected
    assert await _trait_numbers(db, "loans") == await _loan_counts(db) == {ana: 2.0, bob: 2.0}


async def test_unregistered_codes_in_segments_and_traits_are_unknown_code(
    gql: GraphQLClient, db: asyncpg.Connection
) -> None:
    await gql.data(DEFINE)
    cases = [
        (
            {"activity": [{"interactions": {"types": ["LOAN_APPLICATION", "LOAN_OFFER"]}}]},
            "LOAN_OFFER",
        ),
        ({"filter": {"identity": {"kind": "PASSPORT"}}}, "PASSPORT"),
        ({"filter": {"not": {"or": [{"hasConsent": {"purpose": "RESEARCH"}}]}}}, "RESEARCH"),
    ]
    for n, (conditions, code) in enumerate(cases):
        segment = {"key": f"bad-{n}", "name": "Bad", **conditions}
        error = await gql.error(CREATE_SEGMENT, {"input": segment})
        assert (error["extensions"]["code"], error["extensions"]["value"]) == (
            "UNKNOWN_CODE",
            code,
        )
    trait = {"key": "offers", "aggregate": "COUNT", "interactions": {"types": ["LOAN_OFFER"]}}
    error = await gql.error(DEFINE_TRAIT, {"input": trait})
    assert (error["extensions"]["code"], error["extensions"]["value"]) == (
        "UNKNOWN_CODE",
        "LOAN_OFFER",
    )
    assert await db.fetchval("SELECT count(*) FROM segments") == 0
    assert await db.fetchval("SELECT count(*) FROM computed_traits") == 0


# ---- the read paths -------------------------------------------------------------------------


async def _reads(http: httpx.AsyncClient, w: dict[str, Any]) -> list[Any]:
    gql = GraphQLClient(http)
    answers = []
    for f in (
        {"identity": {"kind": "MEMBER_NO", "value": "M-17"}},
        {"hasConsent": {"purpose": "PROFILING"}},
        {"not": {"hasConsent": {"purpose": "PROFILING"}}},
    ):
        answers.append(await gql.data(CUSTOMERS, {"f": f}))
    answers.append(
        await gql.data(
            CUSTOMER_INTERACTIONS, {"id": w["ana"], "f": {"types": ["LOAN_APPLICATION"]}}
        )
    )
    return answers


async def test_read_filters_take_custom_codes_on_both_paths(
    gql: GraphQLClient, db: asyncpg.Connection, app: Starlette, settings: Settings
) -> None:
    w = await _world(gql, db)
    loans = await db.fetch(
        "SELECT id FROM interactions WHERE type = 'LOAN_APPLICATION'"
        " ORDER BY occurred_at DESC, id DESC"
    )
    assert len(loans) == 2
    loan_nodes = [
        {"id": to_global_id("Interaction", str(r["id"])), "type": "LOAN_APPLICATION"} for r in loans
    ]
    expected = [
        {"customers": {"nodes": [{"id": w["ana"]}]}},
        {"customers": {"nodes": [{"id": w["ana"]}]}},
        {"customers": {"nodes": [{"id": w["bob"]}]}},
        {"customer": {"interactions": {"totalCount": 2, "nodes": loan_nodes}}},
    ]
    before = compiled_answers(app)
    assert await _reads(gql.http, w) == expected
    assert compiled_answers(app) == before + len(expected)  # the compiled path served them all
    resolvers = create_app(settings.model_copy(update={"compiled_reads": False}))
    async with resolvers.router.lifespan_context(resolvers):
        transport = httpx.ASGITransport(app=resolvers)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://hub.test", headers=gql.http.headers
        ) as http:
            assert await _reads(http, w) == expected
        assert compiled_answers(resolvers) == 0


# ---- the export filter ----------------------------------------------------------------------


async def test_export_filter_takes_custom_codes(
    gql: GraphQLClient, db: asyncpg.Connection, database_url: str
) -> None:
    await _world(gql, db)

    async def exported(f: Any) -> httpx.Response:
        return await gql.http.get("/export", params={"what": "customers", "filter": json.dumps(f)})

    def emails(text: str) -> list[str]:
        return [
            i["value"]
            for line in text.splitlines()
            for i in json.loads(line)["profile"]["identities"]
            if i["kind"] == "EMAIL"
        ]

    def ids(response: httpx.Response) -> list[str]:
        assert response.status_code == 200, response.text
        return emails(response.text)

    profiling = {"hasConsent": {"purpose": "PROFILING"}}
    ana, bob = ["ana@example.com"], ["bob@example.com"]
    assert ids(await exported(profiling)) == ana
    assert ids(await exported({"not": profiling})) == bob
    assert ids(await exported({"identity": {"kind": "MEMBER_NO", "value": "M-17"}})) == ana
    unknown = await exported({"and": [{"hasConsent": {"purpose": "RESEARCH"}}]})
    assert unknown.status_code == 400
    assert unknown.json()["errors"][0]["extensions"] == {
        "code": "UNKNOWN_CODE",
        "vocabulary": "consentPurpose",
        "value": "RESEARCH",
    }
    malformed = await exported({"identity": {"kind": "member no"}})
    assert malformed.status_code == 400
    assert malformed.json()["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT"}

    cli = hub(database_url, "export", "--customers", "--pii", "--filter", json.dumps(profiling))
    assert cli.returncode == 0, cli.stderr
    assert emails(cli.stdout) == ana
    research = json.dumps({"hasConsent": {"purpose": "RESEARCH"}})
    refused = hub(database_url, "export", "--customers", "--filter", research)
    assert (refused.returncode, refused.stdout) == (1, "")
    assert "'RESEARCH' is not a registered consent purpose" in refused.stderr


# ---- touchpoints of a custom kind -----------------------------------------------------------


async def test_an_admin_creates_and_changes_a_touchpoint_of_a_custom_kind(
    gql: GraphQLClient, gql_as: Any, db: asyncpg.Connection
) -> None:
    await gql.data(DEFINE)
    tp = await touchpoints(db)
    kiosk_input = {
        "channel": "PHYSICAL",
        "kind": "KIOSK",
        "name": " Lobby kiosk ",
        "address": "1 High Street, level 1",
        "businessLine": "Banking",
    }
    kiosk = (await gql.data(CREATE_TOUCHPOINT, {"input": kiosk_input}))["createTouchpoint"]
    row = await db.fetchrow("SELECT * FROM touchpoints WHERE kind = 'KIOSK'")
    assert row is not None
    assert kiosk == {
        "id": to_global_id("Touchpoint", str(row["id"])),
        "kind": "KIOSK",
        "name": "Lobby kiosk",
        "address": "1 High Street, level 1",
        "businessLine": "Banking",
        "active": True,
        "channel": {"code": "PHYSICAL"},
    }
    assert (row["channel_code"], row["name"], row["active"]) == ("PHYSICAL", "Lobby kiosk", True)
    # The kinds filter finds it alone (the six seeded touchpoints are of built-in kinds).
    listed = await gql.data(
        "{ touchpoints(first: 50, filter: {kinds: [KIOSK]}) { nodes { id kind } } }"
    )
    assert listed["touchpoints"]["nodes"] == [{"id": kiosk["id"], "kind": "KIOSK"}]
    everything = await gql.data("{ touchpoints(first: 50) { totalCount } }")
    assert everything["touchpoints"]["totalCount"] == len(tp) + 1

    # It records interactions (of a custom type too), on its channel.
    recorded = await record(
        gql, interaction(kiosk["id"], ("EMAIL", "ana@example.com"), type="LOAN_APPLICATION")
    )
    stored = await db.fetchrow(
        "SELECT channel_code, touchpoint_id, type FROM interactions WHERE id = $1",
        row_id(recorded["interaction"]["id"]),
    )
    assert dict(stored) == {
        "channel_code": "PHYSICAL",
        "touchpoint_id": row["id"],
        "type": "LOAN_APPLICATION",
    }

    # Changed: name, inactive, address cleared; the kind to another registered one.
    changes = {"id": kiosk["id"], "name": "Atrium kiosk", "address": "", "active": False}
    changed = (await gql.data(UPDATE_TOUCHPOINT, {"input": changes}))["updateTouchpoint"]
    assert changed == {**kiosk, "name": "Atrium kiosk", "address": None, "active": False}
    rekinded = await gql.data(UPDATE_TOUCHPOINT, {"input": {"id": kiosk["id"], "kind": "STORE"}})
    assert rekinded["updateTouchpoint"]["kind"] == "STORE"
    assert await db.fetchval("SELECT kind FROM touchpoints WHERE id = $1", row["id"]) == "STORE"


async def test_touchpoint_mutations_refuse_bad_input_and_other_roles(
    gql: GraphQLClient, gql_as: Any, db: asyncpg.Connection
) -> None:
    await gql.data(DEFINE)
    tp = await touchpoints(db)
    good = {"channel": "PHYSICAL", "kind": "KIOSK", "name": "Kiosk"}
    cases = [
        ({**good, "kind": "VENDING"}, "UNKNOWN_CODE"),
        ({**good, "name": "   "}, "BAD_USER_INPUT"),
        ({**good, "name": "k" * 201}, "BAD_USER_INPUT"),
    ]
    for bad, code in cases:
        error = await gql.error(CREATE_TOUCHPOINT, {"input": bad})
        assert error["extensions"]["code"] == code, bad
    unknown = await gql.error(UPDATE_TOUCHPOINT, {"input": {"id": tp["web"], "kind": "VENDING"}})
    assert (unknown["extensions"]["code"], unknown["extensions"]["value"]) == (
        "UNKNOWN_CODE",
        "VENDING",
    )
    missing = to_global_id("Touchpoint", str(uuid.UUID(int=7)))
    error = await gql.error(UPDATE_TOUCHPOINT, {"input": {"id": missing, "name": "x"}})
    assert error["extensions"]["code"] == "NOT_FOUND"
    for role, scopes in (
        ("ANALYST", {}),
        ("FRONTEND", {"pii": True}),
        ("PARTNER", {"channels": ["PHYSICAL"]}),
    ):
        other = await gql_as(role, **scopes)
        error = await other.error(CREATE_TOUCHPOINT, {"input": good})
        assert error["extensions"]["code"] == "FORBIDDEN", role
        error = await other.error(UPDATE_TOUCHPOINT, {"input": {"id": tp["web"], "name": "x"}})
        assert error["extensions"]["code"] == "FORBIDDEN", role
    # Nothing changed: the seeded six, the web shop's name as it was.
    assert await db.fetchval("SELECT count(*) FROM touchpoints") == len(tp)
    assert await db.fetchval("SELECT name FROM touchpoints WHERE id = $1", row_id(tp["web"])) == (
        "Web shop"
    )


async def test_a_partner_scoped_to_a_new_touchpoint_sees_its_interactions_only(
    gql: GraphQLClient, gql_as: Any, db: asyncpg.Connection
) -> None:
    await gql.data(DEFINE)
    tp = await touchpoints(db)
    kiosk = (
        await gql.data(
            CREATE_TOUCHPOINT, {"input": {"channel": "PHYSICAL", "kind": "KIOSK", "name": "K"}}
        )
    )["createTouchpoint"]["id"]
    at_kiosk = await record(
        gql, interaction(kiosk, ("EMAIL", "ana@example.com"), type="LOAN_APPLICATION")
    )
    await record(gql, interaction(tp["store"], ("EMAIL", "ana@example.com")))  # same channel
    ana = at_kiosk["customer"]["id"]
    await gql.data(
        SET_CONSENT,
        {"input": {"customerId": ana, "purpose": "PARTNER_SHARING", "status": "GRANTED"}},
    )
    query = "{ interactions(first: 50) { nodes { id type touchpoint { id kind } } } }"
    partner = await gql_as("PARTNER", touchpoints=[str(row_id(kiosk))])
    seen = (await partner.data(query))["interactions"]["nodes"]
    assert seen == [
        {
            "id": at_kiosk["interaction"]["id"],
            "type": "LOAN_APPLICATION",
            "touchpoint": {"id": kiosk, "kind": "KIOSK"},
        }
    ]
    # Negative control: a partner scoped to the store (same channel) sees the other one only.
    other = await gql_as("PARTNER", touchpoints=[str(row_id(tp["store"]))])
    theirs = (await other.data(query))["interactions"]["nodes"]
    assert [n["touchpoint"]["id"] for n in theirs] == [tp["store"]]


# ---- journey stages and analytics -----------------------------------------------------------

STAGE_HISTORY = """
query($id: ID!) {
  customer(id: $id) {
    currentStage { code }
    stageHistory { previousStage stage { code } transition channel { code } interaction { type } }
  }
}
"""
FUNNEL = "{ analytics { stageFunnel { stage { code } customers } } }"


async def test_a_custom_type_moves_the_journey_and_counts_in_analytics(
    gql: GraphQLClient, db: asyncpg.Connection
) -> None:
    await gql.data(DEFINE)  # LOAN_APPLICATION signals PURCHASE on every channel
    tp = await touchpoints(db)
    rule = await gql.data(
        "mutation { setStageRule(interactionType: LOAN_APPLICATION, channel: MOBILE,"
        " stage: RETENTION) { interactionType channel stage } }"
    )
    assert rule["setStageRule"] == {
        "interactionType": "LOAN_APPLICATION",
        "channel": "MOBILE",
        "stage": "RETENTION",
    }
    rules = (await gql.data("{ stageRules { interactionType channel stage } }"))["stageRules"]
    assert sorted(
        (r["channel"] or "", r["stage"])
        for r in rules
        if r["interactionType"] == "LOAN_APPLICATION"
    ) == [("", "PURCHASE"), ("MOBILE", "RETENTION")]

    ana = ("EMAIL", "ana@example.com")
    funnel_before = (await gql.data(FUNNEL))["analytics"]["stageFunnel"]
    assert all(step["customers"] == 0 for step in funnel_before)
    await record(gql, interaction(tp["web"], ana))  # AWARENESS (built-in rule)
    await record(gql, interaction(tp["web"], ana, type="LOAN_APPLICATION"))  # PURCHASE
    last = await record(gql, interaction(tp["app"], ana, type="LOAN_APPLICATION"))  # RETENTION
    await record(gql, interaction(tp["web"], ("EMAIL", "bob@example.com")))  # control: AWARENESS

    journey = (await gql.data(STAGE_HISTORY, {"id": last["customer"]["id"]}))["customer"]
    assert journey["currentStage"] == {"code": "RETENTION"}
    assert journey["stageHistory"] == [
        {
            "previousStage": None,
            "stage": {"code": "AWARENESS"},
            "transition": "INITIAL",
            "channel": {"code": "WEB"},
            "interaction": {"type": "PAGE_VIEW"},
        },
        {
            "previousStage": "AWARENESS",
            "stage": {"code": "PURCHASE"},
            "transition": "FORWARD",
            "channel": {"code": "WEB"},
            "interaction": {"type": "LOAN_APPLICATION"},
        },
        {
            "previousStage": "PURCHASE",
            "stage": {"code": "RETENTION"},
            "transition": "FORWARD",
            "channel": {"code": "MOBILE"},
            "interaction": {"type": "LOAN_APPLICATION"},
        },
    ]
    # The /journeys page's funnel: customers with an entry into each stage, recounted.
    rows = await db.fetch(
        "SELECT stage, customer_id FROM stage_history WHERE transition <> 'LOOPING'"
    )
    entered: dict[str, set[uuid.UUID]] = {}
    for r in rows:
        entered.setdefault(r["stage"], set()).add(r["customer_id"])
    funnel = (await gql.data(FUNNEL))["analytics"]["stageFunnel"]
    assert {s["stage"]["code"]: s["customers"] for s in funnel} == {
        step["stage"]["code"]: len(entered.get(step["stage"]["code"], set()))
        for step in funnel_before
    }
    assert {s["stage"]["code"]: s["customers"] for s in funnel}["PURCHASE"] == 1
