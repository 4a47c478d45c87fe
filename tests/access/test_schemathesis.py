"""A bounded schemathesis run in GraphQL mode against a live server: no 5xx, no code-less error.

Schemathesis loads the schema by introspection (ADMIN key, over HTTP) and generates cases for
every Query and Mutation field, valid and invalid ones (negative mode: wrong types, missing
arguments), sent with an ADMIN key and with a FRONTEND key (no pii). Its mutations write:
the run has a database of its own, emptied before (the ``db`` fixture), so nothing else sees it.
Every answer is checked by tests/authz_check.py's ``check`` without forbidden values: status
below 500, a JSON body, every error with ``extensions.code``, no INTERNAL_SERVER_ERROR.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.generation.case import Case

from hub.core.enums import IdentityKind, InteractionType, TouchpointKind
from hub.privacy.consent import ConsentPurpose
from tests.access.conftest import bearer
from tests.authz_check import Finding, check, error_codes, summary
from tests.authz_queries import hub_schema, value_node
from tests.conftest import make_key
from tests.live_server import Server

CASES = 300  # per key


@pytest.fixture(scope="module", autouse=True)
def scalars() -> None:
    """Strategies for the hub's own scalars (schemathesis knows only the built-in ones): any small
    JSON object, dates and arbitrary text as dates, entity representations of every type name
    (and one that is not an entity) with arbitrary ids."""
    text = st.text(max_size=30)
    schemathesis.graphql.scalar(
        "JSON", st.dictionaries(st.text(max_size=8), text, max_size=3).map(value_node)
    )
    schemathesis.graphql.scalar(
        "DateTime",
        st.one_of(st.datetimes(timezones=st.just(UTC)).map(datetime.isoformat), text).map(
            value_node
        ),
    )
    # The vocabulary's codes (hub.vocabulary): registered ones, and any text.
    for name, registered in (
        ("InteractionType", [t.value for t in InteractionType]),
        ("IdentityKind", [k.value for k in IdentityKind]),
        ("TouchpointKind", [k.value for k in TouchpointKind]),
        ("ConsentPurpose", [p.value for p in ConsentPurpose]),
    ):
        schemathesis.graphql.scalar(
            name, st.one_of(st.sampled_from(registered), text).map(value_node)
        )
    schemathesis.graphql.scalar(
        "_Any",
        st.fixed_dictionaries(
            {
                "__typename": st.sampled_from(
                    ["Customer", "Interaction", "Touchpoint", "Channel", "Conversation"]
                ),
                "id": text,
            }
        ).map(value_node),
    )


@pytest.fixture
async def keys(db: asyncpg.Connection, engine: Any) -> dict[str, str]:
    return {role: await make_key(engine, role) for role in ("ADMIN", "FRONTEND")}


@pytest.mark.parametrize("role", ["ADMIN", "FRONTEND"])
def test_schemathesis_finds_no_5xx_and_no_codeless_error(
    keyed_server: Server, keys: dict[str, str], role: str
) -> None:
    schema = schemathesis.graphql.from_url(
        f"{keyed_server.http_url}/graphql", headers=bearer(keys["ADMIN"]), timeout=30
    )
    operations = [result.ok() for result in schema.get_all_operations()]
    # Every root field but Federation's two (schemathesis leaves those out unless asked).
    query, mutation = hub_schema().query_type, hub_schema().mutation_type
    assert query is not None and mutation is not None
    assert len(operations) == len(query.fields) + len(mutation.fields) - 2
    cases = st.one_of(
        *[
            operation.as_strategy(generation_mode=mode)
            for operation in operations
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        ]
    )
    findings: list[Finding] = []
    sent: list[str] = []
    codes: Counter[str] = Counter()  # per answer: its error codes, or "ok" without errors

    @settings(
        max_examples=CASES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(cases)
    def probe(case: Case) -> None:
        response = case.call(base_url=keyed_server.http_url, headers=bearer(keys[role]), timeout=30)
        sent.append(case.operation.label)
        text = response.content.decode("utf-8", "replace")
        findings.extend(check(case.operation.label, str(case.body), response.status_code, text))
        codes.update(set(error_codes(text)) or {"ok"})

    probe()
    assert len(sent) == CASES
    # Both modes ran: valid documents answered with data, invalid ones refused by validation.
    assert codes["ok"] > 0 and codes["GRAPHQL_VALIDATION_FAILED"] > 0, codes
    assert not findings, f"{len(findings)} findings for {role}:\n{summary(findings)}"
