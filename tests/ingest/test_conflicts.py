"""Transactions PostgreSQL aborts over a concurrent one (deadlock, serialization failure) are run
again; if they keep colliding the client gets a retryable CONFLICT, never "Unexpected error.",
and nothing of the aborted attempts is stored.

The conflicts are real PostgreSQL errors: a statement trigger on ``interactions`` raises
``deadlock_detected`` (SQLSTATE 40P01) for the first N statements inserting or updating
interactions (ingest inserts them, a merge moves them), counted with a sequence (which a
rollback does not undo), so each attempt of the hub is seen.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import pytest

from hub.core.faults import transaction_conflict
from hub.db.transactions import retry_conflicts
from tests.factories import T0, Factory, gid
from tests.ingest_support import RECORD, RECORD_BARE, RECORD_MANY, interaction, touchpoints

INJECT = """
CREATE TABLE test_conflict_budget (failures int NOT NULL);
INSERT INTO test_conflict_budget VALUES (0);
CREATE SEQUENCE test_conflict_attempts;
CREATE FUNCTION test_inject_conflict() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF nextval('test_conflict_attempts') <= (SELECT failures FROM test_conflict_budget) THEN
        RAISE EXCEPTION 'deadlock detected (injected by the test)'
            USING ERRCODE = 'deadlock_detected';
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER test_inject_conflict AFTER INSERT OR UPDATE ON interactions
    FOR EACH STATEMENT EXECUTE FUNCTION test_inject_conflict();
"""
REMOVE = """
DROP TRIGGER IF EXISTS test_inject_conflict ON interactions;
DROP FUNCTION IF EXISTS test_inject_conflict();
DROP SEQUENCE IF EXISTS test_conflict_attempts;
DROP TABLE IF EXISTS test_conflict_budget;
"""

Conflicts = Callable[[int], Awaitable[None]]


@pytest.fixture
async def conflicts(db: asyncpg.Connection) -> AsyncIterator[Conflicts]:
    """``await conflicts(n)``: the next ``n`` statements writing interactions fail with a
    deadlock; ``attempts(db)`` counts the writing statements since."""
    await db.execute(REMOVE + INJECT)

    async def fail_next(failures: int) -> None:
        await db.execute("UPDATE test_conflict_budget SET failures = $1", failures)
        await db.execute("ALTER SEQUENCE test_conflict_attempts RESTART")

    try:
        yield fail_next
    finally:
        await db.execute(REMOVE)


async def attempts(db: asyncpg.Connection) -> int:
    value = await db.fetchval("SELECT last_value FROM test_conflict_attempts")
    called = await db.fetchval("SELECT is_called FROM test_conflict_attempts")
    return int(value) if called else 0


# RECORD selects fields the compiled ingest path does not cover: the resolvers answer it. The
# bare mutation is answered by the compiled path, which hands a failed transaction to the
# resolvers: one attempt more.
PATHS = pytest.mark.parametrize(
    ("mutation", "first_attempts"), [(RECORD, 0), (RECORD_BARE, 1)], ids=["resolvers", "compiled"]
)


@PATHS
async def test_a_deadlocked_interaction_is_recorded_on_a_later_attempt(
    gql: Any, db: asyncpg.Connection, conflicts: Conflicts, mutation: str, first_attempts: int
) -> None:
    tp = await touchpoints(db)
    await conflicts(first_attempts + 2)
    data = await gql.data(mutation, {"input": interaction(tp["web"], ("EMAIL", "ana@example.com"))})
    assert data["recordInteraction"]["created"] is True
    assert await attempts(db) == first_attempts + 3
    assert await db.fetchval("SELECT count(*) FROM interactions") == 1
    assert await db.fetchval("SELECT count(*) FROM customers") == 1
    assert await db.fetchval("SELECT count(*) FROM identities") == 1


async def test_a_batch_is_stored_once_after_a_deadlock(
    gql: Any, db: asyncpg.Connection, conflicts: Conflicts
) -> None:
    tp = await touchpoints(db)
    await conflicts(2)
    inputs = [
        interaction(tp["web"], ("EMAIL", f"person{n}@example.com"), idempotencyKey=f"k{n}")
        for n in range(5)
    ]
    data = await gql.data(RECORD_MANY, {"inputs": inputs})
    assert len(data["recordInteractions"]["stored"]) == 5
    assert data["recordInteractions"]["rejected"] == []
    assert await db.fetchval("SELECT count(*) FROM interactions") == 5
    assert await db.fetchval("SELECT count(*) FROM customers") == 5


@PATHS
async def test_a_transaction_that_keeps_colliding_gets_a_retryable_conflict(
    gql: Any, db: asyncpg.Connection, conflicts: Conflicts, mutation: str, first_attempts: int
) -> None:
    tp = await touchpoints(db)
    await conflicts(1000)
    item = interaction(tp["web"], ("EMAIL", "ana@example.com"))
    result = await gql(mutation, {"input": item})
    [error] = result["errors"]
    assert error["extensions"] == {"code": "TRANSACTION_CONFLICT", "retryable": True}
    assert "Try again" in error["message"]
    assert "deadlock" not in error["message"] and "INSERT" not in error["message"]
    assert await attempts(db) == first_attempts + 3
    for table in ("interactions", "customers", "identities", "events"):
        assert await db.fetchval(f"SELECT count(*) FROM {table}") == 0, table
    # The audit log keeps the failed call (its own transaction), as for every mutation.
    audit = await db.fetch("SELECT action, success FROM audit_log")
    assert [(row["action"], row["success"]) for row in audit] == [("recordInteraction", False)]
    # Once the collisions stop, the same request goes through.
    await conflicts(0)
    data = await gql.data(mutation, {"input": item})
    assert data["recordInteraction"]["created"] is True


async def test_only_conflicts_are_retried(db: asyncpg.Connection) -> None:
    calls = 0

    async def fails_with(error: BaseException) -> None:
        nonlocal calls
        calls += 1
        raise error

    with pytest.raises(ValueError):
        await retry_conflicts(lambda: fails_with(ValueError("a bug")))
    assert calls == 1
    with pytest.raises(asyncpg.PostgresError) as division:
        await db.execute("SELECT 1 / 0")
    assert not transaction_conflict(division.value)

    calls = 0
    serialization = asyncpg.exceptions.SerializationError("could not serialize access")
    assert transaction_conflict(serialization)
    with pytest.raises(asyncpg.exceptions.SerializationError):
        await retry_conflicts(lambda: fails_with(serialization))
    assert calls == 3


MERGE = """
mutation($input: MergeCustomersInput!) {
  mergeCustomers(input: $input) { merge { id active } }
}
"""
UNMERGE = "mutation($id: ID!) { unmergeCustomer(mergeId: $id) { merge { active } } }"


async def two_customers(db: asyncpg.Connection) -> tuple[uuid.UUID, uuid.UUID]:
    """Two customers with an interaction each, to merge."""
    factory = Factory(db)
    await factory.touchpoint("Web shop", "WEB", "WEBSITE")
    ana = await factory.customer("Ana")
    other = await factory.customer("Ana again")
    for customer in (ana, other):
        await factory.interaction(customer, "Web shop", at=T0)
    return ana, other


async def test_merges_and_unmerges_are_run_again_after_a_deadlock(
    gql: Any, db: asyncpg.Connection, conflicts: Conflicts
) -> None:
    ana, other = await two_customers(db)
    merge_input = {"survivorId": gid("Customer", ana), "mergedIds": [gid("Customer", other)]}

    await conflicts(1)  # the statement moving the interactions fails once
    data = await gql.data(MERGE, {"input": merge_input})
    assert data["mergeCustomers"]["merge"]["active"] is True
    assert await attempts(db) == 2
    assert await db.fetchval("SELECT count(*) FROM merges") == 1
    assert await db.fetchval("SELECT count(*) FROM interactions WHERE customer_id = $1", ana) == 2

    await conflicts(1)
    undone = await gql.data(UNMERGE, {"id": data["mergeCustomers"]["merge"]["id"]})
    assert undone["unmergeCustomer"]["merge"]["active"] is False
    assert await attempts(db) == 2
    assert await db.fetchval("SELECT count(*) FROM interactions WHERE customer_id = $1", other) == 1


async def test_a_merge_that_keeps_colliding_changes_nothing(
    gql: Any, db: asyncpg.Connection, conflicts: Conflicts
) -> None:
    ana, other = await two_customers(db)
    await conflicts(1000)
    merge_input = {"survivorId": gid("Customer", ana), "mergedIds": [gid("Customer", other)]}
    result = await gql(MERGE, {"input": merge_input})
    [error] = result["errors"]
    assert error["extensions"] == {"code": "TRANSACTION_CONFLICT", "retryable": True}
    assert await attempts(db) == 3
    assert await db.fetchval("SELECT count(*) FROM merges") == 0
    assert await db.fetchval("SELECT merged_into_id FROM customers WHERE id = $1", other) is None
    assert await db.fetchval("SELECT count(*) FROM interactions WHERE customer_id = $1", other) == 1
