"""``hub documents``: register, list and remove trusted documents (docs/trusted-documents.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.access.documents import (
    check_documents,
    list_documents,
    register_documents,
    remove_document,
)
from hub.access.keys import CLI_PRINCIPAL
from hub.access.keys_cli import _audit, _run, console
from hub.core.errors import BadUserInput
from hub.core.settings import Settings

documents_app = typer.Typer(
    help="Manage trusted documents (persisted operations) called by id.", no_args_is_help=True
)


def _manifest(path: Path) -> list[tuple[str | None, str]]:
    """A manifest file: ``{"<id>": "<document>", ...}`` (Apollo's and Relay's shape)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        console.print(f"[red]error:[/red] cannot read the manifest {path}: {error}")
        raise typer.Exit(1) from None
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        console.print('[red]error:[/red] a manifest is a JSON object {"<id>": "<document>"}')
        raise typer.Exit(1)
    return list(data.items())


@documents_app.command("add")
def add(
    files: Annotated[
        list[Path] | None, typer.Argument(help="GraphQL files, each one document (id: SHA-256).")
    ] = None,
    manifest: Annotated[
        Path | None, typer.Option(help='A JSON manifest {"<id>": "<document>"}.')
    ] = None,
) -> None:
    """Validate documents against the schema and register them (none if one fails); prints
    each id and its operations."""
    from hub.graphql import schema

    documents: list[tuple[str | None, str]] = [(None, f.read_text()) for f in files or []]
    if manifest is not None:
        documents += _manifest(manifest)
    settings = Settings()
    try:
        checked = check_documents(schema._schema, documents, settings.max_tokens)
    except BadUserInput as error:
        console.print(f"[red]error:[/red] {error.message}")
        raise typer.Exit(1) from None

    async def work(connection: AsyncConnection) -> list[Any]:
        rows = await register_documents(connection, checked, CLI_PRINCIPAL.name)
        for row in rows:
            await _audit(connection, "documents add", row["id"])
        return rows

    for row in _run(work):
        typer.echo(f"{row['id']}\t{','.join(row['operations'])}")
    console.print(f"[green]{len(checked)} document(s) registered[/green]")


@documents_app.command("list")
def list_() -> None:
    """List trusted documents, one per line, tab-separated: id, operations, by, registered."""

    async def work(connection: AsyncConnection) -> list[Any]:
        return list(await list_documents(connection))

    typer.echo("\t".join(["id", "operations", "created_by", "created"]))
    for row in _run(work):
        fields = [
            row["id"],
            ",".join(row["operations"]),
            row["created_by"],
            f"{row['created_at']:%Y-%m-%d %H:%M}",
        ]
        typer.echo("\t".join(fields))


@documents_app.command("remove")
def remove(id: Annotated[str, typer.Argument(help="The document's id.")]) -> None:
    """Remove a trusted document: every process stops running it within
    HUB_TRUSTED_DOCUMENTS_TTL_S."""

    async def work(connection: AsyncConnection) -> Any:
        row = await remove_document(connection, id)
        await _audit(connection, "documents remove", id)
        return row

    _run(work)
    console.print(f"removed trusted document [bold]{id}[/bold]")
