"""A small simulated retailer for pages and browser tests: customers wander across channels
with believable odds and move through the journey stages, so a Sankey and a funnel have shape.

Written through ``tests/factories.py``; deterministic for a given seed.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import asyncpg

from tests.factories import T0, Factory

STAGES = ["AWARENESS", "CONSIDERATION", "PURCHASE", "POST_PURCHASE", "RETENTION"]
# (name, channel, kind)
TOUCHPOINTS = {
    "WEB": ("Website", "WEBSITE"),
    "MOBILE": ("App", "MOBILE_APP"),
    "ASSISTED": ("Contact centre", "VOICE"),
    "SOCIAL": ("WhatsApp", "RICH_MESSAGING"),
    "PHYSICAL": ("Store", "STORE"),
    "OUTBOUND": ("Newsletter", "CAMPAIGN"),
}
FIRST = {"SOCIAL": 30, "WEB": 35, "OUTBOUND": 20, "PHYSICAL": 15}
NEXT = {
    "WEB": {"WEB": 30, "MOBILE": 25, "ASSISTED": 12, "SOCIAL": 8, "PHYSICAL": 15, "OUTBOUND": 10},
    "MOBILE": {
        "MOBILE": 30,
        "WEB": 20,
        "ASSISTED": 10,
        "PHYSICAL": 20,
        "SOCIAL": 10,
        "OUTBOUND": 10,
    },
    "ASSISTED": {"WEB": 30, "MOBILE": 25, "ASSISTED": 10, "PHYSICAL": 15, "SOCIAL": 20},
    "SOCIAL": {"WEB": 40, "SOCIAL": 20, "MOBILE": 20, "ASSISTED": 20},
    "PHYSICAL": {"WEB": 20, "MOBILE": 30, "ASSISTED": 15, "OUTBOUND": 25, "PHYSICAL": 10},
    "OUTBOUND": {"WEB": 45, "MOBILE": 30, "PHYSICAL": 15, "SOCIAL": 10},
}
TYPE = {
    "WEB": "PAGE_VIEW",
    "MOBILE": "PRODUCT_VIEW",
    "ASSISTED": "CALL",
    "SOCIAL": "CHAT_MESSAGE",
    "PHYSICAL": "STORE_VISIT",
    "OUTBOUND": "CAMPAIGN_SENT",
}
LINES = ["retail", "travel"]


def _pick(rng: random.Random, weights: dict[str, int]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


async def seed_journeys(
    db: asyncpg.Connection, customers: int = 160, seed: int = 7, start: datetime = T0
) -> None:
    """Customers' journeys from ``start`` on (the run's T0 unless a test needs a given window)."""
    rng = random.Random(seed)
    factory = Factory(db)
    for line in LINES:
        for channel, (name, kind) in TOUCHPOINTS.items():
            await factory.touchpoint(f"{name} ({line})", channel, kind, business_line=line)
    for number in range(customers):
        line = LINES[0] if rng.random() < 0.65 else LINES[1]
        customer = await factory.customer(f"Customer {number}")
        at = start + timedelta(days=rng.uniform(0, 50))
        channel = _pick(rng, FIRST)
        stage_index = -1
        stage_channel: str | None = None
        conversation = None
        for step in range(rng.randint(2, 12)):
            if step:
                channel = _pick(rng, NEXT[channel])
                at += timedelta(minutes=rng.choice([5, 20, 90, 600, 2000, 6000]) * rng.random())
            name = TOUCHPOINTS[channel][0]
            if channel in ("ASSISTED", "SOCIAL") and conversation is None:
                conversation = await factory.conversation(
                    customer,
                    f"journey-{number}",
                    status="RESOLVED" if rng.random() < 0.7 else "OPEN",
                    at=at,
                )
            iid = await factory.interaction(
                customer,
                f"{name} ({line})",
                at=at,
                type=TYPE[channel],
                direction="OUTBOUND" if channel == "OUTBOUND" else "INBOUND",
                conversation_id=conversation if channel in ("ASSISTED", "SOCIAL") else None,
                sentiment=round(rng.uniform(-0.6, 1.0), 2) if channel != "OUTBOUND" else None,
            )
            if channel in ("ASSISTED", "SOCIAL") and rng.random() < 0.85:
                await factory.interaction(
                    customer,
                    f"{name} ({line})",
                    at=at + timedelta(minutes=rng.uniform(1, 240)),
                    type=TYPE[channel],
                    direction="OUTBOUND",
                    conversation_id=conversation,
                )
                at += timedelta(minutes=241)
            # Mostly forward, sometimes back; a purchase needs a shop channel.
            move = rng.random()
            target = stage_index
            if stage_index < 0:
                target = 0
            elif move < 0.45 and stage_index < 4:
                wanted = STAGES[stage_index + 1]
                if wanted != "PURCHASE" or channel in ("WEB", "MOBILE", "PHYSICAL"):
                    target = stage_index + 1
            elif move > 0.93 and stage_index > 0:
                target = stage_index - 1
            if target != stage_index:
                transition = (
                    "INITIAL"
                    if stage_index < 0
                    else ("FORWARD" if target > stage_index else "BACKWARD")
                )
                await factory.stage_change(
                    customer,
                    STAGES[target],
                    previous=STAGES[stage_index] if stage_index >= 0 else None,
                    transition=transition,
                    at=at,
                    interaction_id=iid,
                    channel=channel,
                )
                stage_index, stage_channel = target, channel
            elif stage_index >= 0 and channel != stage_channel and rng.random() < 0.2:
                await factory.stage_change(
                    customer,
                    STAGES[stage_index],
                    previous=STAGES[stage_index],
                    transition="LOOPING",
                    at=at,
                    interaction_id=iid,
                    channel=channel,
                )
                stage_channel = channel
    await db.execute(
        "UPDATE conversations c SET resolved_at = s.last_at + interval '2 hours'"
        " FROM (SELECT conversation_id, max(occurred_at) AS last_at FROM interactions"
        " GROUP BY 1) s WHERE s.conversation_id = c.id AND c.status = 'RESOLVED'"
    )
