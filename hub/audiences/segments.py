"""Segment definitions: validation, storage form, and the SQL that decides membership.

A definition is a customer filter (the customers list's ``CustomerFilter``), activity conditions
(how many of the customer's interactions matching an interaction filter happened in the last
``within_days`` days, between ``min`` and ``max``) and computed-trait conditions (the traits
part's table ``customer_traits_computed``). Every condition must hold.

The GraphQL layer turns its inputs into the *stored form* (plain JSON: the Python attribute
names of the input types, enum names, ids as UUID text, moments as ISO text); this module reads
that form back (``Definition.of``) and compiles it with ``hub.reads.filters`` (the customers
list's one filter compiler) into one boolean and one "next instant time can change it"
expression per segment (``Compiled``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, UUID

from hub.audiences.aggregates import COUNTS
from hub.core.enums import ChannelCode, Direction, StageCode
from hub.core.errors import BadUserInput
from hub.core.settings import Settings
from hub.models import COMPUTED_TRAITS, CONSENTS, CUSTOMER_TRAITS_COMPUTED, CUSTOMERS, INTERACTIONS
from hub.privacy.consent import ConsentChannel
from hub.reads.filters import CustomerFilterCompiler
from hub.reads.interactions import InteractionFilterSpec, as_utc
from hub.vocabulary.registry import Vocabulary

MAX_ACTIVITY = 10
MAX_COMPUTED = 10
MAX_WINDOW_DAYS = 3650


NOW = sa.bindparam("now", value=None, type_=sa.DateTime(timezone=True))
IDS = sa.bindparam("ids", value=None, type_=ARRAY(UUID(as_uuid=True)))


# ---- the stored filter, read back with the attributes hub.reads.filters reads ----

_ENUMS: dict[tuple[str, str], type[Enum]] = {
    ("stage", "eq"): StageCode,
    ("stage", "in_"): StageCode,
    ("channels_used", "any"): ChannelCode,
    ("channels_used", "all"): ChannelCode,
    ("channels_used", "none"): ChannelCode,
    ("has_consent", "channel"): ConsentChannel,
}
# Identity kinds and consent purposes (``identity.kind``, ``has_consent.purpose``) and
# interaction types are vocabulary codes kept as data (hub.vocabulary): stored and read back as
# the code strings, never through the built-in enums (a custom code has no member).
_MOMENTS = {"last_seen_at", "created_at"}
_NESTED = {"and_", "or_", "not_"}


class StoredFilter:
    """A stored ``CustomerFilter`` read by attribute (``f.stage.eq`` is a ``StageCode``)."""

    __slots__ = ("_kind", "_value")

    def __init__(self, value: Mapping[str, Any], kind: str = "customer") -> None:
        self._value = value
        self._kind = kind

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        value = self._value.get(name)
        if value is None:
            return None
        if self._kind == "customer":
            if name in ("and_", "or_"):
                return [StoredFilter(v) for v in value]
            if name == "not_":
                return StoredFilter(value)
            return StoredFilter(value, name)
        enum = _ENUMS.get((self._kind, name))
        if enum is not None:
            return [enum(v) for v in value] if isinstance(value, list) else enum(value)
        if self._kind in _MOMENTS and name in ("gt", "gte", "lt", "lte"):
            return as_utc(datetime.fromisoformat(value))
        return value


def filter_uses(value: Mapping[str, Any], field: str) -> bool:
    """Does a stored customer filter use ``field`` anywhere (nested in and/or/not too)?"""
    if value.get(field) is not None:
        return True
    nested = [*(value.get("and_") or []), *(value.get("or_") or [])]
    if value.get("not_") is not None:
        nested.append(value["not_"])
    return any(filter_uses(v, field) for v in nested)


def _filter_empty(value: Mapping[str, Any]) -> bool:
    """No condition at all (an empty object, or and/or lists of empty objects)."""
    for name, v in value.items():
        if v is None:
            continue
        if name in ("and_", "or_"):
            if any(not _filter_empty(g) for g in v):
                return False
        elif name == "not_":
            if not _filter_empty(v):
                return False
        else:
            return False
    return True


# ---- definitions ----


@dataclass(frozen=True)
class Activity:
    """How many matching interactions in the last ``within_days`` days (all time when None)."""

    interactions: Mapping[str, Any]
    within_days: int | None
    min: int | None
    max: int | None

    def spec(self) -> InteractionFilterSpec:
        f = self.interactions

        def codes(name: str, enum: type[Enum] | None = None) -> tuple[str, ...] | None:
            """Sorted codes; an enum's are checked against it, a vocabulary's are kept as is."""
            values = f.get(name)
            if values is None:
                return None
            return tuple(sorted(enum(v).value if enum is not None else str(v) for v in values))

        touchpoints = f.get("touchpoint_ids")
        after, before = f.get("occurred_after"), f.get("occurred_before")
        return InteractionFilterSpec(
            channels=codes("channels", ChannelCode),
            touchpoint_ids=tuple(sorted(uuid.UUID(t) for t in touchpoints))
            if touchpoints is not None
            else None,
            types=codes("types"),
            directions=codes("directions", Direction),
            occurred_after=as_utc(datetime.fromisoformat(after)) if after else None,
            occurred_before=as_utc(datetime.fromisoformat(before)) if before else None,
        )

    @property
    def lower(self) -> int:
        """The least count; at least one matching interaction unless ``min``/``max`` say."""
        if self.min is not None:
            return self.min
        return 0 if self.max is not None else 1


@dataclass(frozen=True)
class ComputedCondition:
    key: str
    gt: float | None = None
    lt: float | None = None
    eq: float | None = None


@dataclass(frozen=True)
class Definition:
    filter: Mapping[str, Any] | None
    activity: tuple[Activity, ...]
    computed: tuple[ComputedCondition, ...]

    @classmethod
    def of(cls, stored: Mapping[str, Any]) -> Definition:
        """A definition from its stored form (``to_json``)."""
        return cls(
            filter=stored.get("filter"),
            activity=tuple(
                Activity(
                    interactions=a.get("interactions") or {},
                    within_days=a.get("within_days"),
                    min=a.get("min"),
                    max=a.get("max"),
                )
                for a in stored.get("activity") or []
            ),
            computed=tuple(
                ComputedCondition(key=c["key"], gt=c.get("gt"), lt=c.get("lt"), eq=c.get("eq"))
                for c in stored.get("computed") or []
            ),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "filter": self.filter,
            "activity": [
                {
                    "interactions": dict(a.interactions),
                    "within_days": a.within_days,
                    "min": a.min,
                    "max": a.max,
                }
                for a in self.activity
            ],
            "computed": [{"key": c.key, "gt": c.gt, "lt": c.lt, "eq": c.eq} for c in self.computed],
        }

    @property
    def windowed(self) -> bool:
        """Can time alone change a membership (a sliding window)?"""
        return any(a.within_days is not None for a in self.activity)


def check_key(key: str) -> None:
    if not key or len(key) > 100 or not all(ch.isalnum() or ch in "-_." for ch in key):
        raise BadUserInput(
            "a segment key is 1-100 letters, digits, '-', '_' or '.' (e.g. `web-buyers-90d`)"
        )


def validate(definition: Definition, settings: Settings, personal: Callable[[str], None]) -> None:
    """``BAD_USER_INPUT`` with a clear message for a definition that cannot be evaluated.
    (Computed trait keys are checked against the database: ``unknown_trait_keys``.)"""
    f = definition.filter
    if f is not None and _filter_empty(f):
        raise BadUserInput("the segment's `filter` is empty: give at least one condition")
    if f is None and not definition.activity and not definition.computed:
        raise BadUserInput(
            "a segment needs at least one condition: `filter`, `activity` or `computed`"
        )
    if f is not None and filter_uses(f, "segment"):
        raise BadUserInput("a segment's filter cannot refer to segments (`segment`)")
    if len(definition.activity) > MAX_ACTIVITY or len(definition.computed) > MAX_COMPUTED:
        raise BadUserInput(
            f"a segment has at most {MAX_ACTIVITY} activity and {MAX_COMPUTED} computed conditions"
        )
    for n, a in enumerate(definition.activity):
        where = f"activity[{n}]"
        if a.within_days is not None and not 0 < a.within_days <= MAX_WINDOW_DAYS:
            raise BadUserInput(
                f"{where}.withinDays must be between 1 and {MAX_WINDOW_DAYS} (got {a.within_days})"
            )
        if (a.min is not None and a.min < 0) or (a.max is not None and a.max < 0):
            raise BadUserInput(f"{where}: `min` and `max` cannot be negative")
        if a.min is not None and a.max is not None and a.min > a.max:
            raise BadUserInput(f"{where}: `min` ({a.min}) is greater than `max` ({a.max})")
        spec = a.spec()
        if (
            spec.occurred_after is not None
            and spec.occurred_before is not None
            and spec.occurred_after >= spec.occurred_before
        ):
            raise BadUserInput(f"{where}: `occurredAfter` must be earlier than `occurredBefore`")
    for n, c in enumerate(definition.computed):
        if not c.key:
            raise BadUserInput(f"computed[{n}] needs a trait `key`")
        if c.gt is None and c.lt is None and c.eq is None:
            raise BadUserInput(f"computed[{n}] ({c.key!r}) needs `gt`, `lt` or `eq`")
    if f is not None:
        # Compiling checks the filter itself (nesting depth, identifier values, personal fields).
        CustomerFilterCompiler(settings, personal).compile(StoredFilter(f))


def check_codes(definition: Definition, vocabulary: Vocabulary) -> None:
    """``UNKNOWN_CODE`` for a vocabulary code the definition names that ``vocabulary`` does not
    register: an activity's interaction types, a filter's identity kinds and consent purposes
    (anywhere in and/or/not). Custom codes are as good as the built-in ones."""

    def walk(f: Mapping[str, Any]) -> None:
        identity = f.get("identity")
        if identity is not None and identity.get("kind") is not None:
            vocabulary.identity_kind(identity["kind"])
        consent = f.get("has_consent")
        if consent is not None and consent.get("purpose") is not None:
            vocabulary.consent_purpose(consent["purpose"])
        for nested in [*(f.get("and_") or []), *(f.get("or_") or [])]:
            walk(nested)
        if f.get("not_") is not None:
            walk(f["not_"])

    if definition.filter is not None:
        walk(definition.filter)
    for a in definition.activity:
        for code in a.interactions.get("types") or ():
            vocabulary.interaction_type(code)


async def unknown_trait_keys(connection: Any, keys: Sequence[str]) -> list[str]:
    """The keys with no computed trait definition (all of them when the table is absent).
    ``connection`` is a SQLAlchemy ``AsyncConnection``."""
    if not keys:
        return []
    present = await connection.scalar(sa.text("SELECT to_regclass('computed_traits') IS NOT NULL"))
    if not present:
        return sorted(set(keys))
    known = set(
        await connection.scalars(
            sa.text("SELECT key FROM computed_traits WHERE key = ANY(:keys)"),
            {"keys": list(keys)},
        )
    )
    return sorted(set(keys) - known)


# ---- compilation ----


def _no_personal_check(_: str) -> None:
    """Evaluating a stored definition: who may use personal fields was checked when it was
    written (by an ADMIN)."""


@dataclass(frozen=True)
class Compiled:
    """A segment's membership test over ``customers`` and when time alone can next change its
    answer: ``member_due`` for a member, ``entry_due`` for a customer who is not (NULL: never,
    so no re-check is stored). Time only lowers windowed counts, so a member can leave only
    through a window with a least count, and a non-member can enter only by coming under a
    windowed ``max`` while everything else already holds (and a consent expiring, either way)."""

    member: sa.ColumnElement[bool]
    member_due: sa.ColumnElement[Any]
    entry_due: sa.ColumnElement[Any]


def _window_start(days: int) -> sa.ColumnElement[Any]:
    return NOW - sa.func.make_interval(0, 0, 0, days)


def activity_key(a: Activity) -> tuple[InteractionFilterSpec, int | None]:
    """What an activity condition counts (two segments counting the same share one count)."""
    return a.spec(), a.within_days


def matching(a: Activity, interactions: sa.FromClause) -> list[sa.ColumnElement[bool]]:
    """The clauses an interaction of ``interactions`` meets to be counted by ``a``."""
    where = a.spec().clauses(interactions)
    if a.within_days is not None:
        where.append(interactions.c.occurred_at > _window_start(a.within_days))
    return where


class ConditionInputs(Protocol):
    """Where a membership test reads what its activity and computed conditions compare."""

    def activity(self, a: Activity) -> tuple[sa.ColumnElement[Any], sa.ColumnElement[Any] | None]:
        """The customer's count of interactions ``a`` matches, and (windowed ``a`` only) the
        oldest instant among them."""

    def stored(self, trait_key: str) -> sa.ColumnElement[Any]:
        """The customer's stored number of a computed trait (NULL without a row)."""


@dataclass(frozen=True)
class Subqueries:
    """Each condition as a correlated subquery of its own (a preview's one-off count)."""

    customers: sa.FromClause

    def activity(self, a: Activity) -> tuple[sa.ColumnElement[Any], sa.ColumnElement[Any] | None]:
        i = INTERACTIONS.alias("i")
        where = [i.c.customer_id == self.customers.c.id, *matching(a, i)]
        count = sa.select(sa.func.count()).select_from(i).where(*where).scalar_subquery()
        if a.within_days is None:
            return count, None
        oldest = sa.select(sa.func.min(i.c.occurred_at)).select_from(i).where(*where)
        return count, oldest.scalar_subquery()

    def stored(self, trait_key: str) -> sa.ColumnElement[Any]:
        t = CUSTOMER_TRAITS_COMPUTED.alias("t")
        return (
            sa.select(t.c.number)
            .where(t.c.customer_id == self.customers.c.id, t.c.trait_key == trait_key)
            .scalar_subquery()
        )


@dataclass(frozen=True)
class ActivityTest:
    """One activity condition's clauses and when time alone can change them."""

    at_least: sa.ColumnElement[bool]
    at_most: sa.ColumnElement[bool] | None
    leaves: Any  # windowed: when the oldest counted interaction leaves the window; else None
    over: sa.ColumnElement[bool] | None  # windowed with a max: the count is above it

    @property
    def clauses(self) -> list[sa.ColumnElement[bool]]:
        return [self.at_least] if self.at_most is None else [self.at_least, self.at_most]


def _activity(a: Activity, inputs: ConditionInputs) -> ActivityTest:
    count, oldest = inputs.activity(a)
    at_least = count >= a.lower
    at_most = count <= a.max if a.max is not None else None
    if oldest is None:
        return ActivityTest(at_least, at_most, None, None)
    # The oldest interaction still in the window leaves it at occurred_at + window: then (and
    # not before, since no interaction is recorded in the future) the count can drop.
    leaves = oldest + sa.func.make_interval(0, 0, 0, a.within_days)
    over = count > a.max if a.max is not None else None
    return ActivityTest(at_least, at_most, leaves, over)


def _computed(c: ComputedCondition, inputs: ConditionInputs) -> sa.ColumnElement[bool]:
    d = COMPUTED_TRAITS.alias("d")
    # No row: no matching interaction, whose value is the aggregate's empty one (0 for the
    # counts, as `Customer.computed` and `CustomerFilter.computed` read it; null otherwise).
    empty = (
        sa.select(sa.case((d.c.aggregate.in_(sorted(COUNTS)), sa.literal(0.0))))
        .where(d.c.key == c.key)
        .scalar_subquery()
    )
    number = sa.func.coalesce(inputs.stored(c.key), empty)
    clauses = []
    if c.gt is not None:
        clauses.append(number > c.gt)
    if c.lt is not None:
        clauses.append(number < c.lt)
    if c.eq is not None:
        clauses.append(number == c.eq)
    return sa.and_(sa.true(), *clauses)


def compile_definition(
    definition: Definition,
    settings: Settings,
    customers: sa.FromClause = CUSTOMERS,
    personal: Callable[[str], None] = _no_personal_check,
    inputs: ConditionInputs | None = None,
) -> Compiled:
    """The membership test (merged-away and erased customers are never members). ``inputs``:
    where the activity and computed conditions read their values (default: a correlated
    subquery each, over ``customers``)."""
    inputs = inputs or Subqueries(customers)
    c = customers.c
    clauses: list[sa.ColumnElement[bool]] = [c.merged_into_id.is_(None), c.erased_at.is_(None)]
    if definition.filter is not None:
        compiler = CustomerFilterCompiler(settings, personal, customers, NOW)
        clauses.append(compiler.compile(StoredFilter(definition.filter)))
    # What time alone cannot make true (a non-member failing one of these stays out).
    steady = list(clauses)
    leaving: list[Any] = []  # a member leaves when one of these windows drops below its least
    entering: list[Any] = []  # a non-member over a windowed max comes under it
    for a in definition.activity:
        test = _activity(a, inputs)
        clauses += test.clauses
        if test.leaves is None:
            steady += test.clauses
            continue
        steady.append(test.at_least)  # time only lowers a count: it never lifts one to its least
        if a.lower >= 1:
            leaving.append(test.leaves)
        if test.over is not None:
            entering.append(sa.case((test.over, test.leaves), else_=sa.null()))
    computed = [_computed(cond, inputs) for cond in definition.computed]
    clauses += computed
    steady += computed
    expiring: list[Any] = []
    if definition.filter is not None and filter_uses(definition.filter, "has_consent"):
        # A consent that expires changes `hasConsent` when it does (in or out).
        k = CONSENTS.alias("k")
        expiring.append(
            sa.select(sa.func.min(k.c.expires_at))
            .where(k.c.customer_id == c.id, k.c.expires_at > NOW)
            .scalar_subquery()
        )
    if entering:
        entering = [sa.case((sa.and_(*steady), _earliest(entering)), else_=sa.null())]
    # Only a customer who can be a member at all needs a re-check.
    live = sa.and_(c.merged_into_id.is_(None), c.erased_at.is_(None))
    return Compiled(
        member=sa.and_(*clauses),
        member_due=sa.case((live, _earliest(leaving + expiring)), else_=sa.null()),
        entry_due=sa.case((live, _earliest(entering + expiring)), else_=sa.null()),
    )


def _earliest(instants: list[Any]) -> sa.ColumnElement[Any]:
    """The earliest of ``instants`` (LEAST ignores NULLs: an empty window), typed even when
    there is none (a NULL in a UNION ALL)."""
    if not instants:
        earliest: Any = sa.null()
    elif len(instants) == 1:
        earliest = instants[0]
    else:
        earliest = sa.func.least(*instants)
    return sa.cast(earliest, sa.DateTime(timezone=True))
