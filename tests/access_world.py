"""A small world for the access-control tests: two customers on three channels.

Partner tests also call ``share_with_partners`` for the customers a partner may see."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg

from tests.factories import T0, Factory, gid, minutes


@dataclass
class World:
    ana: uuid.UUID
    bob: uuid.UUID
    ana_web: uuid.UUID
    ana_mobile: uuid.UUID
    bob_store: uuid.UUID
    ana_thread: uuid.UUID
    bob_thread: uuid.UUID
    site: uuid.UUID
    app: uuid.UUID
    store: uuid.UUID

    def id(self, type_name: str, key: uuid.UUID) -> str:
        return gid(type_name, key)


async def share_with_partners(db: asyncpg.Connection, *customers: uuid.UUID) -> None:
    """Grant PARTNER_SHARING (every channel): without it a partner sees nothing of a customer
    (row security, migration 0013)."""
    await db.executemany(
        "INSERT INTO consents (customer_id, purpose, channel, status, granted_at)"
        " VALUES ($1, 'PARTNER_SHARING', '', 'GRANTED', now())",
        [(customer,) for customer in customers],
    )


async def build_world(db: asyncpg.Connection) -> World:
    f = Factory(db)
    site = await f.touchpoint("site", "WEB", "WEBSITE")
    app = await f.touchpoint("app", "MOBILE", "MOBILE_APP")
    store = await f.touchpoint("store", "PHYSICAL", "STORE")
    ana = await f.customer(
        "Ana Silva",
        traits={"tier": "gold", "email": "ana@example.com"},
        identities=[("EMAIL", "ana@example.com"), ("PHONE", "+442079460958")],
    )
    bob = await f.customer("Bob Stone", identities=[("EMAIL", "bob@example.com")])
    ana_thread = await f.conversation(ana, "T-1")
    bob_thread = await f.conversation(bob, "T-2")
    ana_web = await f.interaction(
        ana,
        "site",
        at=T0,
        summary="Ana asked about running shoes",
        attributes={"ip": "192.0.2.1", "campaign": "spring"},
        conversation_id=ana_thread,
    )
    ana_mobile = await f.interaction(
        ana, "app", at=T0 + minutes(5), summary="Ana opened the app", conversation_id=ana_thread
    )
    bob_store = await f.interaction(
        bob, "store", at=T0 + minutes(1), summary="Bob bought socks", conversation_id=bob_thread
    )
    return World(ana, bob, ana_web, ana_mobile, bob_store, ana_thread, bob_thread, site, app, store)
