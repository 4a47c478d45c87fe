"""tracking sources: event-name mappings, unmapped-event counters, the rejection log

The Segment-compatible tracking API (docs/sources.md) maps a ``track`` event's name to an
interaction type through ``source_event_mappings`` (seeded with Segment's e-commerce and e-mail
spec events, ``hub.sources.mapping.DEFAULT_EVENT_MAPPINGS``); names without a row are stored
as ``TRACKED_EVENT`` and counted in ``source_unmapped_events``; messages that cannot be stored
are logged in ``source_rejections`` (code and reason, never the message's content). Also the
stage rule of the new ``SCREEN_VIEW`` type (AWARENESS, as ``PAGE_VIEW``).

Revision ID: 0017
Revises: 0013

"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import UUID

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

NOW = sa.text("now()")

# A copy, not an import: a migration keeps the data it was written with.
MAPPINGS = [
    ("Products Searched", "SEARCH", "INBOUND"),
    ("Product List Viewed", "PRODUCT_VIEW", "INBOUND"),
    ("Product List Filtered", "SEARCH", "INBOUND"),
    ("Promotion Viewed", "PAGE_VIEW", "INBOUND"),
    ("Promotion Clicked", "AD_CLICK", "INBOUND"),
    ("Product Clicked", "PRODUCT_VIEW", "INBOUND"),
    ("Product Viewed", "PRODUCT_VIEW", "INBOUND"),
    ("Product Added", "PRODUCT_VIEW", "INBOUND"),
    ("Product Removed", "PRODUCT_VIEW", "INBOUND"),
    ("Cart Viewed", "PRODUCT_VIEW", "INBOUND"),
    ("Checkout Started", "PRODUCT_VIEW", "INBOUND"),
    ("Checkout Step Viewed", "PAGE_VIEW", "INBOUND"),
    ("Checkout Step Completed", "PAGE_VIEW", "INBOUND"),
    ("Payment Info Entered", "PAGE_VIEW", "INBOUND"),
    ("Order Completed", "ORDER", "INBOUND"),
    ("Order Updated", "ORDER", "INBOUND"),
    ("Order Refunded", "RETURN", "INBOUND"),
    ("Order Cancelled", "RETURN", "INBOUND"),
    ("Coupon Entered", "PAGE_VIEW", "INBOUND"),
    ("Coupon Applied", "PAGE_VIEW", "INBOUND"),
    ("Product Added to Wishlist", "PRODUCT_VIEW", "INBOUND"),
    ("Product Shared", "SOCIAL_ENGAGEMENT", "INBOUND"),
    ("Cart Shared", "SOCIAL_ENGAGEMENT", "INBOUND"),
    ("Product Reviewed", "SURVEY_RESPONSE", "INBOUND"),
    ("Email Delivered", "CAMPAIGN_SENT", "OUTBOUND"),
    ("Email Opened", "CAMPAIGN_OPENED", "INBOUND"),
    ("Email Link Clicked", "CAMPAIGN_CLICKED", "INBOUND"),
]


def upgrade() -> None:
    mappings = op.create_table(
        "source_event_mappings",
        sa.Column("event", sa.Text(), primary_key=True),
        sa.Column("interaction_type", sa.Text(), nullable=False),
        sa.Column("direction", sa.Text(), nullable=False, server_default="INBOUND"),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.Column("updated_by", sa.Text(), nullable=True),
    )
    op.bulk_insert(
        mappings,
        [
            {"event": e, "interaction_type": t, "direction": d, "updated_by": "migration 0017"}
            for e, t, d in MAPPINGS
        ],
    )
    op.create_table(
        "source_unmapped_events",
        sa.Column("event", sa.Text(), primary_key=True),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
    )
    op.create_table(
        "source_rejections",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.Column("key_id", sa.BigInteger(), nullable=True),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("touchpoint_id", UUID(as_uuid=True), nullable=True),
        sa.Column("message_id", sa.Text(), nullable=True),
        sa.Column("message_type", sa.Text(), nullable=True),
        sa.Column("event", sa.Text(), nullable=True),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
    )
    op.create_index(
        "ix_source_rejections_at", "source_rejections", [sa.text("at DESC"), sa.text("id DESC")]
    )
    op.execute(
        "INSERT INTO stage_rules (interaction_type, channel_code, stage)"
        " VALUES ('SCREEN_VIEW', NULL, 'AWARENESS') ON CONFLICT DO NOTHING"
    )


def downgrade() -> None:
    op.execute("DELETE FROM stage_rules WHERE interaction_type = 'SCREEN_VIEW'")
    op.drop_index("ix_source_rejections_at", table_name="source_rejections")
    op.drop_table("source_rejections")
    op.drop_table("source_unmapped_events")
    op.drop_table("source_event_mappings")
