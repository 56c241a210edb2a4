"""The history writer's light way: a recorded scan into a SQLite file already at the newest
schema, with sqlite3 and json alone.

The writer process (scanner/store/sidecar.py) must say `ready` before the scan's first probe.
Loading SQLAlchemy and the pydantic models takes it a quarter of a second, longer than a
small scan's own start, while the messages it is sent are already the rows' JSON. So when
the database is a plain SQLite file whose version table holds schema.HEAD_REVISION (every
recorded scan but the first after an install or upgrade), the writer opens it here and
writes the rows itself; anything else (a new or older file, PostgreSQL, a URL with options)
takes the full way, open_store and sidecar.serve, which migrates and reports as before.

Both ways store the same values (tests/test_lite_writer.py compares them column by column):

    rows        `scan_row`, `result_row`, `finding_row` build what records.py builds from
                the models, from the JSON the scan sent (`data` is that JSON, as sent)
    columns     JSON as SQLAlchemy's JSON type writes it (json.dumps; NULL for None where
                the column is none_as_null), DateTime as its SQLite dialect stores it,
                booleans 0/1
    statements  the upserts of Store (store.py): same keys, same transactions, BEGIN
                IMMEDIATE for each (common.py holds what both share)

Nothing here imports SQLAlchemy, Alembic, pydantic, scanner.models or records.py.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

from scanner.errors import ScanRefError, StoreUnavailableError
from scanner.store.common import (
    AT_HEAD_QUERY,
    BUSY_TIMEOUT_MS,
    SCHEMA_VERSION,
    SQLITE_DRIVERS,
    default_url,
    first_line,
    is_head,
    parse_time,
    scope_key,
    stored_seed,
    stored_vantage,
    utc_naive,
    utc_now,
)

SCAN_COLUMNS = (
    "id",
    "started_at",
    "finished_at",
    "complete",
    "scope_key",
    "scope",
    "targets",
    "profiles",
    "seed",
    "options",
    "info",
    "unresolved",
    "schema_version",
)
"""The `scans` columns a scan's start writes (scan_row's keys)."""

RESULT_COLUMNS = (
    "scan_id",
    "host",
    "proto",
    "port",
    "state",
    "reason",
    "service",
    "verdict",
    "data",
    "vantage",
)
"""The `results` columns, in the table's order."""

FINDING_COLUMNS = (
    "scan_id",
    "host",
    "proto",
    "port",
    "key",
    "service_id",
    "severity",
    "verdict",
    "data",
    "vantage",
)
"""The `findings` columns, in the table's order."""

_RESULT_KEY = ("scan_id", "vantage", "host", "proto", "port")
_FINDING_KEY = (*_RESULT_KEY, "key")

# Characters SQLAlchemy leaves as they are in a URL's database part (unquoted on parsing,
# quoted on rendering): with only these, the path and the URL shown in messages are the text.
_PLAIN = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-~ +/")


def _upsert(
    table: str, columns: tuple[str, ...], keys: tuple[str, ...], kept: tuple[str, ...] = ()
) -> str:
    """An upsert as Store compiles it: insert, or overwrite all but the key and `kept`."""
    names = ", ".join(f'"{c}"' for c in columns)
    marks = ", ".join("?" for _ in columns)
    update = ", ".join(
        f'"{c}" = excluded."{c}"' for c in columns if c not in keys and c not in kept
    )
    conflict = ", ".join(f'"{c}"' for c in keys)
    return (
        f"INSERT INTO {table} ({names}) VALUES ({marks}) "
        f"ON CONFLICT ({conflict}) DO UPDATE SET {update}"
    )


_UPSERT_RESULTS = _upsert("results", RESULT_COLUMNS, _RESULT_KEY)
_UPSERT_FINDINGS = _upsert("findings", FINDING_COLUMNS, _FINDING_KEY)
_UPSERT_SCAN = _upsert("scans", SCAN_COLUMNS, ("id",), kept=("started_at",))  # begin_scan
_PROGRESS_START = (
    "INSERT INTO progress (scan_id, checkpoint, probes_done, updated_at) "
    "VALUES (?, NULL, 0, ?) ON CONFLICT (scan_id) DO NOTHING"
)


# -- the database ------------------------------------------------------------------------------


def sqlite_file(url: str | None) -> tuple[str, str] | None:
    """The file and the URL as messages show it (as database.parse_url reads the URL, and
    the store renders it) of a plain SQLite URL, $GHOSTPORT_DB or the default; None for
    anything else: another database, a URL with options, or a path SQLAlchemy would
    unquote (the full way then reads it)."""
    text = (default_url() if url is None else url).strip()
    scheme, separator, database = text.partition(":///")
    if not separator or scheme not in SQLITE_DRIVERS or not database:
        return None
    if not _PLAIN.issuperset(database):
        return None
    return os.path.abspath(database), f"{scheme}:///{database}"


def configure_sqlite(connection: sqlite3.Connection) -> None:
    """Set up a new SQLite connection as every writer of the history uses it (the full way's
    engine calls this too, database._configure_sqlite)."""
    # The driver's own transaction handling would not BEGIN before every statement kind;
    # the callers issue BEGIN (IMMEDIATE for a write) themselves.
    connection.isolation_level = None
    cursor = connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        enter_wal(cursor)
        # In WAL, NORMAL loses no committed transaction when the process crashes or is
        # SIGKILLed (the OS still holds the WAL's writes); only a power loss or OS crash
        # can take back the last commits, never leaving the file inconsistent. Issue 16
        # asks durability against a crash or SIGKILL, and this saves an fsync per commit.
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def enter_wal(cursor: sqlite3.Cursor) -> None:
    """Switch to WAL (persistent, so usually a no-op). Two processes creating the same new
    database race for the switch, and SQLite answers the loser "locked" at once, without its
    busy handler: wait and try again, as the busy timeout would."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def open_lite(url: str | None) -> LiteStore | None:
    """The database `url` names opened the light way, or None when it needs the full way
    (not a plain SQLite file, missing, not at the newest schema, or failing to open: the
    full way then migrates it or reports the error as it always has)."""
    found = sqlite_file(url)
    if found is None or not os.path.isfile(found[0]):
        return None
    path, display = found
    try:
        connection = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    except sqlite3.Error:
        return None
    try:
        configure_sqlite(connection)
        revisions = [row[0] for row in connection.execute(AT_HEAD_QUERY)]
    except sqlite3.Error:
        revisions = []
    if not is_head(revisions):
        connection.close()
        return None
    return LiteStore(connection, display)


class LiteStore:
    """One SQLite history at the newest schema, written as Store writes it; each write is one
    transaction. Rows come from `scan_row`, `result_row` and `finding_row`."""

    def __init__(self, connection: sqlite3.Connection, url: str) -> None:
        self._connection = connection
        self.url = url
        """The URL as the full way's messages show it."""

    def close(self) -> None:
        """Close the connection."""
        self._connection.close()

    def begin_scan(self, info: Mapping[str, Any], unresolved: list[Any]) -> None:
        """Store.begin_scan: record a scan that starts (a resume keeps what it has)."""
        row = scan_row(info, unresolved)
        now = sqlite_datetime(utc_naive(datetime.now(UTC)))
        with self._write() as connection:
            connection.execute(_UPSERT_SCAN, [_sqlite_value(row[c]) for c in SCAN_COLUMNS])
            connection.execute(_PROGRESS_START, (row["id"], now))

    def record(
        self,
        scan_id: str,
        results: Iterable[dict[str, Any]],
        findings: Iterable[dict[str, Any]],
        *,
        checkpoint: Mapping[str, Any] | None = None,
        probes_done: int | None = None,
    ) -> None:
        """Store.record: one batch (rows keyed once each) and the checkpoint, one transaction."""
        # Sorted by primary key, as Store does: the inserts walk the indexes in order.
        result_rows = sorted(results, key=itemgetter(*_RESULT_KEY))
        finding_rows = sorted(findings, key=itemgetter(*_FINDING_KEY))
        with self._write(scan_id) as connection:
            if result_rows:
                pick = itemgetter(*RESULT_COLUMNS)
                connection.executemany(_UPSERT_RESULTS, [pick(r) for r in result_rows])
            if finding_rows:
                pick = itemgetter(*FINDING_COLUMNS)
                connection.executemany(_UPSERT_FINDINGS, [pick(f) for f in finding_rows])
            if checkpoint is not None or probes_done is not None:
                _set_progress(connection, scan_id, checkpoint, probes_done)

    def finish_scan(
        self, scan_id: str, finished_at: str, summary: Mapping[str, Any], complete: bool
    ) -> None:
        """Store.finish_scan: the finish time (in the stored info too), the final summary and
        whether the scan completed."""
        with self._write(scan_id) as connection:
            stored = connection.execute("SELECT info FROM scans WHERE id = ?", (scan_id,))
            found = stored.fetchone()
            if found is None:
                raise ScanRefError(f"no scan {scan_id!r} in the database {self.url!r}")
            info = json.loads(found[0])
            info["finished_at"] = finished_at  # in place: the key keeps its position
            connection.execute(
                "UPDATE scans SET finished_at = ?, complete = ?, summary = ?, info = ? "
                "WHERE id = ?",
                (
                    sqlite_datetime(parse_time(scan_id, finished_at)),
                    int(complete),
                    json.dumps(summary),
                    json.dumps(info),
                    scan_id,
                ),
            )
            _set_progress(connection, scan_id, None, summary["probes_done"])

    @contextmanager
    def _write(self, scan_id: str | None = None) -> Iterator[sqlite3.Connection]:
        connection = self._connection
        try:
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection
            except BaseException:
                with suppress(sqlite3.Error):
                    connection.rollback()
                raise
            connection.commit()
        except sqlite3.IntegrityError:
            # The only constraint an upsert can break: the scan row is missing.
            raise ScanRefError(f"no scan {scan_id or '?'!r} in the database {self.url!r}") from None
        except sqlite3.Error as exc:
            raise StoreUnavailableError(
                f"database {self.url!r}: write failed: {first_line(exc)}"
            ) from exc


def _set_progress(
    connection: sqlite3.Connection,
    scan_id: str,
    checkpoint: Mapping[str, Any] | None,
    probes_done: int | None,
) -> None:
    """Store._set_progress: the checkpoint and the probes done, where given."""
    update = ["updated_at = excluded.updated_at"]
    if checkpoint is not None:
        update.append("checkpoint = excluded.checkpoint")
    if probes_done is not None:
        update.append("probes_done = excluded.probes_done")
    connection.execute(
        "INSERT INTO progress (scan_id, checkpoint, probes_done, updated_at) "
        f"VALUES (?, ?, ?, ?) ON CONFLICT (scan_id) DO UPDATE SET {', '.join(update)}",
        (
            scan_id,
            json.dumps(dict(checkpoint)) if checkpoint is not None else None,
            probes_done or 0,
            sqlite_datetime(utc_naive(datetime.now(UTC))),
        ),
    )


def sqlite_datetime(moment: datetime) -> str:
    """A naive UTC time as SQLAlchemy's SQLite DateTime stores it (microseconds always)."""
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d} "
        f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}.{moment.microsecond:06d}"
    )


def _sqlite_value(value: Any) -> Any:
    """A scan_row value as the column stores it (JSON text, DateTime text, 0/1)."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, datetime):
        return sqlite_datetime(value)
    if isinstance(value, dict | list):
        return json.dumps(value)
    return value


# -- the rows, from the scan's JSON ------------------------------------------------------------


def scan_row(info: Mapping[str, Any], unresolved: list[Any]) -> dict[str, Any]:
    """records.scan_row of a starting scan (complete False), from its ScanInfo's JSON."""
    scan_id: str = info["id"]
    scope = {
        "targets": sorted(set(info["targets"])),
        "excludes": sorted(set(info["excludes"])),
        "ports": dict(sorted(info["ports"].items())),
    }
    finished = info["finished_at"]
    return {
        "id": scan_id,
        "started_at": parse_time(scan_id, info["started_at"]),
        "finished_at": parse_time(scan_id, finished) if finished else None,
        "complete": False,
        "scope_key": scope_key(scope),
        "scope": scope,
        "targets": list(info["targets"]),
        "profiles": list(info["profiles"]),
        "seed": stored_seed(info["options"]["seed"]),
        "options": info["options"],
        "info": info,
        "unresolved": list(unresolved),
        "schema_version": SCHEMA_VERSION,
    }


def result_row(scan_id: str, text: str, result: Mapping[str, Any]) -> dict[str, Any]:
    """records.result_row of a PortResult, from its JSON `text` and that text parsed."""
    service = result.get("service")
    return {
        "scan_id": scan_id,
        "vantage": stored_vantage(result.get("vantage")),
        "host": result["host"],
        "proto": result["proto"],
        "port": result["port"],
        "state": result["state"],
        "reason": result["reason"],
        "service": (service["id"] or service["protocol"]) if service is not None else None,
        "verdict": result.get("verdict"),
        "data": text,
    }


def finding_row(scan_id: str, text: str, finding: Mapping[str, Any]) -> dict[str, Any]:
    """records.finding_row of a Finding, from its JSON `text` and that text parsed."""
    service_id = finding["service_id"]
    return {
        "scan_id": scan_id,
        "vantage": stored_vantage(finding.get("vantage")),
        "host": finding["host"],
        "proto": finding["proto"],
        "port": finding["port"],
        "key": service_id if service_id is not None else f"title:{finding['title']}",
        "service_id": service_id,
        "severity": finding["severity"],
        "verdict": finding["verdict"],
        "data": text,
    }


# -- the pipe ----------------------------------------------------------------------------------


class _Batch:
    """What a running scan sent since the last commit, kept as StoreWriter keeps it (one
    row per key, the latest checkpoint), committed by `flush`."""

    def __init__(self, store: LiteStore, scan_id: str) -> None:
        self.store = store
        self.scan_id = scan_id
        self.results: dict[tuple[Any, ...], dict[str, Any]] = {}
        self.findings: dict[tuple[Any, ...], dict[str, Any]] = {}
        self._checkpoint: Mapping[str, Any] | None = None
        self._probes_done: int | None = None
        self._progress_pending = False

    def flush(
        self, checkpoint: Mapping[str, Any] | None = None, probes_done: int | None = None
    ) -> None:
        """StoreWriter.flush: commit the rows and the latest checkpoint, one transaction."""
        if checkpoint is not None or probes_done is not None:
            if checkpoint is not None:
                self._checkpoint = checkpoint
            if probes_done is not None:
                self._probes_done = probes_done
            self._progress_pending = True
        if not self.results and not self.findings and not self._progress_pending:
            return
        pending = self._progress_pending
        self.store.record(
            self.scan_id,
            self.results.values(),
            self.findings.values(),
            checkpoint=self._checkpoint if pending else None,
            probes_done=self._probes_done if pending else None,
        )
        self.results = {}
        self.findings = {}
        self._progress_pending = False


def serve_lite(store: LiteStore, lines: Iterable[bytes]) -> bool:
    """sidecar.serve the light way: apply the scan's messages until `e` (True: the caller
    replies `done`) or the end of input (False: the scan died; what it sent is committed
    without a checkpoint)."""
    batch: _Batch | None = None
    for line in lines:
        kind, body = line[:1], line[1:].removesuffix(b"\n")
        data = json.loads(body)
        if kind == b"s":
            store.begin_scan(data["info"], data["unresolved"])
            batch = _Batch(store, data["info"]["id"])
        elif batch is None:
            raise ValueError(f"message {kind!r} before the scan started")
        elif kind == b"r":
            row = result_row(batch.scan_id, body.decode(), data)
            batch.results[tuple(row[c] for c in _RESULT_KEY)] = row
        elif kind == b"f":
            row = finding_row(batch.scan_id, body.decode(), data)
            batch.findings[tuple(row[c] for c in _FINDING_KEY)] = row
        elif kind == b"c":
            batch.flush(data["checkpoint"], data["done"])
        elif kind == b"e":
            batch.flush()
            store.finish_scan(batch.scan_id, utc_now(), data["summary"], data["complete"])
            return True
    if batch is not None:
        batch.flush()
    return False
