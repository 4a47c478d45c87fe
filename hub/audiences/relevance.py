"""Which definitions an ingest can have changed, per customer: the rest are skipped.

Recomputing every computed trait and re-evaluating every segment for every customer an ingest
touched made ingest with 20 segments and 10 traits cost about three times as much. Most of that
work cannot change anything: an interaction a trait's filter does not match leaves the trait's
value as it is, and a segment tested only on activities and traits the new interactions do not
touch keeps its members. What time alone changes (a window sliding) is the sweeper's, which
skipping does not touch (its re-check instants stay stored).

The rules (``Touched``), per customer of the batch:
- a customer a merge touched (survivor or merged away) is re-evaluated for everything;
- a computed trait is recomputed when one of the customer's new interactions matches its filter
  (its window aside: an older interaction can still count);
- a segment is re-evaluated when it has a customer filter (ingest moves stages, ``lastSeenAt``,
  channels used, identities), when a new interaction matches one of its activity conditions,
  or when it tests a trait recomputed for the customer; and for a customer the batch created,
  unless an activity condition needing at least one interaction matches none (a customer with
  no such interaction cannot be a member, and had no membership to lose; nor can time make it
  one, so a full evaluation would store no re-check instant for it either).

What this gives up: a full re-evaluation at every ingest also repaired a membership left stale
by a race (an ingest that read the segment list just before a new segment committed); such a
membership now waits for the customer's next relevant change.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hub.reads.interactions import InteractionFilterSpec


@dataclass(frozen=True)
class NewInteraction:
    """What definitions filter a stored interaction on."""

    type: str
    channel_code: str
    touchpoint_id: uuid.UUID
    direction: str
    occurred_at: datetime
    conversation_id: uuid.UUID | None

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> NewInteraction:
        return cls(
            type=str(row["type"]),
            channel_code=str(row["channel_code"]),
            touchpoint_id=row["touchpoint_id"],
            direction=str(row["direction"]),
            occurred_at=row["occurred_at"],
            conversation_id=row["conversation_id"],
        )


def matches(spec: InteractionFilterSpec, new: NewInteraction) -> bool:
    """``spec.clauses`` in Python, for one interaction."""
    return (
        (spec.channels is None or new.channel_code in spec.channels)
        and (spec.touchpoint_ids is None or new.touchpoint_id in spec.touchpoint_ids)
        and (spec.types is None or new.type in spec.types)
        and (spec.directions is None or new.direction in spec.directions)
        and (spec.occurred_after is None or new.occurred_at >= spec.occurred_after)
        and (spec.occurred_before is None or new.occurred_at < spec.occurred_before)
        and (spec.conversation_id is None or new.conversation_id == spec.conversation_id)
    )


@dataclass
class Touched:
    """What one ingest transaction stored, per customer (see the module docstring)."""

    new: dict[uuid.UUID, list[NewInteraction]] = field(default_factory=dict)
    created: set[uuid.UUID] = field(default_factory=set)
    everything: set[uuid.UUID] = field(default_factory=set)  # merges touched them

    def add(self, customer: uuid.UUID, row: Mapping[str, Any], *, created: bool) -> None:
        self.new.setdefault(customer, []).append(NewInteraction.of(row))
        if created:
            self.created.add(customer)

    def any_matches(self, customer: uuid.UUID, spec: InteractionFilterSpec) -> bool:
        return any(matches(spec, new) for new in self.new.get(customer, ()))

    def traits_for(
        self, customer: uuid.UUID, filters: Mapping[str, InteractionFilterSpec]
    ) -> frozenset[str]:
        """The keys of the traits (``filters``: key → filter) to recompute for ``customer``."""
        if customer in self.everything:
            return frozenset(filters)
        return frozenset(k for k, spec in filters.items() if self.any_matches(customer, spec))

    def segment_matters(
        self, customer: uuid.UUID, shape: SegmentShape, recomputed: frozenset[str]
    ) -> bool:
        """Must a segment of this ``shape`` be evaluated again for ``customer``, whose traits
        ``recomputed`` were recomputed?"""
        if customer in self.everything or shape.filtered:
            return True
        matched = [self.any_matches(customer, spec) for spec, _ in shape.activity]
        if customer in self.created:
            # Its only interactions are the new ones: an activity needing one that none matches
            # keeps it out (and it had no membership before).
            pairs = zip(shape.activity, matched, strict=True)
            return not any(lower >= 1 and not m for (_, lower), m in pairs)
        return any(matched) or not recomputed.isdisjoint(shape.computed)


@dataclass(frozen=True)
class SegmentShape:
    """What of a segment definition the rules read, parsed once per evaluation."""

    filtered: bool  # has a customer filter
    activity: tuple[tuple[InteractionFilterSpec, int], ...]  # (filter, least count)
    computed: frozenset[str]  # the traits it tests

    @classmethod
    def of(cls, definition: Any) -> SegmentShape:
        """``definition``: a ``hub.audiences.segments.Definition``."""
        return cls(
            filtered=definition.filter is not None,
            activity=tuple((a.spec(), a.lower) for a in definition.activity),
            computed=frozenset(c.key for c in definition.computed),
        )


def grouped(
    customers: Iterable[uuid.UUID], relevant: Any
) -> dict[tuple[str, ...], list[uuid.UUID]]:
    """Customers grouped by what is relevant to them (``relevant(customer)`` → sorted keys);
    customers with nothing relevant are left out. One statement runs per group."""
    groups: dict[tuple[str, ...], list[uuid.UUID]] = {}
    for customer in sorted(set(customers)):
        keys: Sequence[str] = relevant(customer)
        if keys:
            groups.setdefault(tuple(keys), []).append(customer)
    return groups
