"""Computed values without a foreign key to their definition (issue #18, ingest cost)

Every ingest that changes computed traits writes ``customer_traits_computed`` rows (up to one per
trait for each customer it touches), and each row's foreign key to ``computed_traits`` ran a
trigger: an index lookup and a key-share lock of the definition row, per row written. Measured
on the quick benchmark data with 10 traits and 20 segments (PostgreSQL shared blocks per
ingested event, ``pg_stat_statements``): the trait statement 55 → 47-50, about 4 % of an
event's blocks.

What the key guarded is now kept by the writers: every statement writing these rows runs under
the definitions advisory lock (shared) and reads the definitions after taking it, and deleting a
trait takes that lock exclusively and deletes its rows in the same transaction
(``hub.audiences.traits.delete``), so no row can outlive its definition. The downgrade deletes
rows without a definition before restoring the key.

Revision ID: 0023
Revises: 0022

"""

from __future__ import annotations

from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

TABLE = "customer_traits_computed"
KEY = f"{TABLE}_trait_key_fkey"


def upgrade() -> None:
    op.drop_constraint(KEY, TABLE, type_="foreignkey")


def downgrade() -> None:
    op.execute(
        f"DELETE FROM {TABLE} t WHERE NOT EXISTS"
        " (SELECT FROM computed_traits d WHERE d.key = t.trait_key)"
    )
    op.create_foreign_key(KEY, TABLE, "computed_traits", ["trait_key"], ["key"], ondelete="CASCADE")
