"""Conversations across channels, resolving and reopening, and customer.resumeContext."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from tests.factories import T0
from tests.ingest_support import interaction, record, touchpoints

EMAIL = ("EMAIL", "ana@example.com")
PHONE = ("PHONE", "+4915112345670")
RESUME = """
query($id: ID!) {
  customer(id: $id) {
    resumeContext {
      openConversations { key status channels { code } lastInteraction { summary } }
      lastInteraction { summary touchpoint { name } channel { code } }
      currentStage { code }
      stageEnteredAt
      secondsInStage
    }
  }
}
"""
RESOLVE = "mutation($id: ID!) { resolveConversation(id: $id) { status resolvedAt } }"


def at(minutes: int) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat()


async def test_a_conversation_crosses_channels_and_resume_context_picks_it_up(
    gql: Any, db: asyncpg.Connection
) -> None:
    tp = await touchpoints(db)
    key = {"conversationKey": "TICKET-7"}
    await record(
        gql,
        interaction(tp["chat"], EMAIL, type="QUESTION", summary="Size?", occurredAt=at(0), **key),
    )
    await record(
        gql,
        interaction(
            tp["call"], PHONE, EMAIL, type="CALL", summary="Called back", occurredAt=at(10), **key
        ),
    )
    last = await record(
        gql,
        interaction(
            tp["chat"], EMAIL, type="CHAT_MESSAGE", summary="Thanks", occurredAt=at(20), **key
        ),
    )
    await record(
        gql,
        interaction(tp["store"], PHONE, type="STORE_VISIT", summary="Visited", occurredAt=at(30)),
    )
    conversation = last["interaction"]["conversation"]
    assert conversation["key"] == "TICKET-7" and conversation["status"] == "OPEN"
    asked = datetime.now(UTC)
    context = (await gql.data(RESUME, {"id": last["customer"]["id"]}))["customer"]["resumeContext"]
    answered = datetime.now(UTC)
    assert context["openConversations"] == [
        {
            "key": "TICKET-7",
            "status": "OPEN",
            "channels": [{"code": "WEB"}, {"code": "ASSISTED"}, {"code": "WEB"}],
            "lastInteraction": {"summary": "Thanks"},
        }
    ]
    assert context["lastInteraction"] == {
        "summary": "Visited",
        "touchpoint": {"name": "Flagship"},
        "channel": {"code": "PHYSICAL"},
    }
    assert context["currentStage"] == {"code": "CONSIDERATION"}
    assert context["stageEnteredAt"] == at(0)
    # Whole seconds since the stage was entered (at(0)), as of the moment the answer was built.
    assert (
        int((asked - T0).total_seconds())
        <= context["secondsInStage"]
        <= int((answered - T0).total_seconds())
    )
    row = await db.fetchrow("SELECT started_at, last_activity_at FROM conversations")
    assert (row["started_at"], row["last_activity_at"]) == (T0, T0 + timedelta(minutes=20))


async def test_resolving_closes_and_new_activity_reopens(gql: Any, db: asyncpg.Connection) -> None:
    tp = await touchpoints(db)
    first = await record(
        gql, interaction(tp["chat"], EMAIL, conversationKey="C-1", occurredAt=at(0))
    )
    conversation_id = first["interaction"]["conversation"]["id"]
    resolved = await gql.data(RESOLVE, {"id": conversation_id})
    assert resolved["resolveConversation"]["status"] == "RESOLVED"
    context = (await gql.data(RESUME, {"id": first["customer"]["id"]}))["customer"]
    assert context["resumeContext"]["openConversations"] == []
    reopened = await record(gql, interaction(tp["call"], EMAIL, conversationKey="C-1"))
    assert reopened["interaction"]["conversation"]["status"] == "OPEN"
    kinds = await db.fetch("SELECT kind FROM events WHERE kind = 'CONVERSATION_UPDATED'")
    assert len(kinds) == 3
    missing = await gql.error(
        RESOLVE, {"id": "Q29udmVyc2F0aW9uOjAwMDAwMDAwLTAwMDAtMDAwMC0wMDAwLTAwMDAwMDAwMDAwMA"}
    )
    assert missing["extensions"]["code"] == "NOT_FOUND"
