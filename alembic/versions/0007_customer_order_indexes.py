"""indexes for the customers list's orderings

The list sorts by ``coalesce(display_name, '')`` and ``coalesce(last_seen_at, '-infinity')``
(NULLs as the smallest value, so that a cursor can hold them); only indexes on those exact
expressions, with the id as tie-breaker, let PostgreSQL read a page in order instead of sorting
every customer.

Revision ID: 0007
Revises: 0002

"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op

revision = "0007"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_customers_display_name_order",
        "customers",
        [sa.text("coalesce(display_name, '')"), "id"],
    )
    op.create_index(
        "ix_customers_last_seen_order",
        "customers",
        [sa.text("coalesce(last_seen_at, '-infinity'::timestamptz)"), "id"],
    )


def downgrade() -> None:
    op.drop_index("ix_customers_last_seen_order", table_name="customers")
    op.drop_index("ix_customers_display_name_order", table_name="customers")
