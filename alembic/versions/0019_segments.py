"""segments: definitions, materialised membership, time-driven re-checks (issue #18)

- ``segments``: ADMIN-written definitions (``definition`` holds the filter, activity and
  computed conditions as given, with enum names and ids as stored values); ``revision`` is drawn
  from one sequence on every create and update, so per-process caches of the compiled statement
  notice, and never take a segment deleted and created again under its key for the old one.
- ``segment_members``: who is in which segment now, and since when. Customer data: row security
  as the other customer tables (a PARTNER sees a member row when it sees the customer).
- ``segment_checks``: per segment and customer (member or not), the next instant at which the
  membership can change because time passes (a window's oldest interaction leaves it). The
  sweeper (``hub.audiences.membership.sweep``) re-evaluates due rows. Never granted to partners.
- the outbox's partner policy also lets a partner read SEGMENT_MEMBERSHIP_CHANGED events (they
  are on no channel) when it sees their customer.

Revision ID: 0019
Revises: 0017

"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, UUID

from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

ROLE = "hub_partner"
NOW = sa.text("now()")

EVENTS_RULE = "hub_customer_visible(customer_id) AND hub_in_scope(channel_code, touchpoint_id)"
EVENTS_RULE_WITH_SEGMENTS = (
    "hub_customer_visible(customer_id) AND (hub_in_scope(channel_code, touchpoint_id)"
    " OR kind = 'SEGMENT_MEMBERSHIP_CHANGED')"
)


def upgrade() -> None:
    # Not owned by the column: a TRUNCATE ... RESTART IDENTITY (the tests' reset) must not
    # start it again, or a cached statement could be taken for a new segment's.
    op.execute("CREATE SEQUENCE segment_revisions")
    op.create_table(
        "segments",
        sa.Column("key", sa.Text(), primary_key=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False, server_default=""),
        sa.Column("definition", JSONB(), nullable=False),
        sa.Column(
            "revision",
            sa.BigInteger(),
            nullable=False,
            server_default=sa.text("nextval('segment_revisions')"),
        ),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    )
    op.create_table(
        "segment_members",
        sa.Column(
            "segment_key",
            sa.Text(),
            sa.ForeignKey("segments.key", ondelete="CASCADE", onupdate="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "customer_id", UUID(as_uuid=True), sa.ForeignKey("customers.id"), primary_key=True
        ),
        sa.Column("entered_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_segment_members_customer", "segment_members", ["customer_id"])
    op.create_table(
        "segment_checks",
        sa.Column(
            "segment_key",
            sa.Text(),
            sa.ForeignKey("segments.key", ondelete="CASCADE", onupdate="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "customer_id", UUID(as_uuid=True), sa.ForeignKey("customers.id"), primary_key=True
        ),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_segment_checks_due", "segment_checks", ["due_at"])
    op.create_index("ix_segment_checks_customer", "segment_checks", ["customer_id"])
    op.execute(f"GRANT SELECT ON segments TO {ROLE}")
    op.execute(f"GRANT SELECT ON segment_members TO {ROLE}")
    op.execute("ALTER TABLE segment_members ENABLE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY partner_scope ON segment_members FOR SELECT TO {ROLE}"
        " USING (hub_customer_visible(customer_id))"
    )
    op.execute("ALTER TABLE segment_checks ENABLE ROW LEVEL SECURITY")
    op.execute("DROP POLICY partner_scope ON events")
    op.execute(
        f"CREATE POLICY partner_scope ON events FOR SELECT TO {ROLE}"
        f" USING ({EVENTS_RULE_WITH_SEGMENTS})"
    )


def downgrade() -> None:
    op.execute("DROP POLICY partner_scope ON events")
    op.execute(f"CREATE POLICY partner_scope ON events FOR SELECT TO {ROLE} USING ({EVENTS_RULE})")
    op.execute(f"REVOKE SELECT ON segment_members FROM {ROLE}")
    op.execute(f"REVOKE SELECT ON segments FROM {ROLE}")
    op.drop_table("segment_checks")
    op.drop_table("segment_members")
    op.drop_table("segments")
    op.execute("DROP SEQUENCE segment_revisions")
