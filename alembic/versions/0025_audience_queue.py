"""The audiences queue: ingest names the customers it changed, the drainer evaluates them

Evaluating the computed traits and segments of every customer an ingest touched, inside the
ingest's transaction, doubled what an event cost PostgreSQL and held a batch's identity locks
while it ran (issue #18, docs/audiences.md). Ingest now writes one row per changed customer here
(what it stored for the customer, for the relevance rules) and the drainer of every
``hub serve`` process evaluates the queued customers in rounds (``hub.audiences.queue``): a
round claims rows (``claim``, ``claimed_at``), evaluates, and deletes those whose ``version``
no ingest has bumped since.

A partner may read one column, ``customer_id``, of the rows of the customers it sees (the
policy of migration 0024's customer tables): a subscription filtered by segment waits until the
customers of the events it is about to judge are evaluated (``hub.audiences.queue.evaluated``).

Revision ID: 0025
Revises: 0024

"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, UUID

from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None

ROLE = "hub_partner"
VIEW = "hub_partner_customers"  # migration 0024


def upgrade() -> None:
    op.create_table(
        "audience_queue",
        sa.Column("customer_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created", sa.Boolean(), nullable=False),
        sa.Column("everything", sa.Boolean(), nullable=False),
        sa.Column("touched", JSONB(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False, server_default="1"),
        sa.Column("claim", UUID(as_uuid=True), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_audience_queue_queued", "audience_queue", ["queued_at"])
    op.execute("ALTER TABLE audience_queue ENABLE ROW LEVEL SECURITY")
    op.execute(f"GRANT SELECT (customer_id) ON audience_queue TO {ROLE}")
    op.execute(
        f"CREATE POLICY partner_scope ON audience_queue FOR SELECT TO {ROLE} USING (EXISTS"
        f" (SELECT FROM {VIEW} v WHERE v.customer_id = audience_queue.customer_id))"
    )


def downgrade() -> None:
    # Queued customers would lose their evaluation: drain first (`hub audiences drain`, with the
    # hub stopped); the downgrade refuses while the queue holds rows.
    op.execute(
        "DO $$ BEGIN IF EXISTS (SELECT FROM audience_queue) THEN RAISE EXCEPTION"
        " 'audience_queue is not empty: run hub audiences drain first'; END IF; END $$"
    )
    op.drop_table("audience_queue")
