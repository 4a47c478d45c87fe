"""Computed traits: how long defining one takes (the synchronous backfill) on the database of
``HUB_DATABASE_URL`` (e.g. after ``hub seed --customers 100000 --activity 3.7``).

    python -m bench.computed_traits           # defines, times and deletes a few typical traits
"""

from __future__ import annotations

import asyncio
import time

import sqlalchemy as sa

from hub.audiences.aggregates import Aggregate
from hub.audiences.traits import TraitDefinition, define, delete
from hub.core.settings import Settings
from hub.db.engine import create_engine, locate_database
from hub.reads.interactions import InteractionFilterSpec

TRAITS = [
    TraitDefinition(
        "b_orders", Aggregate.COUNT, InteractionFilterSpec(types=("ORDER",)), None, None
    ),
    TraitDefinition(
        "b_web_90d", Aggregate.COUNT, InteractionFilterSpec(channels=("WEB",)), None, 90
    ),
    TraitDefinition(
        "b_preferred",
        Aggregate.MOST_FREQUENT,
        InteractionFilterSpec(directions=("INBOUND",)),
        "channel",
        None,
    ),
    TraitDefinition(
        "b_last_channel",
        Aggregate.LAST,
        InteractionFilterSpec(directions=("INBOUND",)),
        "channel",
        None,
    ),
]


async def main() -> None:
    settings = Settings()
    engine = create_engine(locate_database(settings).url, settings)
    async with engine.connect() as connection:
        customers = await connection.scalar(sa.text("SELECT count(*) FROM customers"))
        interactions = await connection.scalar(sa.text("SELECT count(*) FROM interactions"))
    print(f"{customers:,} customers, {interactions:,} interactions")
    for trait in TRAITS:
        async with engine.begin() as connection:
            await delete(connection, trait.key) if await connection.scalar(
                sa.text("SELECT 1 FROM computed_traits WHERE key = :k"), {"k": trait.key}
            ) else None
        start = time.perf_counter()
        async with engine.begin() as connection:
            await define(connection, trait)
        took = time.perf_counter() - start
        async with engine.connect() as connection:
            stored = await connection.scalar(
                sa.text("SELECT count(*) FROM customer_traits_computed WHERE trait_key = :k"),
                {"k": trait.key},
            )
        print(f"define {trait.key:16} {trait.aggregate:14} {took:6.2f} s  {stored:,} values")
    for trait in TRAITS:
        async with engine.begin() as connection:
            await delete(connection, trait.key)
    await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
