"""What the two ways of writing the history share, on the standard library alone.

A recorded scan's writer process takes the light way (lite.py: sqlite3 and json) when the
database is a SQLite file already at the newest schema, and the full way (database.py and
store.py: SQLAlchemy, Alembic, the pydantic models) otherwise. Both must store the same
values, so what they have in common is defined once, here, where the light side can import
it without loading SQLAlchemy or pydantic: the constants, where the default database lives,
the test that a database needs no migration, and the value conversions that do not need the
models (times, vantage, scope key, seed). The SQLite connection set-up both share is in
lite.py, as it needs sqlite3, which the scan process (models.py imports this) does not load.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from typing import Any

from scanner.errors import StoreError

SCHEMA_VERSION = "1.0"
"""The version of the scan's JSON document (models.py), stored with every scan."""

TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
"""Times as the scan's JSON writes them."""

NO_VANTAGE = ""
"""The `vantage` column of a local scan's rows: the column is part of the primary keys, which
PostgreSQL keeps NOT NULL, and a vantage name is never empty."""

VERSION_TABLE = "ghostport_schema_version"
"""The table Alembic keeps its revision in; named so that a PostgreSQL database shared with
another Alembic-managed application does not mix the two histories."""

HEAD_REVISION = "0003"
"""The newest revision in `migrations/versions/`, known without Alembic so that opening a
database that is already current needs no Alembic import. Bump it with every new migration
(a test compares it with Alembic's head)."""

AT_HEAD_QUERY = f"SELECT version_num FROM {VERSION_TABLE}"
"""The one query that tells whether a database needs a migration (see `is_head`)."""

BUSY_TIMEOUT_MS = 30_000
"""How long a SQLite writer waits for another one's lock before it fails."""

ENV_DB = "GHOSTPORT_DB"
"""Environment variable naming the database when no URL is given."""

SQLITE_DRIVERS = frozenset({"sqlite", "sqlite+pysqlite"})
"""The URL schemes of a SQLite database."""

_INT64 = 2**63


def is_head(revisions: list[str]) -> bool:
    """Whether the version table's rows (from AT_HEAD_QUERY) say the schema is the newest:
    the one place that decides, without Alembic, that no migration is needed."""
    return revisions == [HEAD_REVISION]


def default_url() -> str:
    """$GHOSTPORT_DB, else SQLite in the user's data directory ($XDG_DATA_HOME/ghostport)."""
    configured = os.environ.get(ENV_DB, "").strip()
    if configured:
        return configured
    return f"sqlite:///{default_path()}"


def default_path() -> str:
    """The SQLite file used when neither a URL nor $GHOSTPORT_DB names one:
    $XDG_DATA_HOME/ghostport/scans.db, else ~/.local/share/ghostport/scans.db."""
    data_home = os.environ.get("XDG_DATA_HOME", "")
    if os.path.isabs(data_home):
        return _pure_path(data_home, "ghostport", "scans.db")
    return _pure_path(os.path.expanduser("~"), ".local", "share", "ghostport", "scans.db")


def _pure_path(*parts: str) -> str:
    """The path pathlib.PurePosixPath(*parts) writes (without the import, which costs the
    light writer more than all its own work): no empty or '.' components, and a root of one
    slash, or two where the path starts with exactly two."""
    first = parts[0]
    root = "/" if first.startswith("/") else ""
    if first.startswith("//") and not first.startswith("///"):
        root = "//"
    names = [name for part in parts for name in part.split("/") if name not in ("", ".")]
    return root + "/".join(names)


def stored_vantage(vantage: str | None) -> str:
    """A vantage as the `vantage` column holds it: NO_VANTAGE for none (a local scan)."""
    return NO_VANTAGE if vantage is None else vantage


def stored_seed(seed: int) -> int | None:
    """A scan's seed as the `seed` column (BIGINT) holds it: None outside 64 bits."""
    return seed if -_INT64 <= seed < _INT64 else None


def scope_key(scope: dict[str, Any]) -> str:
    """The `scope_key` column: the sha256 of a scope ({"targets", "excludes", "ports"})."""
    import hashlib  # noqa: PLC0415 - after the writer's `ready`, once per scan

    text = json.dumps(scope, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def utc_now() -> str:
    """The current UTC time as scan documents write times (2026-11-21T11:22:28.123456Z)."""
    return datetime.now(UTC).strftime(TIME_FORMAT)


def utc_naive(moment: datetime) -> datetime:
    """A time as the tables hold it: UTC without a zone."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def parse_time(scan_id: str, text: str) -> datetime:
    """A scan's ISO 8601 time as the tables hold it; StoreError when it is not one."""
    try:
        return utc_naive(datetime.fromisoformat(text))
    except ValueError:
        raise StoreError(f"scan {scan_id!r}: time {text!r} is not in ISO 8601 form") from None


def first_line(error: BaseException | None) -> str:
    """The first line of an error's message (its type name when it has none), for messages."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
