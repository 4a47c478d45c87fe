"""``hub audiences backfill`` as an operator runs it: repairs damaged values, one trait or all,
in batches; refuses an unknown trait; skips a trait deleted while it runs."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg

from hub.audiences.traits import backfill_step
from tests.analytics.test_commands import hub
from tests.audiences.recount import expected_values, stored_values
from tests.audiences.test_traits import DEFINE, TRAITS, flat, history
from tests.ingest_support import RECORD_MANY, touchpoints

NOBODY = uuid.UUID(int=0)  # before every customer id


async def test_backfill_repairs_values(gql: Any, db: asyncpg.Connection, database_url: str) -> None:
    tp = await touchpoints(db)
    await gql.data(RECORD_MANY, {"inputs": history(tp)})
    chosen = [t for t in TRAITS if t["key"] in ("orders", "revenue")]
    for trait in chosen:
        await gql.data(DEFINE, {"input": trait})
    good = await stored_values(db)
    # Damage: a bulk load that bypassed the hub would leave values like these.
    await db.execute("UPDATE customer_traits_computed SET value = '99', number = 99")
    await db.execute("DELETE FROM customer_traits_computed WHERE trait_key = 'revenue'")
    assert await stored_values(db) != good
    code, out = await hub(database_url, "audiences", "backfill", "--trait", "orders")
    assert code == 0, out
    assert "computed traits backfilled" in out
    repaired = await stored_values(db)
    assert {k: v for k, v in repaired.items() if k[0] == "orders"} == {
        k: v for k, v in good.items() if k[0] == "orders"
    }
    assert not any(k[0] == "revenue" for k in repaired)  # not asked for
    # Every trait, one customer per transaction.
    code, out = await hub(database_url, "audiences", "backfill", "--batch", "1")
    assert code == 0, out
    now = datetime.now(UTC)
    assert await stored_values(db) == await expected_values(db, [flat(t) for t in chosen], now)
    code, out = await hub(database_url, "audiences", "backfill", "--trait", "nope")
    assert code != 0 and "unknown computed trait(s): nope" in out


async def test_a_trait_deleted_between_batches_gets_no_values_again(
    gql: Any, db: asyncpg.Connection, engine: Any
) -> None:
    """The command's batches read the definitions again (``backfill_step``): values have no
    foreign key to their trait (migration 0023), so a batch writing with the list read before a
    delete would leave values of a trait that no longer exists."""
    tp = await touchpoints(db)
    await gql.data(RECORD_MANY, {"inputs": history(tp)})
    chosen = [t for t in TRAITS if t["key"] in ("orders", "revenue")]
    for trait in chosen:
        await gql.data(DEFINE, {"input": trait})
    await db.execute("DELETE FROM customer_traits_computed")  # all of it left to the backfill
    async with engine.begin() as connection:
        keys, done = await backfill_step(connection, ["orders", "revenue"], NOBODY, batch=1)
    assert keys == ["orders", "revenue"] and done is not None
    after_first = "SELECT count(*) FROM customer_traits_computed WHERE customer_id > $1"
    assert await db.fetchval(after_first, done[0]) == 0  # one customer done
    await gql.data('mutation { deleteComputedTrait(key: "orders") { key } }')
    async with engine.begin() as connection:
        left, rest = await backfill_step(connection, keys, done[0], batch=1000)
    assert left == ["revenue"] and rest is not None
    assert await db.fetchval(after_first, done[0]) > 0  # the rest done...
    assert (
        await db.fetchval(
            "SELECT count(*) FROM customer_traits_computed WHERE trait_key = 'orders'"
        )
        == 0
    )  # ...without the deleted trait (Ana or Cleo, with orders, is among them)
    revenue = [flat(t) for t in chosen if t["key"] == "revenue"]
    assert await stored_values(db) == await expected_values(db, revenue, datetime.now(UTC))
    async with engine.begin() as connection:
        assert await backfill_step(connection, ["orders"], NOBODY, batch=1000) == ([], None)
