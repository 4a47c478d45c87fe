"""Compiled reads for row-scoped (PARTNER) keys: a pool per scope (hub.compiled.pools).

A partner's read is one round trip (the statement; its session is the partner role with the
key's scope from the start), and a connection never serves another scope: two partners with
different scopes, interleaved and concurrent, on one process whose LRU keeps one scope (so
every switch evicts a pool, with requests of the evicted scope still running), each get exactly
their own rows, computed independently from the raw tables.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import httpx

from hub.access.keys import Principal, Role
from hub.app import create_app
from hub.core.settings import Settings
from tests.access_world import World, build_world, share_with_partners
from tests.conftest import GraphQLClient, make_key
from tests.driver_statements import DriverStatements
from tests.factories import gid
from tests.waiting import until

LIST = (
    "query { customers(first: 20) { nodes { id interactions(first: 20) {"
    " nodes { id channel { code } } } } } }"
)
ONE = "query($id: ID!) { customer(id: $id) { id interactions(first: 20) { nodes { id } } } }"


async def expected_view(db: asyncpg.Connection, channels: set[str]) -> dict[str, Any]:
    """What a partner scoped to ``channels`` sees of LIST, recounted in Python from the raw
    tables (read as their owner): customers with a PARTNER_SHARING grant and an interaction on
    one of the channels, oldest first; their interactions on those channels, newest first."""
    sharing = {
        r["customer_id"]
        for r in await db.fetch(
            "SELECT customer_id FROM consents"
            " WHERE purpose = 'PARTNER_SHARING' AND status = 'GRANTED'"
        )
    }
    rows = await db.fetch("SELECT id, customer_id, channel_code, occurred_at FROM interactions")
    created = {
        r["id"]: r["created_at"] for r in await db.fetch("SELECT id, created_at FROM customers")
    }
    mine = [r for r in rows if r["channel_code"] in channels and r["customer_id"] in sharing]
    customers = sorted({r["customer_id"] for r in mine}, key=lambda c: (created[c], c))
    nodes = []
    for customer in customers:
        own = sorted(
            (r for r in mine if r["customer_id"] == customer),
            key=lambda r: (r["occurred_at"], r["id"]),
            reverse=True,
        )
        nodes.append(
            {
                "id": gid("Customer", customer),
                "interactions": {
                    "nodes": [
                        {"id": gid("Interaction", r["id"]), "channel": {"code": r["channel_code"]}}
                        for r in own
                    ]
                },
            }
        )
    return {"data": {"customers": {"nodes": nodes}}}


async def _world(db: asyncpg.Connection) -> World:
    world = await build_world(db)
    await share_with_partners(db, world.ana, world.bob)
    return world


async def test_a_partner_read_is_one_round_trip(
    db: asyncpg.Connection,
    gql_as: Callable[..., Awaitable[GraphQLClient]],
    count_driver_statements: DriverStatements,
) -> None:
    world = await _world(db)
    web = await expected_view(db, {"WEB"})
    # Negative control: the scope matters (the owner sees more than the partner).
    assert web != await expected_view(db, {"WEB", "MOBILE", "PHYSICAL"})
    partner = await gql_as("PARTNER", channels=["WEB"])
    frontend = await gql_as("FRONTEND", pii=True)
    await partner(LIST)  # warm: the key cached, the pool's connection opened, types known
    await frontend(LIST)
    for client, expected in ((partner, web), (partner, web), (frontend, None)):
        count_driver_statements.clear()
        body = await client(LIST)
        trips = count_driver_statements.round_trips
        assert len(trips) == 1, count_driver_statements.report()
        assert trips[0].lstrip().startswith("SELECT"), trips
        if expected is not None:
            assert body == expected
    # A customer out of scope: the compiled statement says "missing" (one trip), the resolvers
    # answer NOT_FOUND exactly as for an id that does not exist.
    body = await partner(ONE, {"id": gid("Customer", world.bob)})
    assert [e["extensions"]["code"] for e in body["errors"]] == ["NOT_FOUND"]


async def test_scoped_sessions_are_the_partners_for_life(settings: Settings) -> None:
    application = create_app(settings.model_copy(update={"migrate_on_start": False}))
    async with application.router.lifespan_context(application):
        scoped = application.state.hub.running.compiled.scoped
        tp = uuid.UUID("00000000-0000-4000-8000-0000000000aa")
        principal = Principal(
            role=Role.PARTNER,
            name="p",
            channels=frozenset({"WEB", "MOBILE"}),
            touchpoints=frozenset({tp}),
        )
        async with scoped.connection(principal) as connection:
            session = "SELECT current_user, current_setting('hub.channels'),"
            session += " current_setting('hub.touchpoints'), current_setting('TimeZone')"
            expected = ("hub_partner", "MOBILE,WEB", str(tp), "UTC")
            assert tuple(await connection.fetchrow(session)) == expected
            # RESET returns to the session's start: still the partner with its scope.
            await connection.execute("RESET ROLE; RESET hub.channels; RESET ALL")
            assert tuple(await connection.fetchrow(session)) == expected
        admin = Principal(role=Role.ADMIN, name="a", pii=True)
        try:
            async with scoped.connection(admin):
                raise AssertionError("an unscoped principal got a scoped connection")
        except ValueError:
            pass


async def test_interleaved_partners_never_see_each_others_rows(
    db: asyncpg.Connection, settings: Settings, engine: Any
) -> None:
    await _world(db)
    scopes = {"web": {"WEB"}, "store": {"PHYSICAL"}, "both": {"WEB", "PHYSICAL"}}
    expected = {name: await expected_view(db, channels) for name, channels in scopes.items()}
    # Negative control: the three answers differ, so a leak cannot go unnoticed.
    assert len({repr(v) for v in expected.values()}) == 3
    keys = {
        name: await make_key(engine, "PARTNER", channels=sorted(channels))
        for name, channels in scopes.items()
    }
    # One scope kept: every change of scope evicts the pool of the previous one.
    application = create_app(
        settings.model_copy(update={"migrate_on_start": False, "partner_pools": 1})
    )
    async with application.router.lifespan_context(application):
        metrics = application.state.hub.metrics.registry

        def compiled() -> float:
            sample = metrics.get_sample_value(
                "hub_graphql_execution_path_total", {"path": "compiled"}
            )
            return sample or 0.0

        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as http:

            async def ask(name: str) -> tuple[str, Any]:
                headers = {"Authorization": f"Bearer {keys[name]}"}
                response = await http.post("/graphql", json={"query": LIST}, headers=headers)
                assert response.status_code == 200, response.text
                return name, response.json()

            order = ["web", "store", "both"] * 3
            before = compiled()
            for name in order:  # one at a time: each evicts the previous scope's pool
                assert await ask(name) == (name, expected[name])
            # Concurrent and interleaved: pools evicted while their requests still run.
            answers = await asyncio.gather(*(ask(name) for name in order * 4))
            for name, body in answers:
                assert body == expected[name], name
            assert compiled() - before == len(order) * 5  # none fell back to the resolvers
        scoped = application.state.hub.running.compiled.scoped
        assert len(scoped.entries) == 1
        await until(lambda: not scoped.closing, "evicted pools closed")
