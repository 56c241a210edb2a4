"""The tables of the scan history, as the newest migration leaves them.

The migrations in `migrations/versions/` create these tables step by step and never import
this module (a migration is a fixed point in the past); a test checks that the two agree.
Every model is stored whole as JSON (`model_dump(mode="json")`), so a document round-trips
exactly; the plain columns beside the JSON are copies for listing, joining and filtering.
"""

from __future__ import annotations

import sqlalchemy as sa

from scanner.store.common import HEAD_REVISION as HEAD_REVISION  # noqa: PLC0414
from scanner.store.common import NO_VANTAGE
from scanner.store.common import VERSION_TABLE as VERSION_TABLE  # noqa: PLC0414

# VERSION_TABLE and HEAD_REVISION (above) are shared with the light writer (lite.py), which
# must not import SQLAlchemy: defined in common.py (bump HEAD_REVISION there with every new
# migration) and re-exported from here.

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING)

# JSON that maps Python None to SQL NULL (rather than the JSON text 'null').
_JSON_OR_NULL = sa.JSON(none_as_null=True)

scans = sa.Table(
    "scans",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("started_at", sa.DateTime(), nullable=False),  # UTC, naive
    sa.Column("finished_at", sa.DateTime(), nullable=True),
    sa.Column("complete", sa.Boolean(), nullable=False),
    sa.Column("scope_key", sa.String(64), nullable=False),  # sha256 of `scope`
    sa.Column("scope", sa.JSON(), nullable=False),  # {"targets", "excludes", "ports"}, sorted
    sa.Column("targets", sa.JSON(), nullable=False),
    sa.Column("profiles", sa.JSON(), nullable=False),
    sa.Column("seed", sa.BigInteger(), nullable=True),  # null when outside 64 bits
    sa.Column("options", sa.JSON(), nullable=False),
    sa.Column("info", sa.JSON(), nullable=False),  # ScanInfo
    sa.Column("unresolved", sa.JSON(), nullable=False),  # [UnresolvedTargetResult]
    sa.Column("local", _JSON_OR_NULL, nullable=True),  # LocalAudit
    sa.Column("summary", _JSON_OR_NULL, nullable=True),  # ScanSummary, latest known
    sa.Column("schema_version", sa.String(16), nullable=False),
    sa.Index(None, "scope_key", "started_at"),
    sa.Index(None, "started_at"),
)

results = sa.Table(
    "results",
    metadata,
    sa.Column(
        "scan_id", sa.String(36), sa.ForeignKey("scans.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("proto", sa.String(8), nullable=False),
    sa.Column("port", sa.Integer(), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("reason", sa.String(32), nullable=False),
    sa.Column("service", sa.String(255), nullable=True),  # profile id, else protocol
    sa.Column("verdict", sa.String(16), nullable=True),
    sa.Column("data", sa.JSON(), nullable=False),  # PortResult
    # Last: migration 0003 added it. '' (NO_VANTAGE) for a local scan, as a primary-key
    # column cannot be NULL in PostgreSQL.
    sa.Column("vantage", sa.String(255), nullable=False, server_default=NO_VANTAGE),
    # One row per port, vantage point and scan: a re-run or a resume overwrites, never
    # duplicates; two vantages that see one address keep a row each.
    sa.PrimaryKeyConstraint("scan_id", "vantage", "host", "proto", "port"),
    sa.Index(None, "host", "port", "proto"),
)

findings = sa.Table(
    "findings",
    metadata,
    sa.Column(
        "scan_id", sa.String(36), sa.ForeignKey("scans.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("proto", sa.String(8), nullable=False),
    sa.Column("port", sa.Integer(), nullable=False),
    sa.Column("key", sa.String(), nullable=False),  # service_id, else "title:" + title
    sa.Column("service_id", sa.String(255), nullable=True),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("verdict", sa.String(16), nullable=False),
    sa.Column("data", sa.JSON(), nullable=False),  # Finding
    sa.Column("vantage", sa.String(255), nullable=False, server_default=NO_VANTAGE),
    sa.PrimaryKeyConstraint("scan_id", "vantage", "host", "proto", "port", "key"),
)

progress = sa.Table(
    "progress",
    metadata,
    sa.Column(
        "scan_id",
        sa.String(36),
        sa.ForeignKey("scans.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("checkpoint", _JSON_OR_NULL, nullable=True),  # opaque to the store
    sa.Column("probes_done", sa.BigInteger(), nullable=False),
    sa.Column("updated_at", sa.DateTime(), nullable=False),
)
