"""Helpers shared by the ingest, merge and journey tests: the mutations and small shortcuts."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from tests.factories import Factory, gid

RECORD = """
mutation Record($input: RecordInteractionInput!) {
  recordInteraction(input: $input) {
    created duplicate warnings
    interaction { id type occurredAt summary attributes conversation { id key status } }
    customer { id identities { kind value } currentStage { code } }
    merges { id survivorId mergedIds rule identityKind identityValue active }
  }
}
"""

RECORD_MANY = """
mutation RecordMany($inputs: [RecordInteractionInput!]!) {
  recordInteractions(inputs: $inputs) {
    stored { index created duplicate interaction { id } customer { id } merges { id } }
    rejected { index code message }
  }
}
"""


async def touchpoints(db: asyncpg.Connection) -> dict[str, str]:
    """A few touchpoints on different channels, by name → global id."""
    factory = Factory(db)
    made = {
        "web": await factory.touchpoint("Web shop", "WEB", "WEBSITE"),
        "app": await factory.touchpoint("iOS app", "MOBILE", "MOBILE_APP"),
        "chat": await factory.touchpoint("Live chat", "WEB", "LIVE_CHAT"),
        "call": await factory.touchpoint("Contact centre", "ASSISTED", "VOICE"),
        "store": await factory.touchpoint("Flagship", "PHYSICAL", "STORE"),
        "mail": await factory.touchpoint("Mailbox", "OUTBOUND", "EMAIL"),
    }
    return {name: gid("Touchpoint", tid) for name, tid in made.items()}


def interaction(
    touchpoint: str,
    *identities: tuple[str, str],
    type: str = "PAGE_VIEW",
    direction: str = "INBOUND",
    **extra: Any,
) -> dict[str, Any]:
    return {
        "identities": [{"kind": kind, "value": value} for kind, value in identities],
        "touchpointId": touchpoint,
        "type": type,
        "direction": direction,
        **extra,
    }


async def record(gql: Any, item: dict[str, Any]) -> dict[str, Any]:
    data = await gql.data(RECORD, {"input": item})
    result: dict[str, Any] = data["recordInteraction"]
    return result


def row_id(global_id: str) -> uuid.UUID:
    from hub.core.ids import from_global_id

    return uuid.UUID(from_global_id(global_id)[1])


RECORD_BARE = """
mutation($input: RecordInteractionInput!) { recordInteraction(input: $input) { created } }
"""
