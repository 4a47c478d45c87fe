"""The read scenarios: the same answer asked of each server in its own language.

Scenario 1: one customer's 360° view by id (identities, stage, the last 20 interactions each with
touchpoint and channel). Scenario 2: the first 50 customers (by creation) with the same view.

Each server has a request (path and JSON body, ``__ID__`` standing for the customer id) and a
normaliser that maps its answer onto one neutral shape (UUIDs, datetimes, snake-free field
names), so that answers are compared before anything is timed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hub.access.documents import document_id
from hub.core.ids import from_global_id

HUB_CUSTOMER = """fragment View on Customer {
  id displayName traits createdAt lastSeenAt
  currentStage { code name }
  identities { kind value }
  interactions(first: 20) { nodes {
    id occurredAt type direction summary sentiment
    touchpoint { id name kind channel { code name } } } } }"""

PGL_CUSTOMER = """fragment View on Customer {
  rowId displayName traits createdAt lastSeenAt
  journeyStageByCurrentStage { code name }
  identitiesByCustomerId(orderBy: [KIND_ASC, ROW_ID_ASC]) { nodes { kind value } }
  interactionsByCustomerId(first: 20, orderBy: [OCCURRED_AT_DESC, ROW_ID_DESC]) { nodes {
    rowId occurredAt type direction summary sentiment
    touchpointByTouchpointId { rowId name kind channelByChannelCode { code name } } } } }"""


def _graphql(query: str, variables: dict[str, Any]) -> str:
    return json.dumps({"query": query, "variables": variables})


@dataclass(frozen=True)
class Request:
    path: str
    body: str  # JSON text; "__ID__" is replaced by a customer id


@dataclass(frozen=True)
class Scenario:
    number: int
    title: str
    requests: dict[str, Request]
    normalise: dict[str, Callable[[Any], Any]]


def _moment(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text is not None else None


def _neutral(
    customer: dict[str, Any] | None,
    *,
    id_key: str,
    stage_key: str,
    identities: Callable[[dict[str, Any]], list[dict[str, Any]]],
    interactions: Callable[[dict[str, Any]], list[dict[str, Any]]],
    touchpoint_key: str,
    channel_key: str,
    decode: Callable[[str], str],
) -> dict[str, Any] | None:
    if customer is None:
        return None
    stage = customer[stage_key]
    return {
        "id": decode(customer[id_key]),
        "displayName": customer["displayName"],
        "traits": customer["traits"],
        "createdAt": _moment(customer["createdAt"]),
        "lastSeenAt": _moment(customer["lastSeenAt"]),
        "stage": (stage["code"], stage["name"]) if stage else None,
        "identities": [(i["kind"], i["value"]) for i in identities(customer)],
        "interactions": [
            (
                decode(i[id_key]),
                _moment(i["occurredAt"]),
                i["type"],
                i["direction"],
                i["summary"],
                float(i["sentiment"]) if i["sentiment"] is not None else None,
                decode(i[touchpoint_key][id_key]),
                i[touchpoint_key]["name"],
                i[touchpoint_key]["kind"],
                i[touchpoint_key][channel_key]["code"],
                i[touchpoint_key][channel_key]["name"],
            )
            for i in interactions(customer)
        ],
    }


def _hub_id(value: str) -> str:
    return from_global_id(value)[1]


def _plain(value: str) -> str:
    return str(value)


def hub_customer(customer: dict[str, Any] | None) -> dict[str, Any] | None:
    return _neutral(
        customer,
        id_key="id",
        stage_key="currentStage",
        identities=lambda c: c["identities"],
        interactions=lambda c: c["interactions"]["nodes"],
        touchpoint_key="touchpoint",
        channel_key="channel",
        decode=_hub_id,
    )


def raw_customer(customer: dict[str, Any] | None) -> dict[str, Any] | None:
    return _neutral(
        customer,
        id_key="id",
        stage_key="currentStage",
        identities=lambda c: c["identities"],
        interactions=lambda c: c["interactions"],
        touchpoint_key="touchpoint",
        channel_key="channel",
        decode=_plain,
    )


def pgl_customer(customer: dict[str, Any] | None) -> dict[str, Any] | None:
    return _neutral(
        customer,
        id_key="rowId",
        stage_key="journeyStageByCurrentStage",
        identities=lambda c: c["identitiesByCustomerId"]["nodes"],
        interactions=lambda c: c["interactionsByCustomerId"]["nodes"],
        touchpoint_key="touchpointByTouchpointId",
        channel_key="channelByChannelCode",
        decode=_plain,
    )


SCENARIO_1 = Scenario(
    number=1,
    title="one customer's 360° view by id",
    requests={
        "hub": Request(
            "/graphql",
            _graphql(
                "query One($id: ID!) { customer(id: $id) { ...View } }\n" + HUB_CUSTOMER,
                {"id": "__ID__"},
            ),
        ),
        "postgraphile": Request(
            "/graphql",
            _graphql(
                "query One($id: UUID!) { customerByRowId(rowId: $id) { ...View } }\n"
                + PGL_CUSTOMER,
                {"id": "__ID__"},
            ),
        ),
        "raw": Request("/customer", json.dumps({"id": "__ID__"})),
    },
    normalise={
        "hub": lambda body: hub_customer(body["data"]["customer"]),
        "postgraphile": lambda body: pgl_customer(body["data"]["customerByRowId"]),
        "raw": lambda body: raw_customer(body["data"]["customer"]),
    },
)

SCENARIO_2 = Scenario(
    number=2,
    title="50 customers with 20 interactions each",
    requests={
        "hub": Request(
            "/graphql",
            _graphql(
                "query Many { customers(first: 50) { nodes { ...View } } }\n" + HUB_CUSTOMER, {}
            ),
        ),
        "postgraphile": Request(
            "/graphql",
            _graphql(
                "query Many { allCustomers(first: 50, orderBy: [CREATED_AT_ASC, ROW_ID_ASC]) "
                "{ nodes { ...View } } }\n" + PGL_CUSTOMER,
                {},
            ),
        ),
        "raw": Request("/customers", json.dumps({"first": 50})),
    },
    normalise={
        "hub": lambda body: [hub_customer(c) for c in body["data"]["customers"]["nodes"]],
        "postgraphile": lambda body: [
            pgl_customer(c) for c in body["data"]["allCustomers"]["nodes"]
        ],
        "raw": lambda body: [raw_customer(c) for c in body["data"]["customers"]],
    },
)

READ_SCENARIOS = {1: SCENARIO_1, 2: SCENARIO_2}


def by_document_id(request: Request) -> Request:
    """The hub's request called as a trusted document: its ``documentId`` (the SHA-256 of the
    text, registered with ``hub documents add``) instead of the text."""
    body = json.loads(request.body)
    trusted = {"documentId": document_id(body["query"]), "variables": body["variables"]}
    return Request(request.path, json.dumps(trusted))


def trusted_documents() -> list[str]:
    """The hub's read documents, for registration."""
    return [json.loads(s.requests["hub"].body)["query"] for s in READ_SCENARIOS.values()]


# The hub with compiled reads off speaks the hub's language.
for _scenario in READ_SCENARIOS.values():
    _scenario.requests["hub-dataloader"] = _scenario.requests["hub"]
    _scenario.normalise["hub-dataloader"] = _scenario.normalise["hub"]
    _scenario.requests["hub-otel"] = _scenario.requests["hub"]
    _scenario.normalise["hub-otel"] = _scenario.normalise["hub"]
    _scenario.requests["hub-trusted"] = by_document_id(_scenario.requests["hub"])
    _scenario.normalise["hub-trusted"] = _scenario.normalise["hub"]
