"""Who sees computed traits: definitions for ADMIN and ANALYST, values by row scope and trait
scope for a PARTNER (PostgreSQL's policies, migration 0018), values over personal attributes
masked without pii."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import sqlalchemy as sa

from hub.access.keys import Principal, Role
from hub.access.row_security import engine_for
from tests.access_world import share_with_partners
from tests.audiences.test_traits import DEFINE
from tests.factories import T0, Factory, gid, minutes

TRAITS = [
    {"key": "web_visits", "aggregate": "COUNT", "interactions": {"channels": ["WEB"]}},
    {"key": "orders", "aggregate": "COUNT", "interactions": {"types": ["ORDER"]}},
    {
        "key": "last_email",
        "aggregate": "LAST",
        "interactions": {"types": ["ORDER"]},
        "attribute": "attributes.email",
    },
]
COMPUTED = """query($id: ID!, $keys: [String!]) { customer(id: $id) {
  computed(keys: $keys) { key value } } }"""
LIST = "query($f: CustomerFilter) { customers(filter: $f) { nodes { id } } }"
WEB_PARTNER = Principal(role=Role.PARTNER, name="web-partner", channels=frozenset({"WEB"}))


async def world(db: asyncpg.Connection, gql: Any) -> dict[str, Any]:
    f = Factory(db)
    await f.touchpoint("site", "WEB", "WEBSITE")
    await f.touchpoint("store", "PHYSICAL", "STORE")
    ana = await f.customer("Ana")
    bob = await f.customer("Bob")
    cleo = await f.customer("Cleo")
    await f.interaction(ana, "site", at=T0, attributes={"email": "ana@pii.example"})
    await f.interaction(
        ana, "site", at=T0 + minutes(1), type="ORDER", attributes={"email": "ana@pii.example"}
    )
    await f.interaction(bob, "store", at=T0, type="ORDER")
    await f.interaction(cleo, "site", at=T0)
    await share_with_partners(db, ana, bob)  # Cleo never agreed
    for trait in TRAITS:
        await gql.data(DEFINE, {"input": trait})
    return {"ana": ana, "bob": bob, "cleo": cleo}


async def test_partner_sees_values_of_its_scope_only(
    gql: Any, db: asyncpg.Connection, engine: Any, gql_as: Callable[..., Awaitable[Any]]
) -> None:
    people = await world(db, gql)
    partner = await gql_as("PARTNER", channels=["WEB"])
    ana = gid("Customer", people["ana"])
    # The control: ADMIN sees every trait of Ana.
    admin = await gql.data(COMPUTED, {"id": ana, "keys": None})
    assert admin["customer"]["computed"] == [
        {"key": "last_email", "value": "ana@pii.example"},
        {"key": "orders", "value": 1},
        {"key": "web_visits", "value": 2},
    ]
    # The partner: only the trait over WEB (the others count other channels too).
    seen = await partner.data(COMPUTED, {"id": ana, "keys": None})
    assert seen["customer"]["computed"] == [{"key": "web_visits", "value": 2}]
    error = await partner.error(COMPUTED, {"id": ana, "keys": ["orders"]})
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    listed = await partner.data(LIST, {"f": {"computed": {"key": "web_visits", "gt": 0}}})
    assert [n["id"] for n in listed["customers"]["nodes"]] == [ana]  # not Cleo (no sharing)
    error = await partner.error(LIST, {"f": {"computed": {"key": "orders", "gt": 0}}})
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    # PostgreSQL itself: the partner role reads one row (Ana's web visits) of the 5 stored.
    assert await db.fetchval("SELECT count(*) FROM customer_traits_computed") == 5
    async with engine_for(engine, WEB_PARTNER).connect() as connection:
        rows = (
            await connection.execute(
                sa.text("SELECT customer_id, trait_key FROM customer_traits_computed")
            )
        ).all()
        assert [tuple(r) for r in rows] == [(people["ana"], "web_visits")]
        keys = await connection.scalars(sa.text("SELECT key FROM computed_traits"))
        assert list(keys) == ["web_visits"]


async def test_definitions_by_role_and_masking(
    gql: Any, db: asyncpg.Connection, gql_as: Callable[..., Awaitable[Any]]
) -> None:
    people = await world(db, gql)
    listing = "{ computedTraits { key aggregate attribute interactions } }"
    analyst = await gql_as("ANALYST")
    keys = [t["key"] for t in (await analyst.data(listing))["computedTraits"]]
    assert keys == ["last_email", "orders", "web_visits"]
    for role, scopes in [("PARTNER", {"channels": ["WEB"]}), ("FRONTEND", {})]:
        client = await gql_as(role, **scopes)
        assert (await client.error(listing))["extensions"]["code"] == "FORBIDDEN"
    frontend = await gql_as("FRONTEND")
    error = await frontend.error(DEFINE, {"input": {**TRAITS[0], "key": "mine"}})
    assert error["extensions"]["code"] == "FORBIDDEN"
    error = await analyst.error('mutation { deleteComputedTrait(key: "orders") { key } }')
    assert error["extensions"]["code"] == "FORBIDDEN"
    assert await db.fetchval("SELECT count(*) FROM computed_traits") == 3
    # A value over a personal attribute: hidden whole without pii, shown with it.
    ana = gid("Customer", people["ana"])
    masked = await analyst.data(COMPUTED, {"id": ana, "keys": ["last_email", "orders"]})
    assert masked["customer"]["computed"] == [
        {"key": "last_email", "value": None},
        {"key": "orders", "value": 1},
    ]
    error = await analyst.error(
        LIST, {"f": {"computed": {"key": "last_email", "eq": "ana@pii.example"}}}
    )
    assert error["extensions"]["code"] == "FORBIDDEN"
    with_pii = await gql_as("ANALYST", pii=True)
    shown = await with_pii.data(COMPUTED, {"id": ana, "keys": ["last_email"]})
    assert shown["customer"]["computed"] == [{"key": "last_email", "value": "ana@pii.example"}]
