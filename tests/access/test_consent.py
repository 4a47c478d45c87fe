"""Consents: set with history, shown on the customer, enforced in campaign filters and for
partner event delivery."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from hub.access.keys import Principal, Role
from hub.access.policy import event_visible, partner_sharing_allowed, visible_events
from tests.access_world import World, build_world
from tests.conftest import GraphQLClient

SET = """mutation($id: ID!, $p: ConsentPurpose!, $c: ConsentChannel!, $s: ConsentStatus!,
    $e: DateTime) { setConsent(input: {customerId: $id, purpose: $p, channel: $c, status: $s,
    source: "test", expiresAt: $e}) { purpose channel status active } }"""


@pytest.fixture
async def world(db: asyncpg.Connection) -> World:
    return await build_world(db)


async def _set(
    gql: GraphQLClient,
    customer: str,
    purpose: str,
    channel: str,
    status: str,
    expires: str | None = None,
) -> Any:
    return await gql.data(
        SET, {"id": customer, "p": purpose, "c": channel, "s": status, "e": expires}
    )


async def test_consents_and_history(gql: GraphQLClient, world: World) -> None:
    ana = world.id("Customer", world.ana)
    first = await _set(gql, ana, "MARKETING", "EMAIL", "GRANTED")
    assert first["setConsent"] == {
        "purpose": "MARKETING",
        "channel": "EMAIL",
        "status": "GRANTED",
        "active": True,
    }
    await _set(gql, ana, "MARKETING", "EMAIL", "REVOKED")
    data = await gql.data(
        """query($id: ID!) { customer(id: $id) { consents { purpose channel status active }
            consentHistory { status changedBy } } }""",
        {"id": ana},
    )
    assert data["customer"]["consents"] == [
        {"purpose": "MARKETING", "channel": "EMAIL", "status": "REVOKED", "active": False}
    ]
    assert [h["status"] for h in data["customer"]["consentHistory"]] == ["GRANTED", "REVOKED"]
    assert data["customer"]["consentHistory"][0]["changedBy"].startswith("test-admin-")


async def test_unknown_customer_is_not_found(gql: GraphQLClient, world: World) -> None:
    error = await gql.error(
        SET,
        {
            "id": world.id("Customer", world.ana_web),
            "p": "MARKETING",
            "c": "ANY",
            "s": "GRANTED",
            "e": None,
        },
    )
    assert error["extensions"]["code"] == "NOT_FOUND"


async def test_campaign_filter_honours_consent(gql: GraphQLClient, world: World) -> None:
    ana = world.id("Customer", world.ana)
    bob = world.id("Customer", world.bob)
    query = """{ customers(filter: {hasConsent: {purpose: MARKETING, channel: EMAIL}}) {
        nodes { id } } }"""

    async def audience() -> list[str]:
        return [n["id"] for n in (await gql.data(query))["customers"]["nodes"]]

    assert await audience() == []
    await _set(gql, ana, "MARKETING", "ANY", "GRANTED")
    await _set(gql, bob, "MARKETING", "ANY", "GRANTED")
    assert sorted(await audience()) == sorted([ana, bob])
    # A channel's own consent wins over the purpose-wide one.
    await _set(gql, bob, "MARKETING", "EMAIL", "DENIED")
    assert await audience() == [ana]
    # An expired consent is no consent.
    past = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    await _set(gql, ana, "MARKETING", "EMAIL", "GRANTED", past)
    assert await audience() == []
    # Other channels still follow the purpose-wide consent.
    sms = await gql.data(
        "{ customers(filter: {hasConsent: {purpose: MARKETING, channel: SMS}}) { totalCount } }"
    )
    assert sms["customers"]["totalCount"] == 2


async def test_partner_events_need_sharing_consent(
    gql: GraphQLClient, world: World, engine: Any
) -> None:
    await _set(gql, world.id("Customer", world.ana), "PARTNER_SHARING", "ANY", "GRANTED")
    await _set(gql, world.id("Customer", world.bob), "PARTNER_SHARING", "ANY", "DENIED")
    async with engine.connect() as connection:
        sharing = await partner_sharing_allowed(connection, [world.ana, world.bob])
    assert sharing == {world.ana}
    partner = Principal(role=Role.PARTNER, name="p", channels=frozenset({"WEB", "PHYSICAL"}))
    ana_web = {"customer_id": world.ana, "channel_code": "WEB", "touchpoint_id": world.site}
    ana_app = {"customer_id": world.ana, "channel_code": "MOBILE", "touchpoint_id": world.app}
    bob_store = {"customer_id": world.bob, "channel_code": "PHYSICAL", "touchpoint_id": world.store}
    assert event_visible(partner, ana_web, sharing)
    assert not event_visible(partner, ana_app, sharing)  # out of scope
    assert not event_visible(partner, bob_store, sharing)  # in scope, but no consent
    analyst = Principal(role=Role.ANALYST, name="a")
    assert event_visible(analyst, bob_store, None)
    async with engine.connect() as connection:
        batch = [ana_web, ana_app, bob_store]
        assert await visible_events(connection, partner, batch) == [ana_web]
        assert await visible_events(connection, analyst, batch) == batch
