"""``HUB_DB_JIT``: PostgreSQL's JIT is off on the hub's connections unless asked for, on both kinds
of pool (SQLAlchemy engines and the bare asyncpg pools of the hot paths). Both values are checked,
so a setting that is ignored (the server's default either way) fails one of them."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from hub.core.settings import Settings
from hub.db.engine import create_driver_pool, create_engine


@pytest.mark.parametrize("jit", [False, True])
async def test_jit_follows_the_setting(database_url: str, jit: bool) -> None:
    settings = Settings(database_url=database_url, db_jit=jit)
    expected = "on" if jit else "off"
    engine = create_engine(database_url, settings)
    try:
        async with engine.connect() as connection:
            assert await connection.scalar(sa.text("SHOW jit")) == expected
    finally:
        await engine.dispose()
    pool = await create_driver_pool(database_url, settings, "hub-test", 1)
    try:
        assert await pool.fetchval("SHOW jit") == expected
    finally:
        await pool.close()
