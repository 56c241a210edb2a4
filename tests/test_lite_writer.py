"""The history writer's light way (scanner/store/lite.py): a SQLite database at the newest
schema is written with sqlite3 alone, and stores exactly what the full way (SQLAlchemy,
sidecar.serve) stores. Real writer processes, real SQLite files; the message streams are
those WriterRecorder sends for real result models (of a real scan, and made up to be odd).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from scanner.cli import ghostport_main, scan_main
from scanner.cli.recording import WriterRecorder
from scanner.errors import ScanRefError
from scanner.models import (
    Evidence,
    PortState,
    ScanDocument,
    ServiceMatch,
    Transport,
    UnresolvedTargetResult,
    Verdict,
)
from scanner.scan import ScanTally
from scanner.store import lite, schema
from scanner.store.common import _pure_path, parse_time
from scanner.store.database import make_engine, migrate, open_store, parse_url
from scanner.store.diff import diff_documents
from scanner.store.records import finding_row, model_json, result_row, scan_row
from scanner.store.sidecar import serve
from tests.conftest import REPO
from tests.store_child import OPTIONS, finding, port_result, scan_info
from tests.support import TcpServer, closed_port, servers

HEAVY = ("sqlalchemy", "alembic", "pydantic", "pydantic_core", "scanner.models")
HEAVY_SCANNER = ("scanner.store.records", "scanner.store.database", "scanner.store.store")
STAMP = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}")
ODD_ID = "0dd00000-0000-4000-8000-000000000001"


# -- streams, as WriterRecorder sends them -----------------------------------------------------


class Tape:
    """Where WriterRecorder's messages go instead of a writer process: kept, in order."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []

    def send(self, kind: bytes, body: bytes, flush: bool = False) -> None:
        self.lines.append(kind + body + b"\n")

    def end(self, body: bytes) -> None:
        self.send(b"e", body)

    def check(self) -> None:
        pass


def stream(document: ScanDocument, batches: int = 2) -> list[bytes]:
    """The messages a recorded scan sends for what `document` holds: its start, the results
    and findings in `batches` commits (each with its checkpoint), the end."""
    tape = Tape()
    recorder = WriterRecorder(tape, interval_s=0.0)  # type: ignore[arg-type]
    tally = ScanTally(document.summary.hosts, document.summary.probes_total)
    recorder.scan_started(document.scan, list(document.unresolved), tally)
    items = [*document.results, *document.findings]
    for batch in range(batches):
        for item in items[batch::batches]:
            if item in document.results:
                recorder.result(item)  # type: ignore[arg-type]
                tally.record_many(item.proto, item.state, 1)  # type: ignore[union-attr]
            else:
                recorder.finding(item)  # type: ignore[arg-type]
                tally.record_finding(item)  # type: ignore[arg-type]
        recorder.progress(tally)
    recorder.finish(document.complete)
    return tape.lines


def real_scan(tmp_path: Path) -> ScanDocument:
    """A real scan of an open and a closed port (every state listed), without the history."""
    server = TcpServer(banner="Welcome, café ☕\r\n".encode())
    closed = closed_port()
    with servers(server):
        out = tmp_path / "scan.json"
        argv = ["-q", "--no-db", "--all-states", "--json", str(out)]
        assert scan_main([*argv, "-p", f"T:{server.port},{closed}", "127.0.0.1"]) == 0
    return ScanDocument.model_validate_json(out.read_text())


def odd_document(document: ScanDocument) -> ScanDocument:
    """The real scan's results and made-up ones with odd text: non-ASCII, a lone surrogate in
    a banner and in argv, a 70-bit seed, a start time with a zone, a vantage, a finding
    without a service id, one port sent twice (the second wins), a host that did not
    resolve."""
    # Started after the real scan, in a zone that is not UTC
    later = "2099-01-01T01:30:00.250000+01:30"
    info = scan_info(ODD_ID, later, targets=("127.0.0.1", "hôte.invalid"), ports="1-1024")
    info = info.model_copy(
        update={
            "command_line": ["scan", "--banner=\udcff", "ünïcode"],
            "options": OPTIONS.model_copy(update={"seed": 2**70, "rate": 100.0}),
            "scope": {"--scope": ["127.0.0.0/8"]},
        }
    )
    banner = ServiceMatch(
        id="telnet", protocol="telnet", confidence=0.5, extracted={"banner": "x\udcffy ü"}
    )
    results = [
        *document.results,
        port_result("127.0.0.2", 23, service="telnet", verdict=Verdict.LEGACY).model_copy(
            update={"service": banner, "hostname": "hôte", "note": "line\u2028sep"}
        ),
        port_result("127.0.0.2", 24, state=PortState.CLOSED).model_copy(
            update={"vantage": "segment-ä"}
        ),
        port_result("127.0.0.2", 25, state=PortState.CLOSED),
        port_result("127.0.0.2", 25, service="smtp"),  # the same port again: this one stays
        port_result("::1", 69, Transport.UDP, PortState.OPEN_FILTERED),
    ]
    findings = [
        finding("127.0.0.2", 23).model_copy(
            update={
                "evidence": Evidence(
                    probe="banner",
                    request_hex=None,
                    response_hex="ff",
                    response_bytes=1,
                    decoded={"text": "\udcff😀"},
                )
            }
        ),
        finding("127.0.0.2", 23, service_id=None, title="Unknown thing — ça"),
        finding("127.0.0.2", 24).model_copy(update={"vantage": "segment-ä"}),
    ]
    unresolved = [UnresolvedTargetResult(target="hôte.invalid", error="Name not known")]
    return document.model_copy(
        update={"scan": info, "results": results, "findings": findings, "unresolved": unresolved}
    )


# -- running the writers ---------------------------------------------------------------------


def head_db(path: Path) -> str:
    """A SQLite database at the newest schema, as every recorded scan's but the first finds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{path}"
    open_store(url).close()
    return url


def run_writer(
    url: str,
    lines: list[bytes],
    env: dict[str, str] | None = None,
    prefix: tuple[str, ...] | list[str] = (),
) -> tuple[list[str], int, set[str]]:
    """A real writer process fed `lines`: its replies, exit code and imported modules."""
    command = [*prefix, sys.executable, "-X", "importtime", "-m", "scanner.cli.history_writer"]
    process = subprocess.run(
        command,
        input=b"u" + url.encode() + b"\n" + b"".join(lines),
        capture_output=True,
        cwd=REPO,
        env={**os.environ, **(env or {})},
        timeout=120,
        check=False,
    )
    stderr = process.stderr.decode()
    assert "Traceback" not in stderr
    modules = {line.rsplit("|", 1)[1].strip() for line in stderr.splitlines() if "|" in line}
    return process.stdout.decode().splitlines(), process.returncode, modules


def heavy_loaded(modules: set[str]) -> set[str]:
    return {m for m in modules if m.split(".")[0] in HEAVY or m in HEAVY or m in HEAVY_SCANNER}


def serve_full(url: str, lines: list[bytes]) -> bool:
    """The full way, in this process: open_store and sidecar.serve."""
    with open_store(url) as store:
        return serve(store, iter(lines))


def table_rows(path: Path) -> dict[str, list[dict[str, Any]]]:
    """Every row of the four tables, each value with SQLite's own type of it."""
    tables: dict[str, list[dict[str, Any]]] = {}
    with sqlite3.connect(path) as connection:
        for table in ("scans", "results", "findings", "progress"):
            names = [c.name for c in schema.metadata.tables[table].columns]
            typed = ", ".join(f'"{n}", typeof("{n}")' for n in names)
            rows = connection.execute(f"SELECT {typed} FROM {table} ORDER BY 1, 2, 3, 4, 5, 6")
            tables[table] = [
                {n: (row[2 * i], row[2 * i + 1]) for i, n in enumerate(names)} for row in rows
            ]
    connection.close()
    return tables


def without_clock(tables: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """The rows with the wall-clock stamps (the finish time, progress.updated_at) masked,
    once checked to be stored as SQLAlchemy stores a DateTime."""
    for row in tables["scans"]:
        finished, kind = row["finished_at"]
        if finished is not None:
            assert STAMP.fullmatch(finished) and kind == "text", finished
            info, _ = row["info"]
            stamp = json.loads(info)["finished_at"]  # the same moment as the column
            assert lite.sqlite_datetime(parse_time("?", stamp)) == finished
            row["info"] = (info.replace(json.dumps(stamp), '"<finished>"'), "text")
            row["finished_at"] = ("<finished>", kind)
    for row in tables["progress"]:
        assert STAMP.fullmatch(row["updated_at"][0]), row
        row["updated_at"] = ("<now>", "text")
    return tables


# -- the tests -------------------------------------------------------------------------------


def test_rows_are_those_records_builds(tmp_path: Path) -> None:
    # Given real and odd results, findings and scan infos, as the scan sends them (JSON)
    document = odd_document(real_scan(tmp_path))
    scan_id = document.scan.id
    # Then the light rows equal the ones records.py builds from the models
    for result in document.results:
        text = model_json(result)
        assert lite.result_row(scan_id, text, json.loads(text)) == result_row(scan_id, result)
    for found in document.findings:
        text = model_json(found)
        assert lite.finding_row(scan_id, text, json.loads(text)) == finding_row(scan_id, found)
    for info in (document.scan, real_scan(tmp_path).scan):
        sent = json.loads(model_json(info))
        unresolved = [json.loads(model_json(u)) for u in document.unresolved]
        assert lite.scan_row(sent, unresolved) == scan_row(info, document.unresolved, False)
    # And the statements name the table's columns in its order
    assert tuple(c.name for c in schema.results.columns) == lite.RESULT_COLUMNS
    assert tuple(c.name for c in schema.findings.columns) == lite.FINDING_COLUMNS
    assert tuple(scan_row(document.scan, [], False)) == lite.SCAN_COLUMNS


def test_light_and_full_ways_store_the_same(tmp_path: Path) -> None:
    # Given two scans of one scope (a real one and one with odd text), sent as a scan sends
    # them, and two databases at the newest schema
    real = real_scan(tmp_path)
    odd = odd_document(real)
    same_scope = {"targets": real.scan.targets, "ports": real.scan.ports}
    odd = odd.model_copy(update={"scan": odd.scan.model_copy(update=same_scope)})
    full_path, light_path = tmp_path / "full" / "scans.db", tmp_path / "light" / "scans.db"
    full_url, light_url = head_db(full_path), head_db(light_path)
    # When the full way records them in one and the writer process in the other
    for document in (real, odd):
        lines = stream(document)
        assert serve_full(full_url, lines)
        replies, code, modules = run_writer(light_url, lines)
        # Then the writer took the light way: not one heavy module loaded
        assert (replies, code) == (["ready", "done"], 0)
        assert heavy_loaded(modules) == set()
    # And every row holds the same values, column by column, of the same SQLite types
    full_rows, light_rows = table_rows(full_path), table_rows(light_path)
    assert len(light_rows["results"]) == len(real.results) + len(odd.results) - 1
    assert without_clock(light_rows) == without_clock(full_rows)
    # And the history reads the same back from both
    with open_store(full_url) as full, open_store(light_url) as light:
        for document in (real, odd):
            scan_id = document.scan.id
            read_full, read_light = full.document(scan_id), light.document(scan_id)
            finished = {"scan": {"finished_at"}}
            assert read_light.model_dump(exclude=finished) == read_full.model_dump(exclude=finished)
            assert light.checkpoint(scan_id) == full.checkpoint(scan_id)
        assert light.previous_of(odd.scan.id) == full.previous_of(odd.scan.id) == real.scan.id
        changes = [
            diff_documents(store.document(real.scan.id), store.document(odd.scan.id))
            for store in (full, light)
        ]
        assert changes[0].model_dump(exclude={"new": {"finished_at"}, "old": {"finished_at"}}) == (
            changes[1].model_dump(exclude={"new": {"finished_at"}, "old": {"finished_at"}})
        )
        assert [s.model_dump(exclude={"finished_at"}) for s in light.scans()] == [
            s.model_dump(exclude={"finished_at"}) for s in full.scans()
        ]


def test_history_command_reads_the_same(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Given one real scan recorded each way
    real = real_scan(tmp_path)
    full_url = head_db(tmp_path / "full" / "scans.db")
    light_url = head_db(tmp_path / "light" / "scans.db")
    assert serve_full(full_url, stream(real))
    assert run_writer(light_url, stream(real))[:2] == (["ready", "done"], 0)
    # When `ghostport history` lists them and the port's timeline, Then the output is the same
    outputs = []
    for url in (full_url, light_url):
        capsys.readouterr()
        result = real.results[0]
        assert ghostport_main(["history", "--db", url]) == 0
        assert ghostport_main(["history", "--db", url, f"{result.host}:{result.port}/tcp"]) == 0
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1]
    assert real.scan.id[:8] in outputs[1]


def test_a_scan_that_dies_keeps_what_it_sent(tmp_path: Path) -> None:
    # Given a scan that sent its start, a commit and more results, then died (SIGKILL: the
    # writer reads the end of its input without `e`)
    document = odd_document(real_scan(tmp_path))
    lines = stream(document, batches=2)
    commits = [i for i, line in enumerate(lines) if line.startswith(b"c")]
    died = lines[: commits[1]]
    assert [line[:1] for line in died].count(b"c") == 1 and died[-1][:1] in (b"r", b"f")
    full_path, light_path = tmp_path / "full.db", tmp_path / "light.db"
    full_url, light_url = head_db(full_path), head_db(light_path)
    # When each way is fed what it sent
    assert serve_full(full_url, died) is False
    replies, code, modules = run_writer(light_url, died)
    # Then the writer ends quietly, having committed every result it was sent (those after
    # the last checkpoint too, without a newer checkpoint), exactly as the full way does
    assert (replies, code, heavy_loaded(modules)) == (["ready"], 0, set())
    rows = without_clock(table_rows(light_path))
    assert rows == without_clock(table_rows(full_path))
    sent = {(r.vantage or "", r.host, r.port) for r in document.results}
    assert {(r["vantage"][0], r["host"][0], r["port"][0]) for r in rows["results"]} == sent
    assert rows["scans"][0]["complete"] == (0, "integer")
    assert rows["scans"][0]["finished_at"] == (None, "null")
    # And the progress is the one commit's, not counting what came after it
    progress = rows["progress"][0]
    done = json.loads(progress["checkpoint"][0])["summary"]["probes_done"]
    assert progress["probes_done"] == (done, "integer") and 0 < done < len(document.results)


def test_the_full_way_takes_what_the_light_way_cannot(tmp_path: Path) -> None:
    lines = stream(real_scan(tmp_path))
    # A new file: the full way creates it at the newest schema
    replies, code, modules = run_writer(f"sqlite:///{tmp_path / 'new.db'}", lines)
    assert (replies, code) == (["ready", "done"], 0)
    assert "sqlalchemy" in modules and "alembic" in modules
    # An older revision: the full way upgrades it (and records the scan)
    old_url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = make_engine(old_url)
    migrate(engine, "0002")
    engine.dispose()
    replies, code, modules = run_writer(old_url, lines)
    assert (replies, code) == (["ready", "done"], 0)
    assert "alembic" in modules
    with sqlite3.connect(tmp_path / "old.db") as connection:
        assert connection.execute(f"SELECT * FROM {schema.VERSION_TABLE}").fetchall() == [
            (schema.HEAD_REVISION,)
        ]
        assert connection.execute("SELECT count(*) FROM scans").fetchone() == (1,)
    connection.close()
    # A SQLite URL with options: the full way
    replies, code, modules = run_writer(f"{old_url}?timeout=5", lines)
    assert (replies, code) == (["ready", "done"], 0)
    assert "sqlalchemy" in modules
    # PostgreSQL: the full way (here, with no server, its error)
    replies, code, modules = run_writer(f"postgresql://ghost@/scans?host={tmp_path}", lines)
    assert code == 2 and replies[0].startswith("error StoreUnavailableError\tdatabase "), replies
    assert "sqlalchemy" in modules
    # And the default database, and $GHOSTPORT_DB naming one, at head: the light way
    data = tmp_path / "data"
    head_db(data / "ghostport" / "scans.db")
    replies, code, modules = run_writer("", lines, env={"XDG_DATA_HOME": str(data)})
    assert (replies, code, heavy_loaded(modules)) == (["ready", "done"], 0, set())
    replies, code, modules = run_writer("", lines, env={"GHOSTPORT_DB": old_url})
    assert (replies, code, heavy_loaded(modules)) == (["ready", "done"], 0, set())


def test_sqlite_urls_read_as_sqlalchemy_reads_them(tmp_path: Path) -> None:
    # Given SQLite URLs in the forms database.parse_url takes, plain and unusual
    urls = [
        f"sqlite:///{tmp_path}/a.db",
        f"  sqlite+pysqlite:///{tmp_path}/b c+d.db ",
        "sqlite:///relative/x.db",
        f"sqlite:///{tmp_path}/caf%C3%A9.db",
        f"sqlite:///{tmp_path}/é.db",
        f"sqlite:///{tmp_path}/x.db?mode=ro",
        "sqlite:///:memory:",
        "sqlite://",
        "SQLITE:///x.db",
        "postgresql://u@/x",
    ]
    taken = 0
    for url in urls:
        found = lite.sqlite_file(url)
        if found is None:
            continue
        # Then what the light way takes is the file and the URL text the full way sees
        taken += 1
        parsed = parse_url(url)
        assert found == (
            os.path.abspath(str(parsed.database)),
            parsed.render_as_string(hide_password=True),
        )
    assert taken == 3
    # And the default path is the one pathlib wrote
    for home in ("/a/b", "/a//b/", "//a/./b", "///a", "/", "/a/../b", "rel/./x"):
        assert _pure_path(home, "ghostport", "scans.db") == str(
            PurePosixPath(home) / "ghostport" / "scans.db"
        )


def test_write_errors_are_one_line_like_the_full_way(tmp_path: Path) -> None:
    # Given a scan whose row is deleted (by `history` in another process) once recorded
    document = real_scan(tmp_path)
    lines = stream(document)
    url = head_db(tmp_path / "scans.db")
    process = subprocess.Popen(
        [sys.executable, "-m", "scanner.cli.history_writer"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
    )
    assert process.stdin is not None and process.stdout is not None
    try:
        process.stdin.write(b"u" + url.encode() + b"\n" + lines[0])
        process.stdin.flush()
        assert process.stdout.readline() == b"ready\n"
        delete_once_recorded(tmp_path / "scans.db")
        # When the scan sends the rest
        out, stderr = process.communicate(b"".join(lines[1:]), timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    # Then the writer says why in one line, the full way's error, and exits 2
    def full_way_fed() -> Iterator[bytes]:
        yield lines[0]
        delete_once_recorded(tmp_path / "scans.db")
        yield from lines[1:]

    with pytest.raises(ScanRefError) as full, open_store(url) as store:
        serve(store, full_way_fed())
    assert out.decode().splitlines() == [f"error ScanRefError\t{full.value}"]
    assert process.returncode == 2 and b"Traceback" not in stderr


def delete_once_recorded(path: Path) -> None:
    """Wait until a scan is recorded (the start is committed before the writer reads on),
    then delete it, as `history` in another process could."""
    connection = sqlite3.connect(path, timeout=60, isolation_level=None)
    try:
        connection.execute("PRAGMA foreign_keys = ON")
        while not connection.execute("SELECT id FROM scans").fetchall():
            time.sleep(0.01)
        connection.execute("DELETE FROM scans")
    finally:
        connection.close()


@pytest.fixture
def private_mounts() -> Iterator[list[str]]:
    """A command prefix that runs a program in a mount namespace of its own (root only)."""
    unshare = shutil.which("unshare")
    probe = [unshare or "unshare", "--mount", "--propagation", "private", "true"]
    if unshare is None or subprocess.run(probe, capture_output=True, check=False).returncode:
        pytest.skip("needs unshare --mount (root, util-linux)")
    yield [unshare, "--mount", "--propagation", "private"]


def test_a_read_only_database_is_one_line_and_exit_2(
    tmp_path: Path, private_mounts: list[str]
) -> None:
    # Given a database file at head mounted read-only (its directory stays writable), seen
    # by the writer only: a private mount namespace
    path = tmp_path / "scans.db"
    url = head_db(path)
    script = 'mount --bind -o ro "$0" "$0" && exec "$@"'
    prefix = [*private_mounts, "sh", "-c", script, str(path)]
    # When a scan is recorded into it
    replies, code, modules = run_writer(url, stream(real_scan(tmp_path)), prefix=prefix)
    # Then the light way opened it (reading is allowed), and its first write is the one-line
    # error, exit 2
    assert heavy_loaded(modules) == set()
    assert replies == [
        "ready",
        f"error StoreUnavailableError\tdatabase {url!r}: write failed: "
        "attempt to write a readonly database",
    ]
    assert code == 2
    # And nothing was written
    assert table_rows(path)["scans"] == []
