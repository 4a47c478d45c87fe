"""analytics: a covering index for walking each customer's interactions in time order

Revision ID: 0006
Revises: 0005

"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # channelTransitions and channelMix read every interaction of a customer in time order;
    # including the columns they need makes that an index-only scan that needs no sort.
    op.create_index(
        "ix_interactions_customer_path",
        "interactions",
        ["customer_id", "occurred_at", "id"],
        unique=False,
        postgresql_include=["channel_code", "touchpoint_id", "direction"],
    )


def downgrade() -> None:
    op.drop_index("ix_interactions_customer_path", table_name="interactions")
