"""``DocumentLimits.within`` (the compiled read path's per-request limits check) gives exactly
the verdict of validating the document with ``limits_rule`` and ``input_limits_rule`` and the
request's variables, while walking each document once per distinct page size."""

from __future__ import annotations

from typing import Any

import pytest
from graphql import parse, validate

from hub.access.inputs import input_limits_rule
from hub.access.limits import limits_rule
from hub.access.request_limits import (
    CACHED_TEXT_CHARS,
    DocumentLimits,
    limits_by_text,
    size_variables,
)
from hub.core.settings import Settings
from hub.graphql import schema

SETTINGS = Settings(
    database_url="postgresql://unused@127.0.0.1/unused",
    max_query_cost=800,
    max_query_depth=6,
    max_aliases=3,
    max_list_length=3,
    max_filter_clauses=3,
)
SCHEMA = schema._schema

PAGED = """query($n: Int, $m: Int, $f: CustomerFilter) {
  customers(first: $n, filter: $f) { nodes { id interactions(first: $m) { nodes { id } } } } }"""
FRAGMENT = """query($id: ID!, $m: Int = 5) { customer(id: $id) { ...C } }
fragment C on Customer { id interactions(first: $m) { nodes { id summary } } }"""
LITERAL_NUL = """query($n: Int) {
  customers(first: $n, filter: {displayName: {eq: "a\\u0000b"}}) { nodes { id } } }"""
DEEP = """{ customers { nodes { conversations { customer { conversations { customer {
  conversations { customer { id } } } } } } } } }"""
ALIASES = "{ a: channels { code } b: channels { code } c: channels { code } d: channels { code } }"
DEFAULT_TOO_LONG = """query($f: CustomerFilter = {or: [{displayName: {eq: "a"}},
  {displayName: {eq: "b"}}, {displayName: {eq: "c"}}, {displayName: {eq: "d"}}]}) {
  customers(first: 1, filter: $f) { nodes { id } } }"""
TWO_OPERATIONS = """query A($n: Int) { customers(first: $n) { nodes { id } } }
query B($s: String!) { customerByIdentity(kind: EMAIL, value: $s) { id } }"""


def wide(clauses: int) -> dict[str, Any]:
    return {"or": [{"displayName": {"eq": f"n{k}"}} for k in range(clauses)]}


CASES: list[tuple[str, dict[str, Any]]] = [
    (PAGED, {}),
    (PAGED, {"n": 2, "m": 2}),
    (PAGED, {"n": 100, "m": 100}),  # cost 20,301: over 800
    (PAGED, {"n": 10, "m": 30}),  # cost 631
    (PAGED, {"n": 19, "m": 19}),  # cost 780: the last size within
    (PAGED, {"n": 20, "m": 20}),  # cost 861, as with the default size (20)
    (PAGED, {"n": -1, "m": 2}),  # a negative size counts as the default
    (PAGED, {"n": "x", "m": True}),
    (PAGED, {"n": 2, "f": wide(2)}),
    (PAGED, {"n": 2, "f": wide(5)}),  # FILTER_TOO_WIDE, a variable's value
    (PAGED, {"n": 2, "f": {"displayName": {"eq": "nul\x00"}}}),  # unstorable text
    (FRAGMENT, {"id": "abc"}),
    (FRAGMENT, {"id": "abc", "m": 100}),
    (FRAGMENT, {"id": "a\ud800"}),
    (LITERAL_NUL, {"n": 1}),
    (DEEP, {}),
    (ALIASES, {}),
    (DEFAULT_TOO_LONG, {}),
    (DEFAULT_TOO_LONG, {"f": wide(1)}),
    (TWO_OPERATIONS, {"n": 1, "s": "ok"}),
    (TWO_OPERATIONS, {"n": 1, "s": "x\x00"}),
]


def reference(query: str, variables: dict[str, Any]) -> bool:
    """The verdict of the validation the resolver path runs."""
    rules = [limits_rule(SETTINGS, variables), input_limits_rule(SETTINGS, variables)]
    return not validate(SCHEMA, parse(query), rules)


@pytest.mark.parametrize(("query", "variables"), CASES)
def test_the_verdict_is_the_validations(query: str, variables: dict[str, Any]) -> None:
    document = parse(query)
    assert not validate(SCHEMA, document)
    limits = DocumentLimits(SCHEMA, document, SETTINGS)
    assert limits.within(variables) is reference(query, variables)
    assert limits.within(variables) is reference(query, variables)  # from the cache now
    assert limits.walks == 1


def test_the_corpus_has_both_verdicts() -> None:
    verdicts = [reference(query, variables) for query, variables in CASES]
    assert verdicts.count(True) == 10
    assert verdicts.count(False) == len(CASES) - 10


def test_one_document_many_requests() -> None:
    """One DocumentLimits per document, as the compiled path keeps it: each distinct page size
    walks once, every variable value is checked every time."""
    limits = DocumentLimits(SCHEMA, parse(PAGED), SETTINGS)
    requests = [case for query, case in CASES if query == PAGED] * 2
    for variables in requests:
        assert limits.within(variables) is reference(PAGED, variables), variables
    distinct_sizes = {
        tuple(v if isinstance(v, int) and v >= 0 else None for v in (r.get("m"), r.get("n")))
        for r in requests
    }
    assert limits.walks == len(distinct_sizes) == 9


def test_size_variables() -> None:
    assert size_variables(parse(PAGED)) == ("m", "n")
    assert size_variables(parse(FRAGMENT)) == ("m",)
    assert size_variables(parse(LITERAL_NUL)) == ("n",)
    assert size_variables(parse(DEEP)) == ()


def test_the_resolver_path_keeps_them_by_text_and_settings() -> None:
    first = limits_by_text(SCHEMA, parse(PAGED), PAGED, SETTINGS)
    assert first is not None
    # Another parse of the same text, the same settings: the same walks.
    assert limits_by_text(SCHEMA, parse(PAGED), PAGED, SETTINGS) is first
    other = SETTINGS.model_copy(update={"max_query_cost": 20_000})
    second = limits_by_text(SCHEMA, parse(PAGED), PAGED, other)
    assert second is not None and second is not first
    variables = {"n": 100, "m": 100}  # cost 20,301
    assert first.within(variables) is reference(PAGED, variables) is False
    assert second.within({"n": 10, "m": 30}) is True
    padded = PAGED + " " * CACHED_TEXT_CHARS
    assert limits_by_text(SCHEMA, parse(padded), padded, SETTINGS) is None
    assert limits_by_text(SCHEMA, parse(PAGED), None, SETTINGS) is None
