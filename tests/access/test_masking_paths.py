"""Personal data planted at odd depths and in odd key cases, read through a real `hub serve` by
keys without the pii scope on every path: customer, customers, node, _entities, interactions, a
subscription event, merge preview (query and dry-run mutation) and the merge ledger. Each answer
is compared whole: every personal value is exactly its masked form, the rest untouched."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest

from hub.core.settings import Settings
from hub.events.outbox import START, read_after
from hub.identity.merges import merge_customers
from tests.conftest import make_key
from tests.factories import T0, Factory, gid, minutes
from tests.live_server import Server, Writer, connect, start_server

M = "•••"
ANA_TRAITS = {
    "Email": "ana@example.com",
    "contact": {"email": "ana.work@example.com", "preferred": "phone"},
    "Contact": {"Phone_Number": "+351 912 345 678"},
    "tier": "gold",
    "friends": [{"e_mail": "bo@example.com", "since": 2020}, {"name": "Cy", "tags": ["vip"]}],
    "homeAddress": {"street": "Rua 1", "city": "Lisboa"},
    "note": "prefers ana@example.com",
}
ANA_TRAITS_MASKED = {
    "Email": M,
    "contact": {"email": M, "preferred": "phone"},
    "Contact": {"Phone_Number": M},
    "tier": "gold",
    "friends": [{"e_mail": M, "since": 2020}, {"name": M, "tags": ["vip"]}],
    "homeAddress": M,
    "note": f"prefers a{M}@example.com",
}
BO_TRAITS = {"loyalty": {"cardNumber": "4111 1111 1111 1111", "level": 2}}
BO_TRAITS_MASKED = {"loyalty": {"cardNumber": M, "level": 2}}
ATTRIBUTES = {
    "meta": {"phone": "+351912345678", "source": "ad"},
    "IP": "192.0.2.1",
    "campaign": "spring",
    "items": [{"sku": "A1", "buyerEmail": "ana@example.com"}, {"sku": "B2", "qty": 2}],
    "referrer": "mail from ana@example.com",
}
ATTRIBUTES_MASKED = {
    "meta": {"phone": M, "source": "ad"},
    "IP": M,
    "campaign": "spring",
    "items": [{"sku": "A1", "buyerEmail": M}, {"sku": "B2", "qty": 2}],
    "referrer": f"mail from a{M}@example.com",
}
SUMMARY = "Ana asked about running shoes"
IDENTITIES = [
    {"kind": "EMAIL", "value": "ana@example.com"},
    {"kind": "PHONE", "value": "+351912345678"},
]
IDENTITIES_MASKED = [
    {"kind": "EMAIL", "value": f"a{M}@example.com"},
    {"kind": "PHONE", "value": f"{M}78"},
]
LEDGER = [
    {"identityKind": "PHONE", "identityValue": "+442079460958", "survivor": {"displayName": "Dee"}},
    {
        "identityKind": "EMAIL",
        "identityValue": "cy@example.com",
        "survivor": {"displayName": "Dee"},
    },
]
LEDGER_MASKED = [
    {"identityKind": "PHONE", "identityValue": f"{M}58", "survivor": {"displayName": M}},
    {"identityKind": "EMAIL", "identityValue": f"c{M}@example.com", "survivor": {"displayName": M}},
]

MASKED_ROLES = [("FRONTEND", {}), ("ANALYST", {}), ("PARTNER", {"channels": ["WEB"]})]


@dataclass
class World:
    ana: uuid.UUID
    bo: uuid.UUID
    ana_web: uuid.UUID
    site: uuid.UUID


@pytest.fixture(scope="module")
def server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    started = start_server(database_url, tmp_path_factory.mktemp("mask"), dev_mode=False)
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
async def world(db: asyncpg.Connection, engine: Any) -> World:
    f = Factory(db)
    site = await f.touchpoint("site", "WEB", "WEBSITE")
    ana = await f.customer(
        "Ana Silva",
        traits=ANA_TRAITS,
        identities=[("EMAIL", "ana@example.com"), ("PHONE", "+351912345678")],
    )
    bo = await f.customer("Bo Stone", traits=BO_TRAITS, created_at=T0 + minutes(1))
    dee = await f.customer("Dee", created_at=T0 + minutes(2))
    cy = await f.customer("Cy", identities=[("EMAIL", "cy@example.com")])
    eve = await f.customer("Eve", identities=[("PHONE", "+442079460958")])
    ana_web = await f.interaction(ana, "site", at=T0, summary=SUMMARY, attributes=ATTRIBUTES)
    for customer in (bo, dee):
        await f.interaction(customer, "site", at=T0)
    for customer in (ana, bo, dee, cy, eve):  # partners see only customers who share
        await db.execute(
            "INSERT INTO consents (customer_id, purpose, channel, status, granted_at)"
            " VALUES ($1, 'PARTNER_SHARING', '', 'GRANTED', now())",
            customer,
        )
    # Two ledger entries proven by identifiers, through the domain's own merge.
    for merged, identity in ((cy, ("EMAIL", "cy@example.com")), (eve, ("PHONE", "+442079460958"))):
        async with engine.begin() as connection:
            await merge_customers(
                connection,
                dee,
                [merged],
                Settings(),
                rule="IDENTITY_MATCH",
                actor="ingest",
                identity=identity,
            )
    return World(ana, bo, ana_web, site)


@pytest.fixture
async def http(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.http_url, timeout=30) as client:
        yield client


async def _data(
    http: httpx.AsyncClient, key: str, query: str, variables: dict[str, Any]
) -> dict[str, Any]:
    response = await http.post(
        "/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body
    data: dict[str, Any] = body["data"]
    return data


READ = """query($c: ID!, $b: ID!, $i: ID!, $reps: [_Any!]!) {
  customer(id: $c) {
    displayName traits identities { kind value }
    interactions { nodes { summary attributes } }
  }
  customers(first: 10, orderBy: [CREATED_AT_ASC]) { nodes { id displayName traits } }
  node(id: $c) { ... on Customer { displayName traits } }
  nodeInteraction: node(id: $i) { ... on Interaction { summary attributes } }
  interaction(id: $i) { summary attributes customer { traits } }
  _entities(representations: $reps) {
    ... on Customer { displayName traits }
    ... on Interaction { summary attributes }
  }
  previewMerge(customerIds: [$c, $b]) { displayName traits }
  mergeHistory { identityKind identityValue survivor { displayName } }
}"""


def _expected(masked: bool, world: World) -> dict[str, Any]:
    traits = ANA_TRAITS_MASKED if masked else ANA_TRAITS
    bo_traits = BO_TRAITS_MASKED if masked else BO_TRAITS
    attributes = ATTRIBUTES_MASKED if masked else ATTRIBUTES
    summary = M if masked else SUMMARY
    ana_name = M if masked else "Ana Silva"
    return {
        "customer": {
            "displayName": ana_name,
            "traits": traits,
            "identities": IDENTITIES_MASKED if masked else IDENTITIES,
            "interactions": {"nodes": [{"summary": summary, "attributes": attributes}]},
        },
        "customers": {
            "nodes": [
                {"id": gid("Customer", world.ana), "displayName": ana_name, "traits": traits},
                {
                    "id": gid("Customer", world.bo),
                    "displayName": M if masked else "Bo Stone",
                    "traits": bo_traits,
                },
            ]
        },
        "node": {"displayName": ana_name, "traits": traits},
        "nodeInteraction": {"summary": summary, "attributes": attributes},
        "interaction": {
            "summary": summary,
            "attributes": attributes,
            "customer": {"traits": traits},
        },
        "_entities": [
            {"displayName": ana_name, "traits": traits},
            {"summary": summary, "attributes": attributes},
        ],
        "previewMerge": {"displayName": ana_name, "traits": {**traits, **bo_traits}},
        "mergeHistory": LEDGER_MASKED if masked else LEDGER,
    }


def _variables(world: World) -> dict[str, Any]:
    return {
        "c": gid("Customer", world.ana),
        "b": gid("Customer", world.bo),
        "i": gid("Interaction", world.ana_web),
        "reps": [
            {"__typename": "Customer", "id": gid("Customer", world.ana)},
            {"__typename": "Interaction", "id": gid("Interaction", world.ana_web)},
        ],
    }


def _first_customers(data: dict[str, Any], world: World) -> dict[str, Any]:
    """Only Ana and Bo of the customers list (Dee, the merges' survivor, is asserted elsewhere)."""
    wanted = {gid("Customer", world.ana), gid("Customer", world.bo)}
    nodes = [node for node in data["customers"]["nodes"] if node["id"] in wanted]
    return {**data, "customers": {"nodes": nodes}}


@pytest.mark.parametrize(("role", "scopes"), MASKED_ROLES)
async def test_every_read_path_masks_nested_personal_data(
    http: httpx.AsyncClient, engine: Any, world: World, role: str, scopes: dict[str, Any]
) -> None:
    key = await make_key(engine, role, **scopes)
    data = await _data(http, key, READ, _variables(world))
    assert _first_customers(data, world) == _expected(True, world)


@pytest.mark.parametrize(("role", "scopes"), [("ADMIN", {}), ("ANALYST", {"pii": True})])
async def test_a_key_with_pii_reads_everything_in_clear(
    http: httpx.AsyncClient, engine: Any, world: World, role: str, scopes: dict[str, Any]
) -> None:
    key = await make_key(engine, role, **scopes)
    data = await _data(http, key, READ, _variables(world))
    assert _first_customers(data, world) == _expected(False, world)


DRY_RUN = """mutation($s: ID!, $m: [ID!]!) {
  mergeCustomers(input: {survivorId: $s, mergedIds: $m, dryRun: true}) {
    merge { id } preview { displayName traits }
  }
}"""


@pytest.mark.parametrize(("pii", "name"), [(False, M), (True, "Ana Silva")])
async def test_a_dry_run_merge_previews_masked(
    http: httpx.AsyncClient, engine: Any, world: World, pii: bool, name: str
) -> None:
    key = await make_key(engine, "FRONTEND", pii=pii)
    variables = {"s": gid("Customer", world.ana), "m": [gid("Customer", world.bo)]}
    data = await _data(http, key, DRY_RUN, variables)
    expected = {**ANA_TRAITS_MASKED, **BO_TRAITS_MASKED} if not pii else {**ANA_TRAITS, **BO_TRAITS}
    assert data == {
        "mergeCustomers": {"merge": None, "preview": {"displayName": name, "traits": expected}}
    }


FEED = """subscription($after: String) {
  interactionRecorded(after: $after) {
    interaction { summary attributes customer { displayName traits } }
  }
}"""


@pytest.mark.parametrize(("role", "scopes"), [*MASKED_ROLES, ("ADMIN", {})])
async def test_a_subscription_event_is_masked_alike(
    server: Server, engine: Any, world: World, role: str, scopes: dict[str, Any]
) -> None:
    writer = Writer(engine, world.ana, "site", world.site, "WEB")
    await writer.record(type="PAGE_VIEW")
    async with engine.connect() as connection:
        (before,) = await read_after(connection, START, 10, ["INTERACTION_RECORDED"])
    # Written after the cursor the subscription resumes from: delivered by the replay, so the
    # test needs no wait for the subscription to be live.
    await writer.record(type="PAGE_VIEW", summary=SUMMARY, attributes=ATTRIBUTES)
    key = await make_key(engine, role, **scopes)
    async with connect(server, init=False) as client:
        await client.init({"Authorization": f"Bearer {key}"})
        await client.subscribe(FEED, {"after": before.position.cursor})
        data = await client.next_data()
    masked = role != "ADMIN"
    assert data == {
        "interactionRecorded": {
            "interaction": {
                "summary": M if masked else SUMMARY,
                "attributes": ATTRIBUTES_MASKED if masked else ATTRIBUTES,
                "customer": {
                    "displayName": M if masked else "Ana Silva",
                    "traits": ANA_TRAITS_MASKED if masked else ANA_TRAITS,
                },
            }
        }
    }
