"""``hub import`` and ``hub export``: files in and out through the batch ingest path
(docs/import-export.md)."""

from __future__ import annotations

import asyncio
import sys
from enum import StrEnum
from pathlib import Path
from typing import IO, Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from hub.core.errors import HubError
from hub.core.settings import Settings
from hub.db.engine import create_engine, locate_database
from hub.db.migrations import upgrade
from hub.db.statements import AlchemySql
from hub.sources.customer_filter import compile_filter, parse_filter
from hub.sources.files import Checkpoint, csv_lines, load_mapping, ndjson_lines
from hub.sources.transfer import ImportTotals, run_export, run_import
from hub.vocabulary.registry import current

console = Console(stderr=True)


class FileFormat(StrEnum):
    ndjson = "ndjson"
    csv = "csv"


def _format_of(path: Path, given: FileFormat | None) -> FileFormat:
    if given is not None:
        return given
    return FileFormat.csv if path.suffix.lower() == ".csv" else FileFormat.ndjson


def import_file(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="The file to import.")],
    format: Annotated[
        FileFormat | None,
        typer.Option("--format", help="ndjson or csv (default: from the file's extension)."),
    ] = None,
    mapping: Annotated[
        Path | None,
        typer.Option(exists=True, dir_okay=False, help="CSV: column -> input path (YAML or JSON)."),
    ] = None,
    rejects: Annotated[
        Path | None,
        typer.Option(help="Where rejected lines go (default: FILE.rejects.ndjson)."),
    ] = None,
    batch: Annotated[int, typer.Option(min=1, max=5000, help="Lines per transaction.")] = 1000,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Continue after the last batch the checkpoint (REJECTS.checkpoint) recorded.",
        ),
    ] = False,
) -> None:
    """Import interactions (and profiles) from NDJSON or CSV through the batch ingest path."""
    kind = _format_of(file, format)
    if kind is FileFormat.csv and mapping is None:
        console.print("[red]error:[/red] a CSV import needs --mapping")
        raise typer.Exit(2)
    rejects_path = rejects or file.with_name(file.name + ".rejects.ndjson")
    source = file.name
    settings = Settings()
    location = locate_database(settings)
    upgrade(location.url)
    try:
        column_mapping = load_mapping(mapping) if mapping is not None else None
        checkpoint_path = rejects_path.with_name(rejects_path.name + ".checkpoint")
        checkpoint = (
            Checkpoint.load(checkpoint_path, source)
            if resume
            else Checkpoint(checkpoint_path, source)
        )
    except HubError as error:
        console.print(f"[red]error:[/red] {error.message}")
        raise typer.Exit(1) from None
    with (
        file.open("rb") as raw,
        rejects_path.open("r+b" if resume and rejects_path.exists() else "wb") as out,
    ):
        out.truncate(checkpoint.rejects_bytes)
        out.seek(checkpoint.rejects_bytes)
        text: IO[str] | None = None
        lines: Any
        try:
            if column_mapping is not None and kind is FileFormat.csv:
                import io

                text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
                lines = csv_lines(text, column_mapping)
            else:
                lines = ndjson_lines(raw)
            totals = _import(
                location.url, settings, file, raw, lines, source, out, checkpoint, batch
            )
        except HubError as error:
            console.print(f"[red]error:[/red] {error.message}")
            raise typer.Exit(1) from None
    console.print(
        f"[green]imported[/green] {file}: {totals.counts['stored']:,} stored, "
        f"{totals.counts['duplicates']:,} already there, {totals.counts['rejected']:,} rejected"
        + (f" (see {rejects_path})" if totals.counts["rejected"] else "")
    )
    typer.echo(orjson.dumps(totals.as_json()).decode())


def _import(
    url: str,
    settings: Settings,
    file: Path,
    raw: IO[bytes],
    lines: Any,
    source: str,
    out: IO[bytes],
    checkpoint: Checkpoint,
    batch: int,
) -> ImportTotals:
    size = file.stat().st_size
    with Progress(
        TextColumn("importing"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("import", total=size)

        def advance() -> None:
            progress.update(task, completed=raw.tell())

        async def main() -> ImportTotals:
            engine = create_engine(url, settings)
            try:
                items: Any = lines
                return await run_import(
                    engine, items, source, out, checkpoint, batch, settings, advance
                )
            finally:
                await engine.dispose()

        return asyncio.run(main())


def export_data(
    customers: Annotated[
        bool, typer.Option("--customers", help="Customers as profile lines.")
    ] = False,
    interactions: Annotated[
        bool, typer.Option("--interactions", help="Interactions, as `hub import` reads them.")
    ] = False,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file, not stdout.")
    ] = None,
    pii: Annotated[
        bool, typer.Option("--pii", help="Personal data unmasked (else masked).")
    ] = False,
    filter: Annotated[
        str | None,
        typer.Option(
            "--filter",
            help="Only these customers (and their interactions): a CustomerFilter as JSON, e.g."
            ' \'{"hasConsent": {"purpose": "MARKETING"}}\'.',
        ),
    ] = None,
) -> None:
    """Export customers or interactions as NDJSON, streamed (a server-side cursor)."""
    if customers == interactions:
        console.print("[red]error:[/red] give exactly one of --customers, --interactions")
        raise typer.Exit(2)
    what = "customers" if customers else "interactions"
    settings = Settings()
    location = locate_database(settings)

    async def read_filter(text: str) -> list[Any]:
        # The vocabulary as it is now (a consent purpose or identity kind defined a moment ago
        # counts); the CLI acts as ADMIN: a filter may name personal values whatever --pii says.
        engine = create_engine(location.url, settings)
        try:
            async with engine.connect() as connection:
                vocabulary = await current(AlchemySql(connection))
        finally:
            await engine.dispose()
        return [compile_filter(text, settings, vocabulary)]

    try:
        # Its shape first: a malformed filter fails before anything runs.
        if filter is not None:
            parse_filter(filter)
    except HubError as error:
        console.print(f"[red]error:[/red] {error.message}")
        raise typer.Exit(1) from None
    upgrade(location.url)
    try:
        where = [] if filter is None else asyncio.run(read_filter(filter))
    except HubError as error:
        console.print(f"[red]error:[/red] {error.message}")
        raise typer.Exit(1) from None
    handle = output.open("wb") if output is not None else sys.stdout.buffer

    def write(value: Any) -> None:
        handle.write(orjson.dumps(value) + b"\n")

    async def main() -> int:
        engine = create_engine(location.url, settings)
        try:
            return await run_export(engine, what, pii, settings, write, where)
        finally:
            await engine.dispose()

    try:
        count = asyncio.run(main())
    finally:
        handle.flush()
        if output is not None:
            handle.close()
    console.print(f"[green]exported[/green] {count:,} {what}")
