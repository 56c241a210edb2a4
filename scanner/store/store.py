"""The write side of the history: `Store`, one open scan history. Each write is one
transaction, so a batch of results, its findings and the checkpoint that covers them land
together or not at all (a crash loses at most the batch in flight and never leaves a
checkpoint ahead of its results). Reads come from `StoreReader` (queries.py).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine

from scanner.models import (
    Finding,
    LocalAudit,
    PortResult,
    ScanDocument,
    ScanInfo,
    ScanSummary,
    UnresolvedTargetResult,
)
from scanner.store import schema
from scanner.store.common import parse_time, utc_naive
from scanner.store.queries import StoreReader
from scanner.store.records import (
    WRITE_OPTION,
    finding_id,
    finding_row,
    result_key,
    result_row,
    scan_row,
)


class Store(StoreReader):
    """One open scan history. Methods are synchronous; each write is one transaction."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self._upsert_cache: dict[str, tuple[str, list[str] | None]] = {}

    # -- writing ---------------------------------------------------------------------------

    def begin_scan(self, info: ScanInfo, unresolved: Sequence[UnresolvedTargetResult] = ()) -> None:
        """Record a scan that starts (or starts again: a resume keeps what it has)."""
        row = scan_row(info, unresolved, complete=False)
        now = utc_naive(datetime.now(UTC))
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
        recorded for the scan from the same vantage point is overwritten), the checkpoint and
        the running summary."""
        result_rows = {result_key(r): result_row(scan_id, r) for r in results}
        finding_rows = {finding_id(f): finding_row(scan_id, f) for f in findings}
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
                "finished_at": parse_time(scan_id, finished_at),
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
        row = scan_row(info, document.unresolved, complete=document.complete)
        row["summary"] = document.summary.model_dump(mode="json")
        row["local"] = document.local.model_dump(mode="json") if document.local else None
        row["schema_version"] = document.schema_version
        results = {result_key(r): result_row(info.id, r) for r in document.results}
        findings = {finding_id(f): finding_row(info.id, f) for f in document.findings}
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

    # -- plumbing --------------------------------------------------------------------------

    @contextmanager
    def _write(self, scan_id: str | None = None) -> Iterator[Connection]:
        try:
            with self._guard("write"), self._engine.connect() as conn:
                conn.execution_options(**{WRITE_OPTION: True})
                with conn.begin():
                    yield conn
        except sa_exc.IntegrityError:
            # The only constraint an upsert can break: the scan row is missing.
            raise self._unknown(scan_id or "?") from None

    @staticmethod
    def _insert(conn: Connection, table: sa.Table) -> Any:
        # Both dialects' inserts offer on_conflict_do_update/do_nothing with the same signature.
        # Imported here: the open engine has already loaded its own dialect, and only that one.
        if conn.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert  # noqa: PLC0415

            return insert(table)
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert  # noqa: PLC0415

        return sqlite_insert(table)

    def _upsert(self, conn: Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
        """Insert or overwrite rows in one executemany, handed to the driver as they are.

        The rows are prepared (records.py: plain str, int and None, and the JSON columns
        already JSON text), so SQLAlchemy's per-row parameter processing, which costs more
        than SQLite's own insert, is skipped. Sorted by primary key, the inserts walk the
        indexes in order instead of at random (the scan's permutation).
        """
        if not rows:
            return
        sql, names = self._upsert_sql(conn, table)
        order = itemgetter(*(c.name for c in table.primary_key.columns))
        rows = sorted(rows, key=order)
        if names is None:  # named parameters (psycopg): the rows as they are
            conn.exec_driver_sql(sql, rows)
        else:  # positional (SQLite's qmark): each row as a tuple in the statement's order
            pick = itemgetter(*names)
            conn.exec_driver_sql(sql, [pick(row) for row in rows])

    def _upsert_sql(self, conn: Connection, table: sa.Table) -> tuple[str, list[str] | None]:
        """The upsert statement of a table as the driver takes it (compiled once per dialect),
        and its parameter names in order when the driver's parameters are positional."""
        cached = self._upsert_cache.get(table.name)
        if cached is not None:
            return cached
        for column in table.columns:
            # Values reach the driver unprocessed: only types with no bind processing qualify
            # (JSON columns take text, serialised by records.model_json).
            processing = column.type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
            assert isinstance(column.type, sa.JSON) or processing is None, (
                f"{table.name}.{column.name}: a type the prepared upsert cannot pass through"
            )
        keys = [c.name for c in table.primary_key.columns]
        insert = self._insert(conn, table)
        update = {c.name: insert.excluded[c.name] for c in table.columns if c.name not in keys}
        compiled = insert.on_conflict_do_update(index_elements=keys, set_=update).compile(
            dialect=conn.dialect,
            column_keys=[c.name for c in table.columns],
        )
        names = list(compiled.positiontup) if compiled.positional else None
        assert names is None or names == [c.name for c in table.columns], names
        result = (compiled.string, names)
        self._upsert_cache[table.name] = result
        return result

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
            updated_at=utc_naive(datetime.now(UTC)),
        )
        update: dict[str, Any] = {"updated_at": insert.excluded.updated_at}
        if checkpoint is not None:
            update["checkpoint"] = insert.excluded.checkpoint
        if probes_done is not None:
            update["probes_done"] = insert.excluded.probes_done
        conn.execute(insert.on_conflict_do_update(index_elements=["scan_id"], set_=update))
