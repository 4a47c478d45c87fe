"""`_entities` with a representation of a type that is no entity: BAD_USER_INPUT for that item."""

from __future__ import annotations

import asyncpg

from tests.conftest import GraphQLClient
from tests.factories import Factory, gid


async def test_a_representation_that_is_no_entity_is_bad_input(
    gql: GraphQLClient, db: asyncpg.Connection
) -> None:
    customer = await Factory(db).customer("Ana")
    body = await gql(
        """query($r: [_Any!]!) { _entities(representations: $r) {
            ... on Customer { id } } }""",
        {
            "r": [
                {"__typename": "Conversation", "id": gid("Conversation", customer)},
                {"__typename": "Customer", "id": gid("Customer", customer)},
                {"__typename": "NoSuchType", "id": "x"},
            ]
        },
    )
    assert body["data"] == {"_entities": [None, {"id": gid("Customer", customer)}, None]}
    assert [(e["path"], e["extensions"]["code"], e["message"]) for e in body["errors"]] == [
        (["_entities", 0], "BAD_USER_INPUT", "'Conversation' is not an entity type"),
        (["_entities", 2], "BAD_USER_INPUT", "'NoSuchType' is not an entity type"),
    ]
