"""Where the database is, and the async engine that talks to it.

Without ``HUB_DATABASE_URL`` the hub runs an embedded PostgreSQL (``pgserver``) in a local data
folder; after that point both cases are the same code path: a URL handed to SQLAlchemy's asyncpg
dialect.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from hub.core.settings import Settings
from hub.db.statements import jsonb_codecs


@dataclass(frozen=True)
class DatabaseLocation:
    """A plain ``postgresql://`` URL plus the embedded server that serves it, if any."""

    url: str
    embedded: Any = None  # the pgserver.PostgresServer handle; kept alive while in use

    def release(self) -> None:
        """Let go of the embedded server (blocking). pgserver counts its users across
        processes and stops PostgreSQL when the last one lets go; the data stays on disk."""
        if self.embedded is not None:
            self.embedded.__exit__(None, None, None)


def _ensure_database(server: Any, name: str) -> None:
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        raise ValueError(f"database name {name!r} must be a plain lower-case identifier")
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}';")
    if "1 row" not in exists:
        server.psql(f'CREATE DATABASE "{name}";')


def locate_database(settings: Settings) -> DatabaseLocation:
    """Resolve the database URL, starting the embedded PostgreSQL when none is configured.

    This is blocking (it may start a server process); async callers run it in a thread.
    """
    if settings.database_url:
        return DatabaseLocation(url=settings.database_url)
    # Imported lazily: only the embedded mode needs it.
    from pgserver import get_server  # type: ignore[attr-defined]

    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    # cleanup_mode="stop": PostgreSQL stops when the last process using it releases it or exits
    # (pgserver registers an atexit hook), so no postmaster is left behind; the data stays in
    # data_dir for the next start. Entering the handle counts this user within the process.
    server: Any = get_server(str(data_dir), cleanup_mode="stop")
    server.__enter__()
    try:
        _ensure_database(server, settings.database_name)
    except BaseException:
        server.__exit__(None, None, None)
        raise
    # pgserver puts the socket in data_dir unless that path is too long for a Unix socket; it
    # knows where it put it.
    url = str(server.get_uri(settings.database_name))
    return DatabaseLocation(url=url, embedded=server)


async def alocate_database(settings: Settings) -> DatabaseLocation:
    return await asyncio.to_thread(locate_database, settings)


async def arelease_database(location: DatabaseLocation) -> None:
    await asyncio.to_thread(location.release)


def sqlalchemy_url(url: str) -> str:
    """Turn a libpq-style URL into one for SQLAlchemy's asyncpg dialect."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres", "postgresql+asyncpg"):
        raise ValueError("HUB_DATABASE_URL must start with postgresql://")
    query = dict(parse_qsl(parts.query))
    return urlunsplit(("postgresql+asyncpg", parts.netloc, parts.path, urlencode(query), ""))


def asyncpg_dsn(url: str) -> str:
    """A URL asyncpg's own ``connect`` accepts (for COPY and LISTEN connections)."""
    parts = urlsplit(url)
    return urlunsplit(("postgresql", parts.netloc, parts.path, parts.query, ""))


def create_engine(url: str, settings: Settings) -> AsyncEngine:
    return create_async_engine(
        sqlalchemy_url(url),
        pool_size=settings.pool_size,
        max_overflow=settings.pool_max_overflow,
        # A pooled connection is tested before use (a restarted server left it dead) and a
        # connection found dead mid-statement invalidates the pool: it recovers by itself.
        pool_pre_ping=True,
        pool_timeout=settings.db_pool_timeout_s,
        connect_args={
            "timeout": settings.db_connect_timeout_s,
            "server_settings": {
                "statement_timeout": str(settings.statement_timeout_ms),
                "application_name": "hub",
                "jit": "on" if settings.db_jit else "off",
            },
        },
    )


# The largest statement a driver connection keeps prepared (asyncpg's default is 15 KiB).
MAX_CACHEABLE_STATEMENT = 256 * 1024


async def _rollback_if_open(connection: asyncpg.Connection) -> None:
    """A driver pool's reset: its users leave no session state behind (advisory locks are per
    transaction, no LISTEN, no SET), so only an interrupted transaction needs undoing: no extra
    round trip per release, unlike asyncpg's default reset."""
    if connection.is_in_transaction():
        await connection.execute("ROLLBACK")


async def create_driver_pool(
    url: str,
    settings: Settings,
    name: str,
    size: int,
    on_statement: Callable[[], object] | None = None,
) -> asyncpg.Pool:
    """A bare asyncpg pool for the hot paths that bypass SQLAlchemy (key checks, compiled
    ingest): json/jsonb decoded like SQLAlchemy's dialect does, the statement timeout, the
    connect timeout, no ping per checkout. It connects on first use, so the app starts while
    the database is down. ``on_statement`` is called after every statement (for metrics)."""

    async def init(connection: asyncpg.Connection) -> None:
        await jsonb_codecs(connection)
        if on_statement is not None:
            connection.add_query_logger(lambda _: on_statement())

    pool: asyncpg.Pool = await asyncpg.create_pool(
        asyncpg_dsn(url),
        min_size=0,
        max_size=size,
        timeout=settings.db_connect_timeout_s,  # connect timeout of each new connection
        server_settings={
            "statement_timeout": str(settings.statement_timeout_ms),
            "application_name": name,
            "jit": "on" if settings.db_jit else "off",
        },
        init=init,
        reset=_rollback_if_open,
        # asyncpg prepares and keeps statements up to 15 KiB only; a larger one (a segment
        # membership statement over twenty segments is ~17 KiB) was parsed and planned again at
        # every call, its planning costing more than its execution.
        max_cacheable_statement_size=MAX_CACHEABLE_STATEMENT,
    )
    return pool
