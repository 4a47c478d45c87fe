"""An independent recount of computed traits in Python, over the raw interactions rows.

Written from docs/audiences.md, not from hub.audiences: the rules (which interactions match,
the window, what counts as a number, the tie rule of MOST_FREQUENT) are restated here.
"""

from __future__ import annotations

import json
import re
import uuid
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

import asyncpg

_NUMBER = re.compile(r"^\s*[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]{1,2})?\s*$")
COLUMNS = {"channel": "channel_code", "type": "type", "direction": "direction"}


def as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and _NUMBER.match(value):
        return float(value)
    return None


def attribute_of(row: dict[str, Any], attribute: str | None) -> Any:
    if attribute is None:
        return True
    if attribute in COLUMNS:
        return row[COLUMNS[attribute]]
    value: Any = row["attributes"]
    for part in attribute.removeprefix("attributes.").split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def recount(
    trait: dict[str, Any], rows: list[dict[str, Any]], now: datetime
) -> dict[uuid.UUID, Any]:
    """``trait``: {key, aggregate, channels?, types?, attribute?, withinDays?}; the value of
    every customer with at least one matching interaction."""
    groups: dict[uuid.UUID, list[tuple[datetime, uuid.UUID, Any]]] = defaultdict(list)
    for row in rows:
        if trait.get("channels") is not None and row["channel_code"] not in trait["channels"]:
            continue
        if trait.get("types") is not None and row["type"] not in trait["types"]:
            continue
        days = trait.get("withinDays")
        if days is not None and not row["occurred_at"] > now - timedelta(days=days):
            continue
        value = attribute_of(row, trait.get("attribute"))
        if value is None:
            continue
        groups[row["customer_id"]].append((row["occurred_at"], row["id"], value))
    out: dict[uuid.UUID, Any] = {}
    for customer, items in groups.items():
        items.sort(key=lambda item: (item[0], item[1]))
        values = [v for _, _, v in items]
        numbers = [n for n in (as_number(v) for v in values) if n is not None]
        match trait["aggregate"]:
            case "COUNT":
                out[customer] = len(items)
            case "DISTINCT_COUNT":
                out[customer] = len({json.dumps(v, sort_keys=True) for v in values})
            case "SUM":
                out[customer] = sum(numbers) if numbers else None
            case "MIN":
                out[customer] = min(numbers) if numbers else None
            case "MAX":
                out[customer] = max(numbers) if numbers else None
            case "AVG":
                out[customer] = sum(numbers) / len(numbers) if numbers else None
            case "FIRST":
                out[customer] = values[0]
            case "LAST":
                out[customer] = values[-1]
            case "MOST_FREQUENT":
                counts: dict[str, list[Any]] = {}
                for at, _, v in items:
                    text = json.dumps(v, sort_keys=True)
                    entry = counts.setdefault(text, [0, at, v])
                    entry[0] += 1
                    entry[1] = max(entry[1], at)
                best = sorted(
                    counts.items(), key=lambda kv: (-kv[1][0], -kv[1][1].timestamp(), kv[0])
                )
                out[customer] = best[0][1][2]
    return out


async def interaction_rows(db: asyncpg.Connection) -> list[dict[str, Any]]:
    rows = await db.fetch(
        "SELECT id, customer_id, channel_code, type, direction, occurred_at,"
        " attributes::text AS attributes FROM interactions"
    )
    return [{**dict(r), "attributes": json.loads(r["attributes"])} for r in rows]


async def stored_values(db: asyncpg.Connection) -> dict[tuple[str, uuid.UUID], Any]:
    rows = await db.fetch(
        "SELECT trait_key, customer_id, value::text AS value FROM customer_traits_computed"
    )
    return {
        (r["trait_key"], r["customer_id"]): json.loads(r["value"]) if r["value"] else None
        for r in rows
    }


async def expected_values(
    db: asyncpg.Connection, traits: list[dict[str, Any]], now: datetime
) -> dict[tuple[str, uuid.UUID], Any]:
    rows = await interaction_rows(db)
    return {
        (t["key"], customer): value
        for t in traits
        for customer, value in recount(t, rows, now).items()
    }
