"""``hub webhooks``: list, pause, resume, delete webhooks and show their dead letters (as an
ADMIN: the CLI runs on the database directly)."""

from __future__ import annotations

import uuid
from typing import Annotated

import typer
from rich.console import Console
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.access.keys import CLI_PRINCIPAL
from hub.access.keys_cli import _run as run_in_transaction
from hub.core.errors import BadUserInput
from hub.webhooks import store
from hub.webhooks.store import DeliveryStatus, Owner, WebhookStatus

webhooks_app = typer.Typer(help="Manage webhooks (docs/webhooks.md).", no_args_is_help=True)
console = Console()
CLI = Owner.of(CLI_PRINCIPAL)
WebhookId = Annotated[str, typer.Argument(help="The webhook's UUID (as `hub webhooks list`).")]


def _uuid(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise BadUserInput(f"{value!r} is not a webhook UUID") from None


@webhooks_app.command("list")
def list_webhooks() -> None:
    """Every webhook: id, status (and why), owner, URL, last event handled."""

    async def work(connection: AsyncConnection) -> None:
        for row in await store.list_for(connection, CLI):
            reason = f" ({row['status_reason']})" if row["status_reason"] else ""
            console.print(
                f"{row['id']}  {row['status']}{reason}  owner={row['owner']}  {row['url']}"
                f"  cursor={store.position(row).cursor}"
            )

    run_in_transaction(work)


def _set_status(webhook_id: str, status: WebhookStatus, reason: str | None) -> None:
    async def work(connection: AsyncConnection) -> None:
        await store.change(
            connection,
            CLI,
            _uuid(webhook_id),
            status=status.value,
            status_reason=reason,
            failure_streak=0,
        )

    run_in_transaction(work)
    console.print(f"{webhook_id}: {status.value}")


@webhooks_app.command("pause")
def pause(webhook_id: WebhookId) -> None:
    """Stop delivering (events wait)."""
    _set_status(webhook_id, WebhookStatus.PAUSED, "paused by cli")


@webhooks_app.command("resume")
def resume(webhook_id: WebhookId) -> None:
    """Deliver again from where it stopped."""
    _set_status(webhook_id, WebhookStatus.ACTIVE, None)


@webhooks_app.command("delete")
def delete(webhook_id: WebhookId) -> None:
    """Delete a webhook and its delivery log."""

    async def work(connection: AsyncConnection) -> None:
        await store.delete(connection, CLI, _uuid(webhook_id))

    run_in_transaction(work)
    console.print(f"{webhook_id}: deleted")


@webhooks_app.command("dead-letters")
def dead_letters(
    webhook_id: WebhookId,
    first: Annotated[int, typer.Option(help="How many, newest first.")] = 50,
) -> None:
    """The events given up on (replay them with the `replayWebhook` mutation)."""

    async def work(connection: AsyncConnection) -> None:
        webhook = await store.get(connection, CLI, _uuid(webhook_id))
        rows = await store.deliveries(
            connection, webhook["id"], DeliveryStatus.DEAD_LETTER, first, None
        )
        for row in rows:
            console.print(
                f"delivery {row['id']}  webhook-id={row['event_cursor']}  attempt={row['attempt']}"
                f"  {row['error']}  at {row['created_at']:%Y-%m-%d %H:%M:%S}"
            )

    run_in_transaction(work)
