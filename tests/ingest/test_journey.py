"""The journey engine: rules from the database, classification, late interactions, overrides."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import asyncpg

from tests.factories import T0
from tests.ingest_support import interaction, record, touchpoints

EMAIL = ("EMAIL", "ana@example.com")
HISTORY = """
query($id: ID!) {
  customer(id: $id) {
    currentStage { code } stageEnteredAt
    stageHistory { stage { code } previousStage transition reason channel { code }
                   interaction { type } }
  }
}
"""


def at(minutes: int) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat()


async def test_transitions_are_classified_and_late_interactions_do_not_move_back(
    gql: Any, db: asyncpg.Connection
) -> None:
    tp = await touchpoints(db)
    steps = [
        ("web", "PAGE_VIEW", 0),
        ("web", "PRODUCT_VIEW", 10),
        ("web", "SEARCH", 15),  # same stage, same channel: no change
        ("app", "PRODUCT_VIEW", 20),  # same stage, other channel: looping
        ("store", "ORDER", 30),
        ("web", "PAGE_VIEW", 40),  # back to awareness
        ("call", "ORDER", 5),  # late: happened before the current stage began
        ("mail", "EMAIL", 50),  # no rule: no change
    ]
    customer_id = ""
    for place, itype, minutes in steps:
        result = await record(
            gql, interaction(tp[place], EMAIL, type=itype, occurredAt=at(minutes))
        )
        customer_id = result["customer"]["id"]
    customer = (await gql.data(HISTORY, {"id": customer_id}))["customer"]
    assert [
        (h["stage"]["code"], h["transition"], h["channel"]["code"])
        for h in customer["stageHistory"]
    ] == [
        ("AWARENESS", "INITIAL", "WEB"),
        ("CONSIDERATION", "FORWARD", "WEB"),
        ("CONSIDERATION", "LOOPING", "MOBILE"),
        ("PURCHASE", "FORWARD", "PHYSICAL"),
        ("AWARENESS", "BACKWARD", "WEB"),
    ]
    assert customer["stageHistory"][3]["interaction"] == {"type": "ORDER"}
    assert customer["stageHistory"][3]["previousStage"] == "CONSIDERATION"
    assert customer["currentStage"] == {"code": "AWARENESS"}
    assert customer["stageEnteredAt"] == at(40)
    row = await db.fetchrow("SELECT first_seen_at, last_seen_at FROM customers")
    assert (row["first_seen_at"], row["last_seen_at"]) == (T0, T0 + timedelta(minutes=50))
    events = await db.fetchval("SELECT count(*) FROM events WHERE kind = 'JOURNEY_STAGE_CHANGED'")
    assert events == 5


async def test_rules_are_editable_and_the_channel_rule_wins(
    gql: Any, db: asyncpg.Connection
) -> None:
    tp = await touchpoints(db)
    rules = (await gql.data("{ stageRules { interactionType channel stage } }"))["stageRules"]
    assert {"interactionType": "ORDER", "channel": None, "stage": "PURCHASE"} in rules
    changed = await gql.data(
        "mutation { setStageRule(interactionType: PAGE_VIEW, channel: MOBILE,"
        " stage: CONSIDERATION) { interactionType channel stage } }"
    )
    assert changed["setStageRule"]["channel"] == "MOBILE"
    on_app = await record(gql, interaction(tp["app"], EMAIL, type="PAGE_VIEW"))
    assert on_app["customer"]["currentStage"] == {"code": "CONSIDERATION"}
    on_web = await record(gql, interaction(tp["web"], ("EMAIL", "ben@example.com")))
    assert on_web["customer"]["currentStage"] == {"code": "AWARENESS"}
    await gql.data(
        "mutation { deleteStageRule(interactionType: PAGE_VIEW, channel: MOBILE) { stage } }"
    )
    gone = await gql.error(
        "mutation { deleteStageRule(interactionType: PAGE_VIEW, channel: MOBILE) { stage } }"
    )
    assert gone["extensions"]["code"] == "NOT_FOUND"


async def test_a_manual_stage_change_is_recorded_with_its_reason(
    gql: Any, db: asyncpg.Connection
) -> None:
    tp = await touchpoints(db)
    customer = (await record(gql, interaction(tp["web"], EMAIL)))["customer"]
    moved = await gql.data(
        "mutation($id: ID!) { setJourneyStage(customerId: $id, stage: RETENTION,"
        ' reason: "renewed by phone") { currentStage { code } } }',
        {"id": customer["id"]},
    )
    assert moved["setJourneyStage"]["currentStage"] == {"code": "RETENTION"}
    history = (await gql.data(HISTORY, {"id": customer["id"]}))["customer"]["stageHistory"]
    assert history[-1]["transition"] == "FORWARD"
    assert history[-1]["reason"] == "manual: renewed by phone"
    empty = await gql.error(
        'mutation($id: ID!) { setJourneyStage(customerId: $id, stage: PURCHASE, reason: " ")'
        " { id } }",
        {"id": customer["id"]},
    )
    assert empty["extensions"]["code"] == "BAD_USER_INPUT"
