"""The watermark read of the outbox: which open transactions hold delivery back."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from hub.db.engine import asyncpg_dsn
from hub.events.emit import EventKind, NewEvent, emit
from hub.events.outbox import START, read_after


async def delivered(engine: Any) -> list[str]:
    async with engine.connect() as connection:
        return [event.kind for event in await read_after(connection, START, 100)]


async def test_an_open_write_transaction_in_this_database_holds_later_events_back(
    engine: Any, db: asyncpg.Connection, database_url: str
) -> None:
    held = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        transaction = held.transaction()
        await transaction.start()
        await held.execute("SELECT pg_current_xact_id()")  # it has a transaction id now
        async with engine.begin() as connection:
            await emit(connection, NewEvent(EventKind.CUSTOMER_UPDATED))
        assert await delivered(engine) == []  # the older transaction might still emit
        await transaction.rollback()
        assert await delivered(engine) == ["CUSTOMER_UPDATED"]
    finally:
        await held.close()


async def test_a_transaction_in_another_database_does_not_hold_delivery_back(
    engine: Any, db: asyncpg.Connection, database_url: str
) -> None:
    parts = urlsplit(database_url)
    other = urlunsplit((parts.scheme, parts.netloc, "/postgres", parts.query, ""))
    foreign = await asyncpg.connect(asyncpg_dsn(other))
    try:
        transaction = foreign.transaction()
        await transaction.start()
        await foreign.execute("SELECT pg_current_xact_id()")
        async with engine.begin() as connection:
            await emit(connection, NewEvent(EventKind.CUSTOMER_UPDATED))
        assert await delivered(engine) == ["CUSTOMER_UPDATED"]
        await transaction.rollback()
    finally:
        await foreign.close()


async def test_a_read_only_transaction_holds_nothing_back(
    engine: Any, db: asyncpg.Connection, database_url: str
) -> None:
    reader = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        transaction = reader.transaction(isolation="repeatable_read")
        await transaction.start()
        await reader.fetch("SELECT count(*) FROM events")  # a snapshot, but no transaction id
        async with engine.begin() as connection:
            await emit(connection, NewEvent(EventKind.CUSTOMER_MERGED))
        assert await delivered(engine) == ["CUSTOMER_MERGED"]
        await transaction.rollback()
    finally:
        await reader.close()
