"""The derived tables stay exact through every write path; the fast answers match a recount.

Data arrives the way production sends it — a batch in shuffled order, then single interactions
older than what is already stored — then customers are merged, unmerged, erased, given a manual
stage, and an interaction's time is corrected. After each step: the derived tables equal a
recomputation from the base tables (``hub.analytics.rollup.stale_rows``), and channelMix,
stageFunnel, touchpointPerformance and channelTransitions (every grouping, with and without a
gap, in every scope of tests/analytics/test_analytics.py) equal the independent recount in plain
Python over the rows read back from the base tables.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import timedelta
from typing import Any

import asyncpg

from hub.analytics.rollup import CATCH_UP_SQL, catch_up, rebuild, stale_rows
from hub.core.enums import StageCode
from hub.db.engine import asyncpg_dsn
from hub.identity.profiles import set_stage
from tests.analytics.test_analytics import (
    CONVERSATIONAL,
    SCOPES,
    TOUCHPOINTS,
    Conversation,
    Dataset,
    Row,
    StageRow,
    check_channel_mix,
    check_channel_transitions,
    check_stage_funnel,
    check_touchpoint_performance,
)
from tests.conftest import GraphQLClient
from tests.factories import T0, Factory, gid
from tests.ingest_support import RECORD_MANY, interaction, record, row_id, touchpoints
from tests.waiting import until

TYPES = ["PAGE_VIEW", "PRODUCT_VIEW", "ORDER", "SUPPORT_TICKET", "REPEAT_ORDER", "EMAIL"]
PEOPLE = 6
MERGE = "mutation($input: MergeCustomersInput!) { mergeCustomers(input: $input) { merge { id } } }"
UNMERGE = "mutation($id: ID!) { unmergeCustomer(mergeId: $id) { merge { id } } }"
ERASE = "mutation($id: ID!) { eraseCustomer(id: $id) { customerId } }"


async def read_dataset(db: asyncpg.Connection, tp_ids: dict[str, uuid.UUID]) -> Dataset:
    """The base tables as the recount in tests/analytics/test_analytics.py reads them."""
    names = {tid: name for name, tid in tp_ids.items()}
    data = Dataset(tp_ids=dict(tp_ids))
    rows = {}
    for r in await db.fetch("SELECT * FROM interactions ORDER BY occurred_at, id"):
        row = Row(
            r["id"],
            r["customer_id"],
            names[r["touchpoint_id"]],
            r["occurred_at"],
            r["direction"],
            r["sentiment"],
            r["conversation_id"],
        )
        rows[row.id] = row
        data.rows.append(row)
    for s in await db.fetch("SELECT * FROM stage_history ORDER BY id"):
        data.stages.append(
            StageRow(
                s["id"],
                s["customer_id"],
                s["stage"],
                s["transition"],
                s["entered_at"],
                rows.get(s["interaction_id"]),
                s["channel_code"],
            )
        )
    for c in await db.fetch("SELECT id, status, resolved_at FROM conversations"):
        data.conversations[c["id"]] = Conversation(c["id"], c["status"], c["resolved_at"])
    return data


async def steps(db: asyncpg.Connection) -> list[asyncpg.Record]:
    """journey_steps once every committed write has been taken in (what analytics read)."""
    while await db.fetchval(CATCH_UP_SQL):  # rounds of at most 200 marks
        pass
    return await db.fetch("SELECT * FROM journey_steps ORDER BY id")


async def check_everything(
    gql_as: Any, db: asyncpg.Connection, engine: Any, tp_ids: dict[str, uuid.UUID]
) -> Dataset:
    await catch_up(engine)
    async with engine.connect() as connection:
        assert await stale_rows(connection) == 0
    data = await read_dataset(db, tp_ids)
    # An analyst's key of its own per check: ~45 requests in a burst stay within its rate limit.
    gql = await gql_as("ANALYST")
    for scope in SCOPES:
        await check_channel_mix(gql, data, scope)
        await check_stage_funnel(gql, data, scope)
        if scope.lines is None:
            await check_touchpoint_performance(gql, data, scope)
        for grouping in ("CHANNEL", "TOUCHPOINT", "STAGE"):
            for gap_minutes in (None, 600):
                await check_channel_transitions(gql, data, scope, grouping, gap_minutes)
    return data


def events(rng: random.Random, tp: dict[str, str]) -> list[dict[str, Any]]:
    """Interactions of PEOPLE people over two weeks from T0, each identified by an e-mail."""
    items = []
    for person in range(PEOPLE):
        email = ("EMAIL", f"person{person}@example.com")
        at = T0 + timedelta(minutes=rng.randint(0, 600))
        for _ in range(rng.randint(5, 11)):
            at += rng.choice(
                [timedelta(minutes=rng.randint(1, 90)), timedelta(hours=rng.randint(5, 60))]
            )
            name = rng.choice(list(tp))
            extra = {}
            if name in CONVERSATIONAL:
                # Questions and answers in one conversation per person, across touchpoints.
                extra["conversationKey"] = f"case-{person}"
            items.append(
                interaction(
                    tp[name],
                    email,
                    type=rng.choice(TYPES),
                    direction="OUTBOUND" if rng.random() < 0.4 else "INBOUND",
                    occurredAt=at.isoformat(),
                    **extra,
                )
            )
    return items


async def test_journey_steps_follow_every_write_path(
    gql: GraphQLClient, gql_as: Any, db: asyncpg.Connection, engine: Any
) -> None:
    factory = Factory(db)
    tp_ids = {
        name: await factory.touchpoint(name, channel, kind, business_line=line)
        for name, channel, kind, line in TOUCHPOINTS
    }
    tp = {name: gid("Touchpoint", tid) for name, tid in tp_ids.items()}
    rng = random.Random(6)
    items = events(rng, tp)
    rng.shuffle(items)
    # A batch that arrives out of time order, then singles older than what is stored.
    batch, singles = items[: len(items) * 2 // 3], items[len(items) * 2 // 3 :]
    result = (await gql.data(RECORD_MANY, {"inputs": batch}))["recordInteractions"]
    assert result["rejected"] == []
    data = await check_everything(gql_as, db, engine, tp_ids)
    newest = max(r.at for r in data.rows)
    assert any(T0.isoformat() < s["occurredAt"] < newest.isoformat() for s in singles)
    for item in singles:
        await record(gql, item)
    data = await check_everything(gql_as, db, engine, tp_ids)
    assert {s.transition for s in data.stages} >= {"INITIAL", "FORWARD"}

    customers = []
    for person in range(3):
        stored = await record(
            gql, interaction(tp["Newsletter"], ("EMAIL", f"person{person}@example.com"))
        )
        customers.append(row_id(stored["customer"]["id"]))
    before = await steps(db)
    merged = await gql.data(
        MERGE,
        {
            "input": {
                "survivorId": gid("Customer", customers[0]),
                "mergedIds": [gid("Customer", customers[1])],
            }
        },
    )
    data = await check_everything(gql_as, db, engine, tp_ids)
    assert customers[1] not in {r.customer for r in data.rows}
    # Recorded while merged: goes back with its identity on unmerge.
    await record(
        gql,
        interaction(
            tp["Bank chat"],
            ("EMAIL", "person1@example.com"),
            occurredAt=(T0 + timedelta(days=1)).isoformat(),
        ),
    )
    await check_everything(gql_as, db, engine, tp_ids)
    await gql.data(UNMERGE, {"id": merged["mergeCustomers"]["merge"]["id"]})
    await check_everything(gql_as, db, engine, tp_ids)
    assert len(await steps(db)) == len(before) + 1

    # Erasure keeps the anonymous facts: nothing the steps depend on changes.
    steps_before = await steps(db)
    await gql.data(ERASE, {"id": gid("Customer", customers[2])})
    assert await steps(db) == steps_before
    await check_everything(gql_as, db, engine, tp_ids)

    # A manual stage change and a corrected interaction time (plain SQL writers).
    async with engine.begin() as connection:
        await set_stage(connection, customers[0], StageCode.RETENTION, "won back by phone")
    await db.execute(
        "UPDATE interactions SET occurred_at = occurred_at - interval '3 days'"
        " WHERE id = (SELECT id FROM interactions WHERE customer_id = $1"
        " ORDER BY occurred_at DESC, id DESC LIMIT 1)",
        customers[1],
    )
    await db.execute(
        "DELETE FROM interactions WHERE id = (SELECT id FROM interactions i WHERE customer_id = $1"
        " AND NOT EXISTS (SELECT FROM stage_history h WHERE h.interaction_id = i.id)"
        " ORDER BY occurred_at LIMIT 1)",
        customers[0],
    )
    await check_everything(gql_as, db, engine, tp_ids)


async def test_rebuild_recomputes_what_bulk_loads_skip(db: asyncpg.Connection, engine: Any) -> None:
    """A load with triggers off (what the seeder does as a superuser) leaves journey_steps
    behind until ``rebuild``; the rebuild gives exactly what the triggers would have kept."""
    factory = Factory(db)
    await factory.touchpoint("Site", "WEB", "WEBSITE", business_line="retail")
    await factory.touchpoint("Store", "PHYSICAL", "STORE")
    customer = await factory.customer("Ada")
    for minutes, place in ((0, "Site"), (30, "Store"), (10, "Site"), (5, "Store")):
        await factory.interaction(customer, place, at=T0 + timedelta(minutes=minutes))
    kept = await steps(db)
    assert len(kept) == 4
    async with db.transaction():
        await db.execute("SET LOCAL session_replication_role = replica")
        late = await factory.interaction(customer, "Site", at=T0 + timedelta(minutes=20))
    async with engine.connect() as connection:
        assert await stale_rows(connection) > 0
    async with engine.begin() as connection:
        assert await rebuild(connection) == 5
        assert await stale_rows(connection) == 0
    rebuilt = await steps(db)
    await db.execute("DELETE FROM interactions WHERE id = $1", late)
    assert await steps(db) == kept
    assert len(rebuilt) == 5


async def test_two_writers_of_one_customer_leave_no_stale_row(
    db: asyncpg.Connection, engine: Any, database_url: str
) -> None:
    """Writers that take no customer lock of their own (unlike ingest), interleaved: once both
    committed, the catch-up leaves no stale row."""
    factory = Factory(db)
    await factory.touchpoint("Site", "WEB", "WEBSITE")
    customer = await factory.customer("Ada")
    await factory.interaction(customer, "Site", at=T0)
    insert = (
        "INSERT INTO interactions (id, customer_id, touchpoint_id, channel_code, occurred_at,"
        " type, direction) SELECT $1, $2, id, channel_code, $3, 'PAGE_VIEW', 'INBOUND'"
        " FROM touchpoints WHERE name = 'Site'"
    )
    first = await asyncpg.connect(asyncpg_dsn(database_url))
    second = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        one, two = first.transaction(), second.transaction()
        await one.start()
        await two.start()
        await first.execute(insert, uuid.uuid4(), customer, T0 + timedelta(hours=2))
        pending = asyncio.create_task(
            second.execute(insert, uuid.uuid4(), customer, T0 + timedelta(hours=1))
        )
        # The second writer has run its statement (parked on a lock of the first, or done)
        # before the first commits: interleaved, not one after the other.
        waiting = "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1"
        pid = second.get_server_pid()

        async def interleaved() -> bool:
            return pending.done() or bool(await db.fetchval(waiting, pid))

        await until(interleaved, "the second writer to reach the first one's lock")
        await one.commit()
        await pending
        await two.commit()
    finally:
        await first.close()
        await second.close()
    await catch_up(engine)
    async with engine.connect() as connection:
        assert await stale_rows(connection) == 0
    while await db.fetchval(CATCH_UP_SQL):  # rounds of at most 200 marks
        pass
    assert [r["next_at"] for r in await db.fetch("SELECT * FROM journey_steps ORDER BY at")] == [
        T0 + timedelta(hours=1),
        T0 + timedelta(hours=2),
        None,
    ]


async def test_writes_are_marked_and_analytics_catch_up_before_answering(
    gql: GraphQLClient, gql_as: Any, db: asyncpg.Connection
) -> None:
    """Ingest only marks the customer (the recomputation is deferred); the next analytics query
    takes the write in before it reads, so its answer already counts it."""
    tp = await touchpoints(db)
    analyst = await gql_as("ANALYST")
    query = "{ analytics { channelMix { interactions customers } } }"
    empty = (await analyst.data(query))["analytics"]["channelMix"]
    await record(gql, interaction(tp["web"], ("EMAIL", "late@example.com")))
    marked = await db.fetchval("SELECT count(*) FROM analytics_pending")
    assert marked >= 1
    assert await db.fetchval("SELECT count(*) FROM journey_steps") == 0  # not yet recomputed
    counted = (await analyst.data(query))["analytics"]["channelMix"]
    assert counted["interactions"] == empty["interactions"] + 1
    assert counted["customers"] == empty["customers"] + 1
    assert await db.fetchval("SELECT count(*) FROM analytics_pending") == 0
    assert await db.fetchval("SELECT count(*) FROM journey_steps") == 1


async def test_every_analytics_query_answers_an_empty_scope(gql_as: Any) -> None:
    """No interactions at all (a fresh hub, or a range with nothing in it): zeros and empty
    lists, never an error."""
    analyst = await gql_as("ANALYST")
    answer = await analyst.data(
        "{ analytics {"
        " channelMix { interactions customers channels { interactions } }"
        " channelTransitions(groupBy: STAGE) { nodes { key } links { moves } }"
        " stageFunnel { customers }"
        " touchpointPerformance { interactions }"
        " interactionsOverTime(bucket: DAY) { buckets series { total } } } }"
    )
    data = answer["analytics"]
    assert data["channelMix"] == {"interactions": 0, "customers": 0, "channels": []}
    assert data["channelTransitions"]["links"] == []
    assert data["touchpointPerformance"] == []
    assert data["interactionsOverTime"]["buckets"] == []


async def test_the_background_catch_up_takes_marks_in_without_a_query(
    app_with: Any, db: asyncpg.Connection
) -> None:
    """With ``HUB_ANALYTICS_CATCH_UP_S`` set, the app recomputes marked customers by itself."""
    factory = Factory(db)
    await factory.touchpoint("Site", "WEB", "WEBSITE")
    customer = await factory.customer("Ada")
    async with app_with(analytics_catch_up_s=0.1):
        await factory.interaction(customer, "Site", at=T0)
        assert await db.fetchval("SELECT count(*) FROM analytics_pending") >= 1
        pending = "SELECT count(*) = 0 FROM analytics_pending"
        await until(lambda: db.fetchval(pending), "the background catch-up")
    assert await db.fetchval("SELECT count(*) FROM journey_steps") == 1
