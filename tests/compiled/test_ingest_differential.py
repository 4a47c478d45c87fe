"""The compiled ingest path answers and writes exactly what the resolver path does.

One scenario of ``recordInteraction``/``recordInteractions`` calls (new people, returning people,
retries, conversations, stage changes, weak-identifier warnings, merges, erased identifiers,
every kind of bad input, batches mixing all of them) runs twice on the same starting data: once
through an app with ``compiled_ingest`` off (the reference: Strawberry's resolvers on
SQLAlchemy) and once through the hub app (compiled ingest on, falling back where it must). The
responses, the stored rows, the outbox events and the audit rows must be the same, ids aside
(they are fresh per run and compared through a consistent renaming). The hub app must also have
served the covered calls itself: those run no statement through SQLAlchemy.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest
from graphql import OperationDefinitionNode, parse
from sqlalchemy import event
from starlette.applications import Starlette

from hub.compiled.ingest import domain_input
from hub.graphql import schema
from tests.conftest import StatementCounter, make_key
from tests.factories import gid

WEB = uuid.UUID("00000000-0000-7000-8000-000000000001")
APP = uuid.UUID("00000000-0000-7000-8000-000000000002")
CALL = uuid.UUID("00000000-0000-7000-8000-000000000003")
MISSING = uuid.UUID("00000000-0000-7000-8000-0000000000ff")

INTERACTION = "__typename id occurredAt type direction summary sentiment outcome agent attributes"
SINGLE = f"""
mutation Record($input: RecordInteractionInput!) {{
  recordInteraction(input: $input) {{
    __typename created duplicate warnings merges {{ id }}
    interaction {{ {INTERACTION} }}
    stamp: interaction {{ when: occurredAt kind: type }}
  }}
}}
"""
SINGLE_ALIASED = """
mutation($in: RecordInteractionInput!) { r: recordInteraction(input: $in) { interaction { id } } }
"""
# Selects the customer: not covered, always the resolver path.
SINGLE_WITH_CUSTOMER = """
mutation($input: RecordInteractionInput!) {
  recordInteraction(input: $input) { created customer { id } merges { rule identityKind } }
}
"""
BATCH = f"""
mutation Many($inputs: [RecordInteractionInput!]!) {{
  recordInteractions(inputs: $inputs) {{
    __typename
    stored {{ __typename index created duplicate warnings merges {{ id }}
              interaction {{ {INTERACTION} }} }}
    rejected {{ __typename index code message }}
  }}
}}
"""
BATCH_WITH_MERGES = """
mutation($inputs: [RecordInteractionInput!]!) {
  recordInteractions(inputs: $inputs) { stored { index merges { rule } } rejected { index } }
}
"""


def item(
    touchpoint: uuid.UUID | str,
    *identities: tuple[str, str],
    at: str,
    type: str = "PAGE_VIEW",
    **extra: Any,
) -> dict[str, Any]:
    return {
        "identities": [{"kind": kind, "value": value} for kind, value in identities],
        "touchpointId": touchpoint
        if isinstance(touchpoint, str)
        else gid("Touchpoint", touchpoint),
        "type": type,
        "direction": "INBOUND",
        "occurredAt": at,
        **extra,
    }


@dataclass
class Step:
    query: str
    variables: dict[str, Any]
    served: bool | None  # whether the compiled path answers it itself (None: not countable)


def day(n: int, hour: int = 9) -> str:
    return f"2024-03-{n:02d}T{hour:02d}:00:00Z"


STEPS: list[Step] = [
    # A new person, every optional field.
    Step(
        SINGLE,
        {
            "input": item(
                WEB,
                ("EMAIL", " Ana@Example.COM "),
                ("COOKIE", "ck-ana"),
                at=day(1),
                type="PRODUCT_VIEW",
                summary="looked at boots",
                sentiment=0.5,
                outcome="browsed, mailed ana@example.com",
                agent="web",
                # Personal keys and identifier-shaped text: masked for a caller without pii.
                attributes={
                    "sku": "B-1",
                    "nested": {"a": [1, 2.5, None, True], "phone": "+442079460958"},
                    "note": "call +44 20 7946 0958",
                },
                conversationKey="conv-ana",
                idempotencyKey="ana-1",
            )
        },
        served=True,
    ),
    # The retry: the original, duplicate true.
    Step(
        SINGLE,
        {
            "input": item(
                WEB,
                ("EMAIL", "ana@example.com"),
                at=day(1),
                type="PRODUCT_VIEW",
                idempotencyKey="ana-1",
            )
        },
        served=True,
    ),
    # The returning person on another channel: journey moves, conversation continues.
    Step(
        SINGLE_ALIASED,
        {
            "in": item(
                APP,
                ("EMAIL", "ana@example.com"),
                ("PHONE", "+44 20 7946 0958"),
                at=day(2),
                type="ORDER",
                conversationKey="conv-ana",
            )
        },
        served=True,
    ),
    # A late interaction (before the current stage): no stage change.
    Step(SINGLE, {"input": item(CALL, ("PHONE", "+442079460958"), at=day(1, 8))}, served=True),
    # Bob, then Bob's cookie seen with Ana's e-mail: weak match, warning, no merge.
    Step(SINGLE, {"input": item(WEB, ("COOKIE", "ck-bob"), at=day(3))}, served=True),
    Step(
        SINGLE,
        {"input": item(WEB, ("EMAIL", "ana@example.com"), ("COOKIE", "ck-bob"), at=day(4))},
        served=True,
    ),
    # Bad input, each with its code: the resolver path answers (nothing is written).
    Step(SINGLE, {"input": item(MISSING, ("EMAIL", "x@example.com"), at=day(5))}, served=False),
    Step(SINGLE, {"input": item(WEB, ("EMAIL", "not-an-email"), at=day(5))}, served=False),
    Step(SINGLE, {"input": item("nonsense", ("EMAIL", "x@example.com"), at=day(5))}, served=False),
    Step(
        SINGLE,
        {"input": item(WEB, ("EMAIL", "x@example.com"), at=day(5), sentiment=3)},
        served=False,
    ),
    Step(SINGLE, {"input": item(WEB, at=day(5))}, served=False),
    Step(
        SINGLE,
        {"input": {**item(WEB, ("EMAIL", "x@example.com"), at=day(5)), "type": "NOPE"}},
        served=False,
    ),
    Step(
        SINGLE,
        {"input": item(WEB, ("EMAIL", "x@example.com"), at=day(5), attributes=[1, 2])},
        served=False,
    ),
    # Input limits (hub.access.inputs): text PostgreSQL cannot store, in a field and in a key
    # of the attributes, and a list over max_list_length: the resolver path reports them, in
    # validation, before anything runs (no statement either way: ``served`` is not counted;
    # the compiled path never answers with a validation error, so equal answers show it).
    Step(
        SINGLE,
        {"input": item(WEB, ("EMAIL", "x@example.com"), at=day(5), summary="a\u0000b")},
        served=None,
    ),
    Step(
        SINGLE,
        {"input": item(WEB, ("EMAIL", "x@example.com"), at=day(5), attributes={"k\u0000": 1})},
        served=None,
    ),
    Step(
        SINGLE,
        {"input": item(WEB, *[("COOKIE", f"ck-{n}") for n in range(1001)], at=day(5))},
        served=None,
    ),
    # A selection the compiled path does not cover.
    Step(
        SINGLE_WITH_CUSTOMER,
        {"input": item(WEB, ("EMAIL", "cara@example.com"), at=day(6))},
        served=False,
    ),
    # Cara's e-mail and a phone known to another customer: the plan merges two known customers,
    # so the compiled path rolls back and the resolver path answers (then Ana and Cara merge).
    Step(SINGLE, {"input": item(CALL, ("PHONE", "+14155550123"), at=day(6, 10))}, served=True),
    Step(
        SINGLE,
        {"input": item(CALL, ("EMAIL", "cara@example.com"), ("PHONE", "+14155550123"), at=day(7))},
        served=False,
    ),
    Step(
        SINGLE_WITH_CUSTOMER,
        {
            "input": item(
                CALL, ("EMAIL", "ana@example.com"), ("EMAIL", "cara@example.com"), at=day(8)
            )
        },
        served=False,
    ),
    # A batch mixing everything: new people joined within the batch, a repeat within the
    # batch, a known key, bad items of every kind, conversations, back-fills.
    Step(
        BATCH,
        {
            "inputs": [
                item(WEB, ("EMAIL", "dan@example.com"), at=day(9), idempotencyKey="d1"),
                item(APP, ("PHONE", "+14155550199"), at=day(9, 10), type="ORDER"),
                item(
                    APP,
                    ("EMAIL", "dan@example.com"),
                    ("PHONE", "+14155550199"),
                    at=day(9, 11),
                    conversationKey="conv-dan",
                ),
                item(WEB, ("EMAIL", "dan@example.com"), at=day(9), idempotencyKey="d1"),
                item(WEB, ("EMAIL", "ana@example.com"), at=day(1), idempotencyKey="ana-1"),
                item(MISSING, ("EMAIL", "eve@example.com"), at=day(9)),
                item("bad-id", ("EMAIL", "eve@example.com"), at=day(9)),
                item(WEB, ("EMAIL", "@@"), at=day(9)),
                item(WEB, ("EMAIL", "eve@example.com"), at=day(9), outcome=" "),
                item(
                    CALL,
                    ("EMAIL", "ana@example.com"),
                    at=day(9, 12),
                    type="SUPPORT_TICKET",
                    conversationKey="conv-ana",
                ),
                item(WEB, ("EMAIL", "fay@example.com"), at=day(8), type="ORDER"),
                item(WEB, ("EMAIL", "fay@example.com"), at=day(7), type="PAGE_VIEW"),
            ]
        },
        served=True,
    ),
    # Only repeats: nothing new is stored (the audit row is still written).
    Step(
        BATCH,
        {"inputs": [item(WEB, ("EMAIL", "dan@example.com"), at=day(9), idempotencyKey="d1")]},
        served=True,
    ),
    # A batch that merges known customers (created at different times, so the survivor is
    # certain): the resolver path.
    Step(
        BATCH_WITH_MERGES,
        {
            "inputs": [
                item(WEB, ("EMAIL", "dan@example.com"), ("EMAIL", "ana@example.com"), at=day(10))
            ]
        },
        served=False,
    ),
    # Gil buys, confirms the purchase in the app (LOOPING), then a delayed product view that
    # happened between the two arrives: it is older than his newest signal, the stage stays.
    Step(
        SINGLE,
        {"input": item(WEB, ("EMAIL", "gil@example.com"), at=day(11), type="PRODUCT_VIEW")},
        served=True,
    ),
    Step(
        SINGLE,
        {"input": item(WEB, ("EMAIL", "gil@example.com"), at=day(11, 12), type="ORDER")},
        served=True,
    ),
    Step(
        SINGLE,
        {"input": item(APP, ("EMAIL", "gil@example.com"), at=day(11, 14), type="ORDER")},
        served=True,
    ),
    Step(
        BATCH,
        {"inputs": [item(WEB, ("EMAIL", "gil@example.com"), at=day(11, 13), type="PRODUCT_VIEW")]},
        served=True,
    ),
    # Batch-level errors: the resolver path.
    Step(BATCH, {"inputs": []}, served=False),
]


async def _erase_and_reingest(
    http: httpx.AsyncClient, admin: httpx.AsyncClient, db: asyncpg.Connection
) -> list[Any]:
    """Erase Bob (an ADMIN's mutation); his old cookie alone is then refused, also inside a
    batch."""
    owner = await db.fetchval("SELECT customer_id FROM identities WHERE value = 'ck-bob'")
    answers = [
        await _post(
            admin,
            "mutation($id: ID!) { eraseCustomer(id: $id) { customerId } }",
            {"id": gid("Customer", owner)},
        )
    ]
    again = item(WEB, ("COOKIE", "ck-bob"), at=day(11))
    answers.append(await _post(http, SINGLE, {"input": again}))
    mixed = [again, item(WEB, ("COOKIE", "ck-bob"), ("EMAIL", "gus@example.com"), at=day(11))]
    answers.append(await _post(http, BATCH, {"inputs": mixed}))
    return answers


async def _post(http: httpx.AsyncClient, query: str, variables: dict[str, Any]) -> Any:
    response = await http.post("/graphql", json={"query": query, "variables": variables})
    assert response.status_code == 200, response.text
    return response.json()


class Renamer:
    """Fresh ids (UUIDs and global ids) → stable names, in order of first appearance."""

    UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        for fixed in (WEB, APP, CALL, MISSING):
            self.names[str(fixed)] = str(fixed)
            self.names[gid("Touchpoint", fixed)] = gid("Touchpoint", fixed)

    def name(self, value: str) -> str:
        return self.names.setdefault(value, f"<id{len(self.names)}>")

    def __call__(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {key: self(child) for key, child in value.items()}
        if isinstance(value, list | tuple):
            return [self(child) for child in value]
        if isinstance(value, uuid.UUID):
            return self.name(str(value))
        if isinstance(value, str):
            if re.fullmatch(r"[A-Za-z0-9_-]{20,}", value) and not value.startswith("ev1"):
                return self.name(value)  # a global id
            return self.UUID.sub(lambda m: self.name(m.group(0)), value)
        return value


async def _state(db: asyncpg.Connection, rename: Renamer) -> dict[str, Any]:
    """Every row the ingest writes, ids renamed, in a stable order."""
    queries = {
        "customers": "SELECT id, current_stage, stage_entered_at, stage_channel_code,"
        " stage_signal_at, first_seen_at, last_seen_at, merged_into_id FROM customers"
        " ORDER BY first_seen_at, last_seen_at, merged_into_id IS NULL, current_stage,"
        " stage_channel_code",
        "identities": "SELECT customer_id, kind, value, last_seen_at FROM identities"
        " ORDER BY kind, value",
        "interactions": "SELECT id, customer_id, touchpoint_id, channel_code, occurred_at, type,"
        " direction, summary, sentiment, outcome, agent, attributes, idempotency_key,"
        " conversation_id, (SELECT kind || ':' || value FROM identities WHERE id ="
        " matched_identity_id) AS matched FROM interactions ORDER BY occurred_at, summary, type,"
        # The same event on two touchpoints at one moment: without these the two rows came back
        # in either order (seen under load), and the renamed ids then differed.
        " touchpoint_id, direction, idempotency_key, attributes::text",
        "stage_history": "SELECT customer_id, stage, previous_stage, transition, entered_at,"
        " interaction_id, channel_code, reason FROM stage_history ORDER BY entered_at, stage",
        "conversations": "SELECT customer_id, key, status, started_at, last_activity_at"
        " FROM conversations ORDER BY key",
        "events": "SELECT kind, customer_id, subject_id, channel_code, touchpoint_id, payload"
        " FROM events ORDER BY xid, id",
        "audit": "SELECT role, action, target_ids, success, details FROM audit_log ORDER BY id",
        "merges": "SELECT rule, identity_kind, identity_value FROM merges ORDER BY created_at",
    }
    state = {}
    for name, sql in queries.items():
        state[name] = [rename(dict(row)) for row in await db.fetch(sql)]
    return state


async def _reset(db: asyncpg.Connection) -> None:
    await db.execute(
        "TRUNCATE merges, events, stage_history, interactions, conversations, identities,"
        " customers, consent_history, consents, erasures, audit_log RESTART IDENTITY CASCADE"
    )


async def _run(
    http: httpx.AsyncClient,
    admin: httpx.AsyncClient,
    db: asyncpg.Connection,
    counter: StatementCounter | None,
) -> tuple[list[Any], dict[str, Any], list[int]]:
    await _reset(db)
    answers: list[Any] = []
    statements: list[int] = []
    for step in STEPS:
        before = counter.count if counter is not None else 0
        answers.append(await _post(http, step.query, step.variables))
        statements.append((counter.count if counter is not None else 0) - before)
    answers.extend(await _erase_and_reingest(http, admin, db))
    rename = Renamer()
    renamed = rename(answers)
    return renamed, await _state(db, rename), statements


def _as(http: httpx.AsyncClient, key: str) -> httpx.AsyncClient:
    """Another client on ``http``'s app, authenticating with ``key``."""
    return httpx.AsyncClient(
        transport=http._transport,
        base_url=http.base_url,
        headers={"Authorization": f"Bearer {key}"},
    )


# The roles that may write: ADMIN sees everything, a FRONTEND key without pii gets the
# payload masked (hub.access.masking) on both paths.
@pytest.mark.parametrize("role", ["ADMIN", "FRONTEND"])
@pytest.mark.asyncio
async def test_compiled_ingest_matches_the_resolver_path(
    role: str,
    app: Starlette,
    db: asyncpg.Connection,
    engine: Any,
    client: httpx.AsyncClient,
    count_statements: StatementCounter,
    app_with: Callable[..., Any],
) -> None:
    catalogue = [
        (WEB, "WEB", "WEBSITE"),
        (APP, "MOBILE", "MOBILE_APP"),
        (CALL, "ASSISTED", "VOICE"),
    ]
    for tid, channel, kind in catalogue:
        await db.execute(
            "INSERT INTO touchpoints (id, channel_code, name, kind) VALUES ($1, $2, $3, $4)",
            tid,
            channel,
            f"tp {kind}",
            kind,
        )
    assert app.state.hub.running.ingest is not None
    async with app_with(compiled_ingest=False) as (reference, reference_engine):
        reference.headers["Authorization"] = f"Bearer {await make_key(reference_engine, 'ADMIN')}"
        async with _as(reference, await make_key(reference_engine, role)) as caller:
            expected, expected_state, _ = await _run(caller, reference, db, None)
    # The resolver path's audit rows go through the app's audit pool (the compiled path writes
    # its row inside its own asyncpg transaction): counted too, every call the resolvers ran
    # shows statements, even one refused before any data was read.
    audit = app.state.hub.running.audit_engine.sync_engine
    event.listen(audit, "before_cursor_execute", count_statements)
    try:
        async with _as(client, await make_key(engine, role)) as caller:
            got, got_state, statements = await _run(caller, client, db, count_statements)
    finally:
        event.remove(audit, "before_cursor_execute", count_statements)

    for step, want, have in zip(STEPS, expected, got, strict=False):
        assert have == want, step.variables
    assert got == expected
    for table in expected_state:
        assert got_state[table] == expected_state[table], table
    countable = [(n == 0, step.served) for n, step in zip(statements, STEPS, strict=True)]
    assert [ran for ran, served in countable if served is not None] == [
        served for _, served in countable if served is not None
    ], statements
    uncounted = [n for n, step in zip(statements, STEPS, strict=True) if step.served is None]
    assert uncounted == [0, 0, 0]
    # The scenario exercised what it claims to.
    assert any(a.get("errors") for a in expected), "no error case"
    assert expected_state["merges"], "no merge"
    assert any("weak" in str(a) for a in expected), "no weak-identifier warning"
    # Masked exactly where the caller lacks pii: the summary, the e-mail in the outcome, the
    # personal key and the phone number in the attributes.
    first = expected[0]["data"]["recordInteraction"]["interaction"]
    if role == "ADMIN":
        assert (first["summary"], first["outcome"]) == (
            "looked at boots",
            "browsed, mailed ana@example.com",
        )
    else:
        assert (first["summary"], first["outcome"]) == ("•••", "browsed, mailed a•••@example.com")
        assert first["attributes"] == {
            "sku": "B-1",
            "nested": {"a": [1, 2.5, None, True], "phone": "•••"},
            "note": "call •••58",
        }
    assert {a["role"] for a in expected_state["audit"]} == {role, "ADMIN"}


@pytest.mark.asyncio
async def test_domain_input_is_the_resolver_conversion() -> None:
    """The compiled path builds the same domain input as ``RecordInteractionInput.to_domain``."""
    from graphql.utilities import coerce_input_value, type_from_ast

    from hub.compiled.ingest import _compile
    from hub.core.settings import Settings
    from hub.schema.ingest import RecordInteractionInput

    raw = item(
        WEB,
        ("EMAIL", "a@example.com"),
        ("SOCIAL_HANDLE", "instagram:ana"),
        at="2024-03-01T10:00:00+02:00",
        sentiment=-1,
        attributes={"x": 1},
        summary="s",
        outcome="o",
        agent="a",
        conversationKey="c",
        idempotencyKey="k",
    )
    prepared = _compile(schema._schema, Settings(), SINGLE)
    assert prepared is not None
    assert (prepared.field, prepared.key, prepared.variable) == ("recordInteraction",) * 2 + (
        "input",
    )
    assert prepared.operation.name is not None and prepared.operation.name.value == "Record"
    definition = prepared.operation.variable_definitions[0]
    coerced = coerce_input_value({**raw}, type_from_ast(schema._schema, definition.type))
    converted = RecordInteractionInput(
        identities=[],
        touchpoint_id=raw["touchpointId"],
        type=coerced["type"],
        direction=coerced["direction"],
    )
    for name, value in coerced.items():
        if name != "identities":
            setattr(converted, _snake(name), value)
    from hub.schema.ingest import IdentityInput

    converted.identities = [
        IdentityInput(kind=i["kind"], value=i["value"]) for i in coerced["identities"]
    ]
    compiled = domain_input(coerced)
    assert compiled == converted.to_domain()
    # Known values, so that two conversions that agree on a wrong answer do not pass.
    assert compiled.identities == [("EMAIL", "a@example.com"), ("SOCIAL_HANDLE", "instagram:ana")]
    assert compiled.touchpoint_id == WEB
    assert (compiled.type, compiled.direction) == ("PAGE_VIEW", "INBOUND")
    assert compiled.occurred_at == datetime(2024, 3, 1, 8, 0, tzinfo=UTC)
    assert (compiled.summary, compiled.sentiment, compiled.outcome, compiled.agent) == (
        "s",
        -1,
        "o",
        "a",
    )
    assert compiled.attributes == {"x": 1}
    assert (compiled.conversation_key, compiled.idempotency_key) == ("c", "k")


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


COERCION_CASES: list[Any] = [
    item(WEB, ("EMAIL", "a@example.com"), at=day(1)),
    item(WEB, ("EMAIL", "a@example.com"), at="2024-03-01T10:00:00.123456+05:30", sentiment=1),
    {**item(WEB, ("PHONE", "+14155550123"), at=day(1)), "occurredAt": None, "summary": None},
    {**item(WEB, ("EMAIL", "a@example.com"), at=day(1)), "attributes": {"deep": [[[{"x": 1}]]]}},
    {
        **item(WEB, ("EMAIL", "a@example.com"), at=day(1)),
        "identities": {"kind": "EMAIL", "value": "single@example.com"},
    },  # a single value where a list is expected
    {**item(WEB, ("EMAIL", "a@example.com"), at=day(1)), "touchpointId": 12},
    # Invalid, each in its own way.
    {**item(WEB, ("EMAIL", "a@example.com"), at=day(1)), "type": "NOPE"},
    {**item(WEB, ("EMAIL", "a@example.com"), at=day(1)), "type": ["ORDER"]},
    {**item(WEB, ("EMAIL", "a@example.com"), at=day(1)), "direction": None},
    {**item(WEB, ("EMAIL", "a@example.com"), at=day(1)), "unknown": 1},
    {**item(WEB, ("EMAIL", "a@example.com"), at=day(1)), "occurredAt": "yesterday"},
    {**item(WEB, ("EMAIL", "a@example.com"), at=day(1)), "sentiment": "high"},
    {**item(WEB, ("EMAIL", "a@example.com"), at=day(1)), "sentiment": True},
    {**item(WEB, ("EMAIL", "a@example.com"), at=day(1)), "summary": 5},
    {**item(WEB, ("EMAIL", "a@example.com"), at=day(1)), "identities": [{"kind": "EMAIL"}]},
    {**item(WEB, ("EMAIL", "a@example.com"), at=day(1)), "identities": None},
    {k: v for k, v in item(WEB, ("EMAIL", "a@example.com"), at=day(1)).items() if k != "type"},
    "not an object",
    None,
    [item(WEB, ("EMAIL", "a@example.com"), at=day(1))],
]


@pytest.mark.parametrize("value", COERCION_CASES)
@pytest.mark.parametrize("query", [SINGLE, BATCH])
def test_input_coercer_is_graphql_cores(value: Any, query: str) -> None:
    """``input_coercer`` accepts exactly what graphql-core's coercion accepts, with the same
    result (for the single input and for the batch's list)."""
    from graphql.pyutils import Undefined
    from graphql.utilities import coerce_input_value, type_from_ast

    from hub.compiled.ingest import _Invalid, input_coercer

    operation = parse(query).definitions[0]
    assert isinstance(operation, OperationDefinitionNode)
    type_ = type_from_ast(schema._schema, operation.variable_definitions[0].type)
    expected = coerce_input_value(value, type_)
    try:
        got = input_coercer(type_)(value)
    except _Invalid:
        got = Undefined
    assert got == expected


@pytest.mark.asyncio
async def test_connections_dropped_by_the_server_are_survived(
    client: httpx.AsyncClient, db: asyncpg.Connection, database_url: str
) -> None:
    """The bare asyncpg pools (key checks, compiled ingest) have no ping per checkout: a
    connection the server dropped (a restart, an idle timeout) costs no failed request."""
    await db.execute(
        "INSERT INTO touchpoints (id, channel_code, name, kind) VALUES ($1, 'WEB', 'w', 'WEBSITE')",
        WEB,
    )
    # The path, not the last "/": the embedded server's URL names its socket folder in the query.
    name = urlsplit(database_url).path.lstrip("/")
    stored = 0
    dropped_in_all = 0
    for round_ in range(3):
        # Several calls at once, so that both pools hold several connections...
        bodies = await asyncio.gather(
            *(
                _post(
                    client,
                    SINGLE,
                    {"input": item(WEB, ("EMAIL", f"drop{round_}-{n}@example.com"), at=day(1))},
                )
                for n in range(8)
            )
        )
        assert all("errors" not in body for body in bodies), bodies
        stored += len(bodies)
        # ...then the server drops every one of them.
        dropped = await db.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = $1 AND application_name IN ('hub-keys', 'hub-ingest')",
            name,
        )
        dropped_in_all += dropped
    # Round 1 filled the ingest pool and lost it; round 2's calls met dead connections, were
    # answered by the resolver path and emptied the pool; round 3 filled it again. (The key pool
    # may hold none: keys are served from the per-process key cache once looked up.)
    assert dropped_in_all >= 2
    last = await _post(client, SINGLE, {"input": item(WEB, ("EMAIL", "last@x.org"), at=day(1))})
    assert "errors" not in last, last
    assert await db.fetchval("SELECT count(*) FROM interactions") == stored + 1
