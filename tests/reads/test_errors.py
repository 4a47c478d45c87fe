"""Bad input answers with a GraphQL error: a clear message and ``extensions.code``, never a 500,
a stack trace or SQL text."""

from __future__ import annotations

import base64
import logging
import uuid
from typing import Any

import asyncpg
import pytest

from tests.conftest import GraphQLClient
from tests.factories import T0, Factory, gid, minutes, naive, zulu


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


async def expect(
    gql: GraphQLClient,
    query: str,
    code: str,
    says: str,
    variables: dict[str, Any] | None = None,
) -> dict[str, Any]:
    error = await gql.error(query, variables)
    assert error["extensions"]["code"] == code, error
    assert says.lower() in error["message"].lower(), error
    for leak in ("Traceback", "sqlalchemy", "asyncpg", "SELECT", 'File "'):
        assert leak not in error["message"], error
    return error


@pytest.fixture
async def some(db: asyncpg.Connection) -> Factory:
    f = Factory(db)
    await f.touchpoint("Shop", "WEB", "WEBSITE")
    for n in range(3):
        cid = await f.customer(f"C{n}", created_at=T0 + minutes(n))
        await f.interaction(cid, "Shop", at=T0 + minutes(n))
    return f


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("{ customer(id: $id) { id } }", "no customer"),
        ("{ node(id: $id) { id } }", "no object"),
    ],
)
async def test_unknown_customer_is_not_found(
    gql: GraphQLClient, some: Factory, query: str, says: str
) -> None:
    full = "query ($id: ID!) " + query
    error = await expect(gql, full, "NOT_FOUND", says, {"id": gid("Customer", uuid.uuid4())})
    assert error["path"] == [query.split("(")[0].strip("{ ")]


@pytest.mark.parametrize(
    ("field", "type_name"),
    [
        ("touchpoint", "Touchpoint"),
        ("interaction", "Interaction"),
        ("conversation", "Conversation"),
    ],
)
async def test_unknown_ids_are_not_found(
    gql: GraphQLClient, some: Factory, field: str, type_name: str
) -> None:
    await expect(
        gql,
        f"query ($id: ID!) {{ {field}(id: $id) {{ id }} }}",
        "NOT_FOUND",
        f"no {field}",
        {"id": gid(type_name, uuid.uuid4())},
    )


@pytest.mark.parametrize(
    ("bad_id", "says"),
    [
        ("not an id", "not a valid id"),
        ("%%%", "not a valid id"),
        ("", "not a valid id"),
        (b64("Customer:"), "not a valid id"),
        (b64("Customer:42"), "not a valid id"),
        # A fixed uuid: test ids must be the same in every pytest-xdist worker.
        (
            b64("Touchpoint:6f1c2a4e-3b5d-4e7f-9a1b-2c3d4e5f6a7b"),
            "is a Touchpoint id, not a Customer id",
        ),
    ],
)
async def test_malformed_or_foreign_ids(
    gql: GraphQLClient, some: Factory, bad_id: str, says: str
) -> None:
    await expect(
        gql, "query ($id: ID!) { customer(id: $id) { id } }", "BAD_USER_INPUT", says, {"id": bad_id}
    )


async def test_node_refuses_ids_of_no_type(gql: GraphQLClient, some: Factory) -> None:
    query = "query ($id: ID!) { node(id: $id) { id } }"
    await expect(gql, query, "BAD_USER_INPUT", "not the id of any object", {"id": b64("Foo:1")})
    await expect(gql, query, "BAD_USER_INPUT", "not a valid id", {"id": b64("Customer:x")})
    await expect(gql, query, "BAD_USER_INPUT", "not a valid id", {"id": "@@"})


async def test_wrong_type_in_interaction_filter(gql: GraphQLClient, some: Factory) -> None:
    await expect(
        gql,
        "query ($f: InteractionFilter) { interactions(filter: $f) { totalCount } }",
        "BAD_USER_INPUT",
        "not a Touchpoint id",
        {"f": {"touchpointIds": [gid("Customer", uuid.uuid4())]}},
    )


async def cursor_of(gql: GraphQLClient, query: str, path: list[str]) -> str:
    data = await gql.data(query)
    for part in path:
        data = data[part]
    cursor: str = data["pageInfo"]["endCursor"]
    assert cursor
    return cursor


async def test_malformed_cursors(gql: GraphQLClient, some: Factory) -> None:
    for field in ("customers", "touchpoints", "interactions"):
        query = f"query ($c: String) {{ {field}(first: 1, after: $c) {{ totalCount }} }}"
        for cursor in ("garbage!", b64("{}"), b64('["x"]'), b64("[1, 2]"), b64("not json")):
            await expect(gql, query, "BAD_USER_INPUT", "cursor", {"c": cursor})


async def test_cursor_of_another_ordering_or_list(gql: GraphQLClient, some: Factory) -> None:
    created = await cursor_of(
        gql, "{ customers(first: 1) { pageInfo { endCursor } } }", ["customers"]
    )
    by_name = "query ($c: String) { customers(first: 1, after: $c, orderBy: [DISPLAY_NAME_ASC])"
    by_name += " { totalCount } }"
    error = await expect(gql, by_name, "BAD_USER_INPUT", "another list or ordering", {"c": created})
    assert "page with the cursors of this one" in error["message"]
    descending = "query ($c: String) { customers(last: 1, before: $c, orderBy: [CREATED_AT_DESC])"
    descending += " { totalCount } }"
    await expect(gql, descending, "BAD_USER_INPUT", "another list or ordering", {"c": created})
    touchpoint = await cursor_of(
        gql, "{ touchpoints(first: 1) { pageInfo { endCursor } } }", ["touchpoints"]
    )
    await expect(gql, by_name, "BAD_USER_INPUT", "another list or ordering", {"c": touchpoint})
    newest = await cursor_of(
        gql, "{ interactions(first: 1) { pageInfo { endCursor } } }", ["interactions"]
    )
    oldest = "query ($c: String) { interactions(first: 1, after: $c, orderBy: OCCURRED_AT_ASC)"
    oldest += " { totalCount } }"
    await expect(gql, oldest, "BAD_USER_INPUT", "another list or ordering", {"c": newest})
    await expect(gql, by_name, "BAD_USER_INPUT", "another list or ordering", {"c": newest})


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        ("first: 101", "at most 100 items per page"),
        ("last: 1000", "at most 100 items per page"),
        ("first: -1", "must not be negative"),
        ("last: -5", "must not be negative"),
        ("first: 1, last: 1", "either `first` or `last`"),
        ('after: "x", before: "y"', "either `after` or `before`"),
        ('first: 1, before: "x"', "forwards with `first`/`after`"),
        ('last: 1, after: "x"', "forwards with `first`/`after`"),
        ("orderBy: [CREATED_AT_ASC, CREATED_AT_DESC]", "repeats an ordering"),
    ],
)
async def test_bad_paging_arguments(
    gql: GraphQLClient, some: Factory, arguments: str, says: str
) -> None:
    error = await expect(
        gql, f"{{ customers({arguments}) {{ totalCount }} }}", "BAD_USER_INPUT", says
    )
    if "100" in says:
        assert error["extensions"]["maxPageSize"] == 100


async def test_page_size_limits_on_nested_and_other_lists(
    gql: GraphQLClient, some: Factory
) -> None:
    await expect(
        gql,
        "{ customers(first: 2) { nodes { interactions(first: 500) { totalCount } } } }",
        "BAD_USER_INPUT",
        "at most 100",
    )
    await expect(gql, "{ touchpoints(last: 101) { totalCount } }", "BAD_USER_INPUT", "at most 100")
    await expect(gql, "{ interactions(first: -1) { totalCount } }", "BAD_USER_INPUT", "negative")


@pytest.mark.parametrize(
    ("filter_", "says"),
    [
        ({"identity": {"kind": "EMAIL", "value": "not-an-email"}}, "not a valid e-mail"),
        ({"identity": {"kind": "PHONE", "value": "12"}}, "not a valid phone number"),
        ({"identity": {"kind": "SOCIAL_HANDLE", "value": "ana"}}, "not a social handle"),
        ({"identity": {"kind": "CRM_ID", "value": "   "}}, "not an identifier"),
        ({"trait": {"key": "", "eq": 1}}, "non-empty `key`"),
        ({"or": [{"and": [{"not": {"not": {"not": {"not": {"not": {"not": {"not": {}}}}}}}}]}]},
         "at most 8 levels"),
    ],
)  # fmt: skip
async def test_invalid_customer_filters(
    gql: GraphQLClient, some: Factory, filter_: dict[str, Any], says: str
) -> None:
    await expect(
        gql,
        "query ($f: CustomerFilter) { customers(filter: $f) { totalCount } }",
        "BAD_USER_INPUT",
        says,
        {"f": filter_},
    )


async def test_invalid_interaction_time_range(gql: GraphQLClient, some: Factory) -> None:
    for after, before in ((T0, T0), (T0 + minutes(1), T0)):
        await expect(
            gql,
            "query ($f: InteractionFilter) { interactions(filter: $f) { totalCount } }",
            "BAD_USER_INPUT",
            "`occurredAfter` must be earlier than `occurredBefore`",
            {"f": {"occurredAfter": after.isoformat(), "occurredBefore": before.isoformat()}},
        )


async def test_invalid_identity_lookup(gql: GraphQLClient, some: Factory) -> None:
    await expect(
        gql,
        '{ customerByIdentity(kind: EMAIL, value: "ana@") { id } }',
        "BAD_USER_INPUT",
        "not a valid e-mail address",
    )


@pytest.mark.parametrize(
    ("query", "variables", "code", "says"),
    [
        ("{ customers(first: 1 { totalCount } }", None, "GRAPHQL_PARSE_FAILED", "Syntax Error"),
        ("{ customerz { totalCount } }", None, "GRAPHQL_VALIDATION_FAILED", "Cannot query field"),
        (
            "{ customers(orderBy: [NAME_ASC]) { totalCount } }",
            None,
            "GRAPHQL_VALIDATION_FAILED",
            "does not exist in 'CustomerOrderBy'",
        ),
        ("{ channel(code: TV) { name } }", None, "GRAPHQL_VALIDATION_FAILED", "TV"),
        (
            "query ($c: ChannelCode!) { channel(code: $c) { name } }",
            {"c": "TV"},
            "BAD_USER_INPUT",
            "Variable '$c'",
        ),
        (
            "query ($n: Int) { customers(first: $n) { totalCount } }",
            {"n": "ten"},
            "BAD_USER_INPUT",
            "Int cannot represent",
        ),
        (
            "query ($n: Int!) { customers(first: $n) { totalCount } }",
            {},
            "BAD_USER_INPUT",
            "to be provided",
        ),
        (
            "query ($f: CustomerFilter) { customers(filter: $f) { totalCount } }",
            {"f": {"stage": {"eq": "SHOPPING"}}},
            "BAD_USER_INPUT",
            "Variable '$f'",
        ),
        ('{ customers(first: "ten") { totalCount } }', None, "GRAPHQL_VALIDATION_FAILED", "Int"),
    ],
)
async def test_errors_from_graphql_core_carry_a_code(
    gql: GraphQLClient,
    query: str,
    variables: dict[str, Any] | None,
    code: str,
    says: str,
) -> None:
    await expect(gql, query, code, says, variables)


async def test_unexpected_server_errors_are_masked(
    gql: GraphQLClient, db: asyncpg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    # A row the code cannot represent (a kind that is not even a vocabulary code) makes the
    # resolver raise an exception no one planned for: the client sees a generic message, the log
    # the details.
    await Factory(db).touchpoint("Hologram", "WEB", "holo gram")
    body = await gql("{ touchpoints { nodes { name kind } } }")
    assert body["data"] is None
    assert body["errors"] == [
        {
            "message": "Unexpected error.",
            # Raised where the kind is serialised (hub.schema.enums), so the path names it.
            "locations": [{"line": 1, "column": 30}],
            "path": ["touchpoints", "nodes", 0, "kind"],
            "extensions": {"code": "INTERNAL_SERVER_ERROR"},
        }
    ]
    assert "holo gram" not in str(body) and "ValueError" not in str(body)
    # The operator gets the details, once.
    logged = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(logged) == 1 and logged[0].name == "hub.errors"
    assert logged[0].exc_info and "holo gram" in str(logged[0].exc_info[1])


async def test_client_errors_are_not_logged_as_errors(
    gql: GraphQLClient, some: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    await gql.error('{ customers(after: "nonsense") { totalCount } }')
    await gql.error("{ customerz }")
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_federation_representation_with_a_bad_key(gql: GraphQLClient) -> None:
    query = "query ($r: [_Any!]!) { _entities(representations: $r) { __typename } }"
    await expect(
        gql,
        query,
        "BAD_USER_INPUT",
        "not a channel code",
        {"r": [{"__typename": "Channel", "code": "TV"}]},
    )
    await expect(
        gql,
        query,
        "BAD_USER_INPUT",
        "not a valid id",
        {"r": [{"__typename": "Customer", "id": "??"}]},
    )


async def test_times_without_offset_are_utc(gql: GraphQLClient, some: Factory) -> None:
    query = "query ($f: InteractionFilter) { interactions(filter: $f) { totalCount } }"
    window = {"occurredAfter": naive(T0 + minutes(1)), "occurredBefore": zulu(T0 + minutes(60))}
    data = await gql.data(query, {"f": window})
    assert data["interactions"]["totalCount"] == 2  # at T0 + 1 and T0 + 2 minutes
    window = {"occurredAfter": naive(T0 + minutes(60)), "occurredBefore": zulu(T0 + minutes(60))}
    await expect(gql, query, "BAD_USER_INPUT", "must be earlier", {"f": window})
