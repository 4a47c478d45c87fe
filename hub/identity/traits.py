"""Per-trait survivorship: which value a trait keeps when two values meet.

Used by ``updateTraits`` (incoming values against the stored ones) and by merges (the merged
customers' traits against the survivor's). Each trait carries the moment it was set in
``customers.trait_updated_at``; the rule for a trait comes from ``Settings.trait_survivorship``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


class Survivorship(StrEnum):
    LATEST = "LATEST"  # the most recently set non-empty value wins (the default)
    FIRST = "FIRST"  # the oldest non-empty value is kept (first purchase date, signup source)


def is_empty(value: Any) -> bool:
    """Empty values never overwrite a trait: a channel that does not know the city sends null."""
    return value is None or value == "" or value == [] or value == {}


def _stamp(stamps: Mapping[str, Any], key: str) -> str:
    # ISO-8601 UTC strings compare in time order; a missing stamp is older than any stamp.
    value = stamps.get(key)
    return str(value) if value else ""


def merge_traits(
    traits: Mapping[str, Any],
    stamps: Mapping[str, Any],
    incoming: Mapping[str, Any],
    incoming_stamps: Mapping[str, Any],
    rules: Mapping[str, str],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The traits (and their stamps) after ``incoming`` meets ``traits``, trait by trait.

    On equal stamps the current value stays, so merging is deterministic.
    """
    result = dict(traits)
    result_stamps = dict(stamps)
    for key, value in incoming.items():
        if is_empty(value):
            continue
        new_stamp = _stamp(incoming_stamps, key)
        if key in result and not is_empty(result[key]):
            old_stamp = _stamp(result_stamps, key)
            rule = Survivorship(rules.get(key, Survivorship.LATEST))
            keep_old = (
                new_stamp <= old_stamp if rule is Survivorship.LATEST else new_stamp >= old_stamp
            )
            if keep_old:
                continue
        result[key] = value
        result_stamps[key] = new_stamp or None
    return result, result_stamps


def stamp(moment: datetime) -> str:
    """The form stamps are stored in (UTC ISO-8601, microseconds: comparable as text)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
