"""Shared by the segment tests: the mutations, an independent evaluation in Python, readers."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

CREATE = """
mutation Create($input: CreateSegmentInput!) {
  createSegment(input: $input) { key name memberCount }
}
"""

MEMBERS = """
query Members($key: String!, $after: String) {
  segment(key: $key) {
    key memberCount
    members(first: 2, after: $after) {
      edges { cursor node { id } } pageInfo { hasNextPage endCursor } totalCount
    }
  }
}
"""


async def all_members(gql: Any, key: str) -> tuple[int, list[str]]:
    """Every member's global id, paging by 2 (so the cursor is exercised), and memberCount."""
    ids: list[str] = []
    after = None
    count = None
    while True:
        data = await gql.data(MEMBERS, {"key": key, "after": after})
        segment = data["segment"]
        count = segment["memberCount"]
        page = segment["members"]
        ids += [edge["node"]["id"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            return count, ids
        after = page["pageInfo"]["endCursor"]


async def stored_members(db: asyncpg.Connection, key: str) -> set[uuid.UUID]:
    rows = await db.fetch("SELECT customer_id FROM segment_members WHERE segment_key = $1", key)
    return {row["customer_id"] for row in rows}


async def membership_events(db: asyncpg.Connection) -> list[tuple[Any, uuid.UUID, Any, Any]]:
    """(segment, customer, change, reason) of every membership event, in outbox order (None
    for the payload of an event an erasure emptied)."""
    rows = await db.fetch(
        "SELECT customer_id, payload FROM events WHERE kind = 'SEGMENT_MEMBERSHIP_CHANGED'"
        " ORDER BY xid, id"
    )
    out = []
    for row in rows:
        payload = row["payload"]
        if isinstance(payload, str):
            import json

            payload = json.loads(payload)
        out.append(
            (
                payload.get("segment"),
                row["customer_id"],
                payload.get("change"),
                payload.get("reason"),
            )
        )
    return out


@dataclass(frozen=True)
class Rule:
    """An activity rule evaluated in Python: interactions of ``types`` in the last ``days``
    days (all time if None), counted between ``low`` and ``high``, and optionally a stage."""

    types: tuple[str, ...]
    days: int | None
    low: int
    high: int | None
    stages: tuple[str, ...] | None = None


async def expected_members(db: asyncpg.Connection, rule: Rule, now: datetime) -> set[uuid.UUID]:
    """An independent recount: plain rows read back, the rule applied in Python."""
    customers = await db.fetch("SELECT id, current_stage, merged_into_id, erased_at FROM customers")
    interactions = await db.fetch("SELECT customer_id, type, occurred_at FROM interactions")
    counts: dict[uuid.UUID, int] = {}
    for i in interactions:
        if i["type"] not in rule.types:
            continue
        if rule.days is not None and not i["occurred_at"] > now - timedelta(days=rule.days):
            continue
        counts[i["customer_id"]] = counts.get(i["customer_id"], 0) + 1
    members = set()
    for c in customers:
        if c["merged_into_id"] is not None or c["erased_at"] is not None:
            continue
        if rule.stages is not None and c["current_stage"] not in rule.stages:
            continue
        n = counts.get(c["id"], 0)
        if n >= rule.low and (rule.high is None or n <= rule.high):
            members.add(c["id"])
    return members
