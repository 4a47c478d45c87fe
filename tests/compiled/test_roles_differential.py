"""The compiled read path answers every role exactly as the resolver path does.

Each document runs, with the same key, through an app with compiled reads off (the reference)
and through the hub app; the answers must be identical JSON (masked forms, nulls, errors). The
hub app's ``hub_graphql_execution_path_total{path="compiled"}`` counter must grow by one for
every error-free answer and stay put for the others: a silent fallback to the resolvers fails.

Roles: ADMIN, ANALYST (no pii), FRONTEND with and without pii, a PARTNER scoped to two channels
(row security: a pool per scope, ``hub.compiled.pools``), and a PARTNER whose only customers in
scope never granted PARTNER_SHARING (it sees nothing).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette

from hub.app import create_app
from hub.core.settings import Settings
from tests.access_world import share_with_partners
from tests.bounded import bounded
from tests.compiled import test_differential
from tests.compiled.test_differential import (
    CHANNEL,
    CUSTOMER_360,
    INTERACTION,
    PAGE_INFO,
    Data,
    _post,
    queries,
    seed,
)
from tests.conftest import make_key
from tests.factories import T0, Factory, gid
from tests.patience import PATIENT

ROLES: dict[str, dict[str, Any]] = {
    "admin": {"role": "ADMIN"},
    "analyst": {"role": "ANALYST"},
    "frontend_pii": {"role": "FRONTEND", "pii": True},
    "frontend": {"role": "FRONTEND"},
    "partner": {"role": "PARTNER", "channels": ["WEB", "MOBILE"]},
    "partner_no_consent": {"role": "PARTNER"},  # scoped to the kiosk touchpoint (below)
}
# The app with compiled reads off, as in test_differential (a fixture of this module too).
reference_app = test_differential.reference_app


@dataclass
class World:
    data: Data
    dora: Any
    keys: dict[str, str]


async def seed_world(db: asyncpg.Connection, engine: Any) -> World:
    data = await seed(db)
    f = Factory(db)
    f.touchpoints.update(data.touchpoints)
    kiosk = await f.touchpoint("kiosk", "PHYSICAL", "STORE")
    # Personal values in every masked shape: personal JSON keys at depth, identifiers inside
    # text, an identifier-shaped JSON key, phone identities with few digits, empty text.
    dora = await f.customer(
        "",
        traits={
            "email": "dora@example.com",
            "Contact": {"phoneNumber": "+49 151 1234", "note": "mail d@ex.io or +44 20 7946 0958"},
            "dora@example.com": True,
            "list": ["x", {"firstName": "Dora"}, 3],
        },
        identities=[("PHONE", "+123"), ("EMAIL", "@nolocal.example"), ("COOKIE", "c-1")],
    )
    for n in range(3):
        await f.interaction(
            dora,
            "kiosk",
            at=T0 + timedelta(minutes=n),
            summary="" if n == 0 else "hi from dora@example.com",
            attributes={"ip": "10.0.0.1", "deep": {"iban": [1, 2]}, "text": "+33 1 23 45 67 89"},
        )
    await f.interaction(
        data.ana, "site", at=T0 + timedelta(days=3), attributes={"e_mail": "ana@example.com"}
    )
    await db.execute(
        "UPDATE interactions SET outcome = 'called back +4915112345678' WHERE customer_id = $1",
        data.cara,
    )
    await db.execute(
        "UPDATE conversations SET key = 'ticket for ana@example.com' WHERE key = 'T-1'"
    )
    await db.execute("UPDATE stage_history SET reason = '' WHERE transition = 'INITIAL'")
    # ana and cara share with partners; dora (the only customer at the kiosk) does not.
    await share_with_partners(db, data.ana, data.cara)
    keys = {}
    for name, scopes in ROLES.items():
        if name == "partner_no_consent":
            scopes = {**scopes, "touchpoints": [str(kiosk)]}
        keys[name] = await make_key(engine, **scopes)
    return World(data, dora, keys)


@pytest.fixture
async def world(db: asyncpg.Connection, engine: Any) -> World:
    return await seed_world(db, engine)


def compiled_answers(app: Starlette) -> float:
    value = app.state.hub.metrics.registry.get_sample_value(
        "hub_graphql_execution_path_total", {"path": "compiled"}
    )
    return value or 0.0


class Checker:
    def __init__(self, reference_app: Starlette, app: Starlette, world: World) -> None:
        self.reference_app = reference_app
        self.app = app
        self.world = world
        self.compiled: dict[str, int] = dict.fromkeys(ROLES, 0)

    async def __call__(self, role: str, query: str, variables: dict[str, Any] | None = None) -> Any:
        """Both paths agree for ``role``; the compiled path served the answer exactly when it
        has no errors and asks for no page over 100 (those the resolvers report)."""
        variables = variables or {}
        key = self.world.keys[role]
        expected = await _post(self.reference_app, query, variables, key)
        before = compiled_answers(self.app)
        assert await _post(self.app, query, variables, key) == expected, (role, query)
        compiles = "errors" not in expected and "first: 101" not in query
        assert compiled_answers(self.app) - before == (1 if compiles else 0), (
            role,
            query,
            variables,
            expected,
        )
        self.compiled[role] += compiles
        return expected

    async def every_role(self, query: str, variables: dict[str, Any] | None = None) -> None:
        for role in ROLES:
            await self(role, query, variables)


@pytest.fixture
def check(reference_app: Starlette, app: Starlette, world: World) -> Checker:
    return Checker(reference_app, app, world)


async def test_customer_360_for_every_role(world: World, check: Checker) -> None:
    query = f"query($id: ID!) {{ customer(id: $id) {{ {CUSTOMER_360} }} }}"
    data = world.data
    for customer in (data.ana, data.bob, data.cara, world.dora):
        await check.every_role(query, {"id": gid("Customer", customer)})
    # Every role was served compiled for every customer it may see.
    assert check.compiled == {
        "admin": 4,
        "analyst": 4,
        "frontend_pii": 4,
        "frontend": 4,
        "partner": 2,  # ana and cara; bob has no interaction in scope, dora does not share
        "partner_no_consent": 0,  # NOT_FOUND for all, from the resolvers
    }
    masked = await check("frontend", query, {"id": gid("Customer", world.dora)})
    dora = masked["data"]["customer"]
    assert dora["displayName"] == ""
    assert dora["traits"]["email"] == "•••"
    assert dora["traits"]["Contact"]["note"] == "mail d•••@ex.io or •••58"
    assert {i["value"] for i in dora["identities"]} == {"•••", "•••@nolocal.example"}
    partner = await check("partner", query, {"id": gid("Customer", data.ana)})
    channels = {
        edge["node"]["channel"]["code"]
        for edge in partner["data"]["customer"]["interactions"]["edges"]
    }
    assert channels == {"WEB", "MOBILE"}


async def test_lists_relations_and_filters_for_every_role(world: World, check: Checker) -> None:
    lists = f"""{{ customers(first: 50) {{ totalCount pageInfo {{ {PAGE_INFO} }}
      nodes {{ id displayName traits identities {{ kind value }}
        interactions(first: 20) {{ totalCount nodes {{ {INTERACTION} outcome }} }} }} }} }}"""
    await check.every_role(lists)
    relations = f"""query($id: ID!) {{ customer(id: $id) {{
      conversations {{ id key status interactions {{ id summary outcome attributes }}
        lastInteraction {{ id summary }} }}
      stageHistory {{ previousStage transition reason stage {{ code customerCount }}
        channel {{ {CHANNEL} }} interaction {{ id summary touchpoint {{ name }} }} }}
      currentStage {{ code customerCount }}
      channelsUsed {{ interactionCount firstSeenAt channel {{ code }} }}
      lastInteraction {{ touchpoint {{ name interactions(first: 3) {{ totalCount
        nodes {{ id attributes }} }} }} }} }} }}"""
    for customer in (world.data.ana, world.data.cara, world.dora):
        await check.every_role(relations, {"id": gid("Customer", customer)})
    filtered = """query($f: CustomerFilter, $o: [CustomerOrderBy!]) {
      customers(first: 5, filter: $f, orderBy: $o) { totalCount nodes { id displayName } } }"""
    for variables in (
        {"f": {"channelsUsed": {"any": ["WEB", "PHYSICAL"]}}},
        {"f": {"stage": {"in": ["RETENTION", "CONSIDERATION"]}}},
        {"f": {"trait": {"key": "tier", "eq": "gold"}}},
        # An identifier must be known to be asked for: allowed without pii.
        {"f": {"identity": {"kind": "EMAIL", "value": "ana@example.com"}}},
        # Personal: FORBIDDEN without pii (from the resolvers), compiled with it.
        {"f": {"displayName": {"contains": "a"}}},
        {"f": {"trait": {"key": "email", "exists": True}}},
        {"o": ["DISPLAY_NAME_ASC"]},
    ):
        await check.every_role(filtered, variables)
    assert check.compiled == {
        "admin": 11,
        "analyst": 8,  # refused: displayName, a personal trait, displayName order
        "frontend_pii": 11,
        "frontend": 8,
        "partner": 7,  # and dora's relations: NOT_FOUND
        "partner_no_consent": 5,  # the lists, empty
    }


async def test_pages_walk_the_scoped_list(world: World, check: Checker) -> None:
    query = """query($id: ID!, $after: String) { customer(id: $id) {
      interactions(first: 4, after: $after) { totalCount edges { cursor node { id summary } }
        pageInfo { hasNextPage endCursor } } } }"""
    for role in ("partner", "frontend"):
        after, seen = None, 0
        for _ in bounded(50):
            variables = {"id": gid("Customer", world.data.cara), "after": after}
            page = (await check(role, query, variables))["data"]["customer"]["interactions"]
            seen += len(page["edges"])
            if not page["pageInfo"]["hasNextPage"]:
                break
            after = page["pageInfo"]["endCursor"]
        # cara's 33 interactions are on site, app and phone: a WEB/MOBILE partner sees 23.
        assert seen == (23 if role == "partner" else 33)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    case=queries(),
    who=st.sampled_from(["ana", "bob", "cara"]),
    role=st.sampled_from(sorted(ROLES)),
)
async def test_generated_queries_agree_for_every_role(
    world: World, check: Checker, case: tuple[str, str, dict[str, Any]], who: str, role: str
) -> None:
    kind, query, variables = case
    if kind == "one":
        variables = {"id": gid("Customer", getattr(world.data, who))}
    expected = await check(role, query, variables)
    codes = {e["extensions"]["code"] for e in expected.get("errors", [])}
    assert codes <= {"QUERY_TOO_COMPLEX", "BAD_USER_INPUT", "NOT_FOUND", "FORBIDDEN"}, expected


async def test_partner_sessions_outside_utc(
    world: World, reference_app: Starlette, database_url: str, db: asyncpg.Connection
) -> None:
    """A database whose default time zone is not UTC: the compiled path's sessions (a partner's
    pool per scope too) start in UTC, the resolvers' keep the server's zone; same answer."""
    name = await db.fetchval("SELECT current_database()")
    await db.execute(f"ALTER DATABASE \"{name}\" SET TimeZone TO 'America/St_Johns'")
    try:
        settings = Settings(database_url=database_url, migrate_on_start=False, **PATIENT)
        application = create_app(settings)
        async with application.router.lifespan_context(application):
            check = Checker(reference_app, application, world)
            query = f"""query($id: ID!) {{ customer(id: $id) {{ {CUSTOMER_360}
              stageHistory {{ enteredAt }} conversations {{ resolvedAt startedAt }} }} }}"""
            for role in ("partner", "frontend"):
                body = await check(role, query, {"id": gid("Customer", world.data.ana)})
                assert body["data"]["customer"]["createdAt"] == T0.isoformat()
            assert check.compiled == {**dict.fromkeys(ROLES, 0), "partner": 1, "frontend": 1}
    finally:
        await db.execute(f'ALTER DATABASE "{name}" RESET TimeZone')
