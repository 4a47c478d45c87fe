"""Row security: the one place that gives a request the engine it must use.

PostgreSQL enforces the partner row scope itself (migration 0013: row-level security policies
on every customer-data table, for the NOLOGIN role ``hub_partner``, reading the scope from the
session settings ``hub.channels`` and ``hub.touchpoints``). This module makes every query of a
PARTNER request run under that role with that scope; ``hub.context.Context.build`` asks it for
the request's engines, so no resolver, loader or extension holds an unscoped engine for a
partner, and a query that forgets the scope still cannot see out-of-scope rows.

How, and why this way:

- ``engine_for(engine, principal)`` returns ``engine`` itself for every role but PARTNER: those
  run as the hub's login, the tables' owner, whom row security does not restrict (zero cost).
- For a PARTNER it returns ``engine.execution_options(hub_row_scope=…)``: a light view of the
  same engine and the same pool (no pool per key, nothing per request but a small object), whose
  connections carry the scope as an execution option. An ``engine_connect`` listener switches
  every connection made through such a view, right after checkout and before any statement, to
  ``hub_partner`` with the key's settings (one round trip); AsyncSessions bound to the view pass
  through it too. If that fails, the checkout fails: no statement runs unscoped. Each statement
  on such a connection re-checks the switch (a dict lookup), which covers a connection that
  SQLAlchemy silently replaced after a disconnect.
- A pool ``reset`` listener, on every return of a connection that was switched, rolls back and
  runs ``RESET ROLE; RESET hub.channels; RESET hub.touchpoints`` outside any transaction (a
  reset inside one could be rolled back). If that fails SQLAlchemy invalidates the connection
  (it is closed, never reused); a connection that cannot be reset safely (garbage collected) is
  refused the same way. So nothing leaks into the pool in either direction.
- Fail closed: the policies show nothing without the settings, the role has SELECT on the
  partner tables only (and INSERT on the audit log), and the settings are set only together
  with the role.

The compiled read path (``hub.compiled``) does not go through SQLAlchemy: it keeps, per scope,
a small pool of asyncpg connections whose sessions are the partner's for life —
``session_settings(principal)`` gives the role and the scope as *startup parameters* of the
connection (so they are also what ``RESET`` returns to), which saves the switch and the reset
round trips per request. Such a connection serves one scope only and is never returned to a
pool of another scope; the mapping from a principal to its settings is this module's.

Alternatives not taken: a second pool logging in with ``role=hub_partner`` still needs the
per-request settings and doubles the connections; ``SET LOCAL`` per transaction needs a hook on
every transaction start (the asyncpg dialect starts them lazily) and fails open on autocommit.
"""

from __future__ import annotations

from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import PoolResetState
from sqlalchemy.util import await_

from hub.access.keys import Principal
from hub.access.scope import RowScope

PARTNER_ROLE: Final = "hub_partner"
# The execution option that marks a partner view of an engine; its value is the settings.
SCOPE_OPTION: Final = "hub_row_scope"
# On a pooled connection's ``info``: it was switched and must be reset on return.
_SWITCHED: Final = "hub_row_scope_switched"

_SWITCH = (
    "SELECT set_config('role', $1, false), set_config('hub.channels', $2, false),"
    " set_config('hub.touchpoints', $3, false)"
)
_RESET = "RESET ROLE; RESET hub.channels; RESET hub.touchpoints"


class RowSecurityError(RuntimeError):
    """A pooled partner connection could not be reset: the pool discards it."""


def scope_settings(scope: RowScope) -> tuple[str, str]:
    """The values of ``hub.channels`` and ``hub.touchpoints`` for a scope (comma-separated,
    sorted; channel codes and UUIDs contain no comma)."""
    return (
        ",".join(sorted(scope.channels)),
        ",".join(sorted(str(touchpoint) for touchpoint in scope.touchpoints)),
    )


def session_settings(principal: Principal) -> dict[str, str]:
    """The settings a connection serving only ``principal``'s scope starts with: the partner
    role and the scope (the same values ``engine_for`` switches a pooled connection to).
    Empty for a principal that is not row-scoped."""
    if not row_scoped(principal):
        return {}
    channels, touchpoints = scope_settings(principal.scope)
    return {"role": PARTNER_ROLE, "hub.channels": channels, "hub.touchpoints": touchpoints}


def row_scoped(principal: Principal) -> bool:
    """Do this principal's queries run under row security? Paths that do not take their
    connections from ``engine_for`` (the compiled SQL paths, on the login's own pool) must
    refuse such a principal."""
    return principal.scope.restricted


def engine_for(engine: AsyncEngine, principal: Principal) -> AsyncEngine:
    """The engine a request acting as ``principal`` must use (see the module docstring)."""
    if not row_scoped(principal):
        return engine
    _install(engine.sync_engine)
    return engine.execution_options(**{SCOPE_OPTION: scope_settings(principal.scope)})


def _install(engine: Engine) -> None:
    if not sa.event.contains(engine, "engine_connect", _switch_on_checkout):
        sa.event.listen(engine, "engine_connect", _switch_on_checkout)
    if not sa.event.contains(engine, "before_cursor_execute", _before_statement):
        sa.event.listen(engine, "before_cursor_execute", _before_statement)
    if not sa.event.contains(engine.pool, "reset", _reset):
        sa.event.listen(engine.pool, "reset", _reset)


def _switch(connection: Connection) -> None:
    settings = connection.get_execution_options().get(SCOPE_OPTION)
    if settings is None:
        return
    pooled = connection.connection
    if pooled.info.get(_SWITCHED):
        return
    channels, touchpoints = settings
    # Marked before switching: if the switch fails half-way, the return still resets.
    pooled.info[_SWITCHED] = True
    driver: Any = pooled.driver_connection
    await_(driver.fetchrow(_SWITCH, PARTNER_ROLE, channels, touchpoints))


def _switch_on_checkout(connection: Connection) -> None:
    try:
        _switch(connection)
    except BaseException as error:
        # Raised here (a failed switch, or the request cancelled while it waited for it), the
        # Connection never reaches its caller and SQLAlchemy does not return the pooled
        # connection it holds: it would stay checked out until the garbage collector found it
        # (seen under load as "non-checked-in connection" at a random later moment). It is
        # invalidated instead: closed, its slot back in the pool, no reset I/O.
        connection.connection.invalidate(error)
        raise


def _before_statement(connection: Connection, *_: Any) -> None:
    # A Connection invalidated mid-request (a dropped server connection) takes a new DBAPI
    # connection from the pool on its next statement without a new engine_connect: every
    # statement of a partner view checks its connection is switched (a dict lookup) and
    # switches it if not, so no statement ever runs unscoped.
    try:
        _switch(connection)
    except BaseException as error:
        # The new connection is marked switched before the switch (so that a half-done switch
        # is still reset on return): failed or cancelled, it must not serve the Connection's
        # next statement as if switched. Invalidated, the next statement takes another one.
        connection.invalidate(error)
        raise


def _reset(dbapi_connection: Any, record: Any, state: PoolResetState) -> None:
    if not record.info.pop(_SWITCHED, False):
        return
    if not state.asyncio_safe:
        raise RowSecurityError("a partner connection cannot be reset here: discarded")
    dbapi_connection.rollback()
    await_(dbapi_connection.driver_connection.execute(_RESET))
