"""A world with planted personal data, built through the hub's own write path (ADMIN mutations
over HTTP), for the generated authorization tests.

Every planted value is unique text that appears nowhere else, so finding it (in any case) in an
answer means it leaked. The partner of the tests holds ``channel:WEB``; it may see Zelda (WEB
interactions, PARTNER_SHARING granted) and nobody else: Ygritte is on WEB but never granted
sharing, Oswald, Mabel and Norbert only ever came through the store (PHYSICAL).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx

from tests.factories import Factory, gid

PARTNER_CHANNELS = ["WEB"]

RECORD = """mutation($input: RecordInteractionInput!) { recordInteraction(input: $input) {
    interaction { id conversation { id } } customer { id } merges { id } } }"""
UPSERT = """mutation($input: UpsertCustomerInput!) { upsertCustomer(input: $input) {
    customer { id } } }"""
CONSENT = """mutation($input: SetConsentInput!) { setConsent(input: $input) { status } }"""
STAGE = """mutation($id: ID!, $stage: StageCode!, $reason: String!) {
    setJourneyStage(customerId: $id, stage: $stage, reason: $reason) { id } }"""
MERGE = """mutation($input: MergeCustomersInput!) {
    mergeCustomers(input: $input) { merge { id } } }"""
DEFINE_TRAIT = """mutation($input: DefineComputedTraitInput!) {
    defineComputedTrait(input: $input) { key } }"""


@dataclass
class Planted:
    """What the world holds: the personal values, and the ids a partner must never see."""

    pii: set[str] = field(default_factory=set)
    customers: dict[str, str] = field(default_factory=dict)  # name -> global id
    interactions: dict[str, str] = field(default_factory=dict)  # label -> global id
    conversations: dict[str, str] = field(default_factory=dict)
    merges: list[str] = field(default_factory=list)
    hidden_from_partner: set[str] = field(default_factory=set)  # global ids and raw uuids
    other_form: dict[str, str] = field(default_factory=dict)  # global id <-> raw uuid
    touchpoints: dict[str, str] = field(default_factory=dict)
    identifier_values: set[str] = field(default_factory=set)  # as recorded (not normalised)

    def hide(self, global_id: str) -> None:
        """A partner must see this id in neither form: global nor the raw uuid inside it."""
        from hub.core.ids import from_global_id

        raw = from_global_id(global_id)[1]
        self.hidden_from_partner |= {global_id, raw}
        self.other_form |= {global_id: raw, raw: global_id}

    @property
    def ids(self) -> list[str]:
        """Every planted id, for id arguments: customers, interactions, conversations, merges."""
        return sorted(
            {*self.customers.values(), *self.interactions.values(), *self.conversations.values()}
            | set(self.merges)
        )

    @property
    def entity_representations(self) -> list[dict[str, str]]:
        """`_entities` representations of every planted customer, interaction and conversation."""
        return (
            [{"__typename": "Customer", "id": cid} for cid in self.customers.values()]
            + [{"__typename": "Interaction", "id": iid} for iid in self.interactions.values()]
            + [{"__typename": "Conversation", "id": c} for c in self.conversations.values()]
        )


class _Admin:
    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def __call__(self, query: str, **variables: Any) -> dict[str, Any]:
        response = await self.http.post("/graphql", json={"query": query, "variables": variables})
        body: dict[str, Any] = response.json()
        assert response.status_code == 200 and "errors" not in body, body
        data: dict[str, Any] = body["data"]
        return data


async def build_planted_world(db: asyncpg.Connection, http: httpx.AsyncClient) -> Planted:
    """The world, written by ``http`` (a client with an ADMIN key against a live server).
    Touchpoints are inserted directly: the hub has no write path for its catalogue."""
    factory = Factory(db)
    planted = Planted()
    for name, channel, kind in [("site", "WEB", "WEBSITE"), ("store", "PHYSICAL", "STORE")]:
        planted.touchpoints[name] = gid("Touchpoint", await factory.touchpoint(name, channel, kind))
    admin = _Admin(http)
    pii = planted.pii

    async def record(
        label: str, touchpoint: str, identities: list[tuple[str, str]], **extra: Any
    ) -> dict[str, Any]:
        answer = await admin(
            RECORD,
            input={
                "identities": [{"kind": k, "value": v} for k, v in identities],
                "touchpointId": planted.touchpoints[touchpoint],
                "type": "QUESTION",
                "direction": "INBOUND",
                "conversationKey": f"thread-{label}",
                **extra,
            },
        )
        payload: dict[str, Any] = answer["recordInteraction"]
        planted.identifier_values |= {value for _, value in identities}
        planted.interactions[label] = payload["interaction"]["id"]
        planted.conversations[label] = payload["interaction"]["conversation"]["id"]
        return payload

    async def profile(customer: str, name: str, traits: dict[str, Any]) -> None:
        await admin(
            UPSERT, input={"id": planted.customers[customer], "displayName": name, "traits": traits}
        )

    async def consent(customer: str, purpose: str) -> None:
        await admin(
            CONSENT,
            input={
                "customerId": planted.customers[customer],
                "purpose": purpose,
                "status": "GRANTED",
            },
        )

    # Zelda: the partner's one visible customer (WEB, sharing granted), plus a store visit the
    # partner must not see.
    zelda = await record(
        "zelda-web",
        "site",
        [("EMAIL", "zelda.shared@pii.example"), ("PHONE", "+44 20 7946 0111")],
        summary="Zelda asked about the velvet sofa",
        attributes={
            "IP": "203.0.113.77",
            "meta": {"phone": "+1 415 555 0123"},
            "visits": [{"Email": "visit.zelda@pii.example"}, {"page": "/sofas"}],
            "campaign": "spring",
        },
    )
    planted.customers["zelda"] = zelda["customer"]["id"]
    await record(
        "zelda-store",
        "store",
        [("EMAIL", "zelda.shared@pii.example")],
        summary="Zelda bought a lamp in the store",
        attributes={"Address": "12 Planted Lane"},
    )
    await profile(
        "zelda",
        "Zelda Quintanilla",
        {
            "Email": "ZELDA.TRAIT@pii.example",
            "contact": {"email": "contact.zelda@pii.example"},
            "addresses": [{"Address": "7 Nested Row"}, {"city": "Leeds"}],
            "tier": "gold",
        },
    )
    await consent("zelda", "PARTNER_SHARING")
    await admin(STAGE, id=planted.customers["zelda"], stage="CONSIDERATION", reason="asked")
    pii |= {
        "zelda.shared@pii.example",
        "+442079460111",
        "Zelda asked about the velvet sofa",
        "203.0.113.77",
        "+1 415 555 0123",
        "visit.zelda@pii.example",
        "Zelda bought a lamp in the store",
        "12 Planted Lane",
        "Zelda Quintanilla",
        "ZELDA.TRAIT@pii.example",
        "contact.zelda@pii.example",
        "7 Nested Row",
    }
    # Zed: an older profile of Zelda's, merged into her by an admin (the ledger moves his
    # identifier to her).
    zed = await record("zed-web", "site", [("EMAIL", "zed.old@pii.example")])
    planted.customers["zed"] = zed["customer"]["id"]
    await profile("zed", "Zed Oldprofile", {"Contact": {"Phone_Number": "+44 20 7946 0222"}})
    pii |= {"zed.old@pii.example", "Zed Oldprofile", "+44 20 7946 0222"}
    merge = await admin(
        MERGE,
        input={"survivorId": planted.customers["zelda"], "mergedIds": [planted.customers["zed"]]},
    )
    planted.merges.append(merge["mergeCustomers"]["merge"]["id"])

    # Ygritte: on WEB too, but she never agreed to partner sharing.
    ygritte = await record(
        "ygritte-web",
        "site",
        [("EMAIL", "ygritte.unshared@pii.example"), ("CRM_ID", "crm-ygritte-7731")],
        summary="Ygritte wants her order cancelled",
        attributes={"Meta": {"Phone": "+1 415 555 0144"}},
    )
    planted.customers["ygritte"] = ygritte["customer"]["id"]
    await profile(
        "ygritte",
        "Ygritte Unshared",
        {"Contact": {"Phone_Number": "+44 20 7946 0333"}, "BirthDate": "1990-04-01"},
    )
    await consent("ygritte", "MARKETING")
    pii |= {
        "ygritte.unshared@pii.example",
        "crm-ygritte-7731",
        "Ygritte wants her order cancelled",
        "+1 415 555 0144",
        "Ygritte Unshared",
        "+44 20 7946 0333",
        "1990-04-01",
    }

    # Oswald: only ever in the store; he did agree to sharing.
    oswald = await record(
        "oswald-store",
        "store",
        [("EMAIL", "oswald.outside@pii.example"), ("PHONE", "+44 20 7946 0444")],
        summary="Oswald returned a chair",
        attributes={"ip": "198.51.100.23"},
    )
    planted.customers["oswald"] = oswald["customer"]["id"]
    await profile("oswald", "Oswald Outsider", {"contact": {"email": "contact.oswald@pii.example"}})
    await consent("oswald", "PARTNER_SHARING")
    await admin(STAGE, id=planted.customers["oswald"], stage="PURCHASE", reason="bought")
    pii |= {
        "oswald.outside@pii.example",
        "+442079460444",
        "Oswald returned a chair",
        "198.51.100.23",
        "Oswald Outsider",
        "contact.oswald@pii.example",
    }

    # Mabel and Norbert (store only): one visit with both identifiers merges them (an identity
    # merge, whose ledger names the identifier).
    mabel = await record("mabel-store", "store", [("EMAIL", "mabel.merge@pii.example")])
    planted.customers["mabel"] = mabel["customer"]["id"]
    await profile("mabel", "Mabel Mergeone", {"phone": "+44 20 7946 0666"})
    norbert = await record("norbert-store", "store", [("PHONE", "+44 20 7946 0555")])
    planted.customers["norbert"] = norbert["customer"]["id"]
    await profile("norbert", "Norbert Mergetwo", {"Email": "norbert.trait@pii.example"})
    both = await record(
        "mabel-norbert-store",
        "store",
        [("EMAIL", "mabel.merge@pii.example"), ("PHONE", "+44 20 7946 0555")],
    )
    assert len(both["merges"]) == 1, both
    planted.merges.append(both["merges"][0]["id"])
    pii |= {
        "mabel.merge@pii.example",
        "Mabel Mergeone",
        "+44 20 7946 0666",
        "+442079460555",
        "Norbert Mergetwo",
        "norbert.trait@pii.example",
    }

    for name in ("ygritte", "oswald", "mabel", "norbert"):
        planted.hide(planted.customers[name])
    for label in ("zelda-store", "ygritte-web", "oswald-store", "mabel-store", "norbert-store"):
        planted.hide(planted.interactions[label])
        planted.hide(planted.conversations[label])
    planted.hide(planted.interactions["mabel-norbert-store"])
    planted.hide(planted.conversations["mabel-norbert-store"])

    # Computed traits (docs/audiences.md): one over a personal attribute (Oswald's ip is its
    # value: masked whole without pii), one the partner's scope covers (WEB), one it does not.
    for definition in (
        {
            "key": "last_ip",
            "aggregate": "LAST",
            "attribute": "attributes.ip",
            "interactions": {"channels": ["PHYSICAL"]},
        },
        {"key": "web_visits", "aggregate": "COUNT", "interactions": {"channels": ["WEB"]}},
        {"key": "store_visits", "aggregate": "COUNT", "interactions": {"channels": ["PHYSICAL"]}},
    ):
        await admin(DEFINE_TRAIT, input=definition)
    return planted
