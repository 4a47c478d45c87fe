"""Migration 0012's linear-time functions return exactly the rows of 0008's originals.

Both versions run side by side on one database: 0008's definitions are created as temporary
functions (``pg_temp``) next to the migrated ones and compared row for row (``EXCEPT ALL`` both
ways) on data made to hit every tie the definitions order by: interactions at the same moment,
stage changes at the same moment as each other and as interactions, LOOPING changes, a change
before any interaction and interactions before any change, one customer with a long history.
"""

from __future__ import annotations

import importlib.util
import random
import uuid
from datetime import timedelta
from pathlib import Path
from types import ModuleType

import asyncpg

from tests.factories import T0, Factory

STAGES = ["AWARENESS", "CONSIDERATION", "PURCHASE", "POST_PURCHASE", "RETENTION"]
CHANNELS = [("WEB", "WEBSITE"), ("MOBILE", "MOBILE_APP"), ("ASSISTED", "VOICE"), ("SOCIAL", "SMS")]


def _migration(name: str) -> ModuleType:
    path = Path(__file__).parents[2] / "alembic" / "versions" / name
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def create_originals(db: asyncpg.Connection) -> None:
    """0008's journey_steps_of/_all and stage_entries_of/_all as pg_temp.*_0008."""
    original = _migration("0008_journey_steps.py")
    for definition, name in (
        (original.STEPS_OF, "journey_steps"),
        (original.STAGE_ENTRIES_OF, "stage_entries"),
    ):
        for statement in original._of_and_all(definition):
            await db.execute(
                statement.replace(f"FUNCTION {name}_", f"FUNCTION pg_temp.{name}_", 1)
                .replace("(customers uuid[])", "_0008(customers uuid[])", 1)
                .replace("_all()", "_all_0008()", 1)
            )


async def fill(db: asyncpg.Connection, rng: random.Random) -> list[uuid.UUID]:
    factory = Factory(db)
    touchpoints = []
    for n, (channel, kind) in enumerate(CHANNELS * 2):
        touchpoints.append(await factory.touchpoint(f"tp{n}", channel, kind))
    channel_of = {tp: CHANNELS[n % len(CHANNELS)][0] for n, tp in enumerate(touchpoints)}
    customers = [await factory.customer(f"c{n}") for n in range(12)]
    interactions = []
    changes = []
    for number, customer in enumerate(customers):
        long_history = number == 0
        count = 1500 if long_history else rng.randint(0, 40)
        # Few distinct moments, so that many interactions and changes share one.
        moments = [T0 + timedelta(minutes=rng.choice([1, 7, 60, 1440]) * k) for k in range(40)]
        for _ in range(count):
            tp = rng.choice(touchpoints)
            at = (
                rng.choice(moments)
                if not long_history
                else T0 + timedelta(minutes=rng.randint(0, 10**6))
            )
            interactions.append(
                (
                    uuid.uuid4(),
                    customer,
                    tp,
                    channel_of[tp],
                    at,
                    rng.choice(["INBOUND", "OUTBOUND"]),
                )
            )
        for _ in range(300 if long_history else rng.randint(0, 8)):
            at = (
                rng.choice(moments)
                if not long_history
                else T0 + timedelta(minutes=rng.randint(0, 10**6))
            )
            transition = rng.choice(["INITIAL", "FORWARD", "BACKWARD", "LOOPING"])
            changes.append(
                (customer, rng.choice(STAGES), transition, at, rng.choice([c for c, _ in CHANNELS]))
            )
    await db.executemany(
        "INSERT INTO interactions (id, customer_id, touchpoint_id, channel_code, occurred_at, type,"
        " direction) VALUES ($1, $2, $3, $4, $5, 'PAGE_VIEW', $6)",
        interactions,
    )
    await db.executemany(
        "INSERT INTO stage_history (customer_id, stage, transition, entered_at, channel_code,"
        " reason) VALUES ($1, $2, $3, $4, $5, 'test')",
        changes,
    )
    return customers


async def differences(db: asyncpg.Connection, new: str, old: str) -> int:
    return int(
        await db.fetchval(
            f"SELECT count(*) FROM ((SELECT * FROM {new} EXCEPT ALL SELECT * FROM {old})"
            f" UNION ALL (SELECT * FROM {old} EXCEPT ALL SELECT * FROM {new})) AS d"
        )
    )


async def test_linear_functions_return_the_original_rows(db: asyncpg.Connection) -> None:
    await create_originals(db)
    for seed in (1, 2, 3):
        await db.execute("TRUNCATE interactions, stage_history, customers, touchpoints CASCADE")
        customers = await fill(db, random.Random(seed))
        steps = await db.fetchval("SELECT count(*) FROM journey_steps_all()")
        entries = await db.fetchval("SELECT count(*) FROM stage_entries_all()")
        assert steps > 1500 and entries > 200  # the data reached the functions
        assert await differences(db, "journey_steps_all()", "pg_temp.journey_steps_all_0008()") == 0
        assert await differences(db, "stage_entries_all()", "pg_temp.stage_entries_all_0008()") == 0
        some = "'{" + ",".join(str(c) for c in customers[:5]) + "}'::uuid[]"
        assert (
            await differences(
                db, f"journey_steps_of({some})", f"pg_temp.journey_steps_of_0008({some})"
            )
            == 0
        )
        assert (
            await differences(
                db, f"stage_entries_of({some})", f"pg_temp.stage_entries_of_0008({some})"
            )
            == 0
        )
        # The checks can fail: a stage shifted by one row is a difference.
        assert (
            await db.fetchval(
                "SELECT count(*) FROM (SELECT id, stage FROM journey_steps_all() EXCEPT ALL"
                " SELECT id, lag(stage) OVER (PARTITION BY customer_id ORDER BY at, id)"
                " FROM pg_temp.journey_steps_all_0008()) AS d"
            )
            > 0
        )
