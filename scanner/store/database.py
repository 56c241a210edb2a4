"""The scan history: every scan, result, finding and resume checkpoint in one database.

`open_store(url)` opens SQLite or PostgreSQL through SQLAlchemy Core and first brings the
schema to the newest Alembic revision (`migrations/`), so a database written by an older
ghostport is upgraded on open. Writes are one transaction each: a batch of results, its
findings and the checkpoint that covers them land together or not at all, so a crash loses
at most the batch in flight and never leaves a checkpoint ahead of its results.

SQLite runs in WAL mode with a busy timeout, and every write transaction starts with
`BEGIN IMMEDIATE` (it takes the write lock up front, so two processes writing at once queue
on the busy timeout instead of failing with "database is locked" when a read turns into a
write). PostgreSQL serialises concurrent migrations with an advisory lock.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import URL, Connection, Engine

from scanner.errors import ScanRefError, StoreError, StoreUnavailableError, StoreURLError
from scanner.models import (
    SCHEMA_VERSION,
    Finding,
    LocalAudit,
    PortResult,
    PortState,
    ScanDocument,
    ScanInfo,
    ScanSummary,
    Transport,
    UnresolvedTargetResult,
)
from scanner.store import schema

ENV_DB = "GHOSTPORT_DB"
"""Environment variable naming the database when no URL is given."""

MIGRATIONS = Path(__file__).resolve().parent / "migrations"

_WRITE = "ghostport_write"  # execution option: this connection's transactions write
_BUSY_TIMEOUT_MS = 30_000
_PG_CONNECT_TIMEOUT_S = 10
_PG_MIGRATION_LOCK = 0x67686F7374  # "ghost": one migrating process at a time
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"  # as the scan's JSON writes times
_INT64 = 2**63
_SQLITE_DRIVERS = {"sqlite", "sqlite+pysqlite"}
_PG_DRIVERS = {"postgresql+psycopg", "postgresql+psycopg2"}


class ScanRow(BaseModel):
    """One scan in the history listing."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    started_at: str
    finished_at: str | None
    complete: bool
    targets: list[str]
    excludes: list[str]
    ports: dict[str, str]
    profiles: list[str]
    results: int = Field(description="results recorded (every port listed once)")
    open: int = Field(description="results in state open")
    findings: int
    probes_done: int
    probes_total: int | None = Field(description="from the latest summary, when one is known")


class TimelineRow(BaseModel):
    """What one scan recorded for one (host, port, transport)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    scan_id: str
    started_at: str
    complete: bool
    host: str
    port: int
    proto: Transport
    state: PortState
    reason: str
    service: str | None
    verdict: str | None


class ScanProgress(BaseModel):
    """How far a scan got: its last committed checkpoint and the probes done by then."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    checkpoint: dict[str, Any] | None
    probes_done: int


def result_sort_key(result: PortResult) -> tuple[tuple[int, int, str], int, str]:
    """The order of results in a stored document: address, then port, then transport."""
    return (_host_key(result.host), result.port, result.proto.value)


def finding_sort_key(finding: Finding) -> tuple[tuple[int, int, str], int, str, str]:
    """The order of findings in a stored document."""
    return (_host_key(finding.host), finding.port, finding.proto.value, finding_key(finding))


def finding_key(finding: Finding) -> str:
    """What tells two findings on one port apart: the service, else the title."""
    return finding.service_id if finding.service_id is not None else f"title:{finding.title}"


def utc_now() -> str:
    """The current UTC time as scan documents write times (2026-11-21T11:22:28.123456Z)."""
    return datetime.now(UTC).strftime(_TIME_FORMAT)


def default_url() -> str:
    """$GHOSTPORT_DB, else SQLite in the user's data directory ($XDG_DATA_HOME/ghostport)."""
    configured = os.environ.get(ENV_DB, "").strip()
    if configured:
        return configured
    return f"sqlite:///{_default_path()}"


def open_store(url: str | None = None) -> Store:
    """Open (creating if needed) the scan history and migrate it to the newest schema.

    None means $GHOSTPORT_DB, else `sqlite:///$XDG_DATA_HOME/ghostport/scans.db`.
    `postgresql://` and `postgres://` URLs use the psycopg (3) driver.
    """
    if url is None and not os.environ.get(ENV_DB, "").strip():
        path = _default_path()
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
    if url.drivername not in _SQLITE_DRIVERS | _PG_DRIVERS:
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
            engine = sa.create_engine(url, connect_args={"timeout": _BUSY_TIMEOUT_MS / 1000})
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
        raise StoreURLError(f"database URL {display!r}: {_first_line(exc)}") from None


def alembic_config() -> Config:
    """Alembic's configuration for the migrations inside the package (no alembic.ini)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str:
    """The newest schema revision this ghostport knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(connection: Connection) -> str | None:
    """The schema revision a database is at (None: empty)."""
    context = MigrationContext.configure(connection, opts={"version_table": schema.VERSION_TABLE})
    return context.get_current_revision()


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to `revision`, holding the write lock so racing processes queue."""
    display = engine.url.render_as_string(hide_password=True)
    head = head_revision()
    at: str | None = None
    try:
        with engine.connect() as connection:
            with connection.begin():
                at = current_revision(connection)
            if revision == "head" and at == head:
                return
            connection.execution_options(**{_WRITE: True})
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
    except sa_exc.DBAPIError as exc:
        raise StoreUnavailableError(
            f"database {display!r} cannot be opened: {_first_line(exc.orig)}"
        ) from exc


class Store:
    """One open scan history. Methods are synchronous; each write is one transaction."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.url = engine.url.render_as_string(hide_password=True)
        """The URL without its password, for messages."""

    @property
    def dialect(self) -> str:
        """'sqlite' or 'postgresql'."""
        return self._engine.dialect.name

    def close(self) -> None:
        """Close every pooled connection."""
        self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- writing ---------------------------------------------------------------------------

    def begin_scan(self, info: ScanInfo, unresolved: Sequence[UnresolvedTargetResult] = ()) -> None:
        """Record a scan that starts (or starts again: a resume keeps what it has)."""
        row = _scan_row(info, unresolved, complete=False)
        now = _utc_naive(datetime.now(UTC))
        with self._write() as conn:
            insert = self._insert(conn, schema.scans).values(row)
            kept = {"id", "started_at", "summary", "local"}
            conn.execute(
                insert.on_conflict_do_update(
                    index_elements=["id"],
                    set_={k: insert.excluded[k] for k in row if k not in kept},
                )
            )
            progress = self._insert(conn, schema.progress).values(
                scan_id=info.id, checkpoint=None, probes_done=0, updated_at=now
            )
            conn.execute(progress.on_conflict_do_nothing(index_elements=["scan_id"]))

    def record(
        self,
        scan_id: str,
        results: Sequence[PortResult] = (),
        findings: Sequence[Finding] = (),
        *,
        checkpoint: Mapping[str, Any] | None = None,
        probes_done: int | None = None,
        summary: ScanSummary | None = None,
    ) -> None:
        """Store one batch in one transaction: results and findings (a port or finding already
        recorded for the scan is overwritten), the checkpoint and the running summary."""
        result_rows = {(r.host, r.proto.value, r.port): _result_row(scan_id, r) for r in results}
        finding_rows = {
            (f.host, f.proto.value, f.port, finding_key(f)): _finding_row(scan_id, f)
            for f in findings
        }
        with self._write(scan_id) as conn:
            self._upsert_results(conn, list(result_rows.values()))
            self._upsert_findings(conn, list(finding_rows.values()))
            if checkpoint is not None or probes_done is not None:
                self._set_progress(conn, scan_id, checkpoint, probes_done)
            if summary is not None:
                conn.execute(
                    sa.update(schema.scans)
                    .where(schema.scans.c.id == scan_id)
                    .values(summary=summary.model_dump(mode="json"))
                )

    def finish_scan(
        self,
        scan_id: str,
        finished_at: str,
        summary: ScanSummary,
        complete: bool,
        *,
        local: LocalAudit | None = None,
    ) -> None:
        """Stamp the end of a scan: its finish time, final summary and whether it completed."""
        scans = schema.scans
        with self._write(scan_id) as conn:
            stored = conn.execute(
                sa.select(scans.c.info).where(scans.c.id == scan_id)
            ).scalar_one_or_none()
            if stored is None:
                raise self._unknown(scan_id)
            info = ScanInfo.model_validate(stored).model_copy(update={"finished_at": finished_at})
            values: dict[str, Any] = {
                "finished_at": _parse_time(scan_id, finished_at),
                "complete": complete,
                "summary": summary.model_dump(mode="json"),
                "info": info.model_dump(mode="json"),
            }
            if local is not None:
                values["local"] = local.model_dump(mode="json")
            conn.execute(sa.update(scans).where(scans.c.id == scan_id).values(values))
            self._set_progress(conn, scan_id, None, summary.probes_done)

    def import_document(self, document: ScanDocument) -> str:
        """Store a whole saved scan; importing it again changes nothing. Returns its id."""
        info = document.scan
        row = _scan_row(info, document.unresolved, complete=document.complete)
        row["summary"] = document.summary.model_dump(mode="json")
        row["local"] = document.local.model_dump(mode="json") if document.local else None
        row["schema_version"] = document.schema_version
        results = {
            (r.host, r.proto.value, r.port): _result_row(info.id, r) for r in document.results
        }
        findings = {
            (f.host, f.proto.value, f.port, finding_key(f)): _finding_row(info.id, f)
            for f in document.findings
        }
        with self._write(info.id) as conn:
            insert = self._insert(conn, schema.scans).values(row)
            conn.execute(
                insert.on_conflict_do_update(
                    index_elements=["id"],
                    set_={k: insert.excluded[k] for k in row if k != "id"},
                )
            )
            self._upsert_results(conn, list(results.values()))
            self._upsert_findings(conn, list(findings.values()))
            self._set_progress(conn, info.id, None, document.summary.probes_done)
        return info.id

    # -- reading ---------------------------------------------------------------------------

    def scans(self) -> list[ScanRow]:
        """Every scan, oldest first, with its counts."""
        s, r, f, p = schema.scans, schema.results, schema.findings, schema.progress
        result_counts = (
            sa.select(
                r.c.scan_id,
                sa.func.count().label("n"),
                sa.func.sum(sa.case((r.c.state == PortState.OPEN.value, 1), else_=0)).label("open"),
            )
            .group_by(r.c.scan_id)
            .subquery()
        )
        finding_counts = (
            sa.select(f.c.scan_id, sa.func.count().label("n")).group_by(f.c.scan_id).subquery()
        )
        query = (
            sa.select(
                s.c.id,
                s.c.info,
                s.c.complete,
                s.c.summary,
                result_counts.c.n.label("results"),
                result_counts.c.open,
                finding_counts.c.n.label("findings"),
                p.c.probes_done,
            )
            .select_from(
                s.outerjoin(result_counts, result_counts.c.scan_id == s.c.id)
                .outerjoin(finding_counts, finding_counts.c.scan_id == s.c.id)
                .outerjoin(p, p.c.scan_id == s.c.id)
            )
            .order_by(s.c.started_at, s.c.id)
        )
        with self._read() as conn:
            rows = conn.execute(query).all()
        listing = []
        for row in rows:
            info = ScanInfo.model_validate(row.info)
            summary = row.summary or {}
            listing.append(
                ScanRow(
                    id=row.id,
                    started_at=info.started_at,
                    finished_at=info.finished_at,
                    complete=bool(row.complete),
                    targets=info.targets,
                    excludes=info.excludes,
                    ports={k.value: v for k, v in info.ports.items()},
                    profiles=info.profiles,
                    results=row.results or 0,
                    open=int(row.open or 0),
                    findings=row.findings or 0,
                    probes_done=int(row.probes_done or 0),
                    probes_total=summary.get("probes_total"),
                )
            )
        return listing

    def document(self, scan_id: str) -> ScanDocument:
        """The scan as its JSON document: every result once, sorted by address, port and
        transport. A scan without a summary (it never flushed one) gets one counted from
        its rows."""
        s, r, f, p = schema.scans, schema.results, schema.findings, schema.progress
        with self._read() as conn:
            row = conn.execute(sa.select(s).where(s.c.id == scan_id)).one_or_none()
            if row is None:
                raise self._unknown(scan_id)
            result_data = conn.execute(sa.select(r.c.data).where(r.c.scan_id == scan_id))
            results = [PortResult.model_validate(d) for d in result_data.scalars()]
            finding_data = conn.execute(sa.select(f.c.data).where(f.c.scan_id == scan_id))
            findings = [Finding.model_validate(d) for d in finding_data.scalars()]
            probes_done = conn.execute(
                sa.select(p.c.probes_done).where(p.c.scan_id == scan_id)
            ).scalar_one_or_none()
        results.sort(key=result_sort_key)
        findings.sort(key=finding_sort_key)
        summary = (
            ScanSummary.model_validate(row.summary)
            if row.summary is not None
            else _counted_summary(results, findings, int(probes_done or 0))
        )
        return ScanDocument(
            schema_version=row.schema_version,
            scan=ScanInfo.model_validate(row.info),
            unresolved=[UnresolvedTargetResult.model_validate(u) for u in row.unresolved],
            results=results,
            findings=findings,
            local=LocalAudit.model_validate(row.local) if row.local is not None else None,
            summary=summary,
            complete=bool(row.complete),
        )

    def resolve_ref(self, ref: str) -> str:
        """The id of the scan `ref` names: 'last', 'previous' (the one before last, by start
        time), a full id, or a prefix of exactly one id."""
        s = schema.scans
        text = ref.strip()
        if text in ("last", "previous"):
            newest = sa.select(s.c.id).order_by(s.c.started_at.desc(), s.c.id.desc()).limit(2)
            with self._read() as conn:
                ids = list(conn.execute(newest).scalars())
            wanted = 0 if text == "last" else 1
            if len(ids) <= wanted:
                held = "no scan" if not ids else "only one scan"
                raise ScanRefError(f"scan {text!r}: the database {self.url!r} holds {held} yet")
            return str(ids[wanted])
        if not text or not text.isprintable():
            raise ScanRefError(
                f"scan reference {ref!r} is not a scan id, an id prefix, 'last' or 'previous'"
            )
        with self._read() as conn:
            for candidate in dict.fromkeys((text, text.lower())):
                exact = conn.execute(sa.select(s.c.id).where(s.c.id == candidate)).scalar()
                if exact is not None:
                    return str(exact)
                matches = list(
                    conn.execute(
                        sa.select(s.c.id)
                        .where(s.c.id.startswith(candidate, autoescape=True))
                        .order_by(s.c.started_at, s.c.id)
                        .limit(4)
                    ).scalars()
                )
                if len(matches) == 1:
                    return str(matches[0])
                if matches:
                    shown = ", ".join(matches[:3]) + (", ..." if len(matches) > 3 else "")
                    raise ScanRefError(
                        f"scan id prefix {ref!r} matches several scans ({shown}); "
                        "give more of the id"
                    )
        raise self._unknown(ref)

    def previous_of(self, scan_id: str, complete_only: bool = True) -> str | None:
        """The latest scan of the same scope (targets, excludes, ports) that started before
        this one; by default only a scan that completed, so a crash never passes for a
        baseline."""
        s = schema.scans
        with self._read() as conn:
            row = conn.execute(
                sa.select(s.c.scope_key, s.c.started_at).where(s.c.id == scan_id)
            ).one_or_none()
            if row is None:
                raise self._unknown(scan_id)
            query = (
                sa.select(s.c.id)
                .where(
                    s.c.scope_key == row.scope_key,
                    s.c.id != scan_id,
                    sa.or_(
                        s.c.started_at < row.started_at,
                        sa.and_(s.c.started_at == row.started_at, s.c.id < scan_id),
                    ),
                )
                .order_by(s.c.started_at.desc(), s.c.id.desc())
                .limit(1)
            )
            if complete_only:
                query = query.where(s.c.complete.is_(True))
            found = conn.execute(query).scalar()
        return None if found is None else str(found)

    def timeline(
        self, host: str, port: int | None = None, proto: Transport | str | None = None
    ) -> list[TimelineRow]:
        """What every scan recorded for a host (or one of its ports), oldest scan first.
        Scans that listed nothing there (closed, or not scanned) have no row."""
        s, r = schema.scans, schema.results
        query = (
            sa.select(
                s.c.id,
                s.c.started_at,
                s.c.complete,
                r.c.host,
                r.c.port,
                r.c.proto,
                r.c.state,
                r.c.reason,
                r.c.service,
                r.c.verdict,
            )
            .select_from(r.join(s, s.c.id == r.c.scan_id))
            .where(r.c.host == _normal_host(host))
            .order_by(s.c.started_at, s.c.id, r.c.port, r.c.proto)
        )
        if port is not None:
            query = query.where(r.c.port == port)
        if proto is not None:
            query = query.where(r.c.proto == Transport(proto).value)
        with self._read() as conn:
            rows = conn.execute(query).all()
        return [
            TimelineRow(
                scan_id=row.id,
                started_at=row.started_at.strftime(_TIME_FORMAT),
                complete=bool(row.complete),
                host=row.host,
                port=row.port,
                proto=Transport(row.proto),
                state=PortState(row.state),
                reason=row.reason,
                service=row.service,
                verdict=row.verdict,
            )
            for row in rows
        ]

    def checkpoint(self, scan_id: str) -> ScanProgress:
        """The last committed checkpoint of a scan (None before the first) and its probes."""
        s, p = schema.scans, schema.progress
        with self._read() as conn:
            row = conn.execute(
                sa.select(s.c.id, p.c.checkpoint, p.c.probes_done)
                .select_from(s.outerjoin(p, p.c.scan_id == s.c.id))
                .where(s.c.id == scan_id)
            ).one_or_none()
        if row is None:
            raise self._unknown(scan_id)
        return ScanProgress(checkpoint=row.checkpoint, probes_done=int(row.probes_done or 0))

    # -- plumbing --------------------------------------------------------------------------

    def _unknown(self, ref: str) -> ScanRefError:
        return ScanRefError(f"no scan {ref!r} in the database {self.url!r}")

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._guard("read"), self._engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def _write(self, scan_id: str | None = None) -> Iterator[Connection]:
        try:
            with self._guard("write"), self._engine.connect() as conn:
                conn.execution_options(**{_WRITE: True})
                with conn.begin():
                    yield conn
        except sa_exc.IntegrityError:
            # The only constraint an upsert can break: the scan row is missing.
            raise self._unknown(scan_id or "?") from None

    @contextmanager
    def _guard(self, action: str) -> Iterator[None]:
        try:
            yield
        except sa_exc.IntegrityError:
            raise
        except sa_exc.DBAPIError as exc:
            raise StoreUnavailableError(
                f"database {self.url!r}: {action} failed: {_first_line(exc.orig)}"
            ) from exc

    @staticmethod
    def _insert(conn: Connection, table: sa.Table) -> Any:
        # Both dialects' inserts offer on_conflict_do_update/do_nothing with the same signature.
        if conn.dialect.name == "postgresql":
            return pg_dialect.insert(table)
        return sqlite_dialect.insert(table)

    def _upsert(self, conn: Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        keys = [c.name for c in table.primary_key.columns]
        insert = self._insert(conn, table)
        update = {c.name: insert.excluded[c.name] for c in table.columns if c.name not in keys}
        conn.execute(insert.on_conflict_do_update(index_elements=keys, set_=update), rows)

    def _upsert_results(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        self._upsert(conn, schema.results, rows)

    def _upsert_findings(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        self._upsert(conn, schema.findings, rows)

    def _set_progress(
        self,
        conn: Connection,
        scan_id: str,
        checkpoint: Mapping[str, Any] | None,
        probes_done: int | None,
    ) -> None:
        insert = self._insert(conn, schema.progress).values(
            scan_id=scan_id,
            checkpoint=dict(checkpoint) if checkpoint is not None else None,
            probes_done=probes_done or 0,
            updated_at=_utc_naive(datetime.now(UTC)),
        )
        update: dict[str, Any] = {"updated_at": insert.excluded.updated_at}
        if checkpoint is not None:
            update["checkpoint"] = insert.excluded.checkpoint
        if probes_done is not None:
            update["probes_done"] = insert.excluded.probes_done
        conn.execute(insert.on_conflict_do_update(index_elements=["scan_id"], set_=update))


def _configure_sqlite(engine: Engine) -> None:
    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # The driver's own transaction handling would not BEGIN before every statement
        # kind; `_on_begin` issues BEGIN itself (SQLAlchemy's documented recipe).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA journal_mode = WAL")
            # In WAL, NORMAL loses no committed transaction when a process dies (only on
            # power loss), and saves an fsync per commit.
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        writing = connection.get_execution_options().get(_WRITE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if writing else "BEGIN")


def _default_path() -> Path:
    data_home = os.environ.get("XDG_DATA_HOME", "")
    base = Path(data_home) if os.path.isabs(data_home) else Path.home() / ".local" / "share"
    return base / "ghostport" / "scans.db"


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


def _first_line(error: BaseException | None) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def _utc_naive(moment: datetime) -> datetime:
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def _parse_time(scan_id: str, text: str) -> datetime:
    try:
        return _utc_naive(datetime.fromisoformat(text))
    except ValueError:
        raise StoreError(f"scan {scan_id!r}: time {text!r} is not in ISO 8601 form") from None


def _normal_host(host: str) -> str:
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).compressed
    except ValueError:
        return host.strip()


def _host_key(host: str) -> tuple[int, int, str]:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return (99, 0, host)
    return (address.version, int(address), "")


def _scope(info: ScanInfo) -> dict[str, Any]:
    return {
        "targets": sorted(set(info.targets)),
        "excludes": sorted(set(info.excludes)),
        "ports": {k.value: v for k, v in sorted(info.ports.items())},
    }


def _scan_row(
    info: ScanInfo, unresolved: Sequence[UnresolvedTargetResult], complete: bool
) -> dict[str, Any]:
    scope = _scope(info)
    seed = info.options.seed
    return {
        "id": info.id,
        "started_at": _parse_time(info.id, info.started_at),
        "finished_at": _parse_time(info.id, info.finished_at) if info.finished_at else None,
        "complete": complete,
        "scope_key": hashlib.sha256(
            json.dumps(scope, sort_keys=True, separators=(",", ":")).encode()
        ).hexdigest(),
        "scope": scope,
        "targets": list(info.targets),
        "profiles": list(info.profiles),
        "seed": seed if -_INT64 <= seed < _INT64 else None,
        "options": info.options.model_dump(mode="json"),
        "info": info.model_dump(mode="json"),
        "unresolved": [u.model_dump(mode="json") for u in unresolved],
        "schema_version": SCHEMA_VERSION,
    }


def _result_row(scan_id: str, result: PortResult) -> dict[str, Any]:
    service = result.service
    return {
        "scan_id": scan_id,
        "host": result.host,
        "proto": result.proto.value,
        "port": result.port,
        "state": result.state.value,
        "reason": result.reason.value,
        "service": (service.id or service.protocol) if service is not None else None,
        "verdict": result.verdict.value if result.verdict is not None else None,
        "data": result.model_dump(mode="json"),
    }


def _finding_row(scan_id: str, finding: Finding) -> dict[str, Any]:
    return {
        "scan_id": scan_id,
        "host": finding.host,
        "proto": finding.proto.value,
        "port": finding.port,
        "key": finding_key(finding),
        "service_id": finding.service_id,
        "severity": finding.severity,
        "verdict": finding.verdict.value,
        "data": finding.model_dump(mode="json"),
    }


def _counted_summary(
    results: list[PortResult], findings: list[Finding], probes_done: int
) -> ScanSummary:
    """A summary for a scan that never stored one: counted from what was recorded."""
    by_proto = {t: dict.fromkeys(PortState, 0) for t in Transport}
    for result in results:
        by_proto[result.proto][result.state] += 1
    done = max(probes_done, len(results))
    return ScanSummary(
        hosts=len({r.host for r in results}),
        probes_total=done,
        probes_done=done,
        states={s: sum(by_proto[t][s] for t in Transport) for s in PortState},
        states_by_proto=by_proto,
        findings_by_severity=dict(Counter(f.severity for f in findings)),
        findings_by_verdict=dict(Counter(f.verdict.value for f in findings)),
        duration_s=0.0,
    )
