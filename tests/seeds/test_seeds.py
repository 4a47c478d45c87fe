"""The demo generator against a real PostgreSQL: determinism, invariants, the CLI."""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import uuid
from collections import defaultdict
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from hub.core.enums import ChannelCode, IdentityKind, StageCode, StageTransition
from hub.identity.identifiers import normalize_identifier
from hub.journeys.rules import classify_transition
from hub.models import CONVERSATIONS, CUSTOMERS, IDENTITIES, INTERACTIONS, STAGE_HISTORY
from hub.seeds.bulk import reference_check_sql, verify_references
from hub.seeds.catalog import TOUCHPOINTS
from hub.seeds.demo import database_is_empty, seed_demo
from hub.seeds.dice import Dice
from hub.seeds.taxonomy import DEFAULT_STAGE_RULES
from hub.seeds.timeline import END, EPOCH
from tests.conftest import DATA_TABLES, ROOT

SEEDED_TABLES = [
    "touchpoints",
    "customers",
    "identities",
    "conversations",
    "interactions",
    "stage_history",
]


async def _empty(db: asyncpg.Connection) -> None:
    await db.execute(f"TRUNCATE {', '.join(DATA_TABLES)} RESTART IDENTITY CASCADE")


async def _digest(db: asyncpg.Connection) -> dict[str, str]:
    """An md5 of every seeded table's full rows (ids, timestamps, JSON included), in id order."""
    digests = {}
    for name in SEEDED_TABLES:
        digests[name] = await db.fetchval(
            f"SELECT md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t.id), '')) FROM {name} t"
        )
    return digests


async def test_the_same_seed_writes_byte_identical_data(
    database_url: str, db: asyncpg.Connection
) -> None:
    await seed_demo(database_url, customers=150, seed=7, progress=False)
    first = await _digest(db)
    await _empty(db)
    await seed_demo(database_url, customers=150, seed=7, progress=False)
    assert await _digest(db) == first
    await _empty(db)
    await seed_demo(database_url, customers=150, seed=8, progress=False)
    other = await _digest(db)
    # Touchpoints are the retailer's, the same for every seed; everything else differs.
    assert other["touchpoints"] == first["touchpoints"]
    for name in SEEDED_TABLES[1:]:
        assert other[name] != first[name], name


async def test_seed_summary_counts_what_was_written(
    database_url: str, db: asyncpg.Connection
) -> None:
    assert await database_is_empty(database_url)
    summary = await seed_demo(database_url, customers=120, seed=1, progress=False)
    assert not await database_is_empty(database_url)
    counts = {name: await db.fetchval(f"SELECT count(*) FROM {name}") for name in SEEDED_TABLES}
    assert counts["customers"] == 120
    assert counts["touchpoints"] == len(TOUCHPOINTS)
    assert counts["interactions"] > 5 * counts["customers"]
    assert summary.startswith("120 customers, ")
    assert f"{counts['interactions']:,} interactions" in summary
    assert f"{counts['identities']:,} identities" in summary
    assert f"{len(TOUCHPOINTS)} touchpoints" in summary
    # Bulk history is not live news: nothing in the outbox.
    assert await db.fetchval("SELECT count(*) FROM events") == 0


async def test_activity_stretches_retention_and_keeps_determinism(
    database_url: str, db: asyncpg.Connection
) -> None:
    """The benchmark's denser data set (activity 3.7): same customers, about twice the
    interactions, the stage history still replayable, and the same bytes on a second run."""
    await seed_demo(database_url, customers=300, seed=12, progress=False)
    default = await db.fetchval("SELECT count(*) FROM interactions")
    await _empty(db)
    await seed_demo(database_url, customers=300, seed=12, progress=False, activity=3.7)
    dense = await _digest(db)
    denser = await db.fetchval("SELECT count(*) FROM interactions")
    assert await db.fetchval("SELECT count(*) FROM customers") == 300
    assert 1.6 * default < denser < 2.6 * default
    await _empty(db)
    await seed_demo(database_url, customers=300, seed=12, progress=False, activity=3.7)
    assert await _digest(db) == dense
    with pytest.raises(ValueError, match="activity"):
        await seed_demo(database_url, customers=1, seed=1, progress=False, activity=0)


async def test_seeded_rows_keep_every_invariant(database_url: str, db: asyncpg.Connection) -> None:
    await seed_demo(database_url, customers=400, seed=3, progress=False)

    # Every foreign key holds (the seeder may skip the per-row triggers; check it did no harm).
    for table in (CUSTOMERS, IDENTITIES, CONVERSATIONS, INTERACTIONS, STAGE_HISTORY):
        row = await db.fetchrow(reference_check_sql(table))
        assert not any(row.values()), (table.name, dict(row))

    assert (
        await db.fetchval(
            "SELECT count(*) FROM customers c"
            " WHERE (SELECT count(*) FROM identities i WHERE i.customer_id = c.id) < 2"
        )
        == 0
    )
    assert (
        await db.fetchval(
            "SELECT count(*) FROM interactions i JOIN touchpoints t ON t.id = i.touchpoint_id"
            " WHERE i.channel_code <> t.channel_code"
        )
        == 0
    )
    used = await db.fetch("SELECT DISTINCT channel_code FROM interactions")
    assert {row["channel_code"] for row in used} == {code.value for code in ChannelCode}

    bounds = await db.fetchrow(
        "SELECT min(occurred_at) AS first, max(occurred_at) AS last,"
        " min(sentiment) AS low, max(sentiment) AS high FROM interactions"
    )
    assert bounds["first"] >= EPOCH and bounds["last"] <= END
    assert -1 <= bounds["low"] < 0 < bounds["high"] <= 1
    assert (
        await db.fetchval(
            "SELECT count(*) FROM interactions WHERE conversation_id IS NOT NULL"
            " AND (sentiment IS NULL OR agent IS NULL)"
        )
        == 0
    )


async def test_identities_are_already_normalised(database_url: str, db: asyncpg.Connection) -> None:
    await seed_demo(database_url, customers=300, seed=5, progress=False)
    rows = await db.fetch("SELECT kind, value FROM identities ORDER BY id")
    kinds = {row["kind"] for row in rows}
    assert kinds == {kind.value for kind in IdentityKind}
    for row in rows:
        kind = IdentityKind(row["kind"])
        assert normalize_identifier(kind, row["value"]) == row["value"], dict(row)


async def test_stage_history_replays_from_the_interactions(
    database_url: str, db: asyncpg.Connection
) -> None:
    await seed_demo(database_url, customers=300, seed=11, progress=False)
    rules = {
        (itype.value, channel.value if channel else None): stage
        for itype, channel, stage in DEFAULT_STAGE_RULES
    }

    def stage_of(itype: str, channel: str) -> StageCode | None:
        return rules.get((itype, channel)) or rules.get((itype, None))

    interactions: dict[uuid.UUID, list[Any]] = defaultdict(list)
    for row in await db.fetch(
        "SELECT id, customer_id, type, channel_code, occurred_at FROM interactions"
        " ORDER BY customer_id, occurred_at, id"
    ):
        interactions[row["customer_id"]].append(row)
    history: dict[uuid.UUID, list[tuple[Any, ...]]] = defaultdict(list)
    for row in await db.fetch(
        "SELECT customer_id, stage, previous_stage, transition, entered_at, interaction_id,"
        " channel_code FROM stage_history ORDER BY customer_id, entered_at, id"
    ):
        history[row["customer_id"]].append(tuple(row.values())[1:])

    seen_transitions: set[str] = set()
    customers = await db.fetch(
        "SELECT id, current_stage, stage_entered_at, first_seen_at, last_seen_at FROM customers"
    )
    for customer in customers:
        expected: list[tuple[Any, ...]] = []
        stage: StageCode | None = None
        channel: str | None = None
        for row in interactions[customer["id"]]:
            target = stage_of(row["type"], row["channel_code"])
            if target is None:
                continue
            transition = classify_transition(stage, target, channel, row["channel_code"])
            if transition is None:
                continue
            expected.append(
                (
                    target.value,
                    stage.value if stage else None,
                    transition.value,
                    row["occurred_at"],
                    row["id"],
                    row["channel_code"],
                )
            )
            stage, channel = target, row["channel_code"]
        assert history[customer["id"]] == expected
        seen_transitions.update(entry[2] for entry in expected)
        assert expected[0][2] == StageTransition.INITIAL.value
        assert customer["current_stage"] == expected[-1][0]
        assert customer["stage_entered_at"] == expected[-1][3]
        times = [row["occurred_at"] for row in interactions[customer["id"]]]
        assert (customer["first_seen_at"], customer["last_seen_at"]) == (min(times), max(times))
    assert seen_transitions == {transition.value for transition in StageTransition}


async def test_journeys_look_like_a_retailers(database_url: str, db: asyncpg.Connection) -> None:
    await seed_demo(database_url, customers=400, seed=2, progress=False)

    async def count(sql: str) -> int:
        value = await db.fetchval(sql)
        assert isinstance(value, int)
        return value

    # Found on social or the web; bought online and in store; supported by chat and phone;
    # back through campaigns into repeat purchases.
    seen = {
        (row["type"], row["channel_code"], row["direction"])
        for row in await db.fetch("SELECT DISTINCT type, channel_code, direction FROM interactions")
    }
    for expected in [
        ("AD_CLICK", "SOCIAL", "INBOUND"),
        ("AD_CLICK", "WEB", "INBOUND"),
        ("ORDER", "PHYSICAL", "INBOUND"),
        ("ORDER", "WEB", "INBOUND"),
        ("ORDER", "MOBILE", "INBOUND"),
        ("CHAT_MESSAGE", "WEB", "OUTBOUND"),
        ("CALL", "ASSISTED", "OUTBOUND"),
        ("SUPPORT_TICKET", "ASSISTED", "INBOUND"),
        ("CAMPAIGN_SENT", "OUTBOUND", "OUTBOUND"),
        ("CAMPAIGN_OPENED", "OUTBOUND", "INBOUND"),
        ("REPEAT_ORDER", "WEB", "INBOUND"),
    ]:
        assert expected in seen
    # Some drop out early: still in Awareness with nothing but awareness interactions.
    assert (
        await count(
            "SELECT count(*) FROM customers c WHERE current_stage = 'AWARENESS' AND NOT EXISTS"
            " (SELECT FROM stage_history h WHERE h.customer_id = c.id AND h.stage <> 'AWARENESS')"
        )
        > 0
    )
    # Every stage is reached; today some customers are loyal and others never got far.
    reached = await db.fetch("SELECT DISTINCT stage FROM stage_history")
    assert {row["stage"] for row in reached} == {stage.value for stage in StageCode}
    current = {
        row["current_stage"] for row in await db.fetch("SELECT current_stage FROM customers")
    }
    assert {"AWARENESS", "CONSIDERATION", "POST_PURCHASE", "RETENTION"} <= current

    # Conversations move across channels, some still open, each spanning its messages.
    assert (
        await count(
            "SELECT count(*) FROM (SELECT conversation_id FROM interactions"
            " WHERE conversation_id IS NOT NULL GROUP BY conversation_id"
            " HAVING count(DISTINCT channel_code) >= 2) spanning"
        )
        > 0
    )
    statuses = await db.fetch("SELECT status, count(*) AS n FROM conversations GROUP BY status")
    assert {row["status"] for row in statuses} == {"OPEN", "RESOLVED"}
    assert (
        await count(
            "SELECT count(*) FROM conversations c JOIN LATERAL"
            " (SELECT min(occurred_at) AS first, max(occurred_at) AS last"
            " FROM interactions i WHERE i.conversation_id = c.id) m ON true"
            " WHERE c.started_at <> m.first OR c.last_activity_at <> m.last"
            " OR (c.status = 'RESOLVED') <> (c.resolved_at IS NOT NULL)"
            " OR (c.resolved_at IS NOT NULL AND c.resolved_at <> m.last)"
        )
        == 0
    )

    # Traits as JSON, display names for known customers; websites per business line.
    sample = await db.fetchrow(
        "SELECT traits FROM customers WHERE display_name IS NOT NULL AND traits ? 'tier' LIMIT 1"
    )
    assert sample is not None
    assert {"city", "country", "preferred_language", "tier"} <= set(json.loads(sample["traits"]))
    assert (
        await count(
            "SELECT count(*) FROM touchpoints t"
            " WHERE NOT EXISTS (SELECT FROM interactions i WHERE i.touchpoint_id = t.id)"
        )
        == 0
    ), "every touchpoint of the catalog is used"
    lines = await db.fetch(
        "SELECT business_line, address FROM touchpoints WHERE kind = 'WEBSITE' ORDER BY name"
    )
    assert len({row["business_line"] for row in lines}) == len(lines) >= 4
    assert all(row["address"].startswith("https://") for row in lines)


async def test_seeding_again_adds_and_reuses_touchpoints(
    database_url: str, db: asyncpg.Connection
) -> None:
    await seed_demo(database_url, customers=150, seed=4, progress=False)
    touchpoints = await db.fetch("SELECT id, name FROM touchpoints ORDER BY id")
    # The same seed again: new customers and identifiers, no unique-key collision.
    await seed_demo(database_url, customers=150, seed=4, progress=False)
    await seed_demo(database_url, customers=100, seed=5, progress=False)
    assert await db.fetchval("SELECT count(*) FROM customers") == 400
    assert await db.fetch("SELECT id, name FROM touchpoints ORDER BY id") == touchpoints
    assert (
        await db.fetchval(
            "SELECT count(*) FROM (SELECT customer_id FROM identities GROUP BY customer_id"
            " HAVING count(*) >= 2) known"
        )
        == 400
    )


async def test_a_broken_reference_is_caught_before_commit(db: asyncpg.Connection) -> None:
    transaction = db.transaction()
    await transaction.start()
    try:
        await db.execute("SET LOCAL session_replication_role = replica")
        await db.execute(
            "INSERT INTO identities (customer_id, kind, value)"
            " VALUES ($1, 'EMAIL', 'a@example.com')",
            uuid.uuid4(),
        )
        with pytest.raises(RuntimeError, match=r"identities\.customer_id"):
            await verify_references(db)
    finally:
        await transaction.rollback()


async def test_a_role_without_superuser_seeds_with_the_row_checks_on(
    database_url: str, db: asyncpg.Connection
) -> None:
    role = f"hub_seed_{uuid.uuid4().hex[:8]}"
    await db.execute(f'CREATE ROLE "{role}" LOGIN')
    try:
        await db.execute(f'GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA public TO "{role}"')
        await db.execute(f'GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO "{role}"')
        parts = urlsplit(database_url)
        host = parts.netloc.rpartition("@")[2]
        as_role = urlunsplit((parts.scheme, f"{role}@{host}", parts.path, parts.query, ""))
        await seed_demo(as_role, customers=60, seed=9, progress=False)
        assert await db.fetchval("SELECT count(*) FROM customers") == 60
    finally:
        await db.execute(f'DROP OWNED BY "{role}"')
        await db.execute(f'DROP ROLE "{role}"')


async def test_progress_off_is_silent(
    database_url: str, db: asyncpg.Connection, capfd: pytest.CaptureFixture[str]
) -> None:
    await seed_demo(database_url, customers=20, seed=1, progress=False)
    captured = capfd.readouterr()
    assert captured.out == captured.err == ""


async def test_hub_seed_command(database_url: str, db: asyncpg.Connection) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hub",
        "seed",
        "--customers",
        "80",
        "--seed",
        "6",
        cwd=ROOT,
        env={**os.environ, "HUB_DATABASE_URL": database_url, "COLUMNS": "200"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    assert "seeded 80 customers" in err.decode()
    assert await db.fetchval("SELECT count(*) FROM customers") == 80


def test_dice_uuids_come_from_the_stream() -> None:
    # Known values for seed 1 (recorded once): a change of the generator shows up here.
    dice = Dice(random.Random(1))
    first, second = dice.uuid4(), dice.uuid4()
    assert (first, second) == (
        "cd613e30d8f14adf91b7584a2265b1f5",
        "1e2feb89414c443c9027c4d1c386bbc4",
    )
    for value in (first, second):
        parsed = uuid.UUID(value)
        assert (parsed.version, parsed.variant, parsed.hex) == (4, uuid.RFC_4122, value)
    assert Dice(random.Random(1)).uuid4() == first  # the same seed, the same ids
    assert Dice(random.Random(2)).uuid4() not in (first, second)
    # Version 7: the row's time in the first 48 bits, so ids sort by creation time.
    assert Dice(random.Random(1)).uuid7(1_735_689_600_000) == "01941f297c0078f191b7584a2265b1f5"
    dice = Dice(random.Random(1))
    early, same_ms, late = (
        dice.uuid7(1_735_689_600_000),
        dice.uuid7(1_735_689_600_000),
        dice.uuid7(1_735_689_600_001),
    )
    for value in (early, same_ms, late):
        parsed = uuid.UUID(value)
        assert (parsed.version, parsed.variant) == (7, uuid.RFC_4122)
    assert [int(v[:12], 16) for v in (early, same_ms, late)] == [1_735_689_600_000] * 2 + [
        1_735_689_600_001
    ]
    assert early != same_ms  # the bits after the time come from the stream
    assert max(early, same_ms) < late
