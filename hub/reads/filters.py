"""The customers-list filter compiled into one SQLAlchemy boolean: THE filter compiler.

The resolvers pass Strawberry's ``CustomerFilter``; the compiled read path passes graphql-core's
coerced value behind the same attributes (``hub.compiled.inputs``) and renders the expression
into its statement. The protocols below name exactly the attributes read here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from hub.access.masking import personal_keys
from hub.core.enums import ChannelCode, StageCode
from hub.core.errors import BadUserInput
from hub.core.settings import Settings
from hub.db.rows import contains_pattern
from hub.identity.identifiers import normalize_identifier
from hub.models import (
    CUSTOMER_TRAITS_COMPUTED,
    CUSTOMERS,
    IDENTITIES,
    INTERACTIONS,
    SEGMENT_MEMBERS,
)
from hub.privacy.consent import ConsentChannel, consent_granted

MAX_FILTER_DEPTH = 8


class MomentFilterInput(Protocol):
    @property
    def gt(self) -> datetime | None: ...
    @property
    def gte(self) -> datetime | None: ...
    @property
    def lt(self) -> datetime | None: ...
    @property
    def lte(self) -> datetime | None: ...
    @property
    def is_null(self) -> bool | None: ...


class StringFilterInput(Protocol):
    @property
    def eq(self) -> str | None: ...
    @property
    def contains(self) -> str | None: ...
    @property
    def starts_with(self) -> str | None: ...
    @property
    def is_null(self) -> bool | None: ...


class StageFilterInput(Protocol):
    @property
    def eq(self) -> StageCode | None: ...
    @property
    def in_(self) -> Sequence[StageCode] | None: ...
    @property
    def is_null(self) -> bool | None: ...


class ChannelsUsedInput(Protocol):
    @property
    def any(self) -> Sequence[ChannelCode] | None: ...
    @property
    def all(self) -> Sequence[ChannelCode] | None: ...
    @property
    def none(self) -> Sequence[ChannelCode] | None: ...


class IdentityFilterInput(Protocol):
    @property
    def kind(self) -> str: ...
    @property
    def value(self) -> str | None: ...


class TraitFilterInput(Protocol):
    @property
    def key(self) -> str: ...
    @property
    def eq(self) -> Any: ...
    @property
    def in_(self) -> Sequence[Any] | None: ...
    @property
    def exists(self) -> bool | None: ...


class ConsentFilterInput(Protocol):
    @property
    def purpose(self) -> str: ...
    @property
    def channel(self) -> ConsentChannel: ...


class SegmentFilterInput(Protocol):
    @property
    def in_(self) -> Sequence[str] | None: ...
    @property
    def not_in(self) -> Sequence[str] | None: ...


class ComputedFilterInput(Protocol):
    @property
    def key(self) -> str: ...
    @property
    def gt(self) -> float | None: ...
    @property
    def lt(self) -> float | None: ...
    @property
    def eq(self) -> Any: ...


class CustomerFilterInput(Protocol):
    @property
    def and_(self) -> Sequence[CustomerFilterInput] | None: ...
    @property
    def or_(self) -> Sequence[CustomerFilterInput] | None: ...
    @property
    def not_(self) -> CustomerFilterInput | None: ...
    @property
    def display_name(self) -> StringFilterInput | None: ...
    @property
    def stage(self) -> StageFilterInput | None: ...
    @property
    def channels_used(self) -> ChannelsUsedInput | None: ...
    @property
    def identity(self) -> IdentityFilterInput | None: ...
    @property
    def trait(self) -> TraitFilterInput | None: ...
    @property
    def last_seen_at(self) -> MomentFilterInput | None: ...
    @property
    def created_at(self) -> MomentFilterInput | None: ...
    @property
    def has_consent(self) -> ConsentFilterInput | None: ...
    @property
    def segment(self) -> SegmentFilterInput | None: ...
    @property
    def computed(self) -> ComputedFilterInput | None: ...


def _null(column: Any, is_null: bool | None) -> list[sa.ColumnElement[bool]]:
    if is_null is None:
        return []
    return [column.is_(None) if is_null else column.is_not(None)]


def _moment(column: Any, f: MomentFilterInput) -> list[sa.ColumnElement[bool]]:
    clauses = []
    if f.gt is not None:
        clauses.append(column > f.gt)
    if f.gte is not None:
        clauses.append(column >= f.gte)
    if f.lt is not None:
        clauses.append(column < f.lt)
    if f.lte is not None:
        clauses.append(column <= f.lte)
    return clauses + _null(column, f.is_null)


def _string(column: Any, f: StringFilterInput) -> list[sa.ColumnElement[bool]]:
    clauses = []
    if f.eq is not None:
        clauses.append(column == f.eq)
    if f.contains is not None:
        clauses.append(column.ilike(contains_pattern(f.contains), escape="\\"))
    if f.starts_with is not None:
        clauses.append(column.ilike(contains_pattern(f.starts_with)[1:], escape="\\"))
    return clauses + _null(column, f.is_null)


def _stage(column: Any, f: StageFilterInput) -> list[sa.ColumnElement[bool]]:
    clauses = []
    if f.eq is not None:
        clauses.append(column == f.eq.value)
    if f.in_ is not None:
        clauses.append(column.in_([stage.value for stage in f.in_]))
    return clauses + _null(column, f.is_null)


@dataclass(frozen=True)
class CustomerFilterCompiler:
    """Compiles filters over ``customers`` (the table, or the alias the compiled path uses).

    ``personal(what)`` is called before a clause that would reveal personal data (the resolvers
    raise FORBIDDEN there for callers without the ``pii`` scope).
    """

    settings: Settings
    personal: Callable[[str], None]
    customers: sa.FromClause = CUSTOMERS
    # The instant consents are valid at (segments evaluate at an explicit time); default now().
    now: Any = None
    # The computed traits a filter may name, each with its value when a customer has no row
    # (0 for the counts, else null): the caller reads them first (hub.audiences.traits).
    # Without it (the compiled path) a computed filter is refused, and left to the resolvers.
    computed_empty: Mapping[str, Any] | None = None

    def compile(self, f: CustomerFilterInput, depth: int = 0) -> sa.ColumnElement[bool]:
        """One SQL boolean for the whole filter tree (``BAD_USER_INPUT`` for invalid ones)."""
        if depth > MAX_FILTER_DEPTH:
            raise BadUserInput(f"customer filters nest at most {MAX_FILTER_DEPTH} levels deep")
        c = self.customers.c
        clauses: list[sa.ColumnElement[bool]] = []
        if f.and_ is not None:
            clauses.append(sa.and_(sa.true(), *(self.compile(g, depth + 1) for g in f.and_)))
        if f.or_ is not None:
            clauses.append(sa.or_(sa.false(), *(self.compile(g, depth + 1) for g in f.or_)))
        if f.not_ is not None:
            # IS NOT TRUE, not NOT: a comparison with a NULL column (no stage, no name) is NULL
            # in SQL, and NOT NULL would drop the row although the negated filter does not hold.
            clauses.append(self.compile(f.not_, depth + 1).is_not(sa.true()))
        if f.display_name is not None:
            self.personal("filtering on displayName")
            clauses += _string(c.display_name, f.display_name)
        if f.stage is not None:
            clauses += _stage(c.current_stage, f.stage)
        if f.channels_used is not None:
            clauses += self._channels_used(f.channels_used)
        if f.identity is not None:
            clauses.append(self._identity(f.identity))
        if f.trait is not None:
            clauses += self._trait(f.trait)
        if f.last_seen_at is not None:
            clauses += _moment(c.last_seen_at, f.last_seen_at)
        if f.created_at is not None:
            clauses += _moment(c.created_at, f.created_at)
        if f.has_consent is not None:
            consent = f.has_consent
            clauses.append(consent_granted(consent.purpose, consent.channel, c.id, self.now))
        if f.segment is not None:
            clauses += self._segment(f.segment)
        if f.computed is not None:
            clauses += self._computed(f.computed)
        return sa.and_(sa.true(), *clauses)

    def _member(self, keys: Sequence[str]) -> sa.ColumnElement[bool]:
        m = SEGMENT_MEMBERS.c
        return sa.exists().where(
            m.customer_id == self.customers.c.id, m.segment_key.in_(sorted(set(keys)))
        )

    def _segment(self, f: SegmentFilterInput) -> list[sa.ColumnElement[bool]]:
        clauses = []
        if f.in_ is not None:
            clauses.append(self._member(f.in_) if f.in_ else sa.false())
        if f.not_in:
            clauses.append(sa.not_(self._member(f.not_in)))
        return clauses

    def _computed(self, f: ComputedFilterInput) -> list[sa.ColumnElement[bool]]:
        if self.computed_empty is None or f.key not in self.computed_empty:
            raise BadUserInput(f"unknown computed trait key {f.key!r}")
        t = CUSTOMER_TRAITS_COMPUTED.c
        row = sa.and_(t.customer_id == self.customers.c.id, t.trait_key == f.key)
        empty = self.computed_empty[f.key]
        number: sa.ColumnElement[Any] = sa.select(t.number).where(row).scalar_subquery()
        value: sa.ColumnElement[Any] = sa.select(t.value).where(row).scalar_subquery()
        if empty is not None:
            number = sa.func.coalesce(number, float(empty))
            value = sa.func.coalesce(value, _jsonb(empty))
        clauses = []
        if f.gt is not None:
            clauses.append(number > f.gt)
        if f.lt is not None:
            clauses.append(number < f.lt)
        if f.eq is not None:
            if isinstance(f.eq, (int, float)) and not isinstance(f.eq, bool):
                clauses.append(number == float(f.eq))
            else:
                clauses.append(value == _jsonb(f.eq))
        return clauses

    def _used(self, channels: Sequence[ChannelCode]) -> sa.ColumnElement[bool]:
        i = INTERACTIONS.c
        codes = [channel.value for channel in channels]
        return sa.exists().where(i.customer_id == self.customers.c.id, i.channel_code.in_(codes))

    def _channels_used(self, f: ChannelsUsedInput) -> list[sa.ColumnElement[bool]]:
        clauses = []
        if f.any is not None:
            clauses.append(self._used(f.any))
        if f.all is not None:
            clauses += [self._used([channel]) for channel in f.all]
        if f.none is not None:
            clauses.append(sa.not_(self._used(f.none)))
        return clauses

    def _identity(self, f: IdentityFilterInput) -> sa.ColumnElement[bool]:
        i = IDENTITIES.c
        kind = str(f.kind)
        where = [i.customer_id == self.customers.c.id, i.kind == kind]
        if f.value is not None:
            region = self.settings.default_phone_region
            where.append(i.value == normalize_identifier(kind, f.value, region))
        return sa.exists().where(*where)

    def _trait(self, f: TraitFilterInput) -> list[sa.ColumnElement[bool]]:
        if personal_keys(self.settings).is_personal(f.key):
            self.personal(f"filtering on the personal trait {f.key!r}")
        elif any(isinstance(v, (dict, list)) for v in [f.eq, *(f.in_ or [])]):
            # Comparing a whole object would test the personal values nested in it.
            self.personal(f"comparing the trait {f.key!r} with an object or array")
        if not f.key:
            raise BadUserInput("a trait filter needs a non-empty `key`")
        traits = self.customers.c.traits
        clauses = []
        if f.eq is not None:
            clauses.append(traits[f.key] == _jsonb(f.eq))
        if f.in_ is not None:
            clauses.append(sa.or_(sa.false(), *(traits[f.key] == _jsonb(v) for v in f.in_)))
        if f.exists is not None:
            has = traits.has_key(f.key)
            clauses.append(has if f.exists else sa.not_(has))
        return clauses


def _jsonb(value: Any) -> sa.ColumnElement[Any]:
    return sa.cast(sa.literal(value, JSONB), JSONB)
