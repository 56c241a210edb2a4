"""The vantage point of each result and finding, as part of their keys.

A distributed scan sees the same address from several vantage points (one segment each), so
results and findings are keyed by (scan_id, vantage, host, proto, port[, key]). Primary-key
columns cannot be NULL in PostgreSQL: a local scan stores '' (vantage names are never
empty), and existing rows get ''. Batch mode, so SQLite (which cannot alter a primary key)
rebuilds the two tables with their rows.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

_KEYS = {
    "results": ["scan_id", "host", "proto", "port"],
    "findings": ["scan_id", "host", "proto", "port", "key"],
}


def upgrade() -> None:
    """Add `vantage` ('' for every existing row) to both tables and to their primary keys."""
    for table, key in _KEYS.items():
        with op.batch_alter_table(table) as batch:
            batch.add_column(
                sa.Column("vantage", sa.String(255), nullable=False, server_default="")
            )
            batch.drop_constraint(f"pk_{table}", type_="primary")
            batch.create_primary_key(f"pk_{table}", [key[0], "vantage", *key[1:]])


def downgrade() -> None:
    """Drop `vantage` again. Where several vantages saw one port, the old key holds one row:
    the row of the first vantage (by name, a local scan's '' first) is kept, the others are
    deleted."""
    for table, key in _KEYS.items():
        rows = sa.table(table, *(sa.column(c) for c in [*key, "vantage"]))
        other = rows.alias("other")
        op.execute(
            rows.delete().where(
                sa.exists().where(
                    *(other.c[c] == rows.c[c] for c in key),
                    other.c.vantage < rows.c.vantage,
                )
            )
        )
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(f"pk_{table}", type_="primary")
            batch.create_primary_key(f"pk_{table}", key)
            batch.drop_column("vantage")
