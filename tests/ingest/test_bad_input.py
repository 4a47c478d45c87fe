"""Every bad input of recordInteraction(s): a clear error with a code, nothing written."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from tests.factories import gid
from tests.ingest_support import RECORD_BARE, RECORD_MANY, interaction, touchpoints

EMAIL = ("EMAIL", "ana@example.com")
FUTURE = (datetime.now(UTC) + timedelta(days=30)).isoformat()

CASES: list[tuple[str, dict[str, Any], str, str]] = [
    (
        "unknown touchpoint",
        {"touchpointId": gid("Touchpoint", uuid.uuid4())},
        "NOT_FOUND",
        "touchpoint",
    ),
    ("malformed touchpoint id", {"touchpointId": "nope"}, "BAD_USER_INPUT", "not a valid id"),
    ("no identities", {"identities": []}, "BAD_USER_INPUT", "at least one identity"),
    (
        "invalid email",
        {"identities": [{"kind": "EMAIL", "value": "ana@"}]},
        "BAD_USER_INPUT",
        "e-mail",
    ),
    (
        "invalid phone",
        {"identities": [{"kind": "PHONE", "value": "12"}]},
        "BAD_USER_INPUT",
        "phone",
    ),
    ("sentiment too high", {"sentiment": 1.5}, "BAD_USER_INPUT", "sentiment"),
    ("sentiment too low", {"sentiment": -1.01}, "BAD_USER_INPUT", "sentiment"),
    ("far future", {"occurredAt": FUTURE}, "BAD_USER_INPUT", "future"),
    ("attributes too large", {"attributes": {"blob": "x" * 33_000}}, "BAD_USER_INPUT", "bytes"),
    ("attributes not an object", {"attributes": [1, 2]}, "BAD_USER_INPUT", "JSON object"),
    ("summary too long", {"summary": "x" * 10_001}, "BAD_USER_INPUT", "summary"),
    ("empty idempotency key", {"idempotencyKey": "  "}, "BAD_USER_INPUT", "idempotencyKey"),
]


@pytest.mark.parametrize(("case", "change", "code", "text"), CASES, ids=[c[0] for c in CASES])
async def test_bad_input_is_a_coded_error_and_writes_nothing(
    gql: Any, db: asyncpg.Connection, case: str, change: dict[str, Any], code: str, text: str
) -> None:
    tp = await touchpoints(db)
    item = {**interaction(tp["web"], EMAIL), **change}
    error = await gql.error(RECORD_BARE, {"input": item})
    assert error["extensions"]["code"] == code, error
    assert text in error["message"]
    for table in ("customers", "identities", "interactions", "events", "conversations"):
        assert await db.fetchval(f"SELECT count(*) FROM {table}") == 0, table


async def test_a_batch_over_the_limit_is_refused_whole(gql: Any, db: asyncpg.Connection) -> None:
    tp = await touchpoints(db)
    inputs = [interaction(tp["web"], ("EMAIL", f"u{n}@example.com")) for n in range(1001)]
    error = await gql.error(RECORD_MANY, {"inputs": inputs})
    # The generic list cap (hub.access.inputs, max_list_length = max_batch_size by default)
    # refuses it before the resolver's own batch check.
    assert error["extensions"] == {
        "code": "LIST_TOO_LONG",
        "argument": "$inputs",
        "maxLength": 1000,
    }
    assert await db.fetchval("SELECT count(*) FROM interactions") == 0


async def test_a_batch_stores_valid_items_and_reports_each_rejected_one(
    gql: Any, db: asyncpg.Connection
) -> None:
    tp = await touchpoints(db)
    inputs = [
        interaction(tp["web"], EMAIL, idempotencyKey="k1"),
        interaction(tp["web"], ("EMAIL", "broken@")),
        interaction("garbage", EMAIL),
        interaction(tp["call"], ("PHONE", "+4915112345670"), EMAIL, sentiment=0.5),
        interaction(tp["web"], EMAIL, idempotencyKey="k1"),
        interaction(gid("Touchpoint", uuid.uuid4()), EMAIL),
        interaction(tp["web"], EMAIL, sentiment=3.0),
    ]
    result = (await gql.data(RECORD_MANY, {"inputs": inputs}))["recordInteractions"]
    assert [(r["index"], r["code"]) for r in result["rejected"]] == [
        (1, "BAD_USER_INPUT"),
        (2, "BAD_USER_INPUT"),
        (5, "NOT_FOUND"),
        (6, "BAD_USER_INPUT"),
    ]
    assert all(r["message"] for r in result["rejected"])
    stored = {s["index"]: s for s in result["stored"]}
    assert sorted(stored) == [0, 3, 4]
    assert stored[4]["duplicate"] is True
    assert stored[4]["interaction"] == stored[0]["interaction"]
    assert len({s["customer"]["id"] for s in stored.values()}) == 1
    assert await db.fetchval("SELECT count(*) FROM interactions") == 2
    assert await db.fetchval("SELECT count(*) FROM customers") == 1
