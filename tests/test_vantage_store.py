"""Vantage points in the scan history: a distributed scan that sees one address from two
segments keeps both views, in SQLite and in a real PostgreSQL server (skipped with the
reason where the server binaries are absent); a database of the schema before (0002) keeps
its rows; diff compares each vantage with itself."""

from __future__ import annotations

import json
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import TypeVar

import pytest
import sqlalchemy as sa
from alembic import command

from scanner.models import Finding, PortResult, PortState, ScanDocument, Transport, Verdict
from scanner.report.html import render_diff_html
from scanner.report.text import render_timeline
from scanner.scan import ScanTally
from scanner.shards import ShardMerger, ShardSpec
from scanner.store import schema
from scanner.store.database import (
    Store,
    alembic_config,
    current_revision,
    head_revision,
    make_engine,
    migrate,
    open_store,
)
from scanner.store.diff import diff_documents, render_diff_text
from scanner.store.recorder import resume_state
from scanner.store.records import scan_row
from tests.store_child import finding, port_result, scan_info, summary

SCAN_A = "eeee1111-0000-4000-8000-000000000001"
SCAN_B = "eeee2222-0000-4000-8000-000000000002"
HOST = "127.0.10.2"


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    with open_store(db_url) as opened:
        yield opened


Item = TypeVar("Item", PortResult, Finding)


def seen_from(item: Item, vantage: str | None) -> Item:
    return item.model_copy(update={"vantage": vantage})


def stored_rows(db_url: str, table: sa.Table) -> list[tuple[str, str, int, str]]:
    """(vantage column, host, port, proto) of every row, read with plain SQL."""
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(table.c.vantage, table.c.host, table.c.port, table.c.proto).order_by(
                    table.c.vantage, table.c.host, table.c.port
                )
            ).all()
    finally:
        engine.dispose()
    return [tuple(row) for row in rows]  # type: ignore[misc]


class Collected:
    """A scan observer that keeps what it is told (the merger's output)."""

    def __init__(self) -> None:
        self.results: list[PortResult] = []
        self.findings: list[Finding] = []

    def result(self, result: PortResult) -> None:
        self.results.append(result)

    def finding(self, finding: Finding) -> None:
        self.findings.append(finding)


def test_one_address_from_two_vantages_keeps_a_row_each(store: Store, db_url: str) -> None:
    # Given a distributed scan: segment a has telnet on the address, segment b has it closed
    a_open = seen_from(port_result(HOST, 23, service="telnet", verdict=Verdict.LEGACY), "a")
    b_closed = seen_from(port_result(HOST, 23, state=PortState.CLOSED), "b")
    a_telnet = seen_from(finding(HOST, 23), "a")
    b_telnet = seen_from(finding(HOST, 23, severity="low"), "b")
    store.begin_scan(scan_info(SCAN_A))
    store.record(SCAN_A, [b_closed, a_open], [a_telnet, b_telnet], probes_done=2)
    # And a redelivered batch of vantage a that says the same again
    store.record(SCAN_A, [a_open], [a_telnet], probes_done=2)

    # When it is read back
    document = store.document(SCAN_A)

    # Then both views are there, each once, vantage a first
    assert document.results == [a_open, b_closed]
    assert document.findings == [a_telnet, b_telnet]
    assert stored_rows(db_url, schema.results) == [("a", HOST, 23, "tcp"), ("b", HOST, 23, "tcp")]
    assert [(r.results, r.open, r.findings) for r in store.scans()] == [(2, 1, 2)]
    timeline = store.timeline(HOST, 23)
    assert [(r.vantage, r.state) for r in timeline] == [
        ("a", PortState.OPEN),
        ("b", PortState.CLOSED),
    ]
    lines = render_timeline(timeline, f"{HOST} 23").splitlines()
    assert lines[0].split() == [
        *("SCAN", "STARTED", "VANTAGE", "HOST", "PORT"),
        *("STATE", "REASON", "SERVICE", "VERDICT"),
    ]
    assert [line.split()[3] for line in lines[1:]] == ["a", "b"]


def test_a_local_scan_stores_no_vantage_and_reads_none(store: Store, db_url: str) -> None:
    local = port_result(HOST, 23)
    store.begin_scan(scan_info(SCAN_A))
    store.record(SCAN_A, [local], [finding(HOST, 23)])
    assert stored_rows(db_url, schema.results) == [("", HOST, 23, "tcp")]
    assert stored_rows(db_url, schema.findings) == [("", HOST, 23, "tcp")]
    assert store.document(SCAN_A).results == [local]
    [row] = store.timeline(HOST)
    assert row.vantage is None
    assert json.loads(row.model_dump_json())["vantage"] is None
    # The timeline of a local scan reads as it always did: no VANTAGE column
    assert "VANTAGE" not in render_timeline([row], HOST)


def test_an_interrupted_distributed_scan_resumes_with_both_vantages(store: Store) -> None:
    # Given a distributed scan interrupted after both vantages reported the same port
    a_open = seen_from(port_result(HOST, 23), "a")
    b_open = seen_from(port_result(HOST, 23), "b")
    store.begin_scan(scan_info(SCAN_A))
    store.record(SCAN_A, [a_open, b_open], checkpoint={"shards": {}}, probes_done=2)
    store.finish_scan(SCAN_A, "2026-03-01T10:01:00.000000Z", summary(2, 2), complete=False)

    # When it resumes: the results so far seed the merger, and both shards run again
    assert resume_state(store, SCAN_A).scan_id == SCAN_A
    seen = store.document(SCAN_A).results
    shards = [ShardSpec(0, 0, 1, (HOST,), (), "a"), ShardSpec(1, 0, 1, (HOST,), (), "b")]
    out = Collected()
    merger = ShardMerger(out, ScanTally(2, 4), shards, seen=seen, scan_id=SCAN_A)
    a_new = seen_from(port_result(HOST, 24), "a")
    merger.accept({"shard": 0, "results": [a_open.model_dump(mode="json"), a_new]})
    merger.accept({"shard": 1, "results": [b_open.model_dump(mode="json")]})

    # Then neither vantage's port is listed twice, and only the new port is passed on
    assert out.results == [a_new]
    store.begin_scan(scan_info(SCAN_A))
    store.record(SCAN_A, out.results, probes_done=4)
    assert [(r.vantage, r.port) for r in store.document(SCAN_A).results] == [
        ("a", 23),
        ("a", 24),
        ("b", 23),
    ]


def test_the_primary_keys_hold_the_vantage(store: Store, db_url: str) -> None:
    """Alembic's comparison does not look at primary keys: what the migrations built is
    checked against schema.py here."""
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            inspector = sa.inspect(conn)
            for table in (schema.results, schema.findings):
                built = inspector.get_pk_constraint(table.name)
                assert built["constrained_columns"] == [c.name for c in table.primary_key]
                assert built["name"] == f"pk_{table.name}"
                assert built["constrained_columns"][:2] == ["scan_id", "vantage"]
    finally:
        engine.dispose()


# -- a database of the schema before ---------------------------------------------------------

_RESULTS_0002 = sa.table(
    "results",
    *(sa.column(n) for n in ("scan_id", "host", "proto", "port", "state", "reason")),
    *(sa.column(n) for n in ("service", "verdict")),
    sa.column("data", sa.JSON()),
)
_FINDINGS_0002 = sa.table(
    "findings",
    *(sa.column(n) for n in ("scan_id", "host", "proto", "port", "key", "service_id")),
    *(sa.column(n) for n in ("severity", "verdict")),
    sa.column("data", sa.JSON()),
)


def test_a_database_at_0002_keeps_its_rows_with_no_vantage(db_url: str) -> None:
    old_results = [port_result(HOST, 23), port_result("127.0.0.1", 69, Transport.UDP)]
    old_finding = finding(HOST, 23)
    engine = make_engine(db_url)
    try:
        # Given a database at 0002 holding a scan (0003 left the scans table as it was) with
        # results and a finding as 0002 wrote them: no vantage column, none in their JSON
        migrate(engine, "0002")
        with engine.begin() as conn:
            assert current_revision(conn) == "0002"
            assert "vantage" not in {c["name"] for c in sa.inspect(conn).get_columns("results")}
            conn.execute(schema.scans.insert().values(scan_row(scan_info(SCAN_A), [], False)))
            conn.execute(
                _RESULTS_0002.insert(),
                [
                    {
                        "scan_id": SCAN_A,
                        "host": r.host,
                        "proto": r.proto.value,
                        "port": r.port,
                        "state": r.state.value,
                        "reason": r.reason.value,
                        "service": None,
                        "verdict": None,
                        "data": r.model_dump(mode="json", exclude={"vantage"}),
                    }
                    for r in old_results
                ],
            )
            conn.execute(
                _FINDINGS_0002.insert().values(
                    scan_id=SCAN_A,
                    host=HOST,
                    proto="tcp",
                    port=23,
                    key="telnet",
                    service_id="telnet",
                    severity="high",
                    verdict="legacy",
                    data=old_finding.model_dump(mode="json", exclude={"vantage"}),
                )
            )

        # When ghostport opens it
        with open_store(db_url) as store:
            with engine.connect() as conn:
                assert current_revision(conn) == head_revision() == "0003"
            document = store.document(SCAN_A)
            # Then its rows are kept, seen from no vantage point
            assert document.results == [old_results[1], old_results[0]]
            assert all(r.vantage is None for r in document.results)
            assert document.findings == [old_finding]
            assert stored_rows(db_url, schema.findings) == [("", HOST, 23, "tcp")]
            # And the same port from a vantage point is a row of its own
            b_closed = seen_from(port_result(HOST, 23, state=PortState.CLOSED), "b")
            store.record(SCAN_A, [b_closed])
            assert len(store.document(SCAN_A).results) == 3

        # Going down again keeps one row per old key: the local row, not vantage b's
        _downgrade(engine, "0002")
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(_RESULTS_0002.c.host, _RESULTS_0002.c.port, _RESULTS_0002.c.state)
            ).all()
        assert sorted(tuple(r) for r in rows) == [("127.0.0.1", 69, "open"), (HOST, 23, "open")]
    finally:
        engine.dispose()


def _downgrade(engine: sa.Engine, revision: str) -> None:
    with engine.connect() as conn, conn.begin():
        config = alembic_config()
        config.attributes["connection"] = conn
        command.downgrade(config, revision)


# -- diff ------------------------------------------------------------------------------------


def _document(
    scan_id: str, minute: int, results: list[PortResult], findings: list[Finding]
) -> ScanDocument:
    return ScanDocument(
        scan=scan_info(scan_id, started_at=f"2026-03-01T10:{minute:02d}:00.000000Z"),
        results=results,
        findings=findings,
        summary=summary(len(results), len(results)),
        complete=True,
    )


class _Rows(HTMLParser):
    """The cells of every table row of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def test_diff_compares_each_vantage_with_itself(store: Store) -> None:
    # Given two scans of one address from vantages a and b: a unchanged, b's telnet closed
    # and a finding new from a only
    a_open = seen_from(port_result(HOST, 23), "a")
    b_open = seen_from(port_result(HOST, 23), "b")
    b_gone = seen_from(port_result(HOST, 23, state=PortState.CLOSED), "b")
    a_new = seen_from(finding(HOST, 23), "a")
    old = _document(SCAN_A, 1, [a_open, b_open], [])
    new = _document(SCAN_B, 2, [a_open, b_gone], [a_new])
    store.import_document(old)
    store.import_document(new)

    # When they are compared (as stored, and as documents)
    diff = diff_documents(store.document(SCAN_A), store.document(SCAN_B))
    assert diff == diff_documents(old, new)

    # Then only vantage b's port changed, and the change names its vantage
    assert diff.opened == diff.state_changed == diff.service_changed == []
    [closed] = diff.closed
    assert (closed.vantage, closed.host, closed.port, closed.new_state) == (
        "b",
        HOST,
        23,
        PortState.CLOSED,
    )
    assert diff.findings_new == [a_new]
    assert diff.vantages == ["a", "b"]
    text = render_diff_text(diff).splitlines()
    assert f"  [b] {HOST} 23/tcp: open -> closed" in text
    assert f"  [a] {HOST} 23/tcp: [high] legacy: Telnet: cleartext remote login" in text
    as_json = json.loads(diff.model_dump_json())
    assert [c["vantage"] for c in as_json["closed"]] == ["b"]
    assert [f["vantage"] for f in as_json["findings_new"]] == ["a"]
    page = _Rows()
    page.feed(render_diff_html(diff))
    assert page.rows == [
        ["Change", "Vantage", "Host", "Port", "Before", "Now"],
        ["closed", "b", HOST, "23/tcp", "open", "closed"],
        ["new finding", "a", HOST, "23/tcp", "high Telnet: cleartext remote login"],
    ]


def test_a_local_diff_names_no_vantage() -> None:
    old = _document(SCAN_A, 1, [port_result(HOST, 23)], [])
    new = _document(SCAN_B, 2, [], [])
    diff = diff_documents(old, new)
    assert diff.vantages == []
    assert render_diff_text(diff).splitlines()[1:] == [
        "closed (1):",
        f"  {HOST} 23/tcp: open -> not listed",
    ]
    page = _Rows()
    page.feed(render_diff_html(diff))
    assert page.rows[0] == ["Change", "Host", "Port", "Before", "Now"]
    assert page.rows[1] == ["closed", HOST, "23/tcp", "open", "not listed"]
