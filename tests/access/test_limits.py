"""Hardening: every limit fails with a clear message and code before any data is read, and
ordinary queries pass."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import GraphQLClient, StatementCounter, make_key


def _only_key_lookups(counter: StatementCounter) -> None:
    """Nothing may touch the data before the limits said yes (keys are checked on their own
    small pool, which this counter does not see)."""
    assert counter.count == 0, counter.report()


async def test_depth_limit(gql: GraphQLClient, count_statements: StatementCounter) -> None:
    nested = "id"
    for _ in range(8):
        nested = f"conversations {{ customer {{ {nested} }} }}"
    error = await gql.error(f"{{ customers {{ nodes {{ {nested} }} }} }}")
    assert error["extensions"]["code"] == "QUERY_TOO_DEEP"
    assert error["extensions"]["maxDepth"] == 15
    _only_key_lookups(count_statements)
    await gql.data("{ customers { nodes { conversations { customer { id } } } } }")


async def test_alias_limit(gql: GraphQLClient, count_statements: StatementCounter) -> None:
    many = " ".join(f"a{i}: channels {{ code }}" for i in range(31))
    error = await gql.error(f"{{ {many} }}")
    assert error["extensions"]["code"] == "TOO_MANY_ALIASES"
    assert "31 aliases" in error["message"]
    _only_key_lookups(count_statements)
    few = " ".join(f"a{i}: channels {{ code }}" for i in range(30))
    await gql.data(f"{{ {few} }}")


async def test_token_limit(gql: GraphQLClient) -> None:
    error = await gql.error("{ " + "__typename " * 5_001 + "}")
    assert error["extensions"]["code"] == "TOO_MANY_TOKENS"
    await gql.data("{ " + "__typename " * 100 + "}")


async def test_cost_limit_counts_page_sizes(
    gql: GraphQLClient, count_statements: StatementCounter
) -> None:
    query = """query($n: Int) { customers(first: $n) { nodes { interactions(first: $n) {
        nodes { touchpoint { channel { touchpoints { name } } } } } } } }"""
    error = await gql.error(query, {"n": 100})
    assert error["extensions"]["code"] == "QUERY_TOO_COMPLEX"
    assert error["extensions"]["cost"] > error["extensions"]["maxCost"]
    _only_key_lookups(count_statements)
    await gql.data(query, {"n": 10})


async def test_page_size_limit(gql: GraphQLClient) -> None:
    error = await gql.error("{ customers(first: 101) { totalCount } }")
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"]["maxPageSize"] == 100


async def test_body_size_limit(client: httpx.AsyncClient) -> None:
    padding = " " * 1_000_001
    response = await client.post(
        "/graphql",
        content=f'{{"query": "{{ __typename }}{padding}"}}',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"


async def test_csrf_rules(client: httpx.AsyncClient) -> None:
    plain = await client.post(
        "/graphql", content='{"query": "{ __typename }"}', headers={"Content-Type": "text/plain"}
    )
    assert plain.status_code == 415
    assert plain.json()["errors"][0]["extensions"]["code"] == "UNSUPPORTED_MEDIA_TYPE"
    form = await client.post("/graphql", data={"query": "{ __typename }"})
    assert form.status_code == 415
    assert form.json()["errors"][0]["extensions"]["code"] == "UNSUPPORTED_MEDIA_TYPE"
    bare_get = await client.get("/graphql", params={"query": "{ __typename }"})
    assert bare_get.status_code == 403
    assert bare_get.json()["errors"][0]["extensions"]["code"] == "CSRF_HEADER_REQUIRED"
    get = await client.get(
        "/graphql", params={"query": "{ __typename }"}, headers={"X-Hub-Request": "1"}
    )
    assert get.status_code == 200 and get.json()["data"] == {"__typename": "Query"}
    mutation = await client.get(
        "/graphql",
        params={"query": 'mutation { revokeApiKey(name: "x") { name } }'},
        headers={"X-Hub-Request": "1"},
    )
    assert mutation.status_code == 405  # mutations never by GET (the spec's status)
    assert mutation.json()["errors"][0]["extensions"]["code"] == "METHOD_NOT_ALLOWED"


async def test_get_queries_can_be_switched_off(app_with: Any) -> None:
    async with app_with(allow_get_queries=False) as (http, engine):
        key = await make_key(engine, "ADMIN")
        response = await http.get(
            "/graphql",
            params={"query": "{ __typename }"},
            headers={"X-Hub-Request": "1", "Authorization": f"Bearer {key}"},
        )
    assert response.status_code == 405
    assert response.json()["errors"][0]["extensions"] == {"code": "METHOD_NOT_ALLOWED"}


async def test_operation_timeout(app_with: Any) -> None:
    async with app_with(operation_timeout_seconds=1e-6) as (http, engine):
        key = await make_key(engine, "ADMIN")
        response = await http.post(
            "/graphql",
            json={"query": "{ customers { totalCount } }"},
            headers={"Authorization": f"Bearer {key}"},
        )
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "TIMEOUT"
    assert "longer than" in error["message"]


async def test_rate_limit_per_key(app_with: Any) -> None:
    async with app_with(rate_limit_burst=2, rate_limit_per_second=0.01) as (http, engine):
        first = {"Authorization": f"Bearer {await make_key(engine, 'ANALYST')}"}
        other = {"Authorization": f"Bearer {await make_key(engine, 'ANALYST')}"}
        body = {"query": "{ __typename }"}
        statuses = [
            (await http.post("/graphql", json=body, headers=first)).status_code for _ in range(3)
        ]
        assert statuses == [200, 200, 429]
        limited = await http.post("/graphql", json=body, headers=first)
        assert limited.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
        assert int(limited.headers["Retry-After"]) >= 1
        # Each key has its own bucket.
        assert (await http.post("/graphql", json=body, headers=other)).status_code == 200


async def test_bad_input_keeps_its_message_and_code(gql: GraphQLClient) -> None:
    error = await gql.error('{ customer(id: "not-an-id") { id } }')
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "Traceback" not in str(error)


async def test_graphiql_only_for_admin_analyst_or_dev_mode(
    client: httpx.AsyncClient, app_with: Any
) -> None:
    html = {"Accept": "text/html"}
    page = await client.get("/graphql", headers=html)  # the client's key is ADMIN's
    assert page.status_code == 200 and "graphiql" in page.text.lower()
    async with app_with() as (http, engine):
        # Without a key the page shell is served (a browser cannot send one when navigating),
        # but nothing it would ask for is: introspection needs an ADMIN or ANALYST key.
        shell = await http.get("/graphql", headers=html)
        assert shell.status_code == 200 and "graphiql" in shell.text.lower()
        schema_query = {"query": "{ __schema { queryType { name } } }"}
        anonymous = await http.post("/graphql", json=schema_query)
        assert anonymous.status_code == 401
        assert anonymous.json()["errors"][0]["extensions"] == {"code": "UNAUTHENTICATED"}
        partner = await make_key(engine, "PARTNER", channels=["WEB"])
        refused = await http.get("/graphql", headers={**html, "Authorization": f"Bearer {partner}"})
        assert refused.status_code == 403
        assert refused.json()["errors"][0]["extensions"] == {"code": "FORBIDDEN"}
        analyst = await make_key(engine, "ANALYST")
        allowed = await http.get("/graphql", headers={**html, "Authorization": f"Bearer {analyst}"})
        assert allowed.status_code == 200
        assert allowed.text == page.text  # the same explorer page as the ADMIN's
    async with app_with(dev_mode=True) as (http, _):
        dev = await http.get("/graphql", headers=html)
        assert dev.status_code == 200
        assert dev.text == page.text


async def test_key_check_without_database_is_503_without_internals(app_with: Any) -> None:
    async with app_with(database_url="postgresql://postgres@127.0.0.1:1/nowhere") as (http, _):
        response = await http.post(
            "/graphql",
            json={"query": "{ __typename }"},
            headers={"Authorization": "Bearer hub_0123456789ab_" + "x" * 43},
        )
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    body = response.json()
    assert body["errors"][0]["extensions"] == {"code": "SERVICE_UNAVAILABLE", "retryable": True}
    assert "127.0.0.1" not in response.text and "Traceback" not in response.text
