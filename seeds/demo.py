"""``hub seed`` and ``hub demo``: fill a database with the deterministic Larkspur demo data.

The whole run is one transaction on one raw asyncpg connection: either every row lands or none
does. Rows are generated a chunk of customers at a time in a worker thread while PostgreSQL
ingests the previous chunk through COPY. Nothing is written to the ``events`` outbox: bulk
history is not live news.

Seeding a database that already has customers adds to it: touchpoints are reused by name,
identifier values already stored are avoided, and the random stream is keyed by the seed and the
number of customers already there, so ids never repeat. Same seed and same starting database →
byte-identical rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta

import asyncpg
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from hub.analytics.rollup import REBUILD_SQL
from hub.core.enums import IdentityKind
from hub.db.engine import asyncpg_dsn
from hub.seeds.bulk import copy_rows, skip_row_reference_checks, verify_references
from hub.seeds.catalog import TOUCHPOINTS, TouchpointSpec
from hub.seeds.generator import DemoGenerator
from hub.seeds.journeys import PlacedTouchpoint, Rows
from hub.seeds.story import ANA_EMAIL, story_rows
from hub.seeds.timeline import END, EPOCH, at, offset

DEMO_CUSTOMERS = 2_000
"""Customers ``hub demo`` seeds into an empty database (tests/reads/test_readme_demo.py too)."""
DEMO_SEED = 42

CHUNK_CUSTOMERS = 2_000
"""Customers generated and copied per round trip: big enough for COPY to stream, small enough
that generating the next chunk overlaps well with PostgreSQL ingesting this one."""

_Advance = Callable[[int], None]  # moves the progress bar on by some customers
_SEED_LOCK = 0x6875625F73656564  # "hub_seed": one seeding at a time per database

# Identifier kinds whose values another run could plausibly produce again; device ids (64+
# random bits) and cookies (a random number plus a timestamp) are left out of the look-up.
_GUESSABLE_KINDS = [
    IdentityKind.EMAIL.value,
    IdentityKind.PHONE.value,
    IdentityKind.SOCIAL_HANDLE.value,
    IdentityKind.LOYALTY_ID.value,
    IdentityKind.CRM_ID.value,
]


async def database_is_empty(database_url: str) -> bool:
    """True when the database has no customers yet (``hub demo`` then seeds it)."""
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        return bool(await connection.fetchval("SELECT NOT EXISTS (SELECT 1 FROM customers)"))
    finally:
        await connection.close()


@dataclass
class _Totals:
    customers: int = 0
    identities: int = 0
    interactions: int = 0
    conversations: int = 0
    stage_changes: int = 0

    def add(self, rows: Rows) -> None:
        self.customers += len(rows.customers)
        self.identities += len(rows.identities)
        self.interactions += len(rows.interactions)
        self.conversations += len(rows.conversations)
        self.stage_changes += len(rows.stage_history)

    @property
    def rows(self) -> int:
        return (
            self.customers
            + self.identities
            + self.interactions
            + self.conversations
            + self.stage_changes
        )


async def seed_demo(
    database_url: str, *, customers: int, seed: int, progress: bool, activity: float = 1.0
) -> str:
    """Write the demo retailer's touchpoints and ``customers`` customers with their journeys.

    The first of them is Ana (``seeds/story.py``), the README's customer, unless the database
    already has her; the others are generated from ``seed``.

    ``activity`` stretches how long retained customers stay active (1: the default mix, about
    10 interactions per customer; 3.7: about 20, the benchmark's data set).
    Returns a one-line summary of what was written and how long it took.
    """
    if customers < 0:
        raise ValueError("customers must be zero or more")
    if activity <= 0:
        raise ValueError("activity must be above zero")
    started = time.perf_counter()
    totals = _Totals()
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        async with connection.transaction():
            await connection.execute("SELECT pg_advisory_xact_lock($1)", _SEED_LOCK)
            touchpoints = await place_touchpoints(connection)
            existing = await connection.fetchval("SELECT count(*) FROM customers")
            taken = await _taken_identifiers(connection) if existing else {}
            story: Rows | None = None
            if customers and ANA_EMAIL not in taken.get(IdentityKind.EMAIL.value, set()):
                story = story_rows(touchpoints, taken)  # claims her identifiers in `taken`
            generated = customers - (story is not None)
            generator = DemoGenerator(
                seed,
                customers=generated,
                existing_customers=existing,
                touchpoints=touchpoints,
                taken=taken,
                conversation_keys=await _conversation_keys(connection) if existing else set(),
                activity=activity,
            )
            ids = [touchpoint.id for touchpoint in touchpoints.values()]
            triggers_off = await skip_row_reference_checks(connection, ids)
            with _progress_bar(progress, customers) as advance:
                if story is not None:
                    await copy_rows(connection, story)
                    totals.add(story)
                    advance(1)
                await _generate_and_copy(connection, generator, generated, totals, advance)
            if triggers_off:
                await verify_references(connection)
                # The triggers that keep journey_steps current were off too: recompute it
                # set-based, in the same transaction (hub/analytics/rollup.py).
                await connection.execute(REBUILD_SQL)
    finally:
        await connection.close()
    elapsed = time.perf_counter() - started
    return (
        f"{totals.customers:,} customers, {totals.identities:,} identities, "
        f"{totals.interactions:,} interactions, {totals.conversations:,} conversations, "
        f"{totals.stage_changes:,} stage changes, {len(touchpoints)} touchpoints "
        f"in {elapsed:.1f} s ({totals.rows / max(elapsed, 1e-9):,.0f} rows/s)"
    )


async def _generate_and_copy(
    connection: asyncpg.Connection,
    generator: DemoGenerator,
    customers: int,
    totals: _Totals,
    advance: _Advance,
) -> None:
    """Generate chunk n+1 in a worker thread while PostgreSQL ingests chunk n.

    The generator runs in one thread at a time and always in chunk order, so the rows are the
    same as if everything ran sequentially.
    """

    def next_chunk(remaining: int) -> asyncio.Task[Rows] | None:
        if remaining <= 0:
            return None
        size = min(CHUNK_CUSTOMERS, remaining)
        return asyncio.create_task(asyncio.to_thread(generator.chunk, size))

    remaining = customers
    pending = next_chunk(remaining)
    try:
        while pending is not None:
            rows = await pending
            remaining -= len(rows.customers)
            pending = next_chunk(remaining)
            await copy_rows(connection, rows)
            totals.add(rows)
            advance(len(rows.customers))
    finally:
        if pending is not None:
            # Let the worker finish its chunk (a thread cannot be interrupted) and drop it.
            await asyncio.wait([pending])


async def place_touchpoints(connection: asyncpg.Connection) -> dict[str, PlacedTouchpoint]:
    """The catalog's touchpoints as stored, creating those that do not exist yet.

    A touchpoint is found by its name (then by its default id, in case it was renamed), so
    seeding twice reuses the first run's touchpoints instead of duplicating them.
    """
    names = [spec.name for spec in TOUCHPOINTS]
    ids = [spec.default_id for spec in TOUCHPOINTS]
    stored = await connection.fetch(
        "SELECT id, name, channel_code FROM touchpoints"
        " WHERE name = ANY($1::text[]) OR id = ANY($2::uuid[]) ORDER BY created_at, id",
        names,
        ids,
    )
    by_name: dict[str, asyncpg.Record] = {}
    by_id: dict[object, asyncpg.Record] = {}
    for row in stored:
        by_name.setdefault(row["name"], row)
        by_id[row["id"]] = row
    placed: dict[str, PlacedTouchpoint] = {}
    missing: list[TouchpointSpec] = []
    for spec in TOUCHPOINTS:
        row = by_name.get(spec.name) or by_id.get(spec.default_id)
        if row is None:
            missing.append(spec)
            placed[spec.key] = PlacedTouchpoint(spec.default_id.hex, spec.channel.value, spec)
        else:
            placed[spec.key] = PlacedTouchpoint(row["id"].hex, row["channel_code"], spec)
    if missing:
        await connection.executemany(
            "INSERT INTO touchpoints"
            " (id, channel_code, name, kind, address, business_line, active, created_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            [_touchpoint_row(spec) for spec in missing],
        )
    return placed


def _touchpoint_row(spec: TouchpointSpec) -> tuple[object, ...]:
    # Campaigns and events are set up three weeks before they start and are inactive once they
    # have ended; the permanent touchpoints predate the data set.
    created = EPOCH - timedelta(days=31)
    active = True
    if spec.window is not None:
        created = at(offset(spec.window[0])) - timedelta(days=21)
        active = spec.window[1] >= END.date()
    return (
        spec.default_id,
        spec.channel.value,
        spec.name,
        spec.kind.value,
        spec.address,
        spec.business_line,
        active,
        created,
    )


async def _taken_identifiers(connection: asyncpg.Connection) -> dict[str, set[str]]:
    taken: dict[str, set[str]] = {kind.value: set() for kind in IdentityKind}
    rows = await connection.fetch(
        "SELECT kind, value FROM identities WHERE kind = ANY($1::text[])", _GUESSABLE_KINDS
    )
    for row in rows:
        taken.setdefault(row["kind"], set()).add(row["value"])
    return taken


async def _conversation_keys(connection: asyncpg.Connection) -> set[str]:
    rows = await connection.fetch("SELECT key FROM conversations WHERE key LIKE 'CASE-%'")
    return {row["key"] for row in rows}


@contextlib.contextmanager
def _progress_bar(enabled: bool, total: int) -> Iterator[_Advance]:
    """A rich progress bar on stderr when enabled; otherwise a silent no-op."""
    if not enabled:
        yield lambda customers: None
        return
    columns = (
        TextColumn("[bold]seeding[/bold]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("customers"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True)) as bar:
        task = bar.add_task("seeding", total=total)
        yield lambda customers: bar.advance(task, customers)
