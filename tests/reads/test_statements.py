"""The N+1 guard: a nested query runs as many SQL statements for 20 customers as for 2."""

from __future__ import annotations

import asyncpg
import pytest

from tests.conftest import GraphQLClient
from tests.driver_statements import DriverStatements
from tests.factories import T0, Factory, minutes

CHANNELS = ["WEB", "MOBILE", "ASSISTED", "SOCIAL", "PHYSICAL", "OUTBOUND"]

NESTED = """
query ($n: Int!) {
  customers(first: $n) {
    totalCount
    nodes {
      id displayName traits
      identities { kind value }
      currentStage { code name customerCount }
      stageHistory { stage { code } channel { code } interaction { type } }
      lastInteraction { occurredAt touchpoint { name } }
      channelsUsed { interactionCount channel { code name } }
      conversations { key channels { code } lastInteraction { summary } }
      interactions(first: 20) {
        totalCount
        pageInfo { hasNextPage endCursor }
        nodes {
          type occurredAt
          touchpoint { name channel { code } }
          channel { code }
          customer { displayName }
          conversation { key }
        }
      }
      recent: interactions(first: 2, filter: {channels: [WEB, MOBILE]}) { totalCount nodes { id } }
    }
  }
  journeyStages { code customerCount }
  channels { code touchpoints { name interactions(first: 3) { totalCount nodes { type } } } }
}
"""


# Customers, their count, stages and channels, and one statement per loader batch (identities,
# stage history, channels used, conversations, interaction pages, counts, …). No API key lookup:
# the warm-up request put the key in the process's key cache (hub/access/key_cache.py).
EXPECTED = 18

STAGES = ["AWARENESS", "CONSIDERATION", "PURCHASE", "POST_PURCHASE", "RETENTION"]


@pytest.fixture
async def many(db: asyncpg.Connection) -> None:
    f = Factory(db)
    for n, channel in enumerate(CHANNELS):
        await f.touchpoint(f"tp-{n}", channel, "WEBSITE")
    for c in range(24):
        cid = await f.customer(
            f"Customer {c:02}",
            stage=STAGES[c % len(STAGES)],
            created_at=T0 + minutes(c),
            identities=[("EMAIL", f"c{c}@example.com"), ("COOKIE", f"ck{c}")],
        )
        conversation = await f.conversation(cid, f"conv-{c}")
        first = None
        for i in range(5):
            iid = await f.interaction(
                cid,
                f"tp-{(c + i) % len(CHANNELS)}",
                at=T0 + minutes(c * 10 + i),
                conversation_id=conversation if i % 2 else None,
            )
            first = first or iid
        await f.stage_change(cid, "AWARENESS", previous=None, transition="INITIAL", at=T0)
        await f.stage_change(
            cid,
            STAGES[c % len(STAGES)],
            previous="AWARENESS",
            transition="FORWARD",
            at=T0 + minutes(1),
            interaction_id=first,
            channel=CHANNELS[c % len(CHANNELS)],
        )


async def test_statement_count_does_not_grow_with_page_size(
    gql: GraphQLClient, count_driver_statements: DriverStatements, many: None
) -> None:
    counted = count_driver_statements
    await gql.data(NESTED, {"n": 1})  # connections opened and their types introspected
    counts = {}
    for n in (2, 20):
        counted.clear()
        data = await gql.data(NESTED, {"n": n})
        assert len(data["customers"]["nodes"]) == n
        assert all(len(c["interactions"]["nodes"]) == 5 for c in data["customers"]["nodes"])
        counts[n] = counted.count
    statements = counted.report()
    # Counted where asyncpg sends them, so work moved off SQLAlchemy is still counted: one
    # statement per loader batch and per top-level field, the same for 2 customers as for 20.
    assert counts == {2: EXPECTED, 20: EXPECTED}, statements
