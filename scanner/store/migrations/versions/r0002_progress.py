"""Resume checkpoints (progress), and the indexes behind timelines and previous-scan lookups.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Add the progress table and three indexes; existing rows are kept."""
    op.create_table(
        "progress",
        sa.Column("scan_id", sa.String(36), nullable=False),
        sa.Column("checkpoint", sa.JSON(), nullable=True),
        sa.Column("probes_done", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["scan_id"], ["scans.id"], name="fk_progress_scan_id", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("scan_id", name="pk_progress"),
    )
    op.create_index("ix_results_host_port_proto", "results", ["host", "port", "proto"])
    op.create_index("ix_scans_scope_key_started_at", "scans", ["scope_key", "started_at"])
    op.create_index("ix_scans_started_at", "scans", ["started_at"])


def downgrade() -> None:
    """Remove what upgrade added."""
    op.drop_index("ix_scans_started_at", table_name="scans")
    op.drop_index("ix_scans_scope_key_started_at", table_name="scans")
    op.drop_index("ix_results_host_port_proto", table_name="results")
    op.drop_table("progress")
