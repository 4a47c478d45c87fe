"""Segment membership, materialised and kept exact, with its ENTERED/EXITED events.

``on_customers_changed(conn, customer_ids, reason=...)`` is called in the transaction of every
change that can move customers in or out of a segment (ingest on every path through
``hub.ingest.store.store_plan``, merges, unmerges, stage and consent changes, erasure, profile
changes). It re-evaluates every segment for those customers only, in ONE statement: the
evaluation (a UNION ALL of each segment's compiled test, ``hub.audiences.segments``) feeds
data-modifying CTEs that insert the new members, delete the leavers, keep the time-driven
re-check instants (``segment_checks``), write one outbox event per actual change and append the
per-segment counts of entries and exits to the size record (``segment_size_changes``, the
analytics' segment sizes over time). Inserts use
ON CONFLICT DO NOTHING and deletes RETURNING, so two transactions evaluating the same customer
at once produce each change (and its event) once.

Time: ``sweep(conn, now)`` re-evaluates the (segment, customer) pairs whose re-check instant has
come (an interaction left a window); ``hub.audiences.sweeper`` runs it in ``hub serve``.

The statement is compiled once per set of segment revisions and cached per process; each call
first reads the (key, revision) list (one small query), so a definition changed by another
process is picked up at the next change.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from functools import cache
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.audiences.reasons import ChangeReason as Reason
from hub.audiences.relevance import SegmentShape, Touched, grouped
from hub.audiences.segments import (
    IDS,
    Activity,
    Definition,
    activity_key,
    compile_definition,
    matching,
)
from hub.core.lru import LRU
from hub.core.settings import Settings
from hub.db.statements import IngestSql, Statement, ingest_sql
from hub.models import (
    CUSTOMER_TRAITS_COMPUTED,
    CUSTOMERS,
    INTERACTIONS,
    SEGMENT_CHECKS,
    SEGMENT_MEMBERS,
)

EVENT_KIND = "SEGMENT_MEMBERSHIP_CHANGED"


class Change(StrEnum):
    ENTERED = "ENTERED"
    EXITED = "EXITED"


_DIALECT = postgresql.asyncpg.dialect(paramstyle="named")  # type: ignore[no-untyped-call]


@dataclass(frozen=True)
class Prepared:
    """A statement with ``:name`` parameters and the values of its constant ones."""

    statement: Statement
    constants: Mapping[str, Any]

    def params(self, **dynamic: Any) -> dict[str, Any]:
        return {**self.constants, **dynamic}


def prepare(query: sa.ClauseElement, wrapper: str = "{}") -> Prepared:
    """Compile a SQLAlchemy query for ``IngestSql.fetch`` (asyncpg or SQLAlchemy connection):
    its constant parameters bound through the dialect's bind processors (JSON as text), the
    parameters ``:ids``, ``:now``, ``:reason`` left to the caller; ``wrapper`` embeds it in
    hand-written SQL (``{}`` is the query)."""
    compiled = query.compile(dialect=_DIALECT, compile_kwargs={"render_postcompile": True})
    processors: Mapping[str, Any] = getattr(compiled, "_bind_processors", {})
    constants = {}
    for name, value in (compiled.construct_params() or {}).items():
        if name in ("ids", "one", "now", "reason"):
            continue
        processor = processors.get(name)
        constants[name] = processor(value) if processor is not None else value
    return Prepared(Statement.named(wrapper.format(compiled.string)), constants)


@cache
def _settings() -> Settings:
    """Compiling a stored definition needs only settings-independent parts (personal-field
    checks ran when it was written; identifier values are normalised idempotently)."""
    return Settings()


ONE = sa.bindparam("one", value=None, type_=postgresql.UUID(as_uuid=True))


class OnePass:
    """The values every segment's conditions compare, for each candidate customer in ONE pass:
    a count (and, windowed, the oldest instant) per distinct activity condition of all the
    segments as ``count(*) FILTER (...)`` columns of one aggregate over the customer's
    interactions, and the stored numbers of the tested computed traits from one aggregate over
    its ``customer_traits_computed`` rows. Twenty segments then cost one index scan of the
    customer's interactions, not one per condition, and a plan a fraction of the size (planning
    the per-condition form took longer than running it)."""

    def __init__(self, definitions: Sequence[Definition], customers: sa.FromClause) -> None:
        i = INTERACTIONS.alias("i")
        t = CUSTOMER_TRAITS_COMPUTED.alias("t")
        self._activities: dict[Any, int] = {}
        counts: list[sa.ColumnElement[Any]] = []
        for definition in definitions:
            for a in definition.activity:
                key = activity_key(a)
                if key in self._activities:
                    continue
                n = self._activities[key] = len(self._activities)
                where = sa.and_(sa.true(), *matching(a, i))
                counts.append(sa.func.count().filter(where).label(f"n{n}"))
                if a.within_days is not None:
                    counts.append(sa.func.min(i.c.occurred_at).filter(where).label(f"o{n}"))
        keys = sorted({c.key for d in definitions for c in d.computed})
        self._traits = {key: n for n, key in enumerate(keys)}
        laterals: list[sa.FromClause] = []
        if counts:
            laterals.append(
                sa.select(*counts)
                .select_from(i)
                .where(i.c.customer_id == customers.c.id)
                .lateral("act")
            )
        if keys:
            stored = [
                sa.func.max(t.c.number).filter(t.c.trait_key == key).label(f"t{n}")
                for key, n in self._traits.items()
            ]
            laterals.append(
                sa.select(*stored)
                .where(t.c.customer_id == customers.c.id, t.c.trait_key.in_(keys))
                .lateral("tr")
            )
        # What is stored for the customer now (the segments it is a member of, and has a re-check
        # for), so the deletes look only where a row is stored: without it, every (segment,
        # non-member) pair probed segment_members for a leaver and segment_checks for an
        # instant to clear.
        m = SEGMENT_MEMBERS.alias("m")
        k = SEGMENT_CHECKS.alias("k")
        laterals.append(
            sa.select(sa.func.array_agg(m.c.segment_key).label("was_in"))
            .where(m.c.customer_id == customers.c.id)
            .lateral("mem")
        )
        laterals.append(
            sa.select(sa.func.array_agg(k.c.segment_key).label("checked_in"))
            .where(k.c.customer_id == customers.c.id)
            .lateral("chk")
        )
        joined: sa.FromClause = customers
        for lateral in laterals:
            joined = joined.join(lateral, sa.true())
        self.select = sa.select(customers, *laterals).select_from(joined)
        self.base: sa.FromClause = customers  # the row source, set by ``over``

    def over(self, base: sa.FromClause) -> OnePass:
        """Read the values from ``base`` (``select`` made a CTE or subquery)."""
        self.base = base
        return self

    def activity(self, a: Activity) -> tuple[sa.ColumnElement[Any], sa.ColumnElement[Any] | None]:
        n = self._activities[activity_key(a)]
        oldest = self.base.c[f"o{n}"] if a.within_days is not None else None
        return self.base.c[f"n{n}"], oldest

    def stored(self, trait_key: str) -> sa.ColumnElement[Any]:
        return self.base.c[f"t{self._traits[trait_key]}"]

    def was_member(self, segment_key: str) -> sa.ColumnElement[Any]:
        """Whether the customer is stored as a member of the segment now."""
        return _among(segment_key, self.base.c.was_in)

    def has_check(self, segment_key: str) -> sa.ColumnElement[Any]:
        """Whether a re-check instant is stored for the customer and the segment."""
        return _among(segment_key, self.base.c.checked_in)


def _among(segment_key: str, keys: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    return sa.func.coalesce(sa.literal(segment_key) == sa.any_(keys), False)


def evaluation(definitions: Sequence[tuple[str, Definition]], scope: str) -> sa.Select[Any]:
    """(segment_key, customer_id, member, member_due, entry_due) for every segment and the
    customers in ``scope``: "ids" (the customers in ``:ids``), "one" (the customer ``:one``)
    or "all".
    For "ids"/"one", the candidates with their values (``OnePass``) are one CTE every segment's
    test reads; for "all", see ``_over_everyone``."""
    c = CUSTOMERS.alias("c")
    if scope == "all":
        return _over_everyone(definitions, c)
    values = OnePass([d for _, d in definitions], c)
    if scope == "ids":
        candidates = values.select.where(c.c.id == sa.any_(IDS))
    else:
        candidates = values.select.where(c.c.id == ONE)
    base = candidates.cte("base")
    values.over(base)
    parts = []
    for key, definition in definitions:
        compiled = compile_definition(definition, _settings(), base, inputs=values)
        stored = (sa.true(), values.was_member(key), values.has_check(key))
        parts.append(_row(key, base, compiled, stored))
    return parts[0] if len(parts) == 1 else sa.union_all(*parts)  # type: ignore[return-value]


_UNKNOWN = (sa.false(), sa.cast(sa.null(), sa.Boolean), sa.cast(sa.null(), sa.Boolean))


def _row(
    key: str, customers: sa.FromClause, compiled: Any, stored: tuple[Any, Any, Any] = _UNKNOWN
) -> sa.Select[Any]:
    """One segment's (segment_key, customer_id, member, member_due, entry_due) over
    ``customers``, and what is stored for it: (known, was, checked), or known false when the
    evaluation did not read it (over everyone, where joining the stored rows is cheaper).
    APPLY keeps the due that matches the answer (after materialising it once: a CASE on
    ``member`` here would run the membership test twice)."""
    known, was, checked = stored
    return sa.select(
        sa.literal(key, sa.Text).label("segment_key"),
        customers.c.id.label("customer_id"),
        compiled.member.label("member"),
        compiled.member_due.label("member_due"),
        compiled.entry_due.label("entry_due"),
        known.label("known"),
        was.label("was"),
        checked.label("checked"),
    )


def _over_everyone(
    definitions: Sequence[tuple[str, Definition]], c: sa.FromClause
) -> sa.Select[Any]:
    """Every live customer (a segment's materialisation): a correlated subquery per condition,
    which PostgreSQL runs only for the customers the cheaper conditions (the filter) let
    through; one pass computing every count for all 100k customers first was slower."""
    parts = []
    live = (c.c.merged_into_id.is_(None), c.c.erased_at.is_(None))
    for key, definition in definitions:
        parts.append(_row(key, c, compile_definition(definition, _settings(), c)).where(*live))
    return parts[0] if len(parts) == 1 else sa.union_all(*parts)  # type: ignore[return-value]


# The writes that follow an evaluation ("desired"): one statement. Where the evaluation read
# what is stored (``known``), deletes look only where a row was stored: leavers who were
# members, instants that existed. Inserts are attempted as before (ON CONFLICT): a row this
# statement's snapshot still sees may be in the middle of being deleted by a concurrent
# materialisation (a segment's new conditions), whose commit the insert then waits for and
# follows — skipping it would lose that membership (or its re-check) until the customer's next
# change. Deletes have no such case: a row inserted concurrently is invisible to them anyway.
APPLY = """
WITH evaluated AS MATERIALIZED ({}),
desired AS NOT MATERIALIZED (
    SELECT segment_key, customer_id, member, known, was, checked,
           CASE WHEN member THEN member_due ELSE entry_due END AS due_at
    FROM evaluated),
entered AS (
    INSERT INTO segment_members (segment_key, customer_id, entered_at)
    SELECT segment_key, customer_id, CAST(:now AS timestamptz) FROM desired
    WHERE member
    ON CONFLICT DO NOTHING
    RETURNING segment_key, customer_id),
exited AS (
    DELETE FROM segment_members m USING desired d
    WHERE m.segment_key = d.segment_key AND m.customer_id = d.customer_id
      AND d.member IS NOT TRUE AND (d.was OR NOT d.known)
    RETURNING m.segment_key, m.customer_id),
due AS (
    INSERT INTO segment_checks (segment_key, customer_id, due_at)
    SELECT segment_key, customer_id, due_at FROM desired
    WHERE due_at IS NOT NULL
    ON CONFLICT (segment_key, customer_id) DO UPDATE SET due_at = excluded.due_at
        WHERE segment_checks.due_at IS DISTINCT FROM excluded.due_at
    RETURNING 1),
undue AS (
    DELETE FROM segment_checks k USING desired d
    WHERE k.segment_key = d.segment_key AND k.customer_id = d.customer_id AND d.due_at IS NULL
      AND (d.checked OR NOT d.known)
    RETURNING 1),
changes AS (
    SELECT segment_key, customer_id, 'ENTERED' AS change FROM entered
    UNION ALL SELECT segment_key, customer_id, 'EXITED' FROM exited),
sized AS (
    INSERT INTO segment_size_changes (segment_key, hour, entered, exited)
    SELECT segment_key, date_trunc('hour', CAST(:now AS timestamptz), 'UTC'),
           count(*) FILTER (WHERE change = 'ENTERED'), count(*) FILTER (WHERE change = 'EXITED')
    FROM changes GROUP BY segment_key ORDER BY segment_key
    RETURNING 1),
written AS (
    INSERT INTO events (kind, customer_id, payload)
    SELECT 'SEGMENT_MEMBERSHIP_CHANGED', customer_id,
           jsonb_build_object('segment', segment_key, 'change', change,
                              'reason', CAST(:reason AS text))
    FROM changes WHERE CAST(:emit AS boolean)
    ORDER BY segment_key, customer_id, change
    RETURNING 1)
SELECT segment_key, customer_id, change,
       (SELECT count(*) FROM due) AS due_set, (SELECT count(*) FROM undue) AS due_cleared,
       (SELECT count(*) FROM written) AS events, (SELECT count(*) FROM sized) AS sized
FROM changes
"""

_CACHE: LRU[tuple[Any, ...], Prepared] = LRU(64)


async def _segments(sql: IngestSql, keys: Iterable[str] | None = None) -> list[dict[str, Any]]:
    rows = await sql.fetch(_LIST, {})
    wanted = set(keys) if keys is not None else None
    return [dict(r) for r in rows if wanted is None or r["key"] in wanted]


_LIST = Statement.named("SELECT key, revision FROM segments ORDER BY key")
_DEFINITIONS = Statement.named(
    "SELECT key, revision, definition FROM segments WHERE key = ANY(CAST(:keys AS text[]))"
)


# Stored definitions by (key, revision): a revision never changes its definition.
_DEFINITION_CACHE: LRU[tuple[str, int], Definition] = LRU(256)


# What the relevance rules read of each revision, parsed once per process (not per ingest).
_SHAPE_CACHE: LRU[tuple[str, int], SegmentShape] = LRU(256)


def _shape(segment: Mapping[str, Any], definition: Definition) -> SegmentShape:
    shape = _SHAPE_CACHE.get(_revision(segment))
    if shape is None:
        shape = SegmentShape.of(definition)
        _SHAPE_CACHE.put(_revision(segment), shape)
    return shape


def _revision(segment: Mapping[str, Any]) -> tuple[str, int]:
    return segment["key"], segment["revision"]


async def _definitions(
    sql: IngestSql, segments: list[dict[str, Any]]
) -> list[tuple[str, Definition]] | None:
    """The definitions of these segment revisions; None when one changed meanwhile (another
    revision is stored now, or the segment is gone)."""
    missing = [s["key"] for s in segments if _DEFINITION_CACHE.get(_revision(s)) is None]
    if missing:
        for row in await sql.fetch(_DEFINITIONS, {"keys": missing}):
            definition = Definition.of(_json(row["definition"]))
            _DEFINITION_CACHE.put((row["key"], row["revision"]), definition)
    found = [(s["key"], _DEFINITION_CACHE.get(_revision(s))) for s in segments]
    if any(definition is None for _, definition in found):
        return None
    return [(key, definition) for key, definition in found if definition is not None]


async def _prepared(sql: IngestSql, segments: list[dict[str, Any]], scope: str) -> Prepared | None:
    """The statement for these segment revisions (None: no segment left)."""
    if not segments:
        return None
    signature = (scope, *((s["key"], s["revision"]) for s in segments))
    prepared = _CACHE.get(signature)
    if prepared is None:
        definitions = await _definitions(sql, segments)
        if definitions is None:  # changed meanwhile: compile what is stored now
            return await _prepared(sql, await _segments(sql, [s["key"] for s in segments]), scope)
        prepared = prepare(evaluation(definitions, scope), APPLY)
        _CACHE.put(signature, prepared)
    return prepared


def _json(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, (str, bytes)) else value


@dataclass(frozen=True)
class Outcome:
    """What one evaluation changed: (segment_key, customer_id, ENTERED|EXITED)."""

    changes: list[tuple[str, uuid.UUID, Change]]

    def of(self, change: Change) -> list[tuple[str, uuid.UUID]]:
        return [(k, c) for k, c, ch in self.changes if ch is change]


async def _apply(
    sql: IngestSql,
    segments: list[dict[str, Any]],
    scope: str,
    *,
    ids: Sequence[uuid.UUID] | None,
    now: datetime,
    reason: str,
    emit: bool = True,
) -> Outcome:
    ids = list(ids or [])
    if scope == "ids" and len(ids) == 1:
        # One customer (a single event): `c.id = $1` lets PostgreSQL keep one generic plan for
        # the statement, where `= ANY($1)` re-plans it at every call (its generic estimate is
        # costlier), and planning cost more than running it.
        scope = "one"
    prepared = await _prepared(sql, segments, scope)
    if prepared is None:
        return Outcome([])
    rows = await sql.fetch(
        prepared.statement,
        prepared.params(ids=ids, one=ids[0] if ids else None, now=now, reason=reason, emit=emit),
    )
    return Outcome([(r["segment_key"], r["customer_id"], Change(r["change"])) for r in rows])


async def on_customers_changed(
    conn: IngestSql | AsyncConnection,
    customer_ids: Iterable[uuid.UUID],
    *,
    reason: str,
    now: datetime | None = None,
    segments: Sequence[tuple[str, int]] | None = None,
    touched: Touched | None = None,
    recomputed: Mapping[uuid.UUID, frozenset[str]] | None = None,
) -> Outcome:
    """Re-evaluate the segments of these customers, in the caller's transaction (see the
    module docstring). Work is proportional to the customers touched. ``segments``: the
    (key, revision) list when the caller read it already (ingest reads it with its claims).
    ``touched`` (ingest): only the segments it can have changed for each customer
    (``hub.audiences.relevance``), given the traits ``recomputed`` for each (None: any)."""
    ids = sorted(set(customer_ids))
    if not ids:
        return Outcome([])
    sql = ingest_sql(conn)
    if segments is None:
        listed = await _segments(sql)
    else:
        listed = [{"key": key, "revision": revision} for key, revision in segments]
    at = now or datetime.now(UTC)
    definitions = await _definitions(sql, listed) if touched is not None and listed else None
    if touched is None or definitions is None:
        return await _apply(sql, listed, "ids", ids=ids, now=at, reason=str(reason))
    by_key = {s["key"]: s for s in listed}
    shapes = [(key, _shape(by_key[key], definition)) for key, definition in definitions]
    tested = frozenset(k for _, shape in shapes for k in shape.computed)

    def relevant(customer: uuid.UUID) -> list[str]:
        traits = tested if recomputed is None else recomputed.get(customer, frozenset())
        return [k for k, shape in shapes if touched.segment_matters(customer, shape, traits)]

    changes: list[tuple[str, uuid.UUID, Change]] = []
    for keys, group in grouped(ids, relevant).items():
        subset = [by_key[k] for k in keys]
        outcome = await _apply(sql, subset, "ids", ids=group, now=at, reason=str(reason))
        changes += outcome.changes
    return Outcome(changes)


async def materialise(
    conn: IngestSql | AsyncConnection,
    key: str,
    *,
    now: datetime | None = None,
    emit: bool,
    reason: str = Reason.DEFINITION,
) -> Outcome:
    """Evaluate one segment over every customer (creation: ``emit=False``, the initial members
    are the baseline, not events; an update: ``emit=True``, the differences are events).
    Customers that are no longer candidates (merged away, erased) are evaluated through the
    members already stored."""
    sql = ingest_sql(conn)
    segments = await _segments(sql, [key])
    moment = now or datetime.now(UTC)
    outcome = await _apply(sql, segments, "all", ids=None, now=moment, reason=reason, emit=emit)
    # Stored members outside the candidates (merged away or erased since): re-checked by id.
    stale = await sql.fetch(_STALE, {"key": key})
    if stale:
        more = await _apply(
            sql,
            segments,
            "ids",
            ids=[r["customer_id"] for r in stale],
            now=moment,
            reason=reason,
            emit=emit,
        )
        outcome = Outcome(outcome.changes + more.changes)
    return outcome


_STALE = Statement.named(
    "SELECT m.customer_id FROM segment_members m JOIN customers c ON c.id = m.customer_id"
    " WHERE m.segment_key = :key AND (c.merged_into_id IS NOT NULL OR c.erased_at IS NOT NULL)"
)

# Due customers, locked like ingest and merges lock them (their rows, in id order), skipping
# those another transaction holds: that transaction re-evaluates them itself, at a later time.
# Never the re-check rows first: a sweep holding them while waiting for a customer that an
# ingest holds while the ingest waits for them would deadlock.
_DUE = Statement.named(
    "SELECT c.id FROM customers c WHERE c.id IN (SELECT customer_id FROM segment_checks"
    " WHERE due_at <= :now ORDER BY due_at LIMIT :limit)"
    " ORDER BY c.id FOR UPDATE OF c SKIP LOCKED"
)


async def sweep(conn: IngestSql | AsyncConnection, now: datetime, *, limit: int = 1000) -> int:
    """Re-evaluate every segment for the customers with a re-check due at or before ``now``
    (at most ``limit``); returns how many customers were re-evaluated. Call until 0."""
    sql = ingest_sql(conn)
    due = await sql.fetch(_DUE, {"now": now, "limit": limit})
    if not due:
        return 0
    ids = [r["id"] for r in due]
    await _apply(sql, await _segments(sql), "ids", ids=ids, now=now, reason=Reason.CLOCK)
    return len(ids)


_TESTING_TRAIT = Statement.named(
    "SELECT key FROM segments WHERE definition -> 'computed' @> jsonb_build_array("
    "jsonb_build_object('key', CAST(:trait AS text))) ORDER BY key"
)


async def segments_testing_trait(conn: IngestSql | AsyncConnection, trait_key: str) -> list[str]:
    """The keys of the segments with a ``computed`` condition on ``trait_key``."""
    return [r["key"] for r in await ingest_sql(conn).fetch(_TESTING_TRAIT, {"trait": trait_key})]
