"""A statement PostgreSQL cancels for running too long (``HUB_STATEMENT_TIMEOUT_MS``) answers
TIMEOUT with a plain message, never "Unexpected error.", and stores nothing.

The statement waits for a real lock: the test holds ``interactions`` exclusively in a
transaction of its own while the hub records an interaction.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from tests.conftest import make_key
from tests.ingest_support import RECORD, RECORD_BARE, interaction, touchpoints


async def test_a_statement_cancelled_by_the_timeout_is_a_timeout_that_stores_nothing(
    app_with: Any, db: asyncpg.Connection, database_url: str
) -> None:
    tp = await touchpoints(db)
    item = interaction(tp["web"], ("EMAIL", "ana@example.com"))
    async with app_with(statement_timeout_ms=1000) as (http, engine):
        headers = {"Authorization": f"Bearer {await make_key(engine, 'ADMIN')}"}
        # The bare mutation goes through the compiled path first, RECORD through the resolvers.
        for mutation in (RECORD, RECORD_BARE):
            async with db.transaction():
                await db.execute("LOCK TABLE interactions IN ACCESS EXCLUSIVE MODE")
                response = await http.post(
                    "/graphql",
                    json={"query": mutation, "variables": {"input": item}},
                    headers=headers,
                )
            assert response.status_code == 200
            [error] = response.json()["errors"]
            # docs/read-api.md: TIMEOUT carries no ``retryable`` mark (unlike SERVICE_UNAVAILABLE
            # and TRANSACTION_CONFLICT): the same request may run too long again.
            assert error["extensions"] == {"code": "TIMEOUT"}, error
            assert "took too long" in error["message"]
            assert "statement timeout" not in error["message"]  # PostgreSQL's own text
            assert await db.fetchval("SELECT count(*) FROM interactions") == 0
            assert await db.fetchval("SELECT count(*) FROM customers") == 0
        # Without the lock the same request goes through.
        response = await http.post(
            "/graphql", json={"query": RECORD, "variables": {"input": item}}, headers=headers
        )
        assert response.json()["data"]["recordInteraction"]["created"] is True
