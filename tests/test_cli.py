"""The CLI through main(argv) and as a process: results, JSON, errors, interruption."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from scanner import __version__
from scanner.cli import ghostport_main, scan_main
from scanner.report.schema import SCHEMA_PATH, render_schema
from tests.conftest import REPO
from tests.support import TcpServer, UdpServer, closed_port, servers

SCHEMA = json.loads(SCHEMA_PATH.read_text())


def validate(document: dict[str, Any]) -> None:
    jsonschema.validate(document, SCHEMA)


def scan_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    code = scan_main(["-q", "--json", "-", *argv])
    out = capsys.readouterr().out
    return code, json.loads(out)


def test_committed_schema_matches_the_models() -> None:
    assert SCHEMA_PATH.read_text() == render_schema(), (
        "regenerate with: python scripts/write_schema.py"
    )


def test_scan_reports_states_and_validates(capsys: pytest.CaptureFixture[str]) -> None:
    tcp_server, udp_server = TcpServer(), UdpServer(reply=b"hi")
    with servers(tcp_server, udp_server):
        shut = closed_port()
        code, doc = scan_json(
            capsys,
            "-p",
            f"T:{tcp_server.port},{shut},U:{udp_server.port}",
            "--timeout",
            "1",
            "127.0.0.1",
        )
    assert code == 0
    validate(doc)
    assert doc["complete"] is True
    listed = {(r["port"], r["proto"]): r for r in doc["results"]}
    assert listed[tcp_server.port, "tcp"]["state"] == "open"
    assert listed[tcp_server.port, "tcp"]["reason"] == "syn-ack"
    assert listed[udp_server.port, "udp"]["state"] == "open"
    assert listed[udp_server.port, "udp"]["response_hex"] == b"hi".hex()
    assert (shut, "tcp") not in listed, "closed ports are counted, not listed"
    assert doc["summary"]["states"]["closed"] == 1
    assert doc["summary"]["probes_done"] == doc["summary"]["probes_total"] == 3
    assert doc["scan"]["finished_at"] and doc["scan"]["started_at"] <= doc["scan"]["finished_at"]


def test_all_states_lists_closed_ports(capsys: pytest.CaptureFixture[str]) -> None:
    shut = closed_port()
    code, doc = scan_json(capsys, "--all-states", "--tcp", "-p", str(shut), "127.0.0.1")
    assert code == 0
    validate(doc)
    assert [(r["port"], r["state"], r["reason"]) for r in doc["results"]] == [
        (shut, "closed", "conn-refused")
    ]


def test_json_file_and_seed_make_order_repeatable(tmp_path: Path) -> None:
    def order(seed: str, name: str) -> list[tuple[str, int]]:
        path = tmp_path / name
        code = scan_main(
            [
                "-q",
                "--all-states",
                "--tcp",
                "-p",
                "1-30",
                "--seed",
                seed,
                "--max-inflight",
                "1",
                "--json",
                str(path),
                "127.0.0.1-4",
            ]
        )
        assert code == 0
        doc = json.loads(path.read_text())
        validate(doc)
        assert doc["scan"]["options"]["seed"] == int(seed)
        return [(r["host"], r["port"]) for r in doc["results"]]

    first, again, other = order("42", "a.json"), order("42", "b.json"), order("43", "c.json")
    assert first == again
    assert first != other
    assert sorted(first) == sorted(other)
    assert len(first) == 120


def test_excludes_from_flag_and_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    exclude_file = tmp_path / "skip.txt"
    exclude_file.write_text("# never these\n127.0.0.3\n")
    shut = closed_port()
    code, doc = scan_json(
        capsys,
        "--all-states",
        "--tcp",
        "-p",
        str(shut),
        "--exclude",
        "127.0.0.1,127.0.0.5",
        "--exclude-file",
        str(exclude_file),
        "127.0.0.1-6",
    )
    assert code == 0
    assert sorted(r["host"] for r in doc["results"]) == ["127.0.0.2", "127.0.0.4", "127.0.0.6"]
    assert doc["scan"]["excludes"] == ["127.0.0.1", "127.0.0.5", "127.0.0.3"]


def test_targets_from_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    listing = tmp_path / "targets.txt"
    listing.write_text("127.0.0.7 # lab\n\n127.0.0.8\n")
    code, doc = scan_json(
        capsys, "--all-states", "--tcp", "-p", str(closed_port()), "-iL", str(listing)
    )
    assert code == 0
    assert sorted(r["host"] for r in doc["results"]) == ["127.0.0.7", "127.0.0.8"]


def test_ipv6_target(capsys: pytest.CaptureFixture[str]) -> None:
    try:
        server = TcpServer("::1")
    except OSError as exc:
        pytest.skip(f"::1 not usable: {exc}")
    with servers(server):
        code, doc = scan_json(capsys, "--tcp", "-p", str(server.port), "::1")
    assert code == 0
    validate(doc)
    assert [(r["host"], r["state"]) for r in doc["results"]] == [("::1", "open")]


def test_ghostport_scan_is_scan(capsys: pytest.CaptureFixture[str]) -> None:
    shut = closed_port()
    assert ghostport_main(["scan", "-q", "--json", "-", "--tcp", "-p", str(shut), "127.0.0.1"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["summary"]["states"]["closed"] == 1


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        ([], "no target"),
        (["-p", "70000", "127.0.0.1"], "70000"),
        (["-p", "0", "127.0.0.1"], "port 0"),
        (["-p", "5-3", "127.0.0.1"], "5-3"),
        (["-p", "garbage", "127.0.0.1"], "garbage"),
        (["10.0.0.300"], "10.0.0.300"),
        (["127.0.0.1-999"], "127.0.0.1-999"),
        (["--timeout", "-1", "127.0.0.1"], "-1"),
        (["--timeout", "nan", "127.0.0.1"], "nan"),
        (["--retries", "x", "127.0.0.1"], "'x'"),
        (["--rate", "0.5", "127.0.0.1"], "0.5"),
        (["--frobnicate", "127.0.0.1"], "--frobnicate"),
        (["-iL", "/nonexistent/targets.txt"], "/nonexistent/targets.txt"),
        (["--exclude-file", "/nonexistent/skip.txt", "127.0.0.1"], "/nonexistent/skip.txt"),
        (["--loop", "tokio", "127.0.0.1"], "tokio"),
        (["0.0.0.0/0"], "outside the allowed scope"),
        (["--scope", "127.0.0.0/24", "127.0.1.1"], "127.0.1.1"),
        (["--scope", "localhost", "127.0.0.1"], "localhost"),
    ],
)
def test_user_mistakes_are_one_line_exit_2(
    argv: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = scan_main(argv)
    captured = capsys.readouterr()
    assert code == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert named in lines[0]
    assert lines[0].startswith("scan: error: ")
    assert "Traceback" not in captured.err + captured.out


def test_the_suite_runs_under_a_loopback_scope() -> None:
    assert os.environ["GHOSTPORT_SCOPE"] == "127.0.0.0/8,::1"


def test_debug_shows_the_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    assert scan_main(["--debug", "-p", "0", "127.0.0.1"]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_help_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        scan_main(["--help"])
    assert exited.value.code == 0
    assert "examples:" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        ghostport_main(["--version"])
    assert __version__ in capsys.readouterr().out
    assert ghostport_main([]) == 2


def test_ctrl_c_leaves_a_valid_partial_document(tmp_path: Path) -> None:
    # Given a scan with one quick open port and many silent UDP ports waiting 60 s each
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("0.0.0.0", 0))
    server = TcpServer()
    out = tmp_path / "partial.json"
    with servers(server):
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "scanner",
                "scan",
                "-q",
                "--timeout",
                "60",
                "--json",
                str(out),
                "-p",
                f"T:{server.port},U:{silent.getsockname()[1]}",
                "127.0.0.1-20",
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            # When the open port has reached the file, press Ctrl-C
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if out.exists() and '"syn-ack"' in out.read_text():
                    break
                time.sleep(0.05)
            doc_mid_scan = json.loads(out.read_text())  # valid while the scan still runs
            process.send_signal(signal.SIGINT)
            _, stderr = process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            silent.close()
    # Then the file is a valid document, marked incomplete, with what was gathered
    assert doc_mid_scan["complete"] is False
    assert process.returncode == 130
    assert "Traceback" not in stderr
    doc = json.loads(out.read_text())
    validate(doc)
    assert doc["complete"] is False
    assert doc["scan"]["finished_at"]
    assert [(r["host"], r["state"]) for r in doc["results"]] == [("127.0.0.1", "open")]
    assert doc["summary"]["states_by_proto"]["tcp"]["closed"] == 19  # the other 19 hosts
    assert doc["summary"]["probes_done"] == 20 < doc["summary"]["probes_total"] == 40


def test_sigterm_is_handled_like_ctrl_c(tmp_path: Path) -> None:
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    out = tmp_path / "term.json"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "scanner",
            "scan",
            "-q",
            "--timeout",
            "60",
            "--udp",
            "--json",
            str(out),
            "-p",
            str(silent.getsockname()[1]),
            "127.0.0.1",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not out.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        os.kill(process.pid, signal.SIGTERM)
        process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        silent.close()
    assert process.returncode == 130
    doc = json.loads(out.read_text())
    validate(doc)
    assert doc["complete"] is False


def _run_with_stderr_on_a_terminal(argv: list[str]) -> tuple[int, str]:
    import pty
    import select

    master, slave = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "scanner", "scan", *argv],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=slave,
        stdin=subprocess.DEVNULL,
    )
    os.close(slave)
    chunks: list[bytes] = []
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 30)
            if not ready:
                break
            try:
                data = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(master)
    return process.returncode, b"".join(chunks).decode(errors="replace")


def test_progress_line_on_a_terminal_and_quiet_with_q() -> None:
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    port = str(silent.getsockname()[1])
    try:
        # Given a scan that lasts about a second, with stderr on a terminal
        code, shown = _run_with_stderr_on_a_terminal(
            ["--udp", "-p", port, "--timeout", "1", "--retries", "0", "127.0.0.1"]
        )
        quiet_code, quiet = _run_with_stderr_on_a_terminal(
            ["-q", "--udp", "-p", port, "--timeout", "1", "--retries", "0", "127.0.0.1"]
        )
    finally:
        silent.close()
    # Then the progress line shows done/total, rate, ETA and open count; -q shows nothing
    assert code == quiet_code == 0
    assert "0/1 port 0.0%" in shown
    assert "ETA" in shown and "open 0" in shown
    assert ": 1 of 1 port on 1 host" in shown and "\x1b[" in shown  # coloured: a terminal
    assert quiet == ""
