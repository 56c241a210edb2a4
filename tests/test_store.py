"""The scan history store, each test against SQLite and against a real PostgreSQL server
(started in a temporary directory, Unix socket only; skipped with the reason where the
server binaries are absent). Crash and concurrency tests run real child processes."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from scanner.errors import ScanRefError, StoreUnavailableError, StoreURLError
from scanner.models import (
    LocalAudit,
    PortState,
    Reason,
    ScanDocument,
    ServiceMatch,
    Transport,
    UnresolvedTargetResult,
    Verdict,
)
from scanner.store import schema
from scanner.store.database import (
    ScanProgress,
    Store,
    alembic_config,
    current_revision,
    default_url,
    finding_sort_key,
    head_revision,
    make_engine,
    migrate,
    open_store,
    result_sort_key,
)
from scanner.store.diff import diff_documents, render_diff_text
from scanner.store.writer import StoreWriter
from tests.conftest import REPO
from tests.store_child import finding, numbered_result, port_result, scan_info, summary

SCAN_A = "aaaa1111-0000-4000-8000-000000000001"
SCAN_B = "aaaa2222-0000-4000-8000-000000000002"
SCAN_C = "bbbb3333-0000-4000-8000-000000000003"
SCAN_D = "cccc4444-0000-4000-8000-000000000004"
SCAN_E = "dddd5555-0000-4000-8000-000000000005"


def at(minute: int) -> str:
    return f"2026-03-01T10:{minute:02d}:00.000000Z"


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    if db_url.startswith("sqlite:///"):
        Path(db_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    with open_store(db_url) as opened:
        yield opened


def one_line(error: pytest.ExceptionInfo[Exception]) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


# -- recording and reading back -------------------------------------------------------------


def test_text_json_cannot_encode_round_trips(store: Store) -> None:
    # Given a result holding a lone surrogate (json.loads makes one from a saved file's
    # "\\udcff"), which pydantic's JSON serialiser refuses
    odd = port_result("127.0.0.2", 23).model_copy(
        update={
            "service": ServiceMatch(
                id="telnet", protocol="telnet", confidence=0.5, extracted={"b": "x\udcffy"}
            )
        }
    )
    store.begin_scan(scan_info(SCAN_A))
    # When it is recorded, Then it reads back unchanged
    store.record(SCAN_A, [odd])
    assert store.document(SCAN_A).results == [odd]


def test_record_and_document_round_trip(store: Store, db_url: str) -> None:
    info = scan_info(SCAN_A)
    unresolved = [UnresolvedTargetResult(target="gone.invalid", error="Name or service not known")]
    telnet = port_result("127.0.0.2", 23, service="telnet", verdict=Verdict.LEGACY)
    telnet = telnet.model_copy(
        update={
            "response_hex": "fffb01fffb03",
            "service": ServiceMatch(
                id="telnet",
                protocol="telnet",
                confidence=0.95,
                matcher="iac",
                extracted={"banner": "l\u00f6gin\x1b[31m\r\n", "empty": ""},
            ),
        }
    )
    snmp = port_result("127.0.0.1", 161, Transport.UDP, PortState.OPEN_FILTERED)
    six = port_result("::1", 23)
    tenth = port_result("127.0.0.10", 7)
    first = port_result("127.0.0.1", 23)
    legacy = finding("127.0.0.2", 23)
    squatter = finding(
        "127.0.0.10", 7, service_id=None, title="Squatter on echo", verdict=Verdict.SQUATTER
    )
    local = LocalAudit(hostname="box", sockets=[], note="no sockets \u2013 none")
    done = summary(5, 3)

    # Given a scan recorded in two batches, where the second re-probes a port of the first
    store.begin_scan(info, unresolved)
    store.record(SCAN_A, [telnet, snmp, six], [legacy], checkpoint={"at": [1, 2]}, probes_done=3)
    reprobed = telnet.model_copy(
        update={"state": PortState.CLOSED, "reason": Reason.CONN_REFUSED, "service": None}
    )
    store.record(SCAN_A, [reprobed, tenth, first], [legacy, squatter], probes_done=6)
    store.finish_scan(SCAN_A, at(5), done, complete=True, local=local)

    # When another connection reads it back
    with open_store(db_url) as reader:
        document = reader.document(SCAN_A)

    # Then every result is there once (the last write of a port wins), sorted by address
    expected = ScanDocument(
        scan=info.model_copy(update={"finished_at": at(5)}),
        unresolved=unresolved,
        results=[first, snmp, reprobed, tenth, six],
        findings=[legacy, squatter],
        local=local,
        summary=done,
        complete=True,
    )
    assert document == expected
    assert document.model_dump_json() == expected.model_dump_json()
    assert [(r.host, r.port) for r in document.results] == [
        ("127.0.0.1", 23),
        ("127.0.0.1", 161),
        ("127.0.0.2", 23),
        ("127.0.0.10", 7),
        ("::1", 23),
    ]
    assert store.checkpoint(SCAN_A) == ScanProgress(checkpoint={"at": [1, 2]}, probes_done=5)


def test_document_of_an_interrupted_scan(store: Store) -> None:
    # Given a scan that recorded results and never finished, nor stored a summary
    store.begin_scan(scan_info(SCAN_A))
    store.record(
        SCAN_A,
        [port_result("127.0.0.1", 23), port_result("127.0.0.2", 69, Transport.UDP)],
        [finding("127.0.0.1", 23)],
        probes_done=40,
    )
    document = store.document(SCAN_A)
    # Then it is incomplete, and its summary is counted from what was recorded
    assert document.complete is False
    assert document.scan.finished_at is None
    assert document.summary.probes_done == 40
    assert document.summary.hosts == 2
    assert document.summary.states[PortState.OPEN] == 2
    assert document.summary.states_by_proto[Transport.UDP][PortState.OPEN] == 1
    assert document.summary.findings_by_severity == {"high": 1}


def test_a_resumed_scan_keeps_what_it_had(store: Store) -> None:
    info = scan_info(SCAN_A)
    store.begin_scan(info)
    store.record(SCAN_A, [port_result("127.0.0.1", 23)], checkpoint={"p": 1}, probes_done=1)
    store.finish_scan(SCAN_A, at(1), summary(1, 1), complete=False)
    # When the same scan begins again (a resume) and adds the rest
    store.begin_scan(info)
    store.record(SCAN_A, [port_result("127.0.0.1", 24)], checkpoint={"p": 2}, probes_done=2)
    store.finish_scan(SCAN_A, at(2), summary(2, 2), complete=True)
    document = store.document(SCAN_A)
    assert [r.port for r in document.results] == [23, 24]
    assert document.complete
    assert document.scan.finished_at == at(2)
    assert store.checkpoint(SCAN_A) == ScanProgress(checkpoint={"p": 2}, probes_done=2)


def test_checkpoint(store: Store) -> None:
    store.begin_scan(scan_info(SCAN_A))
    assert store.checkpoint(SCAN_A) == ScanProgress(checkpoint=None, probes_done=0)
    store.record(SCAN_A, checkpoint={"slice": 0, "position": 512}, probes_done=512)
    assert store.checkpoint(SCAN_A) == ScanProgress(
        checkpoint={"slice": 0, "position": 512}, probes_done=512
    )
    # A batch without a checkpoint keeps the last one
    store.record(SCAN_A, [port_result("127.0.0.1", 1)], probes_done=600)
    assert store.checkpoint(SCAN_A) == ScanProgress(
        checkpoint={"slice": 0, "position": 512}, probes_done=600
    )


def test_an_unknown_scan_is_a_clear_error(store: Store) -> None:
    # Foreign keys are enforced: no result is stored for a scan that was never begun
    with pytest.raises(ScanRefError) as error:
        store.record(SCAN_A, [port_result("127.0.0.1", 1)])
    assert SCAN_A in one_line(error)
    for call in (
        lambda: store.finish_scan(SCAN_A, at(1), summary(1, 1), complete=True),
        lambda: store.document(SCAN_A),
        lambda: store.checkpoint(SCAN_A),
        lambda: store.previous_of(SCAN_A),
    ):
        with pytest.raises(ScanRefError):
            call()
    assert store.scans() == []


def test_scans_lists_every_scan_with_counts(store: Store) -> None:
    store.begin_scan(scan_info(SCAN_B, started_at=at(2), targets=("127.0.0.5",)))
    store.record(
        SCAN_B,
        [
            port_result("127.0.0.5", 1),
            port_result("127.0.0.5", 2, state=PortState.CLOSED),
            port_result("127.0.0.5", 3, Transport.UDP, PortState.OPEN_FILTERED),
        ],
        [finding("127.0.0.5", 1)],
        probes_done=9,
    )
    store.begin_scan(scan_info(SCAN_A, started_at=at(1)))
    store.finish_scan(SCAN_A, at(3), summary(0, 0), complete=True)

    rows = store.scans()
    assert [r.id for r in rows] == [SCAN_A, SCAN_B], "oldest first"
    first, second = rows
    assert (first.complete, first.results, first.open, first.findings) == (True, 0, 0, 0)
    assert first.finished_at == at(3)
    assert (second.complete, second.results, second.open, second.findings) == (False, 3, 1, 1)
    assert second.probes_done == 9
    assert second.probes_total is None
    assert second.targets == ["127.0.0.5"]
    assert second.ports == {"tcp": "1-1024"}
    assert second.profiles == ["telnet"]
    assert second.started_at == at(2)


# -- references, timelines, previous scans ---------------------------------------------------


def test_resolve_ref(store: Store) -> None:
    with pytest.raises(ScanRefError) as error:
        store.resolve_ref("last")
    assert "no scan" in one_line(error)

    store.begin_scan(scan_info(SCAN_A, started_at=at(1)))
    with pytest.raises(ScanRefError) as error:
        store.resolve_ref("previous")
    assert "only one scan" in one_line(error)

    store.begin_scan(scan_info(SCAN_C, started_at=at(3)))
    store.begin_scan(scan_info(SCAN_B, started_at=at(2)))
    assert store.resolve_ref("last") == SCAN_C
    assert store.resolve_ref("previous") == SCAN_B
    assert store.resolve_ref(SCAN_A) == SCAN_A
    assert store.resolve_ref("bbbb") == SCAN_C
    assert store.resolve_ref("aaaa1") == SCAN_A
    assert store.resolve_ref(" AAAA2 ") == SCAN_B
    with pytest.raises(ScanRefError) as error:
        store.resolve_ref("aaaa")
    message = one_line(error)
    assert "'aaaa'" in message
    assert SCAN_A in message
    assert SCAN_B in message
    # Wildcards of LIKE are plain characters in a prefix
    for ref in ("zzzz", "%", "a_a", "aaaa%", "", "bb\nbb"):
        with pytest.raises(ScanRefError) as error:
            store.resolve_ref(ref)
        one_line(error)


def test_timeline(store: Store) -> None:
    host = "127.0.0.5"
    # Given three scans of one host: telnet open, then closed, then a squatter on its port
    store.begin_scan(scan_info(SCAN_A, started_at=at(1)))
    store.record(
        SCAN_A,
        [
            port_result(host, 23, service="telnet", verdict=Verdict.LEGACY),
            port_result(host, 161, Transport.UDP, PortState.OPEN_FILTERED),
            port_result("127.0.0.6", 23),
        ],
    )
    store.finish_scan(SCAN_A, at(2), summary(3, 2), complete=True)
    store.begin_scan(scan_info(SCAN_C, started_at=at(5)))
    store.record(SCAN_C, [port_result(host, 23, service="nc", verdict=Verdict.SQUATTER)])
    store.begin_scan(scan_info(SCAN_B, started_at=at(3)))
    store.record(SCAN_B, [port_result(host, 23, state=PortState.CLOSED)])
    store.record(SCAN_B, [port_result("::1", 23)])

    whole = store.timeline(host)
    assert [(r.scan_id, r.port, r.proto, r.state) for r in whole] == [
        (SCAN_A, 23, Transport.TCP, PortState.OPEN),
        (SCAN_A, 161, Transport.UDP, PortState.OPEN_FILTERED),
        (SCAN_B, 23, Transport.TCP, PortState.CLOSED),
        (SCAN_C, 23, Transport.TCP, PortState.OPEN),
    ]
    port = store.timeline(host, 23)
    assert [(r.scan_id, r.service, r.verdict, r.complete) for r in port] == [
        (SCAN_A, "telnet", "legacy", True),
        (SCAN_B, None, None, False),
        (SCAN_C, "nc", "squatter", False),
    ]
    assert port[0].started_at == at(1)
    assert store.timeline(host, 23, "udp") == []
    assert [r.scan_id for r in store.timeline(host, 161, Transport.UDP)] == [SCAN_A]
    # An address is matched in any spelling
    assert [r.scan_id for r in store.timeline("0:0:0:0:0:0:0:1")] == [SCAN_B]
    assert [r.scan_id for r in store.timeline("[::1]", 23, "tcp")] == [SCAN_B]
    assert store.timeline("127.0.0.99") == []


def test_previous_of_the_same_scope(store: Store) -> None:
    scope = {"targets": ("127.0.0.0/24", "127.0.1.1"), "excludes": ("127.0.0.9",)}
    reordered = {"targets": ("127.0.1.1", "127.0.0.0/24"), "excludes": ("127.0.0.9",)}
    store.begin_scan(scan_info(SCAN_A, started_at=at(1), **scope))
    store.finish_scan(SCAN_A, at(2), summary(1, 0), complete=True)
    store.begin_scan(scan_info(SCAN_B, started_at=at(3), **reordered))
    store.finish_scan(SCAN_B, at(4), summary(1, 0), complete=True)
    store.begin_scan(scan_info(SCAN_C, started_at=at(5), **scope, ports="1-100"))
    store.finish_scan(SCAN_C, at(6), summary(1, 0), complete=True)
    store.begin_scan(scan_info(SCAN_D, started_at=at(7), **scope))  # interrupted
    store.begin_scan(scan_info(SCAN_E, started_at=at(9), **scope))

    assert store.previous_of(SCAN_E) == SCAN_B, "the target order does not matter"
    assert store.previous_of(SCAN_E, complete_only=False) == SCAN_D
    assert store.previous_of(SCAN_B) == SCAN_A
    assert store.previous_of(SCAN_A) is None
    assert store.previous_of(SCAN_C) is None, "other ports: another scope"


# -- import ---------------------------------------------------------------------------------


def saved_document(scan_id: str = SCAN_A) -> ScanDocument:
    results = [
        port_result("127.0.0.3", 23, service="telnet", verdict=Verdict.LEGACY),
        port_result("127.0.0.1", 69, Transport.UDP, service="tftp", verdict=Verdict.LEGACY),
        port_result("127.0.0.1", 7),
    ]
    return ScanDocument(
        scan=scan_info(scan_id).model_copy(update={"finished_at": at(9)}),
        results=results,
        findings=[finding("127.0.0.3", 23), finding("127.0.0.1", 69, "tftp", "TFTP")],
        summary=summary(1024, 3),
        complete=True,
    )


def test_import_is_idempotent(store: Store) -> None:
    saved = saved_document()
    assert store.import_document(saved) == SCAN_A
    assert store.import_document(saved) == SCAN_A
    rows = store.scans()
    assert [(r.id, r.results, r.findings, r.complete) for r in rows] == [(SCAN_A, 3, 2, True)]
    stored = store.document(SCAN_A)
    assert stored == saved.model_copy(
        update={
            "results": sorted(saved.results, key=result_sort_key),
            "findings": sorted(saved.findings, key=finding_sort_key),
        }
    )
    assert store.checkpoint(SCAN_A).probes_done == 1024


def test_import_completes_a_partly_recorded_scan(store: Store) -> None:
    saved = saved_document()
    store.begin_scan(saved.scan.model_copy(update={"finished_at": None}))
    store.record(SCAN_A, [saved.results[0]])
    store.import_document(saved)
    assert store.document(SCAN_A).complete
    assert len(store.document(SCAN_A).results) == 3


# -- the batching writer, crashes, concurrency ----------------------------------------------


def test_writer_commits_in_batches(store: Store, db_url: str) -> None:
    store.begin_scan(scan_info(SCAN_A))
    writer = StoreWriter(store, SCAN_A, batch=3, interval_s=3600.0)
    with open_store(db_url) as other:
        for index in range(7):
            writer.add_result(numbered_result(index))
        # Then two whole batches are visible to another connection, one result waits
        assert (writer.batches, writer.pending) == (2, 1)
        assert other.scans()[0].results == 6
        writer.add_finding(finding("127.0.0.0", 1))
        writer.progress({"position": 8}, 8)
        assert other.checkpoint(SCAN_A).probes_done == 0, "progress waits for its batch"
        writer.flush()
        assert (other.scans()[0].results, other.scans()[0].findings) == (7, 1)
        assert other.checkpoint(SCAN_A) == ScanProgress(checkpoint={"position": 8}, probes_done=8)
        writer.close(complete=True, summary=summary(8, 7))
        writer.close(complete=False, summary=summary(0, 0))  # a second close changes nothing
        assert other.scans()[0].complete
        assert other.document(SCAN_A).summary == summary(8, 7)


def test_writer_commits_after_its_interval(store: Store) -> None:
    store.begin_scan(scan_info(SCAN_A))
    # An interval of zero has always passed: every add commits
    writer = StoreWriter(store, SCAN_A, batch=1000, interval_s=0.0, summary=lambda: summary(2, 2))
    writer.add_result(numbered_result(0))
    writer.add_result(numbered_result(1))
    assert (writer.batches, writer.pending) == (2, 0)
    assert store.document(SCAN_A).summary == summary(2, 2), "the running summary is stored"


def child(mode: str, url: str, scan_id: str, batch: int, batches: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.store_child", mode, url, scan_id, str(batch), str(batches)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )


def reap(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.kill()
    process.communicate()


def test_sigkill_loses_only_the_batch_in_flight(store: Store, db_url: str) -> None:
    batch, batches = 300, 4
    # Given a writer process that committed 4 batches and is inside the 5th transaction
    process = child("crash", db_url, SCAN_A, batch, batches)
    try:
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            lines.append(line.strip())
            if line.strip() == "mid-batch":
                break
        assert lines == [f"committed {n}" for n in range(1, batches + 1)] + ["mid-batch"], (
            process.stderr.read() if process.stderr else lines
        )
        # When it is killed there
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    finally:
        reap(process)
    assert process.returncode == -signal.SIGKILL

    # Then the database holds exactly the committed batches, and their checkpoint
    with open_store(db_url) as reopened:
        document = reopened.document(SCAN_A)
        committed = batch * batches
        expected = sorted((numbered_result(i) for i in range(committed)), key=result_sort_key)
        assert document.results == expected
        assert not document.complete
        assert reopened.checkpoint(SCAN_A) == ScanProgress(
            checkpoint={"position": committed}, probes_done=committed
        )
        # And it takes writes again, on the very ports the lost batch held
        reopened.record(SCAN_A, [numbered_result(committed)], probes_done=committed + 1)
        assert reopened.scans()[0].results == committed + 1
    if db_url.startswith("sqlite:///"):
        with sqlite3.connect(db_url.removeprefix("sqlite:///")) as raw:
            assert raw.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        raw.close()


def test_two_processes_write_at_once(db_url: str) -> None:
    if db_url.startswith("sqlite:///"):
        Path(db_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    batch, batches = 100, 20
    # Given two processes that open the same new database and write when both are ready
    processes = [child("write", db_url, sid, batch, batches) for sid in (SCAN_A, SCAN_B)]
    try:
        for process in processes:
            assert process.stdout is not None
            assert process.stdout.readline().strip() == "ready"
        for process in processes:
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        for process in processes:
            out, err = process.communicate(timeout=300)
            assert process.returncode == 0, err
            assert out.strip() == "done"
    finally:
        for process in processes:
            reap(process)
    # Then both scans are whole
    with open_store(db_url) as store:
        rows = {r.id: r for r in store.scans()}
        expected_findings = len(range(0, batch * batches, 97))
        for scan_id in (SCAN_A, SCAN_B):
            row = rows[scan_id]
            assert (row.results, row.findings, row.complete) == (
                batch * batches,
                expected_findings,
                True,
            )


# -- schema migrations ----------------------------------------------------------------------

_SCANS_0001 = sa.table(
    "scans",
    *(sa.column(n) for n in ("id", "complete", "scope_key", "seed", "schema_version")),
    *(sa.column(n, sa.DateTime()) for n in ("started_at", "finished_at")),
    *(
        sa.column(n, sa.JSON())
        for n in ("scope", "targets", "profiles", "options", "info", "unresolved", "summary")
    ),
)
_RESULTS_0001 = sa.table(
    "results",
    *(sa.column(n) for n in ("scan_id", "host", "proto", "port", "state", "reason")),
    *(sa.column(n) for n in ("service", "verdict")),
    sa.column("data", sa.JSON()),
)


def test_database_of_an_older_schema_is_upgraded_on_open(db_url: str) -> None:
    if db_url.startswith("sqlite:///"):
        Path(db_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    saved = saved_document()
    engine = make_engine(db_url)
    try:
        # Given a database at revision 0001 holding a scan written by that version
        migrate(engine, "0001")
        with engine.begin() as conn:
            assert current_revision(conn) == "0001"
            assert "progress" not in sa.inspect(conn).get_table_names()
            info = saved.scan
            conn.execute(
                _SCANS_0001.insert().values(
                    id=info.id,
                    started_at=_naive(info.started_at),
                    finished_at=_naive(at(9)),
                    complete=True,
                    scope_key="0" * 64,
                    scope={"targets": info.targets},
                    targets=info.targets,
                    profiles=info.profiles,
                    seed=info.options.seed,
                    options=info.options.model_dump(mode="json"),
                    info=info.model_dump(mode="json"),
                    unresolved=[],
                    summary=saved.summary.model_dump(mode="json"),
                    schema_version="1.0",
                )
            )
            conn.execute(
                _RESULTS_0001.insert(),
                [
                    {
                        "scan_id": info.id,
                        "host": r.host,
                        "proto": r.proto.value,
                        "port": r.port,
                        "state": r.state.value,
                        "reason": r.reason.value,
                        "service": None,
                        "verdict": None,
                        "data": r.model_dump(mode="json"),
                    }
                    for r in saved.results
                ],
            )

        # When ghostport opens it
        with open_store(db_url) as store:
            # Then the schema is the newest and the scan survived
            with engine.connect() as conn:
                assert current_revision(conn) == head_revision() == "0003"
            assert [r.id for r in store.scans()] == [SCAN_A]
            assert store.document(SCAN_A).results == sorted(saved.results, key=result_sort_key)
            assert store.checkpoint(SCAN_A) == ScanProgress(checkpoint=None, probes_done=0)
            store.record(SCAN_A, checkpoint={"p": 1}, probes_done=5)

        # And the migration goes down and up again, keeping the scan
        with engine.connect() as conn, conn.begin():
            config = alembic_config()
            config.attributes["connection"] = conn
            command.downgrade(config, "0001")
        with open_store(db_url) as store:
            assert len(store.document(SCAN_A).results) == 3

        # A database from a newer ghostport is refused, not damaged
        with engine.begin() as conn:
            conn.execute(sa.text(f"UPDATE {schema.VERSION_TABLE} SET version_num = '0099'"))
        with pytest.raises(StoreUnavailableError) as error:
            open_store(db_url)
        assert "0099" in one_line(error)
    finally:
        engine.dispose()


def _naive(text: str) -> object:
    from datetime import datetime

    return datetime.fromisoformat(text).replace(tzinfo=None)


def test_migrations_build_the_tables_of_schema_py(store: Store, db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"version_table": schema.VERSION_TABLE, "compare_type": True}
            )
            assert compare_metadata(context, schema.metadata) == []
    finally:
        engine.dispose()


_OPEN_AND_REPORT = """
import sys
from scanner.store.database import open_store
with open_store(sys.argv[1]) as store:
    store.scans()
print("alembic imported" if "alembic" in sys.modules else "alembic not imported")
"""


def open_in_child(db_url: str) -> str:
    """Open the database in a fresh interpreter; what it says about importing Alembic."""
    done = subprocess.run(
        [sys.executable, "-c", _OPEN_AND_REPORT, db_url],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_head_revision_constant_is_the_newest_migration() -> None:
    # A new migration without bumping schema.HEAD_REVISION would leave every database behind
    # the fast open's idea of current; Alembic reads the head from migrations/versions/.
    assert head_revision() == schema.HEAD_REVISION


def test_current_database_opens_without_alembic_and_older_is_upgraded(db_url: str) -> None:
    if db_url.startswith("sqlite:///"):
        Path(db_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = make_engine(db_url)
    try:
        # A new database (no version table yet) is created by Alembic
        assert open_in_child(db_url) == "alembic imported"
        # Given the database taken back to the oldest revision
        with engine.connect() as conn, conn.begin():
            config = alembic_config()
            config.attributes["connection"] = conn
            command.downgrade(config, "0001")
        with engine.connect() as conn:
            assert current_revision(conn) == "0001"
        # When a fresh process opens it, Then Alembic upgrades it to the newest
        assert open_in_child(db_url) == "alembic imported"
        with engine.connect() as conn:
            assert current_revision(conn) == schema.HEAD_REVISION
        # And the next process opens the now current database without importing Alembic
        assert open_in_child(db_url) == "alembic not imported"
    finally:
        engine.dispose()


# -- URLs and errors ------------------------------------------------------------------------


def test_bad_urls_are_one_line_errors_without_the_password(tmp_path: Path) -> None:
    with pytest.raises(StoreURLError) as error:
        open_store("not a url")
    assert "'not a url'" in one_line(error)
    with pytest.raises(StoreURLError) as error:
        open_store("mysql://admin:hunter2@db.invalid/scans")
    message = one_line(error)
    assert "hunter2" not in message
    assert "***" in message
    with pytest.raises(StoreURLError) as error:
        open_store("admin:hunter2@://x")
    assert "hunter2" not in one_line(error)
    # A PostgreSQL that is not there (a socket directory that does not exist)
    with pytest.raises(StoreUnavailableError) as error:
        open_store(f"postgresql://admin:hunter2@/scans?host={tmp_path / 'nothing'}")
    message = one_line(error)
    assert "hunter2" not in message
    assert "cannot be opened" in message
    # A SQLite file under a regular file
    (tmp_path / "file").write_text("")
    with pytest.raises(StoreUnavailableError) as error:
        open_store(f"sqlite:///{tmp_path / 'file' / 'scans.db'}")
    assert "cannot be opened" in one_line(error)


def test_default_database_location(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GHOSTPORT_DB", "postgresql://team@db.invalid/ghostport")
    assert default_url() == "postgresql://team@db.invalid/ghostport"
    monkeypatch.delenv("GHOSTPORT_DB")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    with open_store(None) as store:
        assert store.url == f"sqlite:///{tmp_path / 'data' / 'ghostport' / 'scans.db'}"
        assert store.dialect == "sqlite"
    assert (tmp_path / "data" / "ghostport" / "scans.db").is_file()
    monkeypatch.setenv("XDG_DATA_HOME", "relative/ignored")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_url() == f"sqlite:///{tmp_path / 'home' / '.local/share/ghostport/scans.db'}"


# -- diffs ----------------------------------------------------------------------------------


def two_scans() -> tuple[ScanDocument, ScanDocument]:
    host = "127.0.0.1"
    old = [
        port_result(host, 23, service="telnet", verdict=Verdict.LEGACY),  # unchanged
        port_result(host, 21, service="ftp", verdict=Verdict.LEGACY),  # gone: closed
        port_result(host, 80),  # now closed
        port_result(host, 161, Transport.UDP, PortState.OPEN_FILTERED),  # now filtered
        port_result(host, 2000, service="x", verdict=Verdict.LEGACY),  # now another service
        port_result(host, 7, Transport.UDP, PortState.OPEN_FILTERED),  # now open
        port_result(host, 9, Transport.UDP, PortState.FILTERED),  # gone, not open: state
    ]
    new = [
        port_result(host, 23, service="telnet", verdict=Verdict.LEGACY),
        port_result(host, 80, state=PortState.CLOSED),
        port_result(host, 161, Transport.UDP, PortState.FILTERED),
        port_result(host, 2000, service="nc\x1b[2J\nEVIL", verdict=Verdict.SQUATTER),
        port_result(host, 7, Transport.UDP),
        port_result(host, 69, Transport.UDP, service="tftp", verdict=Verdict.LEGACY),  # new
    ]
    telnet = finding(host, 23)
    ftp = finding(host, 21, "ftp", "FTP")
    squat = finding(host, 2000, None, "Squatter\x07 on\r\nport", verdict=Verdict.SQUATTER)

    def document(scan_id: str, minute: int, results: list, findings: list) -> ScanDocument:
        return ScanDocument(
            scan=scan_info(scan_id, started_at=at(minute)),
            results=results,
            findings=findings,
            summary=summary(len(results), len(results)),
            complete=True,
        )

    return document(SCAN_A, 1, old, [telnet, ftp]), document(SCAN_B, 2, new, [telnet, squat])


def test_diff_each_kind_of_change() -> None:
    old, new = two_scans()
    diff = diff_documents(old, new)

    def ports(changes: list) -> list[tuple[int, str, str | None, str | None]]:
        return [
            (
                c.port,
                c.proto.value,
                c.old_state and c.old_state.value,
                c.new_state and c.new_state.value,
            )
            for c in changes
        ]

    assert ports(diff.opened) == [(7, "udp", "open|filtered", "open"), (69, "udp", None, "open")]
    assert ports(diff.closed) == [(21, "tcp", "open", None), (80, "tcp", "open", "closed")]
    assert ports(diff.state_changed) == [
        (9, "udp", "filtered", None),
        (161, "udp", "open|filtered", "filtered"),
    ]
    [service] = diff.service_changed
    assert (service.port, service.old_service, service.old_verdict) == (2000, "x", Verdict.LEGACY)
    assert (service.new_service, service.new_verdict) == ("nc\x1b[2J\nEVIL", Verdict.SQUATTER)
    assert [(f.port, f.title) for f in diff.findings_new] == [(2000, "Squatter\x07 on\r\nport")]
    assert [(f.port, f.service_id) for f in diff.findings_resolved] == [(21, "ftp")]
    assert not diff.equal
    assert diff.model_dump(mode="json")["equal"] is False

    same = diff_documents(old, old)
    assert same.equal
    assert render_diff_text(same).splitlines()[1] == "no differences"


def test_diff_text_is_one_line_per_change_and_inert() -> None:
    old, new = two_scans()
    text = render_diff_text(diff_documents(old, new))
    lines = text.splitlines()
    assert lines[0] == f"diff {SCAN_A} ({at(1)}) -> {SCAN_B} ({at(2)})"
    assert "opened (2):" in lines
    assert "  127.0.0.1 69/udp: not listed -> open tftp (legacy)" in lines
    assert "  127.0.0.1 21/tcp: open ftp (legacy) -> not listed" in lines
    assert "  127.0.0.1 2000/tcp: open x (legacy) -> open nc\\x1b[2J\\x0aEVIL (squatter)" in lines
    assert "  127.0.0.1 2000/tcp: [high] squatter: Squatter\\x07 on\\x0d\\x0aport" in lines
    assert len(lines) == 1 + 6 + 2 + 2 + 2 + 1 + 1 + 1
    assert not any(ch in text for ch in "\x1b\x07\r")


def test_diff_of_stored_scans_equals_diff_of_their_documents(store: Store) -> None:
    old, new = two_scans()
    store.import_document(old)
    store.import_document(new)
    stored = diff_documents(store.document(SCAN_A), store.document(SCAN_B))
    assert stored == diff_documents(old, new)
