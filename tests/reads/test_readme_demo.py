"""The README's example queries against ``hub demo``'s own data set, not only a fixture.

The database is seeded exactly as ``hub demo`` seeds an empty one (the same number of customers
and seed), and every block of the README's "Example queries" section runs against it. Ana's
answers are known exactly (her journey is scripted, seeds/story.py); for the questions about the
whole data set the expected answer is computed from the tables with plain SQL.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from hub.core.enums import ChannelCode
from hub.seeds.demo import DEMO_CUSTOMERS, DEMO_SEED, seed_demo
from hub.seeds.story import ANA_CONVERSATION, ANA_EMAIL, ANA_NAME, ANA_PHONE
from tests.conftest import GraphQLClient
from tests.reads.test_readme import EXAMPLES, README

Check = Callable[[GraphQLClient, asyncpg.Connection], Awaitable[None]]


async def check_customer_360(gql: GraphQLClient, db: asyncpg.Connection) -> None:
    c = (await gql.data(EXAMPLES["Customer360"]))["customerByIdentity"]
    assert c["displayName"] == ANA_NAME
    assert c["currentStage"] == {"code": "CONSIDERATION", "name": "Consideration"}
    assert c["traits"]["tier"] == "gold" and c["traits"]["city"] == "London"
    assert {(i["kind"], i["value"]) for i in c["identities"]} == {
        ("EMAIL", ANA_EMAIL),
        ("PHONE", ANA_PHONE),
        ("LOYALTY_ID", "LSP0000000001"),
        ("SOCIAL_HANDLE", "instagram:ana.silva"),
    }
    # Social, then the website, the app, the chat (web) and a store: every step a stage row.
    assert [
        (s["stage"]["code"], s["transition"], s["channel"]["code"]) for s in c["stageHistory"]
    ] == [
        ("AWARENESS", "INITIAL", "SOCIAL"),
        ("CONSIDERATION", "FORWARD", "WEB"),
        ("CONSIDERATION", "LOOPING", "MOBILE"),
        ("CONSIDERATION", "LOOPING", "WEB"),
        ("CONSIDERATION", "LOOPING", "PHYSICAL"),
    ]
    assert c["lastInteraction"]["summary"] == "Tried on the blue linen jacket"
    assert c["lastInteraction"]["touchpoint"]["name"] == "Larkspur London Oxford Street"
    # The conversation began on the web chat and resumed on WhatsApp; it is still open.
    [conversation] = c["conversations"]
    assert conversation["key"] == ANA_CONVERSATION and conversation["status"] == "OPEN"
    assert conversation["channels"] == [{"code": "WEB"}, {"code": "SOCIAL"}]
    assert conversation["lastInteraction"]["summary"].startswith("Yes: a blue linen jacket")
    assert [u["channel"]["code"] for u in c["channelsUsed"]] == [
        "SOCIAL",
        "WEB",
        "MOBILE",
        "PHYSICAL",
    ]
    assert c["interactions"]["totalCount"] == 8
    assert [n["type"] for n in c["interactions"]["nodes"]] == [
        "STORE_VISIT",
        "CHAT_MESSAGE",
        "CHAT_MESSAGE",
        "CHAT_MESSAGE",
        "QUESTION",
        "PRODUCT_VIEW",
        "PRODUCT_VIEW",
        "SOCIAL_ENGAGEMENT",
    ]


async def check_by_phone(gql: GraphQLClient, db: asyncpg.Connection) -> None:
    c = (await gql.data(EXAMPLES["ByPhone"]))["customerByIdentity"]
    assert c["displayName"] == ANA_NAME and c["requestedId"] is None


async def check_customer_page(gql: GraphQLClient, db: asyncpg.Connection) -> None:
    expected = await db.fetch(
        "SELECT display_name FROM customers ORDER BY last_seen_at DESC, id DESC LIMIT 6"
    )
    names: list[str | None] = []
    after = None
    for _ in range(3):
        page = (await gql.data(EXAMPLES["CustomerPage"], {"after": after}))["customers"]
        assert page["totalCount"] == DEMO_CUSTOMERS
        assert page["pageInfo"]["hasNextPage"] is True
        names += [edge["node"]["displayName"] for edge in page["edges"]]
        after = page["pageInfo"]["endCursor"]
    assert names == [row["display_name"] for row in expected]


async def check_previous_page(gql: GraphQLClient, db: asyncpg.Connection) -> None:
    expected = await db.fetch(
        "SELECT display_name FROM customers"
        " ORDER BY display_name ASC NULLS FIRST, created_at DESC, id DESC"
    )
    names: list[str | None] = []
    before = None
    for _ in range(3):
        page = (await gql.data(EXAMPLES["PreviousPage"], {"before": before}))["customers"]
        assert page["pageInfo"]["hasPreviousPage"] is True
        names = [node["displayName"] for node in page["nodes"]] + names
        before = page["pageInfo"]["startCursor"]
    assert names == [row["display_name"] for row in expected[-6:]]


PROSPECTS_SQL = """
SELECT c.display_name FROM customers c
WHERE c.current_stage IN ('CONSIDERATION', 'PURCHASE')
  AND (
    (EXISTS (SELECT 1 FROM interactions i WHERE i.customer_id = c.id AND i.channel_code = 'WEB')
     AND EXISTS (SELECT 1 FROM interactions i
                 WHERE i.customer_id = c.id AND i.channel_code = 'MOBILE'))
    OR c.traits ->> 'tier' = 'gold'
  )
  AND NOT EXISTS (SELECT 1 FROM interactions i
                  WHERE i.customer_id = c.id AND i.channel_code = 'PHYSICAL')
ORDER BY c.display_name, c.id
"""


async def check_prospects(gql: GraphQLClient, db: asyncpg.Connection) -> None:
    expected = [row["display_name"] for row in await db.fetch(PROSPECTS_SQL)]
    found = (await gql.data(EXAMPLES["Prospects"]))["customers"]
    assert found["totalCount"] == len(expected) and len(expected) > 20
    assert [n["displayName"] for n in found["nodes"]] == expected[:20]
    # Ana is gold and considering, but she has been to a store: not a prospect by this filter.
    assert ANA_NAME not in expected


INBOUND_SQL = """
SELECT i.type, c.display_name FROM interactions i JOIN customers c ON c.id = i.customer_id
WHERE i.channel_code IN ('ASSISTED', 'MOBILE') AND i.direction = 'INBOUND'
  AND i.occurred_at >= '2026-01-01T00:00:00Z' AND i.occurred_at < '2026-02-01T00:00:00Z'
ORDER BY i.occurred_at DESC, i.id DESC
"""


async def check_inbound_service(gql: GraphQLClient, db: asyncpg.Connection) -> None:
    expected = [(row["type"], row["display_name"]) for row in await db.fetch(INBOUND_SQL)]
    found = (await gql.data(EXAMPLES["InboundService"]))["interactions"]
    assert found["totalCount"] == len(expected) and len(expected) > 20
    assert [(n["type"], n["customer"]["displayName"]) for n in found["nodes"]] == expected[:20]


async def check_catalogue(gql: GraphQLClient, db: asyncpg.Connection) -> None:
    data = await gql.data(EXAMPLES["Catalogue"])
    assert [c["code"] for c in data["channels"]] == [code.value for code in ChannelCode]
    touchpoints = sum(len(c["touchpoints"]) for c in data["channels"])
    assert touchpoints == await db.fetchval("SELECT count(*) FROM touchpoints")
    counts = {s["code"]: s["customerCount"] for s in data["journeyStages"]}
    stored = await db.fetch(
        "SELECT current_stage, count(*) AS n FROM customers"
        " WHERE current_stage IS NOT NULL GROUP BY current_stage"
    )
    assert counts == {row["current_stage"]: row["n"] for row in stored}


CHECKS: dict[str, Check] = {
    "Customer360": check_customer_360,
    "ByPhone": check_by_phone,
    "CustomerPage": check_customer_page,
    "PreviousPage": check_previous_page,
    "Prospects": check_prospects,
    "InboundService": check_inbound_service,
    "Catalogue": check_catalogue,
}


def test_every_example_is_checked_on_the_demo() -> None:
    assert set(EXAMPLES) == set(CHECKS)


async def test_readme_examples_on_the_demo_data(
    gql: GraphQLClient, db: asyncpg.Connection, database_url: str
) -> None:
    # One seeding for all the examples: the demo's 2,000 customers take a while to write.
    await seed_demo(database_url, customers=DEMO_CUSTOMERS, seed=DEMO_SEED, progress=False)
    failures: dict[str, Any] = {}
    for name, check in CHECKS.items():
        try:
            await check(gql, db)
        except AssertionError as failure:
            failures[name] = failure
    assert not failures, failures


def _try_it_blocks() -> dict[str, str]:
    section = README.split("\n## Try it\n", 1)[1].split("\n## ", 1)[0]
    return {
        re.search(r"(?:query|mutation) (\w+)", block).group(1): block  # type: ignore[union-attr]
        for block in re.findall(r"```graphql\n(.*?)```", section, re.S)
    }


async def test_try_it_walkthrough_on_the_demo_data(
    gql: GraphQLClient, db: asyncpg.Connection, database_url: str
) -> None:
    blocks = _try_it_blocks()
    assert set(blocks) == {"AnaView", "IosApp", "AnaOrders"}
    await seed_demo(database_url, customers=DEMO_CUSTOMERS, seed=DEMO_SEED, progress=False)

    ana = (await gql.data(blocks["AnaView"]))["customerByIdentity"]
    assert ana == {
        "displayName": ANA_NAME,
        "currentStage": {"code": "CONSIDERATION"},
        "conversations": [
            {
                "key": ANA_CONVERSATION,
                "status": "OPEN",
                "channels": [{"code": "WEB"}, {"code": "SOCIAL"}],
            }
        ],
        "channelsUsed": [
            {"channel": {"code": code}} for code in ("SOCIAL", "WEB", "MOBILE", "PHYSICAL")
        ],
    }
    [app] = (await gql.data(blocks["IosApp"]))["touchpoints"]["nodes"]
    assert app["name"] == "Larkspur iOS app"

    order = (await gql.data(blocks["AnaOrders"], {"touchpointId": app["id"]}))["recordInteraction"]
    assert order["duplicate"] is False
    assert order["customer"]["currentStage"] == {"code": "PURCHASE"}
    assert order["customer"]["stageHistory"][-1] == {
        "stage": {"code": "PURCHASE"},
        "transition": "FORWARD",
        "channel": {"code": "MOBILE"},
    }
    # The same idempotency key again is a retry: nothing new is recorded (step 3 says so).
    again = (await gql.data(blocks["AnaOrders"], {"touchpointId": app["id"]}))["recordInteraction"]
    assert again["duplicate"] is True
    assert again["customer"]["stageHistory"] == order["customer"]["stageHistory"]
