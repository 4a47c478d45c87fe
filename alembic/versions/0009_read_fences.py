"""read fences: the primary's WAL position after each caller's last write

With a read replica (``HUB_READ_DATABASE_URL``), a caller's queries go to the primary until the
replica has replayed past its last write (hub/replica.py). The position is kept here, on the
primary, so that every process and worker sees it. UNLOGGED: it is written after every mutation
and needs no WAL (it is not replicated, and after a crash it starts empty — which only matters
for writes made just before the crash).

Revision ID: 0009
Revises: 0008

"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE UNLOGGED TABLE read_fences (
            principal text PRIMARY KEY,
            lsn pg_lsn NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        "COMMENT ON TABLE read_fences IS 'Per caller: the primary WAL position after its last"
        " write; its reads avoid a replica that has not replayed that far (hub/replica.py).'"
    )


def downgrade() -> None:
    op.drop_table("read_fences")
