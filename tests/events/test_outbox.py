from __future__ import annotations

from typing import Any

import asyncpg

from hub.events.emit import EventKind, NewEvent, emit, emit_many


async def test_events_commit_with_their_transaction_and_carry_the_writer_xid(
    engine: Any, db: asyncpg.Connection
) -> None:
    async with engine.begin() as connection:
        await emit_many(
            connection,
            [
                NewEvent(EventKind.INTERACTION_RECORDED, payload={"n": 1}),
                NewEvent(EventKind.CUSTOMER_UPDATED),
            ],
        )
    try:
        async with engine.begin() as connection:
            await emit(connection, NewEvent(EventKind.CUSTOMER_MERGED))
            raise RuntimeError("roll back")
    except RuntimeError:
        pass
    rows = await db.fetch("SELECT kind, xid, payload FROM events ORDER BY xid, id")
    assert [row["kind"] for row in rows] == ["INTERACTION_RECORDED", "CUSTOMER_UPDATED"]
    assert rows[0]["xid"] == rows[1]["xid"] > 0
