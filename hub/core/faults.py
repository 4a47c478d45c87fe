"""Telling a database outage from a bug: lost, refused or timed-out connections are retryable.

PostgreSQL restarting, a failover or a cut network show up as many exception types depending on
the layer that notices first (asyncpg, SQLAlchemy's adapter, its pool, the event loop). Every
path that talks to the database asks ``database_unavailable`` before deciding between "try again
shortly" (``SERVICE_UNAVAILABLE``, ``retryable: true``) and "Unexpected error.".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import asyncpg
from sqlalchemy import exc as sa_exc

# SQLSTATEs of an unreachable or restarting server: class 08 (connection exception),
# admin/crash shutdown, "the database system is starting up/shutting down", too many
# connections.
_UNAVAILABLE_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "53300"})
_CLOSED_MESSAGES = ("connection is closed", "connection was closed", "underlying connection")

RETRY_AFTER_S = 1  # what clients are told to wait (HTTP Retry-After) before retrying


def _sqlstate(error: BaseException) -> str | None:
    state = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
    return state if isinstance(state, str) else None


def _unavailable_here(error: BaseException) -> bool:
    if isinstance(error, OSError | TimeoutError | sa_exc.TimeoutError):
        return True  # refused, reset, unreachable; connect timeout; pool checkout timeout
    if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
        return True
    state = _sqlstate(error)
    if state is not None and (state.startswith("08") or state in _UNAVAILABLE_SQLSTATES):
        return True
    if isinstance(error, asyncpg.InternalClientError):
        return True  # the server's goodbye arrived while the connection sat idle in a pool
    if isinstance(error, asyncpg.InterfaceError | sa_exc.InterfaceError):
        message = str(error).lower()
        return any(text in message for text in _CLOSED_MESSAGES)
    return False


def _anywhere(error: BaseException, test: Callable[[BaseException], bool]) -> bool:
    """Whether ``test`` holds for ``error`` or anything that caused it (the layers wrap each
    other: SQLAlchemy's ``orig``, ``__cause__``, ``__context__``)."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if test(current):
            return True
        orig = getattr(current, "orig", None)
        pending += [
            current.__cause__,
            current.__context__,
            orig if isinstance(orig, BaseException) else None,
        ]
    return False


def database_unavailable(error: BaseException) -> bool:
    """Whether ``error`` (or what caused it) means the database could not be reached or went
    away mid-request: the same request may succeed once it is back."""
    return _anywhere(error, _unavailable_here)


# deadlock_detected, serialization_failure: PostgreSQL aborted the whole transaction to let a
# concurrent one through. Nothing of it was committed, so running it again is safe.
_CONFLICT_SQLSTATES = frozenset({"40P01", "40001"})


def transaction_conflict(error: BaseException) -> bool:
    """Whether PostgreSQL aborted the transaction over a conflict with a concurrent one (a
    deadlock or a serialization failure): the same work may simply be run again."""
    return _anywhere(error, lambda current: _sqlstate(current) in _CONFLICT_SQLSTATES)


# query_canceled, lock_not_available: only with PostgreSQL's timeout wording ("canceling
# statement due to statement timeout" / "... lock timeout"). The same states also come from a
# cancel request (pg_cancel_backend, a pooler) or NOWAIT, which are not the statement's length.
_TIMEOUT_SQLSTATES = frozenset({"57014", "55P03"})


def _timed_out_here(error: BaseException) -> bool:
    return _sqlstate(error) in _TIMEOUT_SQLSTATES and "timeout" in str(error).lower()


def statement_timed_out(error: BaseException) -> bool:
    """Whether PostgreSQL cancelled a statement that ran, or waited for a lock, longer than
    ``HUB_STATEMENT_TIMEOUT_MS``: its transaction was rolled back."""
    return _anywhere(error, _timed_out_here)


def timeout_extensions() -> dict[str, object]:
    """``extensions`` of a statement the database cancelled for taking too long: the same code
    as an operation over ``HUB_OPERATION_TIMEOUT_SECONDS``, and no ``retryable`` (a read that
    is too heavy stays too heavy; whether to try again is the caller's call)."""
    return {"code": "TIMEOUT"}


TIMEOUT_MESSAGE = (
    "The database took too long and cancelled the statement; nothing of it was stored. Try "
    "again, or ask for less at once."
)


def conflict_extensions() -> dict[str, object]:
    """``extensions`` of a transaction that kept colliding with concurrent ones. Its own code:
    CONFLICT is a refusal that stays (an already merged id), this one goes away by itself."""
    return {"code": "TRANSACTION_CONFLICT", "retryable": True}


CONFLICT_MESSAGE = (
    "Another request changed the same data at the same moment and this one was rolled back; "
    "nothing of it was stored. Try again."
)


def unavailable_extensions() -> dict[str, object]:
    """``extensions`` of every "the database is unavailable" error."""
    return {"code": "SERVICE_UNAVAILABLE", "retryable": True}


UNAVAILABLE_MESSAGE = "The database is unavailable; try again shortly."


@dataclass(frozen=True)
class Fault:
    """What a client is told about a database situation it can act on, and the log's name
    for it."""

    message: str
    extensions: dict[str, object]
    name: str


def client_fault(error: BaseException) -> Fault | None:
    """The client's version of an unavailable database, a transaction conflict or a statement
    timeout behind ``error``; None for anything else (a bug, masked as "Unexpected error.").
    Every path that answers clients (HTTP, websockets) asks this one function."""
    if database_unavailable(error):
        return Fault(UNAVAILABLE_MESSAGE, unavailable_extensions(), "database unreachable")
    if transaction_conflict(error):
        return Fault(CONFLICT_MESSAGE, conflict_extensions(), "transaction conflict")
    if statement_timed_out(error):
        return Fault(TIMEOUT_MESSAGE, timeout_extensions(), "statement timeout")
    return None
