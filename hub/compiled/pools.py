"""The compiled read path's asyncpg pools.

- One pool on the primary (and one on the replica, with ``HUB_READ_DATABASE_URL``) for every
  caller who is not row-scoped: the hub's login, whom row security does not restrict.
- For row-scoped (PARTNER) callers, ``ScopedPools``: a small LRU of pools, one per scope (and
  database), whose connections *start* as the partner role with that scope
  (``hub.access.row_security.session_settings``, sent as startup parameters). A request is one
  round trip — the read — instead of three (switch, read, reset), and a connection can only ever
  serve the scope it was opened with: it never goes back to another scope's pool, so there is no
  reset to forget or to fail. PostgreSQL's row security still does the filtering.

The pools' connections are not reset on release: these paths run single read statements outside
transactions, which leave no session state behind.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from hub.access.keys import Principal
from hub.access.row_security import session_settings
from hub.core.settings import Settings
from hub.db.engine import asyncpg_dsn

logger = logging.getLogger("hub.compiled")

# A scope's idle connections close after this long (a partner that stops calling frees them).
SCOPED_IDLE_S = 30.0


async def _keep_session(connection: Any) -> None:
    return None


async def open_pool(
    url: str,
    settings: Settings,
    session: dict[str, str] | None = None,
    size: int | None = None,
    idle_s: float = 300.0,
) -> Any:
    """A pool of the compiled read path; ``session``: further startup settings of every
    connection (a partner's role and scope)."""
    return await asyncpg.create_pool(
        asyncpg_dsn(url),
        # No connection at start: the app must start (and /readyz report) while the
        # database is down; the pool connects on first use and recovers by itself.
        min_size=0,
        max_size=size or settings.pool_size,
        timeout=settings.db_connect_timeout_s,  # connect timeout of each new connection
        max_inactive_connection_lifetime=idle_s,
        server_settings={
            "statement_timeout": str(settings.statement_timeout_ms),
            "application_name": "hub-compiled",
            # sql.json_timestamp renders timestamps in the session time zone.
            "TimeZone": "UTC",
            **(session or {}),
        },
        # The default reset runs a second statement (RESET ALL, UNLISTEN...) on every
        # release; these pools only run single read statements outside transactions, which
        # leave no session state behind.
        reset=_keep_session,
    )


@dataclass
class _Entry:
    opening: asyncio.Future[Any]
    users: int = 0
    evicted: bool = False
    closing: list[asyncio.Task[None]] = field(default_factory=list)


class ScopedPools:
    """Per scope, a pool whose sessions are that scope's partner for life (module docstring).

    At most ``settings.partner_pools`` scopes are kept; the least recently used one is evicted
    when another arrives, and closed once its last request has released its connection (so a
    request never finds its pool closing under it)."""

    def __init__(self, settings: Settings, url: str, replica_url: str | None = None) -> None:
        self.settings = settings
        self.url = url
        self.replica_url = replica_url
        self.size = max(1, settings.pool_size // 2)
        self.entries: OrderedDict[tuple[str, ...], _Entry] = OrderedDict()
        self.closing: set[asyncio.Task[None]] = set()

    @asynccontextmanager
    async def connection(self, principal: Principal, replica: bool = False) -> AsyncIterator[Any]:
        """A connection that runs as ``principal``'s partner role with its scope."""
        session = session_settings(principal)
        if not session:
            raise ValueError("only a row-scoped principal takes a scoped connection")
        url = self.replica_url if replica and self.replica_url else self.url
        key = (url, *(f"{name}={value}" for name, value in sorted(session.items())))
        entry = self.entries.get(key)
        if entry is None:
            startup = {**session, "application_name": "hub-compiled-partner"}
            opened = open_pool(url, self.settings, startup, self.size, SCOPED_IDLE_S)
            entry = self.entries[key] = _Entry(asyncio.ensure_future(opened))
            while len(self.entries) > self.settings.partner_pools:
                _, old = self.entries.popitem(last=False)
                old.evicted = True
                self._close_if_unused(old)
        else:
            self.entries.move_to_end(key)
        entry.users += 1
        try:
            # Shielded: a request cancelled (its timeout) while the pool opens leaves the
            # opening to finish for the next request.
            try:
                pool = await asyncio.shield(entry.opening)
            except Exception:
                if self.entries.get(key) is entry:  # the next request opens it anew
                    del self.entries[key]
                raise
            async with pool.acquire(timeout=self.settings.db_pool_timeout_s) as connection:
                yield connection
        finally:
            entry.users -= 1
            self._close_if_unused(entry)

    def _close_if_unused(self, entry: _Entry) -> None:
        if entry.evicted and entry.users == 0 and not entry.closing:
            task = asyncio.ensure_future(self._close(entry))
            entry.closing.append(task)
            self.closing.add(task)
            task.add_done_callback(self.closing.discard)

    @staticmethod
    async def _close(entry: _Entry) -> None:
        try:
            pool = await entry.opening
            await pool.close()
        except Exception:  # a pool that failed to open, or a connection that failed to close
            logger.warning("closing a scoped pool failed", exc_info=True)

    async def close(self) -> None:
        for entry in self.entries.values():
            entry.evicted = True
            self._close_if_unused(entry)
        self.entries.clear()
        if self.closing:
            await asyncio.gather(*self.closing)
