"""Writing generated rows with COPY, in foreign-key order, on one asyncpg connection."""

from __future__ import annotations

import asyncpg
import sqlalchemy as sa

from hub.models import CONVERSATIONS, CUSTOMERS, IDENTITIES, INTERACTIONS, STAGE_HISTORY
from hub.seeds.journeys import Rows

# Columns of each table in the order the generator builds its tuples. Serial ids are left to
# their sequences; nothing is left to a now() default, so the rows do not depend on the clock.
CUSTOMER_COLUMNS = (
    "id",
    "display_name",
    "traits",
    "trait_updated_at",
    "current_stage",
    "stage_entered_at",
    "first_seen_at",
    "last_seen_at",
    "created_at",
    "updated_at",
)
IDENTITY_COLUMNS = ("customer_id", "kind", "value", "created_at", "last_seen_at")
CONVERSATION_COLUMNS = (
    "id",
    "customer_id",
    "key",
    "status",
    "started_at",
    "last_activity_at",
    "resolved_at",
)
INTERACTION_COLUMNS = (
    "id",
    "customer_id",
    "touchpoint_id",
    "channel_code",
    "occurred_at",
    "recorded_at",
    "type",
    "direction",
    "conversation_id",
    "summary",
    "sentiment",
    "outcome",
    "agent",
    "attributes",
)
STAGE_HISTORY_COLUMNS = (
    "customer_id",
    "stage",
    "previous_stage",
    "transition",
    "entered_at",
    "interaction_id",
    "channel_code",
    "reason",
)


async def copy_rows(connection: asyncpg.Connection, rows: Rows) -> None:
    """COPY one chunk: parents before children, so every foreign key finds its row."""
    for table, columns, records in (
        ("customers", CUSTOMER_COLUMNS, rows.customers),
        ("identities", IDENTITY_COLUMNS, rows.identities),
        ("conversations", CONVERSATION_COLUMNS, rows.conversations),
        ("interactions", INTERACTION_COLUMNS, rows.interactions),
        ("stage_history", STAGE_HISTORY_COLUMNS, rows.stage_history),
    ):
        if records:
            await connection.copy_records_to_table(table, records=records, columns=columns)


# -- foreign keys, checked once per table instead of once per row ---------------------------
#
# PostgreSQL checks a foreign key with a trigger that runs a query for every inserted row; for
# the demo's ~5 million references that is most of the load time. A superuser may switch the
# triggers off for one transaction (``session_replication_role = replica``, what pg_restore's
# --disable-triggers does); the constraints stay in the schema and protect every later write.
# Instead, the seeder takes the locks the triggers would have taken on the rows it references
# and, before committing, checks every foreign key of the tables it wrote with one set-based
# query per table.

_COPIED_TABLES = (CUSTOMERS, IDENTITIES, CONVERSATIONS, INTERACTIONS, STAGE_HISTORY)


async def skip_row_reference_checks(
    connection: asyncpg.Connection, touchpoint_ids: list[str]
) -> bool:
    """Turn the per-row foreign-key triggers off for this transaction, if this role may.

    Returns whether it did; the caller must then run ``verify_references`` before committing.
    """
    if await connection.fetchval("SELECT current_setting('is_superuser')") != "on":
        return False
    # The rows the new data references that already exist: nobody may delete them until we
    # commit (the triggers would have taken exactly these locks).
    await connection.execute("SELECT FROM channels FOR KEY SHARE")
    await connection.execute("SELECT FROM journey_stages FOR KEY SHARE")
    await connection.execute(
        "SELECT FROM touchpoints WHERE id = ANY($1::uuid[]) FOR KEY SHARE", touchpoint_ids
    )
    await connection.execute("SET LOCAL session_replication_role = replica")
    return True


def reference_check_sql(table: sa.Table) -> str:
    """One query counting, per foreign key of ``table``, the rows whose reference is missing."""
    counts: list[str] = []
    joins: list[str] = []
    constraints = sorted(table.foreign_key_constraints, key=lambda fk: list(fk.column_keys))
    for n, fk in enumerate(constraints):
        pairs = [(element.parent.name, element.column.name) for element in fk.elements]
        on = " AND ".join(f"r{n}.{target} = x.{source}" for source, target in pairs)
        present = " AND ".join(f"x.{source} IS NOT NULL" for source, _ in pairs)
        joins.append(f"LEFT JOIN {fk.referred_table.name} r{n} ON {on}")
        name = f"{table.name}.{','.join(fk.column_keys)}"
        counts.append(
            f'count(*) FILTER (WHERE {present} AND r{n}.{pairs[0][1]} IS NULL) AS "{name}"'
        )
    return f"SELECT {', '.join(counts)} FROM {table.name} x {' '.join(joins)}"


async def verify_references(connection: asyncpg.Connection) -> None:
    """Raise (so the transaction rolls back) if any row of a copied table references nothing."""
    broken: dict[str, int] = {}
    for table in _COPIED_TABLES:
        row = await connection.fetchrow(reference_check_sql(table))
        broken.update({name: count for name, count in row.items() if count})
    if broken:
        raise RuntimeError(f"demo data would break foreign keys (rows per key): {broken}")
