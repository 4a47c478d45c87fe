"""trusted documents: registered GraphQL documents called by id, and the per-key setting

``trusted_documents`` holds the documents an ADMIN registered (``hub documents add``,
``registerTrustedDocuments``): by id (the SHA-256 hex of the text, or a manifest's own id), the
text and its operations. ``api_keys.documents`` says which documents a key may run:
``REGISTERED_ONLY``, ``ANY``, or NULL for its role's default under ``HUB_ENV``
(docs/trusted-documents.md).

Revision ID: 0015
Revises: 0013

"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "trusted_documents",
        sa.Column("id", sa.String(), primary_key=True),
        sa.Column("document", sa.String(), nullable=False),
        sa.Column(
            "operations", ARRAY(sa.Text()), nullable=False, server_default=sa.text("'{}'::text[]")
        ),
        sa.Column("created_by", sa.String(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("now()"),
        ),
    )
    op.add_column("api_keys", sa.Column("documents", sa.String(), nullable=True))
    op.create_check_constraint(
        "ck_api_keys_documents", "api_keys", "documents IN ('REGISTERED_ONLY', 'ANY')"
    )


def downgrade() -> None:
    op.drop_constraint("ck_api_keys_documents", "api_keys")
    op.drop_column("api_keys", "documents")
    op.drop_table("trusted_documents")
