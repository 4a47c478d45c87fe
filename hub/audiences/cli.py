"""``hub audiences backfill``: compute computed traits over the existing data, in batches of
customers by id (one transaction each), with a progress bar; resumable with ``--after``.
``hub audiences drain``: evaluate what ingest queued (``hub.audiences.queue``) now."""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated

import sqlalchemy as sa
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from hub.audiences.queue import drain_all
from hub.audiences.statistics import TRAIT_VALUES, refresh_statistics
from hub.audiences.traits import BACKFILL_BATCH, backfill_step, definitions
from hub.core.settings import Settings
from hub.db.engine import create_engine, locate_database

audiences_app = typer.Typer(
    help="Computed traits and the audiences queue (docs/audiences.md).", no_args_is_help=True
)
console = Console(stderr=True)


@audiences_app.command("backfill")
def backfill_command(
    trait: Annotated[
        list[str] | None, typer.Option("--trait", help="Only this computed trait (repeatable).")
    ] = None,
    batch: Annotated[int, typer.Option(min=1, help="Customers per transaction.")] = BACKFILL_BATCH,
    after: Annotated[
        str | None,
        typer.Option(help="Resume after this customer id (the last one a run printed)."),
    ] = None,
) -> None:
    """Recompute computed traits for every customer (all traits, or those of --trait)."""
    settings = Settings()
    location = locate_database(settings)
    start = uuid.UUID(after) if after else uuid.UUID(int=0)

    async def main() -> int:
        engine = create_engine(location.url, settings)
        try:
            async with engine.connect() as connection:
                chosen = [d for d in await definitions(connection) if not trait or d.key in trait]
                missing = sorted(set(trait or []) - {d.key for d in chosen})
                if missing:
                    raise typer.BadParameter(f"unknown computed trait(s): {', '.join(missing)}")
                total = int(
                    await connection.scalar(
                        sa.text("SELECT count(*) FROM customers WHERE id > :lo"), {"lo": start}
                    )
                    or 0
                )
            if not chosen:
                console.print("no computed trait is defined")
                return 0
            stored, lo = 0, start
            columns = (
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[stored]:,} values"),
            )
            with Progress(*columns, console=console) as progress:
                task = progress.add_task(", ".join(d.key for d in chosen), total=total, stored=0)
                keys = [d.key for d in chosen]
                while True:
                    async with engine.begin() as connection:
                        # Shared: changes go on; definition changes wait for the batch.
                        left, done = await backfill_step(connection, keys, lo, batch=batch)
                    for gone in [key for key in keys if key not in left]:
                        progress.console.print(f"computed trait {gone!r} was deleted: skipped")
                    keys = left
                    if done is None:
                        break
                    lo, stored = done[0], stored + done[1]
                    progress.update(task, advance=batch, stored=stored)
                    progress.console.print(f"done up to customer {lo}", style="dim")
                progress.update(task, completed=total)
            await refresh_statistics(engine, TRAIT_VALUES)
            return stored
        finally:
            await engine.dispose()

    stored = asyncio.run(main())
    console.print(f"[green]computed traits backfilled[/green]: {stored:,} values")


@audiences_app.command("drain")
def drain_command() -> None:
    """Evaluate every customer ingest queued for its computed traits and segments now (what a
    running hub's drainer does; for imports with no hub running, or before a downgrade)."""
    settings = Settings()
    location = locate_database(settings)

    async def main() -> int:
        engine = create_engine(location.url, settings)
        try:
            return await drain_all(engine)
        finally:
            await engine.dispose()

    done = asyncio.run(main())
    console.print(f"[green]audiences drained[/green]: {done:,} customers evaluated")
