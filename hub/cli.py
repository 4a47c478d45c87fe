"""The ``hub`` command: serve, demo, migrate, seed, schema, keys, webhooks, import, export,
audiences."""

from __future__ import annotations

import asyncio
import math
import os
import signal
from enum import StrEnum
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
import uvicorn
from rich.console import Console

from hub.core.settings import Settings
from hub.db.engine import locate_database
from hub.db.migrations import upgrade
from hub.http.ws_outbox import TRANSPORT_PING_INTERVAL_S, transport_ping_timeout
from hub.ops.logs import log_config

app = typer.Typer(help="hub — the GraphQL customer-360 data hub.", no_args_is_help=True)
console = Console(stderr=True)


def _exit_through_python_on_sigterm() -> None:
    """After its graceful shutdown uvicorn re-raises SIGTERM with the handler it found. With the
    default handler the process dies on the spot and no ``atexit`` hook runs, so the embedded
    PostgreSQL would outlive ``hub serve``. Raising SystemExit instead unwinds normally."""

    def exit_now(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, exit_now)


@app.command()
def migrate() -> None:
    """Apply pending database migrations."""
    location = locate_database(Settings())
    upgrade(location.url)
    console.print("[green]database is up to date[/green]")


@app.command()
def schema(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout.")
    ] = None,
) -> None:
    """Print the GraphQL schema (SDL) the code defines."""
    from hub.graphql import schema_sdl

    sdl = schema_sdl()
    if output is None:
        typer.echo(sdl, nl=False)
    else:
        output.write_text(sdl)


@app.command()
def seed(
    customers: Annotated[int, typer.Option(help="How many customers to create.")] = 1000,
    seed: Annotated[int, typer.Option(help="Random seed: same seed, same data.")] = 42,
    activity: Annotated[
        float,
        typer.Option(
            min=0.01,
            help="How long retained customers stay active: 1 ≈ 10 interactions per customer, "
            "3.7 ≈ 20 (the benchmark's data set).",
        ),
    ] = 1.0,
) -> None:
    """Fill the database with a deterministic demo retailer: touchpoints, customers, journeys."""
    from hub.seeds.demo import seed_demo

    location = locate_database(Settings())
    upgrade(location.url)
    summary = asyncio.run(
        seed_demo(location.url, customers=customers, seed=seed, progress=True, activity=activity)
    )
    console.print(f"[green]seeded[/green] {summary}")


class ServerKind(StrEnum):
    uvicorn = "uvicorn"
    granian = "granian"


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    access_log: Annotated[
        bool, typer.Option(help="Log every request (the server's access log).")
    ] = True,
    server: Annotated[
        ServerKind,
        typer.Option(
            help="The HTTP server: uvicorn (the default: the hub's graceful shutdown hooks into "
            "its signal handling) or granian (Rust; see docs/benchmarks.md)."
        ),
    ] = ServerKind.uvicorn,
) -> None:
    """Serve the GraphQL API (migrations are applied first)."""
    settings = Settings()
    location = locate_database(settings)
    if settings.migrate_on_start:
        upgrade(location.url)
    # Workers find the database through the environment; no worker migrates again.
    os.environ["HUB_DATABASE_URL"] = location.url
    os.environ["HUB_MIGRATE_ON_START"] = "false"
    _exit_through_python_on_sigterm()
    if server is ServerKind.granian:
        _serve_granian(settings, host, port, workers, access_log)
        return
    uvicorn.run(
        "hub.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
        ws_per_message_deflate=settings.ws_per_message_deflate,
        # Messages over the limit are refused by the server as they arrive (close 1009), before
        # the app buffers or parses them (the app checks again, for other servers).
        ws_max_size=settings.ws_max_message_bytes,
        # A cut-off slow consumer gets its grace before uvicorn's keep-alive may drop it.
        ws_ping_interval=TRANSPORT_PING_INTERVAL_S,
        ws_ping_timeout=transport_ping_timeout(settings),
        access_log=access_log,
        log_config=log_config(settings.log_format),
        # The app's graceful shutdown (hub/http/shutdown.py) narrows this to what is left of the
        # deadline once it has drained and closed the websockets.
        timeout_graceful_shutdown=math.ceil(settings.shutdown_deadline_s),
    )


def _serve_granian(
    settings: Settings, host: str, port: int, workers: int, access_log: bool
) -> None:
    """The same app under granian (ASGI). What differs from uvicorn: websocket messages over
    ``HUB_WS_MAX_MESSAGE_BYTES`` are refused by the app (hub.http.ws_adapter), not the server;
    SIGTERM stops workers after granian's own kill timeout (the hub's drain sequence,
    hub/http/shutdown.py, hooks into uvicorn's signal handling only)."""
    from granian.constants import Interfaces
    from granian.server import Server as Granian

    Granian(
        "hub.app:create_app",
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        factory=True,
        workers=workers,
        log_access=access_log,
        log_dictconfig=log_config(settings.log_format),
        workers_kill_timeout=math.ceil(settings.shutdown_deadline_s),
    ).serve()


@app.command()
def demo(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    customers: Annotated[int, typer.Option(help="Customers to seed when empty.")] = 2000,
) -> None:
    """Embedded PostgreSQL, demo data when the database is empty, then serve with GraphiQL."""
    from hub.seeds.demo import DEMO_SEED, database_is_empty, seed_demo

    settings = Settings()
    location = locate_database(settings)
    upgrade(location.url)
    if asyncio.run(database_is_empty(location.url)):
        console.print(f"seeding {customers} demo customers…")
        asyncio.run(seed_demo(location.url, customers=customers, seed=DEMO_SEED, progress=True))
    os.environ["HUB_DATABASE_URL"] = location.url
    os.environ["HUB_MIGRATE_ON_START"] = "false"
    # The demo is local: it runs in development mode (no API keys needed), and says so.
    os.environ["HUB_DEV_MODE"] = "true"
    console.print(
        "[bold red]development mode:[/bold red] no API key needed, every request acts as ADMIN "
        "with personal data visible (HUB_DEV_MODE=true). Local use only."
    )
    console.print(f"\n[bold green]GraphiQL:[/bold green] http://{host}:{port}/graphql")
    console.print(f"[bold green]Journeys:[/bold green] http://{host}:{port}/journeys\n")
    _exit_through_python_on_sigterm()
    uvicorn.run(
        "hub.app:create_app",
        factory=True,
        host=host,
        port=port,
        log_level="info",
        log_config=log_config(settings.log_format),
        ws_ping_interval=TRANSPORT_PING_INTERVAL_S,
        ws_ping_timeout=transport_ping_timeout(settings),
        timeout_graceful_shutdown=math.ceil(settings.shutdown_deadline_s),
    )


analytics_app = typer.Typer(help="The derived tables behind Query.analytics.", no_args_is_help=True)


@analytics_app.command("rebuild")
def analytics_rebuild() -> None:
    """Recompute journey_steps from interactions and stage history (set-based, one transaction)."""
    from hub.analytics.rollup import run_rebuild

    location = locate_database(Settings())
    written = asyncio.run(run_rebuild(location.url))
    console.print(f"[green]journey_steps rebuilt[/green]: {written:,} rows")


@analytics_app.command("check")
def analytics_check() -> None:
    """Compare journey_steps with a recomputation from the base tables (exit 1 if they differ)."""
    from hub.analytics.rollup import run_check

    location = locate_database(Settings())
    stale = asyncio.run(run_check(location.url))
    if stale:
        console.print(f"[red]{stale:,} rows differ[/red]: run `hub analytics rebuild`")
        raise typer.Exit(1)
    console.print("[green]journey_steps is current[/green]")


app.add_typer(analytics_app, name="analytics")

from hub.access.keys_cli import keys_app  # noqa: E402  (after `app`: the sub-command registers on it)

app.add_typer(keys_app, name="keys")

from hub.documents_cli import documents_app  # noqa: E402  (after `app`, as keys_app)

app.add_typer(documents_app, name="documents")
from hub.webhooks.cli import webhooks_app  # noqa: E402  (as keys_app)

app.add_typer(webhooks_app, name="webhooks")
from hub.audiences.cli import audiences_app  # noqa: E402  (as keys_app)
from hub.sources.files_cli import export_data, import_file  # noqa: E402  (as keys_app)

app.add_typer(audiences_app, name="audiences")

app.command("import")(import_file)
app.command("export")(export_data)


def main() -> None:
    app()
