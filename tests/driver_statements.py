"""Counting the statements the hub sends to PostgreSQL, at the driver (asyncpg).

Counting SQLAlchemy's ``before_cursor_execute`` misses whatever runs on asyncpg directly (the
compiled paths, the bulk ingest, raw pools), so a guard built on it passes with 0 == 0 when work
moves there. Here every round trip that executes SQL is seen where asyncpg sends it: a plain
``execute`` (simple query protocol), ``_execute``/``_executemany`` (``fetch*`` and friends),
prepared statements (SQLAlchemy's path) and COPY. The wrappers only observe: they record the text
and call the original.

Only work started from the context that opened the counter is counted (a context variable copied
into the tasks the request spawns), so background tasks of a running app do not make counts vary.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from asyncpg.connection import Connection
from asyncpg.prepared_stmt import PreparedStatement

_ACTIVE: contextvars.ContextVar[DriverStatements | None] = contextvars.ContextVar(
    "driver_statements", default=None
)
# A key's ``last_used_at`` is refreshed at most once a minute (hub.http.gate): whether a request
# does it depends on the clock, not on the query, so it is left out of the counts.
BOOKKEEPING = ("UPDATE api_keys SET last_used_at",)
TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "START TRANSACTION")


class DriverStatements:
    """The SQL texts sent by asyncpg since the last ``clear``, in order."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    def clear(self) -> None:
        self.statements.clear()

    @property
    def work(self) -> list[str]:
        """Statements other than transaction control (BEGIN, COMMIT, SAVEPOINT, …), the
        pool's liveness pings (SQLAlchemy's ``pool_pre_ping`` sends ``;``) and ``BOOKKEEPING``."""
        return [
            s
            for s in self.statements
            if s.strip() != ";"
            and not s.lstrip().upper().startswith(TRANSACTION_CONTROL)
            and not s.lstrip().startswith(BOOKKEEPING)
        ]

    @property
    def round_trips(self) -> list[str]:
        """Every statement sent, transaction control included, but the pool's liveness pings
        (``;``) and ``BOOKKEEPING``: what a request costs on the wire."""
        return [
            s
            for s in self.statements
            if s.strip() != ";" and not s.lstrip().startswith(BOOKKEEPING)
        ]

    @property
    def count(self) -> int:
        return len(self.work)

    def report(self) -> str:
        return "\n---\n".join(self.work)


def _record(text: Any) -> None:
    counter = _ACTIVE.get()
    if counter is not None:
        counter.statements.append(str(text))


def _wrap(original: Callable[..., Any], text: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        statement = text(*args, **kwargs)
        if statement is not None:
            _record(statement)
        return await original(*args, **kwargs)

    return wrapper


def _plain_execute(connection: Any, query: str, *args: Any, **_: Any) -> str | None:
    # With arguments ``execute`` goes through ``_execute``, which is counted itself.
    return None if args else query


def _first_query(connection: Any, query: str, *_: Any, **__: Any) -> str:
    return query


def _prepared(statement: Any, *_: Any, **__: Any) -> str:
    return str(statement.get_query())


def _copy(connection: Any, *args: Any, **kwargs: Any) -> str:
    return "COPY " + str(args[0] if args else kwargs)[:200]


@contextlib.contextmanager
def driver_statements(monkeypatch: pytest.MonkeyPatch | None = None) -> Iterator[DriverStatements]:
    """Counts the SQL sent through asyncpg inside the block (see the module's docstring); outside
    pytest (scripts/compiled_role_cpu.py) it patches and restores by itself."""
    with contextlib.ExitStack() as stack:
        if monkeypatch is None:
            monkeypatch = stack.enter_context(pytest.MonkeyPatch.context())
        counter = DriverStatements()
        monkeypatch.setattr(Connection, "execute", _wrap(Connection.execute, _plain_execute))
        monkeypatch.setattr(Connection, "_execute", _wrap(Connection._execute, _first_query))
        monkeypatch.setattr(
            Connection, "_executemany", _wrap(Connection._executemany, _first_query)
        )
        for name in ("_copy_in", "_copy_out", "copy_records_to_table"):
            monkeypatch.setattr(Connection, name, _wrap(getattr(Connection, name), _copy))
        do_execute = "_PreparedStatement__do_execute"
        monkeypatch.setattr(
            PreparedStatement, do_execute, _wrap(getattr(PreparedStatement, do_execute), _prepared)
        )
        token = _ACTIVE.set(counter)
        try:
            yield counter
        finally:
            _ACTIVE.reset(token)


@pytest.fixture
def count_driver_statements(monkeypatch: pytest.MonkeyPatch) -> Iterator[DriverStatements]:
    """Counts the SQL the code under test sends through asyncpg (see the module's docstring)."""
    with driver_statements(monkeypatch) as counter:
        yield counter
