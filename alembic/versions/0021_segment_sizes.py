"""segment_size_changes: the exact record of segment sizes over time (issue #18, analytics)

Every statement that writes membership changes (``hub.audiences.membership.APPLY``) also
appends, per segment it changed, one row (segment, hour, entered, exited) in the same
statement: the sum of ``entered - exited`` over a segment's rows up to an instant is its size
then. Append-only, never an upsert: an upsert's row lock on (segment, hour) would be held by
every ingest transaction that moves a customer of a popular segment until it commits, and
serialise them. The membership events cannot serve instead: erasure empties their payloads and
the outbox is pruned after its retention.

Existing segments are backfilled from their current members (entered in the hour of their
``entered_at``): the current sizes are exact; exits before this migration are unknown.
Aggregates over all customers: never granted to partners (the analytics are ANALYST/ADMIN).

Revision ID: 0021
Revises: 0020

"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import TIMESTAMP

from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "segment_size_changes",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column(
            "segment_key",
            sa.Text(),
            sa.ForeignKey("segments.key", ondelete="CASCADE", onupdate="CASCADE"),
            nullable=False,
        ),
        sa.Column("hour", TIMESTAMP(timezone=True), nullable=False),
        sa.Column("entered", sa.BigInteger(), nullable=False),
        sa.Column("exited", sa.BigInteger(), nullable=False),
    )
    op.create_index(
        "ix_segment_size_changes_segment_hour", "segment_size_changes", ["segment_key", "hour"]
    )
    op.execute(
        "INSERT INTO segment_size_changes (segment_key, hour, entered, exited)"
        " SELECT segment_key, date_trunc('hour', entered_at, 'UTC'), count(*), 0"
        " FROM segment_members GROUP BY 1, 2 ORDER BY 1, 2"
    )


def downgrade() -> None:
    op.drop_table("segment_size_changes")
