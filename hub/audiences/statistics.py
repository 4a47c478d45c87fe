"""Planner statistics for the derived tables, refreshed after a definition's bulk write.

Defining a computed trait writes a value for nearly every customer, and creating a segment a
membership for each member, in one transaction. Until the tables are analysed again the planner
plans the next ingest's statements against the old size: a table it believes empty is scanned
where an index would be probed (measured: the trait refresh's removal read 61k rows per batch
of customers, through the trait-key index, instead of their ~600 rows by primary key).
Autovacuum analyses eventually (a minute or more; never where it is off), so the definition
mutations analyse the tables they filled as soon as they commit.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

logger = logging.getLogger("hub.audiences")

TRAIT_VALUES = ("customer_traits_computed",)
MEMBERSHIPS = ("segment_members", "segment_checks")
LOCK_WAIT = "2s"


async def refresh_statistics(engine: AsyncEngine, tables: tuple[str, ...]) -> None:
    """ANALYZE ``tables`` (names from this module) in a short transaction of its own, after the
    writing one committed (inside it, the lock would last as long as the definition's work).
    It waits at most ``LOCK_WAIT`` for another ANALYZE or VACUUM of the same table. Any failure
    is logged, not raised: the definition is stored and answered as such, and autovacuum will
    analyse in time."""
    try:
        async with engine.connect() as connection:
            await connection.execute(sa.text(f"SET LOCAL lock_timeout = '{LOCK_WAIT}'"))
            await connection.execute(sa.text(f"ANALYZE {', '.join(tables)}"))
            await connection.commit()
    except Exception:  # best effort: the mutation has committed
        logger.warning("could not analyse %s after a definition change", tables, exc_info=True)
