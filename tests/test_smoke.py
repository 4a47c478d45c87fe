from __future__ import annotations

from tests.conftest import GraphQLClient


async def test_channels_are_predefined(gql: GraphQLClient) -> None:
    data = await gql.data("{ channels { code name position } }")
    assert [c["code"] for c in data["channels"]] == [
        "WEB",
        "MOBILE",
        "ASSISTED",
        "SOCIAL",
        "PHYSICAL",
        "OUTBOUND",
    ]
