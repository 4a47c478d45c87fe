"""Derived rows without a foreign key to customers (issue #18, ingest cost)

``segment_members``, ``segment_checks`` and ``customer_traits_computed`` are written by the
membership and trait statements for every customer an ingest touches: ~8 rows per new customer
with 20 segments and 10 traits. Each row's foreign key to ``customers`` cost an index lookup
and a key-share lock of the customer row, which the writing transaction already holds locked
(ingest, merges and the sweep lock their customers first): measured, 11 % of PostgreSQL's
shared blocks per ingested event with those definitions (a batch of 1,000 new customers 300k →
267k blocks, a single event 341 → 303). The key guarded nothing: customers are never deleted
(merges and erasure keep the row), and every writer takes the ids from customer rows in the
same statement. The foreign keys to ``segments`` and ``computed_traits`` stay: their cascades
delete a definition's rows.

Revision ID: 0022
Revises: 0021

"""

from __future__ import annotations

from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

DERIVED = ("segment_members", "segment_checks", "customer_traits_computed")


def upgrade() -> None:
    for table in DERIVED:
        op.drop_constraint(f"{table}_customer_id_fkey", table, type_="foreignkey")


def downgrade() -> None:
    for table in DERIVED:
        op.create_foreign_key(
            f"{table}_customer_id_fkey", table, "customers", ["customer_id"], ["id"]
        )
