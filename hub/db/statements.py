"""How the ingest statements reach PostgreSQL: one small interface over two kinds of connection.

The ingest engine (``hub.ingest.record``, ``hub.ingest.store``) runs a handful of fixed, set-based
statements. They are written with named parameters (``:name``) for readability and turned once,
at import, into positional asyncpg statements (``$1``…). Two connections can run them:

- ``DriverSql``: a bare asyncpg connection in a transaction (the compiled ingest path,
  ``hub.compiled.ingest``): asyncpg prepares each statement once per connection, and a call costs
  no SQLAlchemy compilation or result processing. It cannot run merges (``merge_connection`` is
  None): the caller falls back to the resolver path before anything is written.
- ``AlchemySql``: a SQLAlchemy ``AsyncConnection`` (the resolver path, the CLI): the same SQL
  through ``exec_driver_sql`` (SQLAlchemy's asyncpg dialect passes ``$n`` statements through and
  prepares them the same way), and merges through ``hub.identity.merges`` on that connection.

Both decode ``json``/``jsonb`` to Python values and take ``jsonb`` parameters as JSON text (the
codecs SQLAlchemy's asyncpg dialect installs; ``jsonb_codecs`` installs the same on a pool).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import asyncpg
import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_][A-Za-z0-9_]*)")

Row = Mapping[str, Any]


@dataclass(frozen=True)
class Statement:
    """A statement with positional parameters, and the name behind each position."""

    sql: str
    names: tuple[str, ...]

    @classmethod
    def named(cls, text: str) -> Statement:
        """``:name`` placeholders (not ``::casts``) → ``$n``; a repeated name keeps its number."""
        names: list[str] = []

        def number(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in names:
                names.append(name)
            return f"${names.index(name) + 1}"

        return cls(_NAMED.sub(number, text), tuple(names))

    def args(self, params: Mapping[str, Any]) -> list[Any]:
        return [params[name] for name in self.names]


# The advisory lock between changes of customers (shared: ingest's lock statement takes it with
# its own locks) and changes of computed-trait definitions (exclusive, hub.audiences.traits): a
# change that read the definitions has committed before a new definition computes its values.
DEFINITIONS_LOCK = 0x7EA1_0018

LOCKS = Statement.named(
    f"SELECT pg_advisory_xact_lock_shared({DEFINITIONS_LOCK}), (SELECT"
    " count(pg_advisory_xact_lock(k)) FROM unnest(CAST(:keys AS bigint[])) AS k)"
)


def _locks_literal(keys: Sequence[int]) -> str:
    """The lock statement with the keys inline (they are integers: nothing to escape)."""
    array = ",".join(str(int(key)) for key in keys)
    return (
        f"SELECT pg_advisory_xact_lock_shared({DEFINITIONS_LOCK}), (SELECT"
        f" count(pg_advisory_xact_lock(k)) FROM unnest('{{{array}}}'::bigint[]) AS k)"
    )


class IngestSql(Protocol):
    """What the ingest engine needs from a connection in an open transaction."""

    @property
    def merge_connection(self) -> AsyncConnection | None: ...

    async def lock(self, keys: Sequence[int]) -> None:
        """Take transaction-scoped advisory locks on ``keys`` (sorted by the caller), and the
        computed-trait definitions lock shared (``DEFINITIONS_LOCK``)."""

    async def fetch(self, statement: Statement, params: Mapping[str, Any]) -> Sequence[Row]: ...


class DriverSql:
    """A bare asyncpg connection, in a transaction or (``begin=True``) about to start one: then
    the first ``lock`` sends BEGIN and the locks in one round trip (the simple query protocol
    runs both; the keys are integers, written inline). If ``lock`` never runs, no transaction
    was started (``connection.is_in_transaction()`` tells).

    ``generic_plans``: the transaction's statements use their prepared generic plans from the
    first call on (``plan_cache_mode``, set in the same round trip). For one item (a single
    event): PostgreSQL otherwise plans the claims statement afresh at every call (its generic
    estimate, sized for arrays of unknown length, looks costlier), and each connection plans
    the others five times before it compares; their planning cost more than their execution.
    Batches keep per-call plans (arrays of a thousand ids are worth planning for)."""

    def __init__(
        self, connection: asyncpg.Connection, *, begin: bool = False, generic_plans: bool = False
    ) -> None:
        self.connection = connection
        self.begin = begin
        self.generic_plans = generic_plans

    async def lock(self, keys: Sequence[int]) -> None:
        if self.begin:
            self.begin = False
            generic = "SET LOCAL plan_cache_mode = force_generic_plan; "
            await self.connection.execute(
                "BEGIN ISOLATION LEVEL READ COMMITTED; "
                + (generic if self.generic_plans else "")
                + _locks_literal(keys)
            )
        else:
            await self.fetch(LOCKS, {"keys": list(keys)})

    @property
    def merge_connection(self) -> AsyncConnection | None:
        return None

    async def fetch(self, statement: Statement, params: Mapping[str, Any]) -> Sequence[Row]:
        rows: list[Row] = await self.connection.fetch(statement.sql, *statement.args(params))
        return rows


class AlchemySql:
    """A SQLAlchemy connection: the same statements through ``exec_driver_sql``."""

    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection

    @property
    def merge_connection(self) -> AsyncConnection | None:
        return self.connection

    async def lock(self, keys: Sequence[int]) -> None:
        await self.fetch(LOCKS, {"keys": list(keys)})

    async def fetch(self, statement: Statement, params: Mapping[str, Any]) -> Sequence[Row]:
        result = await self.connection.exec_driver_sql(statement.sql, tuple(statement.args(params)))
        rows: list[Row] = [*result.mappings()] if result.returns_rows else []
        return rows


def _jsonb_encode(text: str) -> bytes:
    return b"\x01" + text.encode()


def _jsonb_decode(data: bytes) -> Any:
    return orjson.loads(data[1:])


def _json_encode(text: str) -> bytes:
    return text.encode()


async def jsonb_codecs(connection: asyncpg.Connection) -> None:
    """The json/jsonb codecs of SQLAlchemy's asyncpg dialect (text in, Python values out)."""
    await connection.set_type_codec(
        "jsonb",
        encoder=_jsonb_encode,
        decoder=_jsonb_decode,
        schema="pg_catalog",
        format="binary",
    )
    await connection.set_type_codec(
        "json", encoder=_json_encode, decoder=orjson.loads, schema="pg_catalog", format="binary"
    )


def ingest_sql(conn: IngestSql | AsyncConnection) -> IngestSql:
    """``conn`` as an ``IngestSql``: a SQLAlchemy connection wrapped, an ``IngestSql`` as is."""
    return AlchemySql(conn) if isinstance(conn, AsyncConnection) else conn
