"""Apply Alembic migrations from code (``hub migrate``, ``hub serve`` and the tests use this).

The migrations ship inside the package (``hub/alembic``: in a checkout a link to the top-level
``alembic/`` folder, in a wheel a copy), so an installed hub migrates from any working directory.
The configuration is built here rather than read from ``alembic.ini``, which only the
developers' ``alembic`` command uses.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic.config import Config

from alembic import command

MIGRATIONS_DIR = Path(__file__).resolve().parents[1] / "alembic"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Blocking: alembic's env.py runs its own event loop."""
    command.upgrade(alembic_config(database_url), revision)


async def aupgrade(database_url: str, revision: str = "head") -> None:
    # In a worker thread because env.py calls asyncio.run(), which cannot nest in a running loop.
    await asyncio.to_thread(upgrade, database_url, revision)
