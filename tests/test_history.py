"""Scan history from the command line: recording, history, timelines, diff, import, resume.

Every test runs against SQLite and against a real PostgreSQL (a private server on a Unix
socket, see tests/postgres.py), through the real `scan` and `ghostport` commands.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from scanner.cli import ghostport_main, scan_main
from scanner.store.database import open_store
from tests.conftest import REPO, Netns
from tests.support import TcpServer, closed_port, servers


def ghostport_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    capsys.readouterr()
    assert ghostport_main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def keys(document: dict[str, Any]) -> list[tuple[str, str, int, str]]:
    return [(r["host"], r["proto"], r["port"], r["state"]) for r in document["results"]]


def test_scans_are_recorded_listed_and_timed_by_port(
    db_url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Given a port that is open for the first scan and closed for the second
    server = TcpServer()
    with servers(server):
        port = server.port
        assert scan_main(["-q", "--db", db_url, "--tcp", "-p", str(port), "127.0.0.1"]) == 0
    assert scan_main(["-q", "--db", db_url, "--tcp", "-p", str(port), "127.0.0.1"]) == 0
    # When the history is listed
    scans = ghostport_json(capsys, "history", "--db", db_url, "--json")
    # Then both scans are there, complete, the first with its open port
    assert [(s["complete"], s["open"], s["probes_done"]) for s in scans] == [
        (True, 1, 1),
        (True, 0, 1),
    ]
    # And the port's timeline names the scan that saw it open
    timeline = ghostport_json(capsys, "history", "--db", db_url, "--json", f"127.0.0.1:{port}/tcp")
    assert [(row["scan_id"], row["state"]) for row in timeline] == [(scans[0]["id"], "open")]
    # And the text listing has one line per scan under a header
    assert ghostport_main(["history", "--db", db_url]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 3


def test_no_db_records_nothing(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert scan_main(["-q", "--no-db", "--db", db_url, "--tcp", "-p", "1", "127.0.0.1"]) == 0
    assert ghostport_json(capsys, "history", "--db", db_url, "--json") == []


def test_diff_names_each_kind_of_change_and_exits_like_ndiff(
    db_url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    shut = closed_port()
    server = TcpServer(banner=b"SSH-2.0-OpenSSH_9.2\r\n")
    ports = f"{shut},{server.port}"
    with servers(server):
        # Given a scan where one port is open (an SSH banner) and one closed
        argv = ["-q", "--db", db_url, "--tcp", "--banner-wait", "0.5", "-p", ports, "127.0.0.1"]
        assert scan_main([*argv, "--json", str(tmp_path / "old.json")]) == 0
        # Then the same network scanned again is equal: exit 0
        assert scan_main(argv) == 0
        assert ghostport_main(["diff", "--db", db_url, "previous", "last"]) == 0
    # When the server goes away, the port has closed: exit 1, and the JSON says which
    assert scan_main([*argv, "--json", str(tmp_path / "new.json")]) == 0
    capsys.readouterr()
    assert ghostport_main(["diff", "--db", db_url, "previous", "last", "--json"]) == 1
    diff = json.loads(capsys.readouterr().out)
    assert [(c["port"], c["old_state"], c["new_state"]) for c in diff["closed"]] == [
        (server.port, "open", None)
    ]
    assert diff["opened"] == [] and diff["equal"] is False
    # And saved JSON files compare the same way, in text; the reverse direction is "opened"
    assert ghostport_main(["diff", str(tmp_path / "new.json"), str(tmp_path / "old.json")]) == 1
    text = capsys.readouterr().out
    assert "opened (1):" in text and f"127.0.0.1 {server.port}/tcp" in text
    # And an unknown scan or a missing file is exit 2 with one line
    assert ghostport_main(["diff", "--db", db_url, "no-such-scan", "last"]) == 2
    assert ghostport_main(["diff", str(tmp_path / "missing.json"), "last", "--db", db_url]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line]
    assert len(errors) == 2 and "Traceback" not in "".join(errors)


def test_import_adds_saved_scans_once(
    db_url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    saved = tmp_path / "saved.json"
    assert scan_main(["-q", "--no-db", "--tcp", "-p", "1", "--json", str(saved), "127.0.0.1"]) == 0
    scan_id = json.loads(saved.read_text())["scan"]["id"]
    for _ in range(2):
        assert ghostport_main(["import", "--db", db_url, str(saved)]) == 0
    assert [s["id"] for s in ghostport_json(capsys, "history", "--db", db_url, "--json")] == [
        scan_id
    ]


def test_report_shows_changes_since_the_previous_scan_of_the_same_scope(
    db_url: str, tmp_path: Path
) -> None:
    server = TcpServer()
    argv = ["-q", "--db", db_url, "--tcp", "-p", str(server.port), "127.0.0.1"]
    with servers(server):
        assert scan_main(argv) == 0
    assert scan_main([*argv, "--html", str(tmp_path / "r.html")]) == 0
    page = (tmp_path / "r.html").read_text()
    assert "Changes since the previous scan" in page and "closed" in page


def _scan_in(netns: Netns, *argv: str) -> subprocess.Popen[str]:
    return netns.spawn(sys.executable, "-m", "scanner", "scan", *argv)


@pytest.mark.netns
@pytest.mark.slow
def test_sigkill_then_resume_gives_exactly_the_uninterrupted_results(
    netns: Netns, db_url: str, tmp_path: Path
) -> None:
    # Given a /18 x 4 closed ports sweep, recorded, killed with SIGKILL part-way
    common = ["-q", "--tcp", "-p", "9-12", "--all-states", "--seed", "7", "--retries", "0"]
    target = "127.1.0.0/18"
    interrupted = tmp_path / "interrupted.json"
    process = _scan_in(
        netns, *common, "--rate", "12000", "--db", db_url, "--json", str(interrupted), target
    )
    try:
        with open_store(db_url) as store:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and process.poll() is None:
                rows = store.scans()
                if rows and rows[0].probes_done > 5000:
                    break
                time.sleep(0.05)
        assert process.poll() is None, "the scan ended before it could be interrupted"
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    with open_store(db_url) as store:
        (row,) = store.scans()
    assert not row.complete and 0 < row.probes_done < 65536
    # When the scan is resumed from the history
    resumed = netns.run(
        sys.executable, "-m", "scanner", "resume", row.id, "--db", db_url, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr
    # And the same scan runs once more, uninterrupted, without the history
    clean = tmp_path / "clean.json"
    done = netns.run(
        sys.executable, "-m", "scanner", "scan", *common, "--no-db", "--json", str(clean), target
    )
    assert done.returncode == 0, done.stderr
    # Then the resumed scan's JSON holds exactly the clean scan's results: none missing, none twice
    again, reference = json.loads(interrupted.read_text()), json.loads(clean.read_text())
    assert again["complete"] is True and again["scan"]["id"] == row.id
    assert len(keys(again)) == len(set(keys(again))) == 65536
    assert sorted(keys(again)) == sorted(keys(reference))
    assert again["summary"]["states"] == reference["summary"]["states"]
    # And so does the database's copy of the scan
    with open_store(db_url) as store:
        stored = store.document(row.id)
    assert stored.complete and len(stored.results) == 65536


def test_two_scans_write_to_one_database_at_once(db_url: str) -> None:
    argv = ["-q", "--db", db_url, "--tcp", "-p", "9-12", "--all-states", "127.0.0.0/25"]
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "scanner", "scan", *argv],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for process in processes:
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == 0, stderr
    with open_store(db_url) as store:
        rows = store.scans()
        assert [(r.complete, r.results) for r in rows] == [(True, 512), (True, 512)]


def test_a_bad_database_url_fails_before_the_first_probe(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert scan_main(["-q", "--db", "nosuchdb://x", "--tcp", "-p", "1", "127.0.0.1"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "probes" not in err
