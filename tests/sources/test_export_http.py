"""``GET /export`` on a live ``hub serve``: NDJSON streamed, masked by the key, a partner's rows
limited by PostgreSQL's row security, a CustomerFilter, every refusal coded."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from tests.access.conftest import bearer
from tests.conftest import make_key
from tests.factories import Factory, gid
from tests.live_server import Server, start_server

T = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def export_server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    started = start_server(database_url, tmp_path_factory.mktemp("export"), dev_mode="false")
    try:
        yield started
    finally:
        started.stop()


@dataclass
class Shop:
    server: Server
    web: uuid.UUID
    store: uuid.UUID
    ann: uuid.UUID
    bob: uuid.UUID
    cat: uuid.UUID

    def export(self, key: str | None, method: str = "GET", **params: str) -> httpx.Response:
        headers = bearer(key) if key else {}
        url = f"{self.server.http_url}/export"
        return httpx.request(method, url, params=params, headers=headers, timeout=60)

    def lines(self, key: str, **params: str) -> list[dict[str, Any]]:
        response = self.export(key, **params)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/x-ndjson"
        return [json.loads(line) for line in response.text.splitlines()]


async def _consent(db: asyncpg.Connection, customer: uuid.UUID, purpose: str, channel: str) -> None:
    await db.execute(
        "INSERT INTO consents (customer_id, purpose, channel, status) VALUES ($1, $2, $3,"
        " 'GRANTED')",
        customer,
        purpose,
        channel,
    )


@pytest.fixture
async def shop(db: asyncpg.Connection, export_server: Server) -> Shop:
    f = Factory(db)
    web = await f.touchpoint("web", "WEB", "WEBSITE")
    store = await f.touchpoint("store", "PHYSICAL", "STORE")
    ann = await f.customer(
        "Ann Lee",
        traits={"tier": "gold"},
        identities=[("EMAIL", "ann@example.com"), ("PHONE", "+442079460958")],
        created_at=T,
    )
    bob = await f.customer(
        "Bob Ray", identities=[("EMAIL", "bob@example.com")], created_at=T + timedelta(1)
    )
    cat = await f.customer(
        None, identities=[("EMAIL", "cat@example.com")], created_at=T + timedelta(2)
    )
    await _consent(db, ann, "MARKETING", "EMAIL")
    await _consent(db, ann, "PARTNER_SHARING", "")
    await _consent(db, cat, "PARTNER_SHARING", "")
    await f.interaction(ann, "web", at=T + timedelta(hours=1), summary="ann on the web")
    await f.interaction(ann, "store", at=T + timedelta(hours=2), summary="ann in the store")
    await f.interaction(bob, "web", at=T + timedelta(hours=3), summary="bob on the web")
    await f.interaction(cat, "store", at=T + timedelta(hours=4), summary="cat in the store")
    return Shop(export_server, web, store, ann, bob, cat)


ANN = {
    "identities": [
        {"kind": "EMAIL", "value": "ann@example.com"},
        {"kind": "PHONE", "value": "+442079460958"},
    ],
    "traits": {"tier": "gold"},
    "displayName": "Ann Lee",
    "consents": [
        {"purpose": "MARKETING", "channel": "EMAIL", "status": "GRANTED"},
        {"purpose": "PARTNER_SHARING", "channel": "ANY", "status": "GRANTED"},
    ],
}


async def test_an_admin_exports_customers_with_consents_and_interactions(
    shop: Shop, engine: Any
) -> None:
    admin = await make_key(engine, "ADMIN")
    customers = shop.lines(admin, what="customers")
    assert customers == [
        {"profile": ANN},
        {
            "profile": {
                "identities": [{"kind": "EMAIL", "value": "bob@example.com"}],
                "traits": {},
                "displayName": "Bob Ray",
            }
        },
        {
            "profile": {
                "identities": [{"kind": "EMAIL", "value": "cat@example.com"}],
                "traits": {},
                "consents": [{"purpose": "PARTNER_SHARING", "channel": "ANY", "status": "GRANTED"}],
            }
        },
    ]
    interactions = shop.lines(admin, what="interactions")
    assert [(i["summary"], i["identities"][0]["value"]) for i in interactions] == [
        ("ann on the web", "ann@example.com"),
        ("ann in the store", "ann@example.com"),
        ("bob on the web", "bob@example.com"),
        ("cat in the store", "cat@example.com"),
    ]
    assert interactions[1]["touchpointId"] == gid("Touchpoint", shop.store)

    # A filter: who may be e-mailed (ann only), and their interactions only.
    marketing = json.dumps({"hasConsent": {"purpose": "MARKETING", "channel": "EMAIL"}})
    assert shop.lines(admin, what="customers", filter=marketing) == [{"profile": ANN}]
    assert [i["summary"] for i in shop.lines(admin, what="interactions", filter=marketing)] == [
        "ann on the web",
        "ann in the store",
    ]
    # Negative control: a filter nobody matches.
    nobody = json.dumps({"identity": {"kind": "EMAIL", "value": "nobody@example.com"}})
    assert shop.lines(admin, what="customers", filter=nobody) == []


async def test_an_analyst_without_pii_gets_masked_lines_and_may_not_filter_on_names(
    shop: Shop, engine: Any, db: asyncpg.Connection
) -> None:
    analyst = await make_key(engine, "ANALYST")
    customers = shop.lines(analyst, what="customers")
    ann = customers[0]["profile"]
    values = [i["value"] for i in ann["identities"]]
    assert "ann@example.com" not in values and "+442079460958" not in values
    assert values[0].endswith("@example.com")  # the domain stays: masked, not dropped
    assert ann["displayName"] != "Ann Lee"
    assert ann["traits"] == {"tier": "gold"}  # not personal
    assert ann["consents"] == ANN["consents"]
    text = "\n".join(json.dumps(line) for line in customers)
    for clear in ("ann@example.com", "bob@example.com", "cat@example.com", "Ann Lee", "Bob Ray"):
        assert clear not in text
    interactions = shop.lines(analyst, what="interactions")
    assert len(interactions) == 4
    assert "ann on the web" not in json.dumps(interactions)

    by_name = shop.export(analyst, what="customers", filter='{"displayName": {"eq": "Ann Lee"}}')
    assert by_name.status_code == 403
    assert by_name.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    # With pii the same filter is allowed and the lines are clear.
    reader = await make_key(engine, "ANALYST", pii=True)
    named = shop.lines(reader, what="customers", filter='{"displayName": {"eq": "Ann Lee"}}')
    assert named == [{"profile": ANN}]

    audit = await db.fetch(
        "SELECT role, action, details FROM audit_log WHERE action LIKE 'export %' ORDER BY id"
    )
    assert [(a["role"], a["action"], json.loads(a["details"])) for a in audit] == [
        ("ANALYST", "export customers", {"pii": False, "filter": False, "via": "http"}),
        ("ANALYST", "export interactions", {"pii": False, "filter": False, "via": "http"}),
        ("ANALYST", "export customers", {"pii": True, "filter": True, "via": "http"}),
    ]


async def test_a_partner_exports_only_what_row_security_shows_it(shop: Shop, engine: Any) -> None:
    # WEB scope: ann (web interaction, shares), not bob (does not share), not cat (store only).
    partner = await make_key(engine, "PARTNER", channels=["WEB"])
    customers = shop.lines(partner, what="customers")
    assert len(customers) == 1
    assert customers[0]["profile"]["consents"] == ANN["consents"]
    assert customers[0]["profile"]["identities"][0]["value"] != "ann@example.com"  # masked
    interactions = shop.lines(partner, what="interactions")
    assert [(i["touchpointId"], i["occurredAt"]) for i in interactions] == [
        (gid("Touchpoint", shop.web), (T + timedelta(hours=1)).isoformat())
    ]
    # The store's partner: cat and ann share and have a store interaction.
    store_partner = await make_key(engine, "PARTNER", touchpoints=[str(shop.store)])
    assert [i["occurredAt"] for i in shop.lines(store_partner, what="interactions")] == [
        (T + timedelta(hours=2)).isoformat(),
        (T + timedelta(hours=4)).isoformat(),
    ]
    assert len(shop.lines(store_partner, what="customers")) == 2


async def test_refusals_are_coded_errors(shop: Shop, engine: Any) -> None:
    admin = await make_key(engine, "ADMIN")
    frontend = await make_key(engine, "FRONTEND", pii=True)
    source = await make_key(engine, "SOURCE", touchpoints=[str(shop.web)])
    cases: list[tuple[httpx.Response, int, str, str]] = [
        (shop.export(None, what="customers"), 401, "UNAUTHENTICATED", "API key"),
        (shop.export("hub_000000000000_wrong", what="customers"), 401, "UNAUTHENTICATED", ""),
        (shop.export(frontend, what="customers"), 403, "FORBIDDEN", "FRONTEND"),
        (shop.export(source, what="customers"), 403, "FORBIDDEN", "SOURCE"),
        (shop.export(admin), 400, "BAD_USER_INPUT", "`what`"),
        (shop.export(admin, what="orders"), 400, "BAD_USER_INPUT", "'orders'"),
        (shop.export(admin, what="customers", filter="{nope"), 400, "BAD_USER_INPUT", "not JSON"),
        (
            shop.export(admin, what="customers", filter='{"stage": {"eq": "NOWHERE"}}'),
            400,
            "BAD_USER_INPUT",
            "filter.stage.eq",
        ),
        (
            shop.export(admin, what="customers", filter='{"colour": "red"}'),
            400,
            "BAD_USER_INPUT",
            "colour",
        ),
    ]
    for response, status, code, words in cases:
        assert response.status_code == status, response.text
        error = response.json()["errors"][0]
        assert error["extensions"]["code"] == code
        assert words in error["message"]
    post = shop.export(admin, method="POST")
    assert post.status_code == 405
    assert post.json()["errors"][0]["extensions"]["code"] == "METHOD_NOT_ALLOWED"


async def test_a_large_export_is_streamed_in_chunks(
    shop: Shop, engine: Any, db: asyncpg.Connection
) -> None:
    await db.execute(
        "INSERT INTO customers (id, display_name, traits, created_at, updated_at)"
        " SELECT gen_random_uuid(), 'person ' || n, jsonb_build_object('n', n),"
        " $1::timestamptz + n * interval '1 second', now() FROM generate_series(1, 5000) AS n",
        T + timedelta(days=10),
    )
    admin = await make_key(engine, "ADMIN")
    chunks = 0
    lines: list[bytes] = []
    with httpx.stream(
        "GET",
        f"{shop.server.http_url}/export",
        params={"what": "customers"},
        headers=bearer(admin),
        timeout=60,
    ) as response:
        assert response.status_code == 200
        assert "content-length" not in response.headers  # streamed, not built whole
        buffer = b""
        for chunk in response.iter_raw():
            chunks += 1
            buffer += chunk
        lines = buffer.splitlines()
    assert len(lines) == 5003
    assert chunks > 1
    last = json.loads(lines[-1])["profile"]
    assert last == {"identities": [], "traits": {"n": 5000}, "displayName": "person 5000"}
