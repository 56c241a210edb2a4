"""The scan history: every scan, result, finding and resume checkpoint in one database.

`open_store(url)` opens SQLite or PostgreSQL through SQLAlchemy Core and first brings the
schema to the newest Alembic revision (`migrations/`), so a database written by an older
ghostport is upgraded on open. A database already at `schema.HEAD_REVISION` (every open but
the first after an upgrade) is recognised with one plain query, without importing Alembic.
Writes are one transaction each: a batch of results, its findings and the checkpoint that
covers them land together or not at all, so a crash loses at most the batch in flight and
never leaves a checkpoint ahead of its results.

SQLite runs in WAL mode with a busy timeout, and every write transaction starts with
`BEGIN IMMEDIATE` (it takes the write lock up front, so two processes writing at once queue
on the busy timeout instead of failing with "database is locked" when a read turns into a
write). PostgreSQL serialises concurrent migrations with an advisory lock.

This module opens the database (URL, engine, SQLite set-up, migrations); `Store` lives in
store.py (writes) over queries.py (reads), and records.py holds the row values. Everything
callers import from here before the split still is, re-exported below.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Connection, Engine

from scanner.errors import StoreUnavailableError, StoreURLError
from scanner.store import schema
from scanner.store.common import (
    AT_HEAD_QUERY,
    BUSY_TIMEOUT_MS,
    ENV_DB,
    SQLITE_DRIVERS,
    default_path,
    default_url,
    first_line,
    is_head,
    utc_now,
)
from scanner.store.lite import configure_sqlite
from scanner.store.records import (
    WRITE_OPTION,
    ScanProgress,
    ScanRow,
    TimelineRow,
    finding_key,
    finding_sort_key,
    result_sort_key,
)
from scanner.store.store import Store

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = [
    "ENV_DB",
    "MIGRATIONS",
    "ScanProgress",
    "ScanRow",
    "Store",
    "TimelineRow",
    "alembic_config",
    "current_revision",
    "default_url",
    "finding_key",
    "finding_sort_key",
    "head_revision",
    "make_engine",
    "migrate",
    "open_store",
    "parse_url",
    "result_sort_key",
    "utc_now",
]

MIGRATIONS = Path(__file__).resolve().parent / "migrations"

_PG_CONNECT_TIMEOUT_S = 10
_PG_MIGRATION_LOCK = 0x67686F7374  # "ghost": one migrating process at a time
_PG_DRIVERS = {"postgresql+psycopg", "postgresql+psycopg2"}


def open_store(url: str | None = None) -> Store:
    """Open (creating if needed) the scan history and migrate it to the newest schema.

    None means $GHOSTPORT_DB, else `sqlite:///$XDG_DATA_HOME/ghostport/scans.db`.
    `postgresql://` and `postgres://` URLs use the psycopg (3) driver.
    """
    if url is None and not os.environ.get(ENV_DB, "").strip():
        path = Path(default_path())
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreUnavailableError(
                f"the history directory {str(path.parent)!r} cannot be created: {exc.strerror}"
            ) from None
    engine = make_engine(default_url() if url is None else url)
    store = Store(engine)
    try:
        migrate(engine)
    except BaseException:
        engine.dispose()
        raise
    return store


def parse_url(text: str) -> URL:
    """A database URL as SQLAlchemy reads it, with `postgresql://` mapped to psycopg 3."""
    try:
        url = sa.make_url(text.strip())
    except sa_exc.ArgumentError:
        raise StoreURLError(
            f"database URL {_redact(text)!r} is not a URL; use sqlite:///PATH or "
            "postgresql://USER@HOST/DATABASE"
        ) from None
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    if url.drivername not in SQLITE_DRIVERS | _PG_DRIVERS:
        raise StoreURLError(
            f"database URL {url.render_as_string(hide_password=True)!r}: ghostport stores "
            "scans in SQLite (sqlite:///PATH) or PostgreSQL (postgresql://...) only"
        )
    return url


def make_engine(text: str) -> Engine:
    """An engine set up as the store uses it (SQLite pragmas, PostgreSQL timeouts); the
    schema is not touched (see `migrate`)."""
    url = parse_url(text)
    display = url.render_as_string(hide_password=True)
    try:
        if url.get_backend_name() == "sqlite":
            engine = sa.create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})
            _configure_sqlite(engine)
            return engine
        connect_args: dict[str, Any] = {}
        if "connect_timeout" not in url.query:
            connect_args["connect_timeout"] = _PG_CONNECT_TIMEOUT_S
        return sa.create_engine(url, connect_args=connect_args, pool_pre_ping=True)
    except (ImportError, sa_exc.NoSuchModuleError):
        raise StoreURLError(
            f"database {display!r} needs the PostgreSQL driver: "
            "pip install 'ghostport-scanner[postgres]'"
        ) from None
    except sa_exc.ArgumentError as exc:
        raise StoreURLError(f"database URL {display!r}: {first_line(exc)}") from None


def alembic_config() -> Config:
    """Alembic's configuration for the migrations inside the package (no alembic.ini)."""
    from alembic.config import Config  # noqa: PLC0415 - Alembic only when migrating

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str:
    """The newest schema revision in `migrations/`, as Alembic reads it (schema.HEAD_REVISION
    is the same, known without Alembic; a test checks that the two agree)."""
    from alembic.script import ScriptDirectory  # noqa: PLC0415

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(connection: Connection) -> str | None:
    """The schema revision a database is at (None: empty)."""
    from alembic.runtime.migration import MigrationContext  # noqa: PLC0415

    context = MigrationContext.configure(connection, opts={"version_table": schema.VERSION_TABLE})
    return context.get_current_revision()


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to `revision`, holding the write lock so racing processes queue.

    A database already at the newest revision (every open but the first after an upgrade of
    ghostport) is recognised with one plain query, without importing Alembic, whose import
    and script directory would cost a recorded scan more than its writes do.
    """
    display = engine.url.render_as_string(hide_password=True)
    try:
        with engine.connect() as connection:
            if revision == "head" and _at_head(connection):
                return
            _upgrade(connection, revision, display)
    except sa_exc.DBAPIError as exc:
        raise StoreUnavailableError(
            f"database {display!r} cannot be opened: {first_line(exc.orig)}"
        ) from exc


def _at_head(connection: Connection) -> bool:
    """Whether the database is at schema.HEAD_REVISION (common.is_head decides)."""
    query = sa.text(AT_HEAD_QUERY)
    try:
        with connection.begin():
            found = connection.execute(query).scalars().all()
    except (sa_exc.OperationalError, sa_exc.ProgrammingError):
        # No version table (a new database), or it cannot be read: Alembic's path decides,
        # and reports what is wrong.
        return False
    return is_head(list(found))


def _upgrade(connection: Connection, revision: str, display: str) -> None:
    """Alembic's upgrade to `revision` in one write transaction (PostgreSQL: under an
    advisory lock, so that racing processes migrate one after the other)."""
    from alembic import command  # noqa: PLC0415 - Alembic only when migrating
    from alembic.util.exc import CommandError  # noqa: PLC0415

    with connection.begin():
        at = current_revision(connection)
    head = head_revision()
    if revision == "head" and at == head:
        return
    connection.execution_options(**{WRITE_OPTION: True})
    try:
        with connection.begin():
            if connection.dialect.name == "postgresql":
                connection.execute(
                    sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK}
                )
            config = alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    except CommandError:
        raise StoreUnavailableError(
            f"database {display!r} has schema revision {at!r}, newer than this ghostport "
            f"knows ({head}); upgrade ghostport"
        ) from None


def _configure_sqlite(engine: Engine) -> None:
    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        configure_sqlite(dbapi_connection)  # `_on_begin` then issues BEGIN itself

    @sa.event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        writing = connection.get_execution_options().get(WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if writing else "BEGIN")


def _redact(text: str) -> str:
    """A URL that did not parse, with anything that may be a password masked: whatever
    follows the user name up to the last '@'."""
    text = text.strip()
    userinfo, at, rest = text.rpartition("@")
    if not at:
        return text
    scheme, separator, credentials = userinfo.rpartition("://")
    user, colon, _ = credentials.partition(":")
    if not colon:
        return text
    return f"{scheme}{separator}{user}:***@{rest}"
