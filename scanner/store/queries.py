"""The read side of the history: listing scans, reassembling a scan's document, resolving
scan references, finding a scan's baseline, port timelines and resume checkpoints.

`StoreReader` holds the engine and the transaction plumbing both sides share; `Store`
(store.py) adds the writes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Self

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine

from scanner.errors import ScanRefError, StoreUnavailableError
from scanner.models import (
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
from scanner.store.common import TIME_FORMAT, first_line
from scanner.store.records import (
    ScanProgress,
    ScanRow,
    TimelineRow,
    counted_summary,
    finding_sort_key,
    normal_host,
    read_vantage,
    result_sort_key,
)


class StoreReader:
    """One open scan history, read side. Methods are synchronous; each read is one
    transaction."""

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

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

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
        """The scan as its JSON document: every result once, sorted by vantage point,
        address, port and transport. A scan without a summary (it never flushed one) gets one
        counted from its rows."""
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
            else counted_summary(results, findings, int(probes_done or 0))
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
        """What every scan recorded for a host (or one of its ports), oldest scan first, one
        row per vantage point that saw it. Scans that listed nothing there (closed, or not
        scanned) have no row."""
        s, r = schema.scans, schema.results
        query = (
            sa.select(
                s.c.id,
                s.c.started_at,
                s.c.complete,
                r.c.vantage,
                r.c.host,
                r.c.port,
                r.c.proto,
                r.c.state,
                r.c.reason,
                r.c.service,
                r.c.verdict,
            )
            .select_from(r.join(s, s.c.id == r.c.scan_id))
            .where(r.c.host == normal_host(host))
            .order_by(s.c.started_at, s.c.id, r.c.port, r.c.proto, r.c.vantage)
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
                started_at=row.started_at.strftime(TIME_FORMAT),
                complete=bool(row.complete),
                vantage=read_vantage(row.vantage),
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
    def _guard(self, action: str) -> Iterator[None]:
        try:
            yield
        except sa_exc.IntegrityError:
            raise
        except sa_exc.DBAPIError as exc:
            raise StoreUnavailableError(
                f"database {self.url!r}: {action} failed: {first_line(exc.orig)}"
            ) from exc
