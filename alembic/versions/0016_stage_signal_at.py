"""customers.stage_signal_at: the time of the newest interaction that signalled a stage

The journey engine ignored an interaction that happened before the customer *entered* the current
stage. A same-stage signal (the same stage confirmed later, or a LOOPING move to another channel)
does not change ``stage_entered_at``, so a delayed older signal that arrived after it, but still
happened after the stage was entered, moved the stage backward: the stage followed arrival order.
The engine now compares an interaction with the newest signal it has seen (this column), so the
stage is decided by occurrence time.

Back-fill: the newest interaction of each customer that a stage rule (of its channel, or a general
one) maps to a stage, never earlier than ``stage_entered_at`` (a manual stage change has no
interaction). A customer with no stage keeps NULL.

Revision ID: 0016
Revises: 0013

"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

BACKFILL = """
UPDATE customers c
SET stage_signal_at = greatest(c.stage_entered_at, s.at)
FROM (
    SELECT c2.id, (
        SELECT max(i.occurred_at) FROM interactions i
        WHERE i.customer_id = c2.id AND EXISTS (
            SELECT 1 FROM stage_rules r
            WHERE r.interaction_type = i.type
              AND (r.channel_code = i.channel_code OR r.channel_code IS NULL)
        )
    ) AS at
    FROM customers c2 WHERE c2.current_stage IS NOT NULL
) AS s
WHERE c.id = s.id
"""


def upgrade() -> None:
    op.add_column(
        "customers", sa.Column("stage_signal_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.execute(BACKFILL)


def downgrade() -> None:
    op.drop_column("customers", "stage_signal_at")
