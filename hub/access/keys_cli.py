"""``hub keys``: create, list and revoke API keys (the way to make the first ADMIN key)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.access.keys import (
    CLI_PRINCIPAL,
    Role,
    create_key,
    list_keys,
    principal_from_row,
    revoke_key,
)
from hub.core.errors import HubError
from hub.core.settings import Settings
from hub.db.engine import create_engine, locate_database
from hub.db.migrations import upgrade
from hub.models import AUDIT_LOG

keys_app = typer.Typer(help="Manage API keys (stored only as hashes).", no_args_is_help=True)
console = Console(stderr=True)


def _split(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


T = TypeVar("T")


async def _audit(connection: AsyncConnection, action: str, name: str) -> None:
    await connection.execute(
        AUDIT_LOG.insert().values(
            actor=CLI_PRINCIPAL.name,
            role=CLI_PRINCIPAL.role.value,
            action=action,
            target_ids=[name],
            success=True,
        )
    )


def _run(work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    settings = Settings()
    location = locate_database(settings)
    upgrade(location.url)

    async def main() -> T:
        engine = create_engine(location.url, settings)
        try:
            async with engine.begin() as connection:
                return await work(connection)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(main())
    except HubError as error:
        console.print(f"[red]error:[/red] {error.message}")
        raise typer.Exit(1) from None


@keys_app.command("create")
def create(
    role: Annotated[Role, typer.Option(help="ADMIN, FRONTEND, ANALYST, PARTNER or SOURCE.")],
    name: Annotated[str, typer.Option(help="Unique name of the key.")],
    pii: Annotated[bool, typer.Option("--pii", help="See personal fields unmasked.")] = False,
    channels: Annotated[
        str | None, typer.Option(help="PARTNER scope: channels, comma-separated (WEB,MOBILE).")
    ] = None,
    touchpoints: Annotated[
        str | None,
        typer.Option(
            help="PARTNER scope: touchpoint UUIDs, comma-separated; SOURCE: its one touchpoint."
        ),
    ] = None,
    registered_only: Annotated[
        bool | None,
        typer.Option(
            "--registered-only/--any-document",
            help="Run only trusted documents, by id (or any document). Unset: the role's "
            "default (registered only for FRONTEND and PARTNER when HUB_ENV=production).",
        ),
    ] = None,
) -> None:
    """Create a key and print it once, as the last line of output."""

    async def work(connection: AsyncConnection) -> str:
        created = await create_key(
            connection,
            name=name,
            role=role,
            pii=pii,
            channels=_split(channels),
            touchpoints=_split(touchpoints),
            documents=None
            if registered_only is None
            else ("REGISTERED_ONLY" if registered_only else "ANY"),
        )
        await _audit(connection, "keys create", name)
        return created.key

    key = _run(work)
    how = (
        "Use it as a Segment SDK's write key (HTTP Basic user name) on /v1/*."
        if role is Role.SOURCE
        else "Send it as `Authorization: Bearer <key>`."
    )
    console.print(
        f"created {role.value} key [bold]{name}[/bold]. It is shown only now; store it safely. "
        + how
    )
    typer.echo(key)


@keys_app.command("list")
def list_() -> None:
    """List keys, one per line, tab-separated (never the keys themselves)."""

    async def work(connection: AsyncConnection) -> list[Any]:
        return list(await list_keys(connection))

    rows = _run(work)
    columns = ["name", "role", "scopes", "documents", "prefix", "created", "last_used", "revoked"]
    typer.echo("\t".join(columns))
    for row in rows:
        principal = principal_from_row(row)
        fields = [
            row["name"],
            principal.role.value,
            ",".join(principal.scopes) or "-",
            principal.documents or "-",
            row["prefix"],
            f"{row['created_at']:%Y-%m-%d %H:%M}",
            f"{row['last_used_at']:%Y-%m-%d %H:%M}" if row["last_used_at"] else "-",
            f"{row['revoked_at']:%Y-%m-%d %H:%M}" if row["revoked_at"] else "-",
        ]
        typer.echo("\t".join(fields))


@keys_app.command("revoke")
def revoke(name: Annotated[str, typer.Argument(help="The key's name.")]) -> None:
    """Revoke a key: its requests fail at once and its open websockets close within a second."""

    async def work(connection: AsyncConnection) -> Any:
        row = await revoke_key(connection, name)
        await _audit(connection, "keys revoke", name)
        return row

    _run(work)
    console.print(f"revoked key [bold]{name}[/bold]")
