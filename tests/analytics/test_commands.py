"""``hub analytics check`` and ``hub analytics rebuild`` as an operator runs them (README's
command table): exit codes, what they print, and what they change in the database."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import timedelta
from typing import Any

import asyncpg

from tests.conftest import ROOT
from tests.factories import T0
from tests.ingest_support import RECORD_MANY, interaction, touchpoints

WAIT_S = 120


async def hub(database_url: str, *args: str) -> tuple[int, str]:
    """Runs ``hub <args>`` on the test database; its exit code and its console output."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hub",
        *args,
        cwd=ROOT,
        env={**os.environ, "HUB_DATABASE_URL": database_url, "COLUMNS": "200"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), WAIT_S)
    assert process.returncode is not None
    return process.returncode, out.decode()


async def test_check_finds_damage_and_rebuild_repairs_it(
    gql: Any, db: asyncpg.Connection, database_url: str
) -> None:
    tp = await touchpoints(db)
    minutes = [0, 5, 30, 60, 90]
    inputs = [
        interaction(
            tp["web"] if n % 2 else tp["chat"],
            ("EMAIL", f"p{n % 2}@example.com"),
            type="ORDER" if n == 4 else "PAGE_VIEW",
            occurredAt=(T0 + timedelta(minutes=m)).isoformat(),
        )
        for n, m in enumerate(minutes)
    ]
    stored = (await gql.data(RECORD_MANY, {"inputs": inputs}))["recordInteractions"]["stored"]
    assert len(stored) == 5

    # Written through the hub: current (what is merely pending is caught up first).
    code, out = await hub(database_url, "analytics", "check")
    assert (code, "journey_steps is current" in out) == (0, True), out
    steps = await db.fetchval("SELECT count(*) FROM journey_steps")
    assert steps == 5  # one step per interaction

    # Damage: one derived row lost behind the hub's back.
    await db.execute("DELETE FROM journey_steps WHERE ctid = (SELECT min(ctid) FROM journey_steps)")
    code, out = await hub(database_url, "analytics", "check")
    assert code == 1, out
    assert "1 rows differ" in out and "hub analytics rebuild" in out, out

    # Rebuild: every row recomputed, the count printed, and the check passes again.
    code, out = await hub(database_url, "analytics", "rebuild")
    assert code == 0, out
    assert "journey_steps rebuilt: 5 rows" in out, out
    assert await db.fetchval("SELECT count(*) FROM journey_steps") == 5
    code, out = await hub(database_url, "analytics", "check")
    assert (code, "journey_steps is current" in out) == (0, True), out
