"""Running Core statements: one pooled connection per batch, rows as plain mappings."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import RowMapping
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import Executable

# A row as a read-only mapping of column name to value.
Record = RowMapping


async def fetch_all(engine: AsyncEngine, statement: Executable) -> Sequence[Record]:
    async with engine.connect() as connection:
        result = await connection.execute(statement)
        return result.mappings().all()


async def fetch_one(engine: AsyncEngine, statement: Executable) -> Record | None:
    async with engine.connect() as connection:
        result = await connection.execute(statement)
        return result.mappings().first()


def group_rows(rows: Sequence[Record], key: str) -> dict[Any, list[Record]]:
    grouped: dict[Any, list[Record]] = {}
    for row in rows:
        grouped.setdefault(row[key], []).append(row)
    return grouped


def contains_pattern(text: str) -> str:
    """An ILIKE pattern (escape character backslash) matching ``text`` anywhere, literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"
