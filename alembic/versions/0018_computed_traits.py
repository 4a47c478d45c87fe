"""computed traits: definitions and per-customer values (issue #18, docs/audiences.md)

``computed_traits`` holds the definitions (ADMIN-written, listed for ADMIN and ANALYST
keys; ``hub_partner`` reads only those in its scope). ``customer_traits_computed`` holds one row
per customer and trait with at least one matching interaction: the value as JSON, the number
when it is one (for filtering and ordering), and the next instant at which time alone can
change it (the sweeper).

Row security as the other customer tables (migration 0013): a partner sees a customer's value
when it sees the customer AND the trait counts only interactions in its scope (the trait's
filter names only channels, or only touchpoints, of the partner's scope): a value aggregated
over other channels would tell what the partner may not see.

Revision ID: 0018
Revises: 0017

"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, UUID

from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

ROLE = "hub_partner"
NOW = sa.text("now()")

TRAIT_VISIBLE = """
    CREATE FUNCTION @.hub_trait_in_scope(trait text) RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER AS $$
        SELECT EXISTS (
            SELECT FROM @.computed_traits t
            WHERE t.key = trait AND (
                (jsonb_typeof(t.filter -> 'channels') = 'array'
                 AND ARRAY(SELECT jsonb_array_elements_text(t.filter -> 'channels'))
                     <@ @.hub_scope_channels())
                OR (jsonb_typeof(t.filter -> 'touchpointIds') = 'array'
                    AND ARRAY(SELECT jsonb_array_elements_text(t.filter -> 'touchpointIds'))::uuid[]
                        <@ @.hub_scope_touchpoints())))
    $$
"""


def upgrade() -> None:
    op.create_table(
        "computed_traits",
        sa.Column("key", sa.Text(), primary_key=True),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("aggregate", sa.Text(), nullable=False),
        sa.Column("filter", JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("attribute", sa.Text(), nullable=True),
        sa.Column("within_days", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    )
    op.create_table(
        "customer_traits_computed",
        sa.Column(
            "customer_id",
            UUID(as_uuid=True),
            sa.ForeignKey("customers.id"),
            primary_key=True,
        ),
        sa.Column(
            "trait_key",
            sa.Text(),
            sa.ForeignKey("computed_traits.key", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("value", JSONB(), nullable=True),
        sa.Column("number", sa.Float(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("next_change_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index(
        "ix_customer_traits_computed_key_number",
        "customer_traits_computed",
        ["trait_key", "number"],
    )
    op.create_index(
        "ix_customer_traits_computed_due",
        "customer_traits_computed",
        ["next_change_at"],
        postgresql_where=sa.text("next_change_at IS NOT NULL"),
    )
    schema = op.get_bind().exec_driver_sql("SELECT quote_ident(current_schema())").scalar()
    op.execute(TRAIT_VISIBLE.replace("@.", f"{schema}."))
    op.execute(f"GRANT SELECT ON customer_traits_computed TO {ROLE}")
    op.execute("ALTER TABLE customer_traits_computed ENABLE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY partner_scope ON customer_traits_computed FOR SELECT TO {ROLE}"
        " USING (hub_customer_visible(customer_id) AND hub_trait_in_scope(trait_key))"
    )
    # A partner reads the definitions of the traits in its scope only (to read their values;
    # the `computedTraits` list itself is for ADMIN and ANALYST keys).
    op.execute(f"GRANT SELECT ON computed_traits TO {ROLE}")
    op.execute("ALTER TABLE computed_traits ENABLE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY partner_scope ON computed_traits FOR SELECT TO {ROLE}"
        " USING (hub_trait_in_scope(key))"
    )


def downgrade() -> None:
    op.execute("DROP POLICY partner_scope ON customer_traits_computed")
    op.execute(f"REVOKE SELECT ON customer_traits_computed FROM {ROLE}")
    op.execute("DROP POLICY partner_scope ON computed_traits")
    op.execute(f"REVOKE SELECT ON computed_traits FROM {ROLE}")
    op.drop_table("customer_traits_computed")
    op.execute("DROP FUNCTION hub_trait_in_scope(text)")
    op.drop_table("computed_traits")
