"""Computed traits: definitions, and their per-customer values kept exact.

A value is recomputed, for the customers a change touched only, in the transaction of the
change: ``on_customers_changed`` (ingest on every path, merges, unmerges, erasure). A trait with
a window (``within_days``) also stores when time alone can change the value next (its oldest
in-window interaction leaves the window); ``sweep(conn, now)`` recomputes the rows that are due
(the sweeper task of ``hub serve`` calls it). Defining or changing a trait computes it over the
existing data in its own transaction, in batches of customers (``backfill``).

Concurrency: a change reads the definitions under a shared advisory lock, and defining a trait
takes it exclusively, so a transaction that stored interactions without seeing a new trait has
committed before the trait's backfill reads them. Two changes of one customer are serialised by
the customer row lock ingest and merges already take.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.audiences.aggregates import (
    NEEDS_ATTRIBUTE,
    Aggregate,
    aggregate_sql,
    attribute_path,
    number_sql,
    value_sql,
)
from hub.audiences.reasons import ChangeReason
from hub.audiences.relevance import Touched, grouped
from hub.core.errors import BadUserInput, NotFound
from hub.core.lru import LRU
from hub.db.statements import DEFINITIONS_LOCK, AlchemySql, IngestSql, Statement, ingest_sql
from hub.models import INTERACTIONS
from hub.reads.interactions import InteractionFilterSpec, as_utc
from hub.vocabulary.registry import current

KEY_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
MAX_WINDOW_DAYS = 3650
BACKFILL_BATCH = 5000
BACKFILL_WORK_MEM = "64MB"


# Changes that cannot alter an aggregate over interactions.
NO_EFFECT = frozenset(
    {
        ChangeReason.STAGE,
        ChangeReason.CONSENT,
        ChangeReason.TRAIT,
        ChangeReason.PROFILE,
        ChangeReason.DEFINITION,
    }
)


@dataclass(frozen=True)
class TraitDefinition:
    """One ``computed_traits`` row."""

    key: str
    aggregate: Aggregate
    filter: InteractionFilterSpec
    attribute: str | None
    within_days: int | None
    name: str | None = None
    description: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @classmethod
    def from_row(cls, row: Any) -> TraitDefinition:
        return cls(
            key=row["key"],
            aggregate=Aggregate(row["aggregate"]),
            filter=spec_from_json(row["filter"]),
            attribute=row["attribute"],
            within_days=row["within_days"],
            name=row["name"],
            description=row["description"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )

    @property
    def signature(self) -> tuple[Any, ...]:
        """What the trait's SQL depends on."""
        return (self.key, self.aggregate, self.filter, self.attribute, self.within_days)


# ---- the filter, stored as JSON ----


def spec_to_json(spec: InteractionFilterSpec) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if spec.channels is not None:
        out["channels"] = list(spec.channels)
    if spec.touchpoint_ids is not None:
        out["touchpointIds"] = [str(t) for t in spec.touchpoint_ids]
    if spec.types is not None:
        out["types"] = list(spec.types)
    if spec.directions is not None:
        out["directions"] = list(spec.directions)
    if spec.occurred_after is not None:
        out["occurredAfter"] = spec.occurred_after.isoformat()
    if spec.occurred_before is not None:
        out["occurredBefore"] = spec.occurred_before.isoformat()
    return out


def spec_from_json(data: dict[str, Any]) -> InteractionFilterSpec:
    def moment(name: str) -> datetime | None:
        # Read as UTC without an offset, as the SQL comparison did (ingest's relevance check
        # compares it with aware datetimes in Python).
        return as_utc(datetime.fromisoformat(data[name])) if name in data else None

    def texts(name: str) -> tuple[str, ...] | None:
        return tuple(data[name]) if name in data else None

    touchpoints = data.get("touchpointIds")
    return InteractionFilterSpec(
        channels=texts("channels"),
        touchpoint_ids=tuple(uuid.UUID(t) for t in touchpoints)
        if touchpoints is not None
        else None,
        types=texts("types"),
        directions=texts("directions"),
        occurred_after=moment("occurredAfter"),
        occurred_before=moment("occurredBefore"),
    )


# ---- validation ----


def _filter_sql(spec: InteractionFilterSpec) -> str:
    """The filter's clauses over ``interactions i`` (hub.reads' compilation), as SQL text with
    the values inline (validated enums, uuids and moments, quoted by SQLAlchemy)."""
    i = INTERACTIONS.alias("i")
    clauses = spec.clauses(i)
    if not clauses:
        return "true"
    return str(
        sa.and_(*clauses).compile(
            dialect=postgresql.dialect(),  # type: ignore[no-untyped-call]
            compile_kwargs={"literal_binds": True},
        )
    )


async def check_definition(connection: AsyncConnection, definition: TraitDefinition) -> None:
    """``BAD_USER_INPUT`` for a definition that cannot be computed (see docs/audiences.md)."""
    if not KEY_PATTERN.match(definition.key):
        raise BadUserInput(
            "a computed trait's `key` starts with a letter and holds only letters, digits and"
            " underscores (at most 64)"
        )
    spec = definition.filter
    lists = [spec.channels, spec.touchpoint_ids, spec.types, spec.directions]
    if any(values is not None and not values for values in lists):
        raise BadUserInput("an empty list in `interactions` matches no interaction")
    if not spec.clauses():
        raise BadUserInput(
            "`interactions` must narrow the interactions (channels, touchpointIds, types,"
            " directions or a time bound): an empty filter is refused"
        )
    # Registered interaction types only (custom ones too): UNKNOWN_CODE otherwise.
    vocabulary = await current(AlchemySql(connection))
    for code in spec.types or ():
        vocabulary.interaction_type(code)
    if definition.within_days is not None and not 0 < definition.within_days <= MAX_WINDOW_DAYS:
        raise BadUserInput(f"`withinDays` must be between 1 and {MAX_WINDOW_DAYS}")
    if definition.aggregate in NEEDS_ATTRIBUTE and definition.attribute is None:
        raise BadUserInput(f"the aggregate {definition.aggregate} needs an `attribute`")
    if definition.attribute is not None:
        await check_attribute(connection, definition)


async def check_attribute(connection: AsyncConnection, definition: TraitDefinition) -> None:
    """A known attribute: an interaction column (``channel``, ``type``...), or an
    ``attributes.<path>`` that at least one interaction matching the filter holds."""
    attribute = definition.attribute
    assert attribute is not None
    try:
        path = attribute_path(attribute)
    except ValueError:
        raise BadUserInput(
            f"unknown attribute {attribute!r}: use one of channel, type, direction,"
            " touchpointId, sentiment, occurredAt, or attributes.<name>[.<name>...]"
        ) from None
    if path is None:
        return
    seen = await connection.scalar(
        sa.text(
            f"SELECT EXISTS (SELECT FROM interactions i WHERE {_filter_sql(definition.filter)}"
            f" AND {value_sql(attribute)} IS NOT NULL)"
        )
    )
    if not seen:
        raise BadUserInput(
            f"unknown attribute path {attribute!r}: no interaction matching the filter has it"
        )


# ---- the computing statement ----


def _matched(definition: TraitDefinition) -> str:
    """Which interactions ``i`` the trait reads: its filter, window and attribute present."""
    where = [_filter_sql(definition.filter)]
    if definition.within_days is not None:
        where.append(
            f"i.occurred_at > CAST(:now AS timestamptz) - interval '{definition.within_days} days'"
        )
    if definition.attribute is not None:
        where.append(f"{value_sql(definition.attribute)} IS NOT NULL")
    return " AND ".join(where)


def _key_literal(definition: TraitDefinition) -> str:
    return "'" + definition.key.replace("'", "''") + "'"  # keys are checked; quoting anyway


def _next_sql(definition: TraitDefinition, oldest: str) -> str:
    """When time alone changes the value next: its oldest matched interaction leaves the
    window (never without one)."""
    if definition.within_days is None:
        return "NULL::timestamptz"
    return f"{oldest} + interval '{definition.within_days} days'"


def _trait_select(definition: TraitDefinition, customers: str) -> str:
    """One trait's rows ``(key, cid, value, next)`` for the customers ``customers`` selects
    (a predicate on ``i.customer_id``)."""
    matched = (
        f"SELECT i.customer_id AS cid, i.occurred_at AS at, i.id AS iid,"
        f" {value_sql(definition.attribute)} AS v FROM interactions i"
        f" WHERE {customers} AND {_matched(definition)}"
    )
    if definition.aggregate in (Aggregate.FIRST, Aggregate.LAST):
        # The first row of each customer in (customer, time, id) order, which the index
        # (customer_id, occurred_at, id) gives without a sort (read backwards for LAST),
        # instead of an array of every value per customer (PostgreSQL 15 sorts each
        # array_agg(… ORDER BY …) group apart): the same row, 2-3x less time at 100k customers.
        first = definition.aggregate is Aggregate.FIRST
        order = "m.cid, m.at, m.iid" if first else "m.cid DESC, m.at DESC, m.iid DESC"
        oldest = "m.at" if first else "min(m.at) OVER (PARTITION BY m.cid)"
        if definition.within_days is None:
            oldest = "NULL::timestamptz"  # only a window's next change reads it
        grouped = (
            f"SELECT DISTINCT ON (m.cid) m.cid, m.v AS value, {oldest} AS oldest"
            f" FROM ({matched}) AS m ORDER BY {order}"
        )
    elif definition.aggregate is Aggregate.MOST_FREQUENT:
        grouped = (
            "SELECT f.cid, (array_agg(f.v ORDER BY f.n DESC, f.last_at DESC,"
            ' f.v::text COLLATE "C"))[1] AS value, min(f.first_at) AS oldest FROM ('
            "SELECT m.cid, m.v, count(*) AS n, max(m.at) AS last_at, min(m.at) AS first_at"
            f" FROM ({matched}) AS m GROUP BY m.cid, m.v) AS f GROUP BY f.cid"
        )
    else:
        grouped = (
            f"SELECT m.cid, {aggregate_sql(definition.aggregate)} AS value,"
            f" min(m.at) AS oldest FROM ({matched}) AS m GROUP BY m.cid"
        )
    return (
        f"SELECT {_key_literal(definition)}::text AS key, g.cid, g.value,"
        f" {_next_sql(definition, 'g.oldest')} AS next FROM ({grouped}) AS g"
    )


def _one_pass_select(definitions: Sequence[TraitDefinition], customers: str) -> str:
    """The rows ``(key, cid, value, next)`` of several traits (MOST_FREQUENT aside: it groups
    by value) from one scan of the customers' interactions: each trait's aggregate reads its
    own rows through ``FILTER``. A few customers (ingest) re-read their whole history per
    trait otherwise: ten traits read a known customer's interactions ten times."""
    matched = [_matched(d) for d in definitions]
    columns: list[str] = []
    rows: list[str] = []
    for k, (definition, reads) in enumerate(zip(definitions, matched, strict=True)):
        only = f" FILTER (WHERE {reads})"
        value = aggregate_sql(
            definition.aggregate,
            value_sql(definition.attribute),
            at="i.occurred_at",
            iid="i.id",
            only=only,
        )
        columns += [f"{value} AS v{k}", f"count(*){only} AS n{k}"]
        if definition.within_days is not None:
            columns.append(f"min(i.occurred_at){only} AS o{k}")
        nxt = _next_sql(definition, f"p.o{k}")
        rows.append(f"({_key_literal(definition)}::text, p.v{k}, {nxt}, p.n{k})")
    read = " OR ".join(f"({reads})" for reads in matched)
    return (
        "SELECT x.key, p.cid, x.value, x.next FROM (SELECT i.customer_id AS cid,"
        f" {', '.join(columns)} FROM interactions i WHERE {customers} AND ({read})"
        f" GROUP BY i.customer_id) AS p CROSS JOIN LATERAL (VALUES {', '.join(rows)})"
        " AS x(key, value, next, n) WHERE x.n > 0"
    )


def _refresh_sql(
    definitions: Sequence[TraitDefinition], customers: str, existing: str, *, one_pass: bool
) -> str:
    """``one_pass``: the traits that fold in one scan share it (a few customers); otherwise one
    select per trait (a range of customers: each trait keeps its own plan — not measured for
    traits; for segments, one pass over everyone was slower than the per-condition form)."""
    folded = [d for d in definitions if d.aggregate is not Aggregate.MOST_FREQUENT]
    parts, apart = [], list(definitions)
    if one_pass and folded:
        parts.append(_one_pass_select(folded, customers))
        apart = [d for d in definitions if d.aggregate is Aggregate.MOST_FREQUENT]
    parts += [_trait_select(d, customers) for d in apart]
    selects = " UNION ALL ".join(parts)
    keys = ", ".join(_key_literal(d) for d in definitions)
    return (
        f"WITH computed AS MATERIALIZED ({selects}),"
        " upserted AS (INSERT INTO customer_traits_computed AS t (customer_id, trait_key, value,"
        " number, updated_at, next_change_at)"
        f" SELECT c.cid, c.key, c.value, {number_sql('c.value')}, CAST(:now AS timestamptz),"
        " c.next FROM computed c"
        " ON CONFLICT (customer_id, trait_key) DO UPDATE SET value = EXCLUDED.value,"
        " number = EXCLUDED.number, next_change_at = EXCLUDED.next_change_at,"
        " updated_at = CASE WHEN t.value IS DISTINCT FROM EXCLUDED.value"
        " THEN EXCLUDED.updated_at ELSE t.updated_at END"
        " WHERE t.value IS DISTINCT FROM EXCLUDED.value"
        " OR t.next_change_at IS DISTINCT FROM EXCLUDED.next_change_at RETURNING 1),"
        " removed AS (DELETE FROM customer_traits_computed t"
        f" WHERE {existing} AND t.trait_key IN ({keys})"
        " AND NOT EXISTS (SELECT FROM computed c WHERE c.cid = t.customer_id"
        " AND c.key = t.trait_key) RETURNING 1)"
        " SELECT (SELECT count(*) FROM computed) AS computed,"
        " (SELECT count(*) FROM upserted) AS written, (SELECT count(*) FROM removed) AS removed"
    )


_BY_IDS = ("i.customer_id = ANY(CAST(:ids AS uuid[]))", "t.customer_id = ANY(CAST(:ids AS uuid[]))")
# One customer (a single event): `= $1` keeps one generic plan; `= ANY($1)` is re-planned at
# every call (its generic estimate is costlier), which cost more than running it.
_BY_ONE = ("i.customer_id = CAST(:one AS uuid)", "t.customer_id = CAST(:one AS uuid)")
_BY_RANGE = (
    "i.customer_id > CAST(:lo AS uuid) AND i.customer_id <= CAST(:hi AS uuid)",
    "t.customer_id > CAST(:lo AS uuid) AND t.customer_id <= CAST(:hi AS uuid)",
)
_statements: LRU[tuple[Any, ...], Statement] = LRU(64)


def refresh_statement(
    definitions: Sequence[TraitDefinition], *, by_range: bool = False, one: bool = False
) -> Statement:
    """The statement recomputing ``definitions`` for a set of customers (``:ids``), one
    customer (``one``: ``:one``) or an id range (``:lo``, ``:hi``], at ``:now`` (cached per
    definitions)."""
    cache_key = (by_range, one, *(d.signature for d in definitions))
    statement = _statements.get(cache_key)
    if statement is None:
        customers, existing = _BY_RANGE if by_range else _BY_ONE if one else _BY_IDS
        statement = Statement.named(
            _refresh_sql(definitions, customers, existing, one_pass=not by_range)
        )
        _statements.put(cache_key, statement)
    return statement


# ---- reading definitions ----

_LOCK_SHARED = Statement.named(f"SELECT pg_advisory_xact_lock_shared({DEFINITIONS_LOCK})")
# Which definitions exist, as one text (a cache key): the ingest store statement returns it.
TRAITS_VERSION = (
    "(SELECT coalesce(string_agg(t.key || '@' || t.updated_at::text, ',' ORDER BY t.key), '')"
    " FROM computed_traits t)"
)
_DEFINITIONS = Statement.named(
    f"SELECT d.*, {TRAITS_VERSION} AS version FROM (SELECT 1) AS one"
    " LEFT JOIN computed_traits d ON true ORDER BY d.key"
)
# Definitions by version, per process (a definition change changes the version).
_definitions: LRU[str, list[TraitDefinition]] = LRU(8)


async def definitions(conn: AsyncConnection | IngestSql) -> list[TraitDefinition]:
    rows = await ingest_sql(conn).fetch(_DEFINITIONS, {})
    found = [TraitDefinition.from_row(row) for row in rows if row["key"] is not None]
    if rows:
        _definitions.put(rows[0]["version"], found)
    return found


async def hold_definitions(conn: AsyncConnection | IngestSql) -> None:
    """Take the definitions lock shared, first thing in a transaction that will call
    ``on_customers_changed`` after locking customer rows (merges, erasure, the sweep): taken
    later, it could wait for a definition's backfill that waits for those rows."""
    await ingest_sql(conn).fetch(_LOCK_SHARED, {})


async def on_customers_changed(
    conn: AsyncConnection | IngestSql,
    customer_ids: Iterable[uuid.UUID],
    *,
    reason: ChangeReason,
    now: datetime | None = None,
    locked: bool = False,
    version: str | None = None,
    touched: Touched | None = None,
) -> Mapping[uuid.UUID, frozenset[str]] | None:
    """Recompute the computed traits of ``customer_ids`` in the caller's transaction.
    ``locked``: the transaction holds the definitions lock already (``hold_definitions``, or
    ingest's lock statement); ``version``: ``TRAITS_VERSION`` read after that (no definition
    read when the process knows it; nothing at all when it is empty: no trait exists).
    ``touched`` (ingest): only the traits its new interactions can change, per customer
    (``hub.audiences.relevance``). The keys recomputed per customer (None: every trait)."""
    if reason in NO_EFFECT or version == "":
        return {}
    ids = sorted(set(customer_ids))
    if not ids:
        return {}
    sql = ingest_sql(conn)
    if not locked:
        await hold_definitions(sql)
    traits = _definitions.get(version) if version is not None else None
    if traits is None:
        traits = await definitions(sql)
    if not traits:
        return {}
    at = now or datetime.now(UTC)
    if touched is None:
        await _refresh(sql, traits, ids, at)
        return None
    filters = {t.key: t.filter for t in traits}
    recomputed = {customer: touched.traits_for(customer, filters) for customer in ids}
    by_key = {t.key: t for t in traits}
    for keys, group in grouped(ids, lambda customer: sorted(recomputed[customer])).items():
        await _refresh(sql, [by_key[k] for k in keys], group, at)
    return recomputed


async def _refresh(
    sql: IngestSql, traits: Sequence[TraitDefinition], ids: Sequence[uuid.UUID], now: datetime
) -> None:
    statement = refresh_statement(traits, one=len(ids) == 1)
    await sql.fetch(statement, {"ids": list(ids), "one": ids[0], "now": now})


# ---- time: the sweep ----

_DUE = Statement.named(
    "SELECT DISTINCT customer_id FROM customer_traits_computed"
    " WHERE next_change_at <= CAST(:now AS timestamptz) LIMIT :limit"
)
_LOCK_CUSTOMERS = Statement.named(
    "SELECT id FROM customers WHERE id = ANY(CAST(:ids AS uuid[])) ORDER BY id"
    " FOR UPDATE SKIP LOCKED"
)


async def sweep_customers(
    conn: AsyncConnection | IngestSql, now: datetime, *, limit: int = 1000
) -> list[uuid.UUID]:
    """Recompute, as of ``now``, the customers with a value that time changed (at most
    ``limit`` customers; those locked by a concurrent change are left to it). The customers
    recomputed."""
    sql = ingest_sql(conn)
    due = [row["customer_id"] for row in await sql.fetch(_DUE, {"now": now, "limit": limit})]
    if not due:
        return []
    await hold_definitions(sql)
    locked = [row["id"] for row in await sql.fetch(_LOCK_CUSTOMERS, {"ids": due})]
    await on_customers_changed(sql, locked, reason=ChangeReason.CLOCK, now=now, locked=True)
    return locked


async def sweep(conn: AsyncConnection | IngestSql, now: datetime, *, limit: int = 1000) -> int:
    """``sweep_customers``, counted."""
    return len(await sweep_customers(conn, now, limit=limit))


# ---- definitions: write, and backfill ----


async def lock_definitions(connection: AsyncConnection) -> None:
    await connection.execute(sa.text(f"SELECT pg_advisory_xact_lock({DEFINITIONS_LOCK})"))


async def backfill_batch(
    connection: AsyncConnection,
    definitions: Sequence[TraitDefinition],
    after: uuid.UUID,
    *,
    batch: int = BACKFILL_BATCH,
    now: datetime | None = None,
    lock_rows: bool = False,
) -> tuple[uuid.UUID, int] | None:
    """Compute ``definitions`` for the next ``batch`` customers by id after ``after``; the last
    id done and the number of values stored, or None when no customer is left. ``lock_rows``:
    lock those customers (FOR SHARE) first, so a concurrent change waits for the batch (a
    backfill outside ``define``, whose advisory lock already orders it after changes)."""
    hi = await connection.scalar(
        sa.text(
            "SELECT s.id FROM (SELECT id FROM customers WHERE id > :lo ORDER BY id"
            " LIMIT :batch) AS s ORDER BY s.id DESC LIMIT 1"
        ),
        {"lo": after, "batch": batch},
    )
    if hi is None:
        return None
    if lock_rows:
        await connection.execute(
            sa.text("SELECT FROM customers WHERE id > :lo AND id <= :hi FOR SHARE"),
            {"lo": after, "hi": hi},
        )
    params = {"lo": after, "hi": hi, "now": now or datetime.now(UTC)}
    rows = await AlchemySql(connection).fetch(refresh_statement(definitions, by_range=True), params)
    return hi, int(rows[0]["computed"])


async def backfill_step(
    connection: AsyncConnection, keys: Sequence[str], after: uuid.UUID, *, batch: int
) -> tuple[list[str], tuple[uuid.UUID, int] | None]:
    """One transaction of ``hub audiences backfill``: the traits ``keys`` for the next ``batch``
    customers after ``after`` (``backfill_batch``), under the definitions lock held shared
    (changes go on; a definition change waits for the batch). The definitions are read again
    under it: a trait deleted since the last batch must not get values again (they have no
    foreign key to refuse an orphan: migration 0023), nor a changed one its old definition's.
    The keys still defined, and ``backfill_batch``'s answer (None too when none is left)."""
    await hold_definitions(connection)
    current = {d.key: d for d in await definitions(connection)}
    chosen = [current[key] for key in keys if key in current]
    if not chosen:
        return [], None
    await sort_memory(connection)
    done = await backfill_batch(connection, chosen, after, batch=batch, lock_rows=True)
    return [d.key for d in chosen], done


async def sort_memory(connection: AsyncConnection) -> None:
    """Enough sort memory for a batch (its per-customer groups would spill to disk with the
    default 4 MB), for the rest of the transaction."""
    await connection.execute(sa.text(f"SET LOCAL work_mem = '{BACKFILL_WORK_MEM}'"))


async def backfill(
    connection: AsyncConnection, definition: TraitDefinition, *, now: datetime | None = None
) -> int:
    """Compute ``definition`` for every customer in the caller's transaction, in batches of
    ``BACKFILL_BATCH`` customers by id; the number of values stored."""
    moment = now or datetime.now(UTC)
    await sort_memory(connection)
    lo, stored = uuid.UUID(int=0), 0
    while (done := await backfill_batch(connection, [definition], lo, now=moment)) is not None:
        lo, stored = done[0], stored + done[1]
    return stored


def _row_params(definition: TraitDefinition) -> dict[str, Any]:
    return {
        "key": definition.key,
        "name": definition.name,
        "description": definition.description,
        "aggregate": definition.aggregate.value,
        "filter": orjson.dumps(spec_to_json(definition.filter)).decode(),
        "attribute": definition.attribute,
        "within_days": definition.within_days,
    }


_INSERT = (
    "INSERT INTO computed_traits (key, name, description, aggregate, filter, attribute,"
    " within_days) VALUES (:key, :name, :description, :aggregate, CAST(:filter AS jsonb),"
    " :attribute, :within_days) ON CONFLICT (key) DO NOTHING RETURNING *"
)
_UPDATE = (
    "UPDATE computed_traits SET name = :name, description = :description,"
    " aggregate = :aggregate, filter = CAST(:filter AS jsonb), attribute = :attribute,"
    " within_days = :within_days, updated_at = now() WHERE key = :key RETURNING *"
)


async def _write(
    connection: AsyncConnection, definition: TraitDefinition, statement: str
) -> TraitDefinition:
    """Check, write (``statement``) and compute a definition over the existing data."""
    await check_definition(connection, definition)
    await lock_definitions(connection)
    result = await connection.execute(sa.text(statement), _row_params(definition))
    row = result.mappings().first()
    if row is None:
        raise BadUserInput(f"a computed trait {definition.key!r} exists already: update it")
    stored = TraitDefinition.from_row(row)
    # From scratch: an update's old values go with the rows its new definition does not keep.
    await backfill(connection, stored)
    return stored


async def define(connection: AsyncConnection, definition: TraitDefinition) -> TraitDefinition:
    """Create a computed trait and compute it over the existing data (caller's transaction)."""
    return await _write(connection, definition, _INSERT)


async def update(connection: AsyncConnection, definition: TraitDefinition) -> TraitDefinition:
    """Replace a computed trait's definition and recompute it from scratch."""
    await get(connection, definition.key)
    return await _write(connection, definition, _UPDATE)


async def get(connection: AsyncConnection, key: str) -> TraitDefinition:
    result = await connection.execute(
        sa.text("SELECT * FROM computed_traits WHERE key = :key"), {"key": key}
    )
    row = result.mappings().first()
    if row is None:
        raise NotFound(f"no computed trait {key!r}")
    return TraitDefinition.from_row(row)


async def delete(connection: AsyncConnection, key: str) -> TraitDefinition:
    """Delete a computed trait and its values. The values have no foreign key to cascade from
    (migration 0023): they go here, under the exclusive lock, so that no writer (each holds the
    lock shared and reads the definitions after it) can store one for the deleted key."""
    await lock_definitions(connection)
    definition = await get(connection, key)
    await connection.execute(
        sa.text("DELETE FROM customer_traits_computed WHERE trait_key = :key"), {"key": key}
    )
    await connection.execute(sa.text("DELETE FROM computed_traits WHERE key = :key"), {"key": key})
    return definition


async def check_keys(connection: AsyncConnection, keys: Sequence[str]) -> None:
    """``BAD_USER_INPUT`` naming the keys that are not computed traits."""
    known = set(
        await connection.scalars(
            sa.text("SELECT key FROM computed_traits WHERE key = ANY(CAST(:keys AS text[]))"),
            {"keys": list(keys)},
        )
    )
    unknown = sorted(set(keys) - known)
    if unknown:
        raise BadUserInput(f"unknown computed trait key(s): {', '.join(unknown)}")
