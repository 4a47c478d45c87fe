"""Row security (migration 0013, hub.access.row_security): PostgreSQL is the enforcer of the
partner scope. A PARTNER key scoped to WEB sees Ana (WEB, sharing) only: not Bob (PHYSICAL), not
Cleo (WEB but no PARTNER_SHARING consent), and out-of-scope ids answer exactly like ids that do
not exist, on every path that used to leak."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from hub.access.keys import Principal, Role
from hub.access.row_security import PARTNER_ROLE, engine_for
from hub.db.engine import sqlalchemy_url
from tests.access_world import World, build_world, share_with_partners
from tests.conftest import GraphQLClient
from tests.factories import T0, Factory, gid, minutes
from tests.waiting import loop_steps

GqlAs = Callable[..., Awaitable[GraphQLClient]]
WEB_PARTNER = Principal(role=Role.PARTNER, name="web-partner", channels=frozenset({"WEB"}))
NOWHERE = uuid.UUID("00000000-0000-4000-8000-000000000000")


@dataclass
class Scene:
    world: World
    cleo: uuid.UUID  # a WEB interaction, but no PARTNER_SHARING consent
    cleo_web: uuid.UUID


def world_factory(db: asyncpg.Connection, world: World) -> Factory:
    f = Factory(db)
    f.touchpoints.update(site=world.site, app=world.app, store=world.store)
    return f


@pytest.fixture
async def scene(db: asyncpg.Connection) -> Scene:
    world = await build_world(db)
    await share_with_partners(db, world.ana, world.bob)
    f = world_factory(db, world)
    cleo = await f.customer("Cleo Private", identities=[("EMAIL", "cleo@example.com")])
    cleo_web = await f.interaction(cleo, "site", at=T0 + minutes(2), summary="Cleo browsed")
    return Scene(world, cleo, cleo_web)


@pytest.fixture
async def partner(gql_as: GqlAs) -> GraphQLClient:
    return await gql_as("PARTNER", channels=["WEB"])


@pytest.fixture
async def one_connection(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine with exactly one pooled connection: every checkout is the same connection."""
    engine = create_async_engine(sqlalchemy_url(database_url), pool_size=1, max_overflow=0)
    try:
        yield engine
    finally:
        await engine.dispose()


async def _counts(engine: AsyncEngine) -> dict[str, int]:
    tables = ["customers", "identities", "interactions", "conversations", "consents"]
    async with engine.connect() as connection:
        return {
            table: int(await connection.scalar(sa.text(f"SELECT count(*) FROM {table}")) or 0)
            for table in tables
        }


# ---- PostgreSQL is the enforcer ----


async def test_a_raw_query_on_the_partner_engine_sees_exactly_its_rows(
    engine: AsyncEngine, scene: Scene
) -> None:
    # No WHERE clause at all: only row security can filter.
    assert await _counts(engine_for(engine, WEB_PARTNER)) == {
        "customers": 1,  # Ana
        "identities": 2,  # Ana's email and phone
        "interactions": 1,  # Ana's WEB visit (Cleo's does not share)
        "conversations": 1,  # Ana's thread
        "consents": 1,  # Ana's PARTNER_SHARING
    }
    async with engine_for(engine, WEB_PARTNER).connect() as connection:
        ids = list(await connection.scalars(sa.text("SELECT id FROM customers")))
    assert ids == [scene.world.ana]
    # The login (the tables' owner) is not restricted at all.
    assert await _counts(engine) == {
        "customers": 3,
        "identities": 4,
        "interactions": 4,
        "conversations": 2,
        "consents": 2,
    }


async def test_the_partner_view_holds_exactly_the_customers_the_partner_sees(
    engine: AsyncEngine, scene: Scene
) -> None:
    # The policies read it with its owner's rights: granting it must reveal no one else — not
    # Cleo (no sharing consent), not Bob (sharing, but nothing on WEB).
    async with engine_for(engine, WEB_PARTNER).connect() as connection:
        ids = list(
            await connection.scalars(sa.text("SELECT customer_id FROM hub_partner_customers"))
        )
    assert ids == [scene.world.ana]


async def test_no_partner_policy_calls_a_function_with_its_owners_rights(
    engine: AsyncEngine,
) -> None:
    # A SECURITY DEFINER function in a policy is called once per row scanned (PostgreSQL cannot
    # inline it: a partner read cost 3x the owner's), and any role may call it to ask about any
    # customer. The rules live in the policies and the owner-rights view instead.
    async with engine.connect() as connection:
        trees = list(await connection.scalars(sa.text("SELECT polqual::text FROM pg_policy")))
        called = {int(oid) for tree in trees for oid in re.findall(r":funcid (\d+)", tree)}
        definers = list(
            await connection.scalars(
                sa.text("SELECT proname FROM pg_proc WHERE oid = ANY(:oids) AND prosecdef"),
                {"oids": sorted(called)},
            )
        )
    assert trees and called  # the policies were read (hub_in_scope is called in some)
    assert definers == []


async def test_the_partner_view_reads_with_its_owners_rights(engine: AsyncEngine) -> None:
    # The policies rely on it: owned by the tables' owner (who row security does not restrict),
    # not security_invoker, the tables not FORCEd. Otherwise a partner read recurses or sees
    # nothing.
    async with engine.connect() as connection:
        view = (
            await connection.execute(
                sa.text(
                    "SELECT c.relowner = t.relowner AS same_owner, c.reloptions"
                    " FROM pg_class c, pg_class t"
                    " WHERE c.oid = 'hub_partner_customers'::regclass"
                    " AND t.oid = 'consents'::regclass"
                )
            )
        ).one()
        forced = list(
            await connection.scalars(
                sa.text("SELECT relname FROM pg_class WHERE relforcerowsecurity")
            )
        )
    assert view.same_owner
    assert view.reloptions == ["security_barrier=true"]
    assert forced == []


async def test_every_partner_table_has_exactly_one_policy_for_partners(
    engine: AsyncEngine,
) -> None:
    # Some rules read through another table's policy (a conversation is visible when one of its
    # interactions is): a second permissive policy there would widen them silently.
    async with engine.connect() as connection:
        rows = list(
            (
                await connection.execute(
                    sa.text(
                        "SELECT tablename, count(*) FROM pg_policies"
                        " WHERE :role = ANY(roles) OR 'public' = ANY(roles) GROUP BY tablename"
                    ),
                    {"role": PARTNER_ROLE},
                )
            ).all()
        )
    counts = dict(rows)
    assert counts and set(counts.values()) == {1}, counts


async def test_the_policies_edge_rules(
    engine: AsyncEngine, scene: Scene, db: asyncpg.Connection
) -> None:
    world = scene.world
    f = world_factory(db, world)
    # A stage change caused by nothing follows its customer; one caused by an interaction out
    # of scope (Ana's MOBILE visit, for a WEB partner) is hidden.
    await f.stage_change(world.ana, "AWARENESS", previous=None, transition="INITIAL", at=T0)
    await f.stage_change(
        world.ana,
        "CONSIDERATION",
        previous="AWARENESS",
        transition="FORWARD",
        at=T0 + minutes(5),
        interaction_id=world.ana_mobile,
        channel="MOBILE",
    )
    # Cleo shares, but her consent has expired: no consent.
    await db.execute(
        "INSERT INTO consents (customer_id, purpose, channel, status, granted_at, expires_at)"
        " VALUES ($1, 'PARTNER_SHARING', '', 'GRANTED', now() - interval '2 days',"
        " now() - interval '1 day')",
        scene.cleo,
    )
    # Membership events are on no channel: seen when their customer is.
    await db.executemany(
        "INSERT INTO events (kind, customer_id) VALUES ('SEGMENT_MEMBERSHIP_CHANGED', $1)",
        [(world.ana,), (scene.cleo,)],
    )
    async with engine_for(engine, WEB_PARTNER).connect() as connection:
        stages = list(await connection.scalars(sa.text("SELECT stage FROM stage_history")))
        customers = list(await connection.scalars(sa.text("SELECT id FROM customers")))
        interactions = list(await connection.scalars(sa.text("SELECT id FROM interactions")))
        events = list(
            await connection.scalars(
                sa.text("SELECT customer_id FROM events WHERE kind = 'SEGMENT_MEMBERSHIP_CHANGED'")
            )
        )
    assert stages == ["AWARENESS"]
    assert customers == [world.ana]
    assert interactions == [world.ana_web]
    assert events == [world.ana]


async def test_the_partner_role_without_scope_settings_sees_nothing(
    engine: AsyncEngine, scene: Scene
) -> None:
    async with engine.connect() as connection:
        await connection.execute(sa.text(f"SET LOCAL ROLE {PARTNER_ROLE}"))
        for table in ["customers", "interactions", "conversations", "events", "merges"]:
            count = await connection.scalar(sa.text(f"SELECT count(*) FROM {table}"))
            assert count == 0, table
        await connection.rollback()


@pytest.mark.parametrize(
    "table", ["api_keys", "audit_log", "erasures", "journey_steps", "stage_entries"]
)
async def test_the_partner_role_cannot_read_what_partners_never_read(
    engine: AsyncEngine, scene: Scene, table: str
) -> None:
    async with engine_for(engine, WEB_PARTNER).connect() as connection:
        with pytest.raises(ProgrammingError) as refused:
            await connection.execute(sa.text(f"SELECT count(*) FROM {table}"))
    assert isinstance(refused.value.orig.__cause__, asyncpg.InsufficientPrivilegeError)  # type: ignore[union-attr]


async def test_a_partner_connection_goes_back_to_the_pool_as_the_login(
    one_connection: AsyncEngine, scene: Scene
) -> None:
    probe = sa.text("SELECT current_user, current_setting('hub.channels', true)")
    async with one_connection.connect() as connection:
        login = (await connection.execute(probe)).one()[0]
    partner = engine_for(one_connection, WEB_PARTNER)
    async with partner.connect() as connection:
        assert tuple((await connection.execute(probe)).one()) == (PARTNER_ROLE, "WEB")
    async with one_connection.connect() as connection:
        assert tuple((await connection.execute(probe)).one()) == (login, "")
        assert await connection.scalar(sa.text("SELECT count(*) FROM customers")) == 3
    # Also when the partner's transaction failed (a refused statement aborts it).
    async with partner.connect() as connection:
        with pytest.raises(ProgrammingError):
            await connection.execute(sa.text("SELECT * FROM api_keys"))
    async with one_connection.connect() as connection:
        assert tuple((await connection.execute(probe)).one()) == (login, "")
    # And the other way round: a partner checkout after the login's never inherits anything.
    async with partner.connect() as connection:
        assert await connection.scalar(sa.text("SELECT count(*) FROM customers")) == 1


async def test_a_partner_connection_replaced_after_invalidation_stays_scoped(
    one_connection: AsyncEngine, scene: Scene
) -> None:
    partner = engine_for(one_connection, WEB_PARTNER)
    async with partner.connect() as connection:
        assert await connection.scalar(sa.text("SELECT count(*) FROM customers")) == 1
        # As after a dropped server connection: SQLAlchemy takes a new DBAPI connection for
        # the next statement on this same Connection, with no new checkout event.
        await connection.invalidate()
        await connection.rollback()
        assert await connection.scalar(sa.text("SELECT current_user")) == PARTNER_ROLE
        assert await connection.scalar(sa.text("SELECT count(*) FROM customers")) == 1
    async with one_connection.connect() as connection:
        assert await connection.scalar(sa.text("SELECT count(*) FROM customers")) == 3


async def test_a_partner_checkout_cancelled_at_any_point_returns_its_connection(
    one_connection: AsyncEngine, scene: Scene
) -> None:
    """A request cancelled while its partner connection is being switched (its first await,
    inside SQLAlchemy's checkout event) or at any later point gives the connection back: with
    one pooled connection, a leaked one would hold it until the garbage collector found it."""
    partner = engine_for(one_connection, WEB_PARTNER)

    async def read() -> int:
        async with partner.connect() as connection:
            return int(await connection.scalar(sa.text("SELECT count(*) FROM customers")) or 0)

    interrupted = 0
    for steps in range(1, 80):  # 1: the task's first suspension, the switch's round trip
        task = asyncio.create_task(read())
        await loop_steps(steps)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            interrupted += 1
        else:
            break  # it finished first: every point before its end has been tried
        assert one_connection.pool.checkedout() == 0, f"cancelled after {steps} steps"  # type: ignore[attr-defined]
    assert interrupted >= 1
    gc.collect()
    assert await read() == 1  # the scope still holds on the connection that comes next


async def test_a_partner_statement_never_runs_unscoped_when_its_switch_is_cancelled(
    one_connection: AsyncEngine, scene: Scene
) -> None:
    """After a dropped server connection the Connection's next statement takes a new one and
    switches it first; a request cancelled at any point of that (the reconnect, the switch, the
    statement) must not leave a connection that the following statement uses unswitched (as
    the tables' owner). SQLAlchemy itself invalidates a connection a cancellation interrupted;
    the statement listener also invalidates on a switch that fails otherwise (a server error),
    which this test cannot provoke without faking the server."""
    partner = engine_for(one_connection, WEB_PARTNER)
    probe = sa.text("SELECT current_user")
    answered = 0
    async with partner.connect() as connection:
        for steps in range(1, 60):
            await connection.invalidate()  # as after a dropped server connection
            await connection.rollback()
            task = asyncio.create_task(connection.scalar(probe))
            await loop_steps(steps)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, sa.exc.SQLAlchemyError):
                await task
            for _ in range(3):  # the next statement (errors are safe; an owner's answer is not)
                try:
                    await connection.rollback()
                    user = await connection.scalar(probe)
                except sa.exc.SQLAlchemyError:
                    continue
                assert user == PARTNER_ROLE, f"cancelled after {steps} steps"
                answered += 1
                break
    assert answered >= 50


async def test_a_request_engine_follows_its_principal(engine: AsyncEngine) -> None:
    from hub.context import NOBODY, Context
    from hub.core.settings import Settings

    admin = Principal(role=Role.ADMIN, name="a", pii=True)
    context = Context.build(engine, Settings(), principal=admin, primary_engine=engine)
    assert context.engine is engine and context.writer is engine
    context.act_as(WEB_PARTNER)
    for scoped in (context.engine, context.writer):
        async with scoped.connect() as connection:
            assert await connection.scalar(sa.text("SELECT current_user")) == PARTNER_ROLE
    nobody = Context.build(engine, Settings(), principal=NOBODY)
    async with nobody.engine.connect() as connection:
        assert await connection.scalar(sa.text("SELECT count(*) FROM channels")) > 0
        assert await connection.scalar(sa.text("SELECT count(*) FROM customers")) == 0


# ---- every path that used to leak, through the API ----

PREVIEW = """query($ids: [ID!]!) { previewMerge(customerIds: $ids) {
    survivorId mergedIds traits displayName survivor { id } } }"""


async def test_merge_preview_of_hidden_customers_is_not_found_like_a_missing_one(
    partner: GraphQLClient, gql: GraphQLClient, scene: Scene
) -> None:
    w = scene.world
    for hidden in (w.bob, scene.cleo, NOWHERE):
        error = await partner.error(
            PREVIEW, {"ids": [w.id("Customer", w.ana), w.id("Customer", hidden)]}
        )
        assert error["extensions"]["code"] == "NOT_FOUND"
        assert error["message"] == f"no customer with id {str(hidden)!r}"
    # The admin may preview the same merge.
    data = await gql.data(PREVIEW, {"ids": [w.id("Customer", w.ana), w.id("Customer", w.bob)]})
    preview = data["previewMerge"]
    assert {preview["survivorId"], *preview["mergedIds"]} == {
        w.id("Customer", w.ana),
        w.id("Customer", w.bob),
    }
    assert preview["survivor"] == {"id": preview["survivorId"]}


async def test_a_dry_run_merge_is_refused_to_a_partner_the_same_way_for_every_id(
    partner: GraphQLClient, scene: Scene, db: asyncpg.Connection
) -> None:
    w = scene.world
    query = """mutation($s: ID!, $m: [ID!]!) { mergeCustomers(input: {survivorId: $s,
        mergedIds: $m, dryRun: true}) { preview { survivorId traits survivor { id } } } }"""
    answers = []
    for hidden in (w.bob, scene.cleo, NOWHERE):
        body = await partner(query, {"s": w.id("Customer", hidden), "m": [w.id("Customer", w.ana)]})
        answers.append((body["data"], [e["extensions"]["code"] for e in body["errors"]]))
    assert answers == [(None, ["FORBIDDEN"])] * 3
    # Each refusal is audited from the partner's own connection (INSERT only, no SELECT).
    audited = await db.fetch("SELECT action, success FROM audit_log WHERE role = 'PARTNER'")
    assert [tuple(row) for row in audited] == [("mergeCustomers", False)] * 3


async def test_merge_history_shows_only_merges_into_visible_customers(
    partner: GraphQLClient, gql: GraphQLClient, db: asyncpg.Connection, scene: Scene
) -> None:
    w = scene.world
    f = world_factory(db, w)
    ana_twin = await f.customer("Ana Twin", identities=[("EMAIL", "twin@example.com")])
    await f.interaction(ana_twin, "site", at=T0 + minutes(9), summary="twin visit")
    bob_twin = await f.customer("Bob Twin", identities=[("EMAIL", "bob2@example.com")])
    await f.interaction(bob_twin, "store", at=T0 + minutes(9), summary="twin purchase")
    merge = """mutation($s: ID!, $m: [ID!]!) { mergeCustomers(input: {survivorId: $s,
        mergedIds: $m}) { merge { id } } }"""
    into_ana = await gql.data(
        merge, {"s": w.id("Customer", w.ana), "m": [gid("Customer", ana_twin)]}
    )
    await gql.data(merge, {"s": w.id("Customer", w.bob), "m": [gid("Customer", bob_twin)]})
    history = (
        "query($c: ID) { mergeHistory(customerId: $c) { id survivorId mergedIds survivor { id } } }"
    )
    everything = await gql.data(history, {"c": None})
    assert len(everything["mergeHistory"]) == 2
    seen = await partner.data(history, {"c": None})
    assert seen["mergeHistory"] == [
        {
            "id": into_ana["mergeCustomers"]["merge"]["id"],
            "survivorId": w.id("Customer", w.ana),
            "mergedIds": [gid("Customer", ana_twin)],
            "survivor": {"id": w.id("Customer", w.ana)},
        }
    ]
    for hidden in (w.bob, bob_twin, scene.cleo, NOWHERE):
        assert await partner.data(history, {"c": gid("Customer", hidden)}) == {"mergeHistory": []}


async def test_node_entities_and_lookups_hide_a_customer_without_sharing_consent(
    partner: GraphQLClient, scene: Scene
) -> None:
    w = scene.world
    node = "query($id: ID!) { node(id: $id) { id } }"
    for type_name, key in [
        ("Customer", scene.cleo),
        ("Interaction", scene.cleo_web),
        ("Customer", NOWHERE),
        ("Interaction", NOWHERE),
    ]:
        error = await partner.error(node, {"id": gid(type_name, key)})
        assert error["extensions"]["code"] == "NOT_FOUND", (type_name, key)
    for missing in (scene.cleo, NOWHERE):
        error = await partner.error(
            "query($id: ID!) { customer(id: $id) { id } }", {"id": gid("Customer", missing)}
        )
        assert error["extensions"]["code"] == "NOT_FOUND"
        assert error["message"] == f"no customer with id {gid('Customer', missing)!r}"
    error = await partner.error(
        '{ customerByIdentity(kind: EMAIL, value: "cleo@example.com") { id } }'
    )
    assert error["extensions"]["code"] == "NOT_FOUND"
    entities = """query($r: [_Any!]!) { _entities(representations: $r) {
        ... on Customer { id } ... on Interaction { id } } }"""
    data = await partner.data(
        entities,
        {
            "r": [
                {"__typename": "Customer", "id": gid("Customer", scene.cleo)},
                {"__typename": "Customer", "id": w.id("Customer", w.ana)},
                {"__typename": "Interaction", "id": gid("Interaction", scene.cleo_web)},
                {"__typename": "Customer", "id": gid("Customer", NOWHERE)},
            ]
        },
    )
    assert data["_entities"] == [None, {"id": w.id("Customer", w.ana)}, None, None]


async def test_lists_and_counts_hold_only_sharing_customers_in_scope(
    partner: GraphQLClient, scene: Scene
) -> None:
    w = scene.world
    data = await partner.data(
        """{ customers { totalCount nodes { id } }
             interactions { totalCount nodes { id } }
             journeyStages { code customerCount } }"""
    )
    assert data["customers"] == {"totalCount": 1, "nodes": [{"id": w.id("Customer", w.ana)}]}
    assert data["interactions"] == {
        "totalCount": 1,
        "nodes": [{"id": w.id("Interaction", w.ana_web)}],
    }
    touchpoint = """query($id: ID!) { node(id: $id) { ... on Touchpoint {
        interactions { totalCount nodes { id } } } } }"""
    site: Any = await partner.data(touchpoint, {"id": w.id("Touchpoint", w.site)})
    assert site["node"]["interactions"] == {
        "totalCount": 1,
        "nodes": [{"id": w.id("Interaction", w.ana_web)}],
    }


async def test_withdrawing_sharing_consent_hides_the_customer_at_once(
    partner: GraphQLClient, gql: GraphQLClient, scene: Scene
) -> None:
    w = scene.world
    query = "query($id: ID!) { customer(id: $id) { id } }"
    assert (await partner.data(query, {"id": w.id("Customer", w.ana)}))["customer"] == {
        "id": w.id("Customer", w.ana)
    }
    await gql.data(
        """mutation($id: ID!) { setConsent(input: {customerId: $id, purpose: PARTNER_SHARING,
            channel: ANY, status: REVOKED}) { status } }""",
        {"id": w.id("Customer", w.ana)},
    )
    error = await partner.error(query, {"id": w.id("Customer", w.ana)})
    assert error["extensions"]["code"] == "NOT_FOUND"
    assert (await partner.data("{ customers { totalCount } }"))["customers"]["totalCount"] == 0
