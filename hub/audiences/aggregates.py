"""Computed-trait aggregates: the SQL of each, and the rules they share.

A trait's value for a customer is an aggregate over that customer's interactions that match the
trait's filter (and window). Where the aggregate reads an attribute (``attributes.amount``,
``channel``...), interactions without it (missing or JSON null) do not count.

Numeric aggregates (SUM, MIN, MAX, AVG) read a value as a number when it is a JSON number or a
string holding a plain decimal number (``"12.50"``, ``"-3"``, ``"1e3"``); any other value
(text, booleans, objects, arrays) is skipped. With no number at all the value is null.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any


class Aggregate(StrEnum):
    """How a computed trait folds a customer's matching interactions into one value."""

    COUNT = "COUNT"
    SUM = "SUM"
    MIN = "MIN"
    MAX = "MAX"
    AVG = "AVG"
    FIRST = "FIRST"
    LAST = "LAST"
    MOST_FREQUENT = "MOST_FREQUENT"
    DISTINCT_COUNT = "DISTINCT_COUNT"


NEEDS_ATTRIBUTE = frozenset(Aggregate) - {Aggregate.COUNT}
NUMERIC = frozenset({Aggregate.SUM, Aggregate.MIN, Aggregate.MAX, Aggregate.AVG})
COUNTS = frozenset({Aggregate.COUNT, Aggregate.DISTINCT_COUNT})

# Interaction columns an aggregate may read, by their GraphQL names.
COLUMN_ATTRIBUTES = {
    "channel": "channel_code",
    "type": "type",
    "direction": "direction",
    "touchpointId": "touchpoint_id",
    "sentiment": "sentiment",
    "occurredAt": "occurred_at",
}
ATTRIBUTES_PREFIX = "attributes."
_SEGMENT = re.compile(r"^[A-Za-z0-9_$@-]{1,64}$")
# A string read as a number (also the rule of ``number_of`` below, the Python side).
NUMBER_PATTERN = r"^\s*[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]{1,2})?\s*$"
_NUMBER = re.compile(NUMBER_PATTERN)


def attribute_path(attribute: str) -> list[str] | None:
    """The JSON path of an ``attributes.a.b`` attribute; None for a column attribute.
    ``ValueError`` when it is neither."""
    if attribute in COLUMN_ATTRIBUTES:
        return None
    if attribute.startswith(ATTRIBUTES_PREFIX):
        segments = attribute[len(ATTRIBUTES_PREFIX) :].split(".")
        if all(_SEGMENT.match(segment) for segment in segments):
            return segments
    raise ValueError(attribute)


def value_sql(attribute: str | None, alias: str = "i") -> str:
    """The attribute of interaction ``alias`` as jsonb (SQL NULL when absent or JSON null)."""
    if attribute is None:
        return "NULL::jsonb"
    path = attribute_path(attribute)
    if path is None:
        return f"to_jsonb({alias}.{COLUMN_ATTRIBUTES[attribute]})"
    literal = "{" + ",".join(f'"{segment}"' for segment in path) + "}"
    return f"nullif({alias}.attributes #> '{literal}', 'null'::jsonb)"


def number_sql(value: str) -> str:
    """A jsonb value as double precision under the numeric rule (NULL otherwise)."""
    return (
        f"(CASE WHEN jsonb_typeof({value}) = 'number' THEN ({value} #>> '{{}}')::float8"
        f" WHEN jsonb_typeof({value}) = 'string' AND ({value} #>> '{{}}') ~ '{NUMBER_PATTERN}'"
        f" THEN ({value} #>> '{{}}')::float8 END)"
    )


def aggregate_sql(
    aggregate: Aggregate,
    value: str = "m.v",
    *,
    at: str = "m.at",
    iid: str = "m.iid",
    only: str = "",
) -> str:
    """The value (jsonb) of ``aggregate`` over a group's rows: ``value`` their attribute,
    ``at``/``iid`` their time and interaction id (FIRST/LAST's order), ``only`` an optional
    `` FILTER (WHERE …)`` keeping the rows this aggregate reads."""
    n = number_sql(value)
    match aggregate:
        case Aggregate.COUNT:
            return f"to_jsonb(count(*){only})"
        case Aggregate.DISTINCT_COUNT:
            return f"to_jsonb(count(DISTINCT {value}){only})"
        case Aggregate.SUM:
            return f"to_jsonb(sum({n}){only})"
        case Aggregate.MIN:
            return f"to_jsonb(min({n}){only})"
        case Aggregate.MAX:
            return f"to_jsonb(max({n}){only})"
        case Aggregate.AVG:
            return f"to_jsonb(avg({n}){only})"
        case Aggregate.FIRST:
            return f"(array_agg({value} ORDER BY {at}, {iid}){only})[1]"
        case Aggregate.LAST:
            return f"(array_agg({value} ORDER BY {at} DESC, {iid} DESC){only})[1]"
        case Aggregate.MOST_FREQUENT:
            raise AssertionError("MOST_FREQUENT has a query of its own")


def number_of(value: Any) -> float | None:
    """The numeric rule in Python (tests' recounts and the value's ``number``)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and _NUMBER.match(value):
        return float(value)
    return None
