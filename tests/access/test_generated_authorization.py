"""Generated authorization: every field that can carry customer data, asked by every masked role.

A live server (real HTTP, real keys) holds a world with planted personal data and customers
outside the partner's scope (tests/authz_world.py). For each role the schema itself yields the
documents (tests/authz_queries.py): a deterministic walk that selects every (type, field) pair
reachable from the roots, with real ids in every id argument, then random hypothesis-graphql
documents. Every answer is checked (tests/authz_check.py): no 5xx, no error without a code, no
INTERNAL_SERVER_ERROR, no planted value in any case, and for the partner no id (global or raw)
of a row outside its scope. The same checker on an ADMIN key must find every planted value.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import graphql
import httpx
import pytest
from hypothesis import HealthCheck, given, settings

from hub.core.ids import uuid_from_global_id
from tests.access.conftest import bearer
from tests.authz_check import Finding, Forbidden, check, error_codes, summary
from tests.authz_queries import (
    Inputs,
    hub_schema,
    random_documents,
    reachable_fields,
    reads_back_only,
    selected_fields,
    walk,
)
from tests.authz_world import PARTNER_CHANNELS, Planted, build_planted_world
from tests.conftest import make_key
from tests.live_server import Server

RANDOM_DOCUMENTS = 100  # per role, on top of the deterministic walk
# Codes of documents refused whole for their size or shape (docs/security.md, limits).
LIMIT_CODES = {
    "TOO_MANY_TOKENS",
    "QUERY_TOO_DEEP",
    "QUERY_TOO_COMPLEX",
    "TOO_MANY_ALIASES",
    "PAYLOAD_TOO_LARGE",
}
# Roles whose answers must hide the planted values; only FRONTEND may write.
MASKED_ROLES: dict[str, dict[str, Any]] = {
    "FRONTEND": {},
    "ANALYST": {},
    "PARTNER": {"channels": PARTNER_CHANNELS},
}


@dataclass
class AuthzWorld:
    server: Server
    planted: Planted
    inputs: Inputs
    keys: dict[str, str]  # role -> key, ADMIN included


@pytest.fixture
async def world(db: asyncpg.Connection, engine: Any, keyed_server: Server) -> AuthzWorld:
    keys = {"ADMIN": await make_key(engine, "ADMIN")}
    for role, scopes in MASKED_ROLES.items():
        keys[role] = await make_key(engine, role, **scopes)
    async with httpx.AsyncClient(
        base_url=keyed_server.http_url, headers=bearer(keys["ADMIN"]), timeout=30
    ) as admin:
        planted = await build_planted_world(db, admin)
    # A SOURCE key, bound to one of the planted touchpoints (it only sends tracking data).
    touchpoint = str(uuid_from_global_id(next(iter(planted.touchpoints.values())), "Touchpoint"))
    keys["SOURCE"] = await make_key(engine, "SOURCE", touchpoints=[touchpoint])
    return AuthzWorld(keyed_server, planted, inputs_of(planted), keys)


def inputs_of(planted: Planted) -> Inputs:
    """Argument values: every planted id by type, every entity, every identifier value."""
    return Inputs(
        ids_by_type={
            "Customer": sorted(planted.customers.values()),
            "Interaction": sorted(planted.interactions.values()),
            "Conversation": sorted(planted.conversations.values()),
            "Merge": sorted(planted.merges),
            "Touchpoint": sorted(planted.touchpoints.values()),
        },
        representations=planted.entity_representations,
        texts={"value": sorted(planted.identifier_values)},
    )


@dataclass
class Run:
    """One role's run: its findings, the pairs its documents selected, and the answers' text."""

    findings: list[Finding]
    covered: set[tuple[str, str]]
    documents: int
    answers: list[str]
    walk_codes: Counter[str] = field(default_factory=Counter)  # error codes of walk answers


def may_write(role: str) -> bool:
    return role in {"ADMIN", "FRONTEND"}


def ask(world: AuthzWorld, role: str, forbidden: Forbidden, random_documents_count: int) -> Run:
    """The walk, then ``random_documents_count`` random documents, as ``role``; every answer
    checked. Roles that may write get only mutations that change nothing (dry runs); the others
    get every mutation and must be refused each one."""
    schema = hub_schema()
    run = Run([], set(), 0, [])
    mutation_fields: Callable[[str], bool] = (
        (lambda name: reads_back_only(schema.mutation_type.fields[name]))  # type: ignore[union-attr]
        if may_write(role)
        else (lambda name: True)
    )

    with httpx.Client(
        base_url=world.server.http_url, headers=bearer(world.keys[role]), timeout=30
    ) as http:

        def send(root: str, operation: str, query: str, variables: dict[str, Any]) -> None:
            response = http.post("/graphql", json={"query": query, "variables": variables})
            run.documents += 1
            run.answers.append(response.text)
            run.findings.extend(
                check(root, f"{query} {variables}", response.status_code, response.text, forbidden)
            )
            if operation == "mutation" and not may_write(role):
                run.findings.extend(refused(root, response))

        for document in walk(schema, world.inputs, mutation_fields):
            run.covered |= selected_fields(schema, document.text)
            send(document.root, document.operation, document.text, document.variables)
            run.walk_codes.update(error_codes(run.answers[-1]))

        if random_documents_count:

            @settings(
                max_examples=random_documents_count,
                deadline=None,
                derandomize=True,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            @given(random_documents(schema, world.inputs, with_mutations=not may_write(role)))
            def probe(query: str) -> None:
                operation, root = first_root(query)
                run.covered |= selected_fields(schema, query)
                send(root, operation, query, {})

            probe()
    return run


def first_root(query: str) -> tuple[str, str]:
    """The operation type and first root field of a generated document."""
    operation = graphql.parse(query).definitions[0]
    assert isinstance(operation, graphql.OperationDefinitionNode)
    field = operation.selection_set.selections[0]
    assert isinstance(field, graphql.FieldNode)
    return operation.operation.value, field.name.value


def refused(root: str, response: httpx.Response) -> list[Finding]:
    """A mutation by a role that may not write: refused with FORBIDDEN (or turned away before
    it ran, with a code), and no data."""
    try:
        body = response.json()
    except ValueError:
        return []  # already a finding of the checker
    data = body.get("data") if isinstance(body, dict) else None
    if data and any(value is not None for value in data.values()):
        return [Finding(root, "wrote", str(data)[:200])]
    return []


def expected_coverage(role: str) -> set[tuple[str, str]]:
    """Every (type, field) pair reachable from the Query roots and the mutations this role is
    sent: what its documents must have selected."""
    schema = hub_schema()
    query, mutation = schema.query_type, schema.mutation_type
    assert query is not None and mutation is not None
    roots = [(query, name) for name in query.fields]
    roots += [
        (mutation, name)
        for name, field in mutation.fields.items()
        if not may_write(role) or reads_back_only(field)
    ]
    return reachable_fields(schema, roots)


@pytest.mark.parametrize("role", list(MASKED_ROLES))
def test_no_planted_value_nor_hidden_row_reaches_a_masked_role(
    world: AuthzWorld, role: str
) -> None:
    planted = world.planted
    hidden = planted.hidden_from_partner if role == "PARTNER" else set()
    forbidden = Forbidden(frozenset(planted.pii), frozenset(hidden), planted.other_form)
    run = ask(world, role, forbidden, RANDOM_DOCUMENTS)

    assert expected_coverage(role) - run.covered == set()
    # The walk's documents were answered, not turned away by a limit (which would hide leaks).
    assert not LIMIT_CODES & set(run.walk_codes), run.walk_codes
    # The answers did carry data: every customer a role may see came back (by id).
    visible = {"zelda"} if role == "PARTNER" else {"zelda", "ygritte", "oswald"}
    answered = "\n".join(run.answers)
    assert {name for name in visible if planted.customers[name] in answered} == visible
    assert not run.findings, (
        f"{len(run.findings)} findings for {role} in {run.documents} documents:\n"
        f"{summary(run.findings)}"
    )


def test_the_checker_finds_every_planted_value_in_admin_answers(world: AuthzWorld) -> None:
    """Negative control: the same walk with an ADMIN key must reveal every planted value and
    every id hidden from the partner, so the checker above can fail."""
    planted = world.planted
    forbidden = Forbidden(frozenset(planted.pii), frozenset(planted.hidden_from_partner))
    run = ask(world, "ADMIN", forbidden, 0)

    assert not LIMIT_CODES & set(run.walk_codes), run.walk_codes
    found = {(f.kind, f.value) for f in run.findings}
    assert {d for kind, d in found if kind == "pii"} == planted.pii
    assert {d for kind, d in found if kind == "hidden-id"} == planted.hidden_from_partner


def test_a_source_key_is_refused_every_document(world: AuthzWorld) -> None:
    """SOURCE keys send tracking data (/v1/*) only: the same walk, every query and every
    mutation, and random documents, each refused whole by the gate with FORBIDDEN."""
    planted = world.planted
    forbidden = Forbidden(
        frozenset(planted.pii), frozenset(planted.hidden_from_partner), planted.other_form
    )
    run = ask(world, "SOURCE", forbidden, RANDOM_DOCUMENTS // 4)

    assert expected_coverage("SOURCE") - run.covered == set()
    assert not run.findings, summary(run.findings)
    refusal = {
        "errors": [
            {
                "message": "a SOURCE key only sends tracking data to /v1/* (Segment's API); "
                "it cannot use GraphQL",
                "extensions": {"code": "FORBIDDEN"},
            }
        ]
    }
    assert set(run.answers) == {json.dumps(refusal, separators=(",", ":"))}
    # No customer id, of any customer, in any answer.
    answered = "\n".join(run.answers)
    assert not [name for name, id_ in planted.customers.items() if id_ in answered]
