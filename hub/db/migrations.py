"""Apply Alembic migrations from code (``hub migrate``, ``hub serve`` and the tests use this)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic.config import Config

from alembic import command

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def alembic_config(database_url: str) -> Config:
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "alembic"))
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Blocking: alembic's env.py runs its own event loop."""
    command.upgrade(alembic_config(database_url), revision)


async def aupgrade(database_url: str, revision: str = "head") -> None:
    # In a worker thread because env.py calls asyncio.run(), which cannot nest in a running loop.
    await asyncio.to_thread(upgrade, database_url, revision)
