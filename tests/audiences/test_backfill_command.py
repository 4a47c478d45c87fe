"""``hub audiences backfill`` as an operator runs it: repairs damaged values, one trait or all,
in batches; refuses an unknown trait."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg

from tests.analytics.test_commands import hub
from tests.audiences.recount import expected_values, stored_values
from tests.audiences.test_traits import DEFINE, TRAITS, flat, history
from tests.ingest_support import RECORD_MANY, touchpoints


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
