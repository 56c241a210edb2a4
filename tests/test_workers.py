"""`scan --workers N`: one scan as disjoint slices in local processes, merged into one document.

Run as real `scan` processes: the workers are forked processes with their own event loops.
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

import psutil
import pytest

from tests.conftest import interrupt
from tests.support import TcpServer, closed_port, servers

REPO = Path(__file__).resolve().parent.parent


def _scan(*args: str, timeout: float = 180) -> tuple[int, dict[str, Any], str]:
    done = subprocess.run(
        [sys.executable, "-m", "scanner", "scan", "-q", "--no-db", "--json", "-", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=REPO,
    )
    document = json.loads(done.stdout) if done.stdout.strip() else {}
    return done.returncode, document, done.stderr


def _keyed(document: dict[str, Any]) -> dict[tuple[str, int, str], tuple[str, str]]:
    return {
        (r["host"], r["port"], r["proto"]): (r["state"], r["reason"]) for r in document["results"]
    }


def test_two_workers_give_the_results_of_one_in_one_document() -> None:
    # Given a /24 x 4 closed ports, and two real servers on 127.0.0.1
    closed = [closed_port() for _ in range(4)]
    first, second = TcpServer(banner=b"hello\r\n"), TcpServer()
    ports = ",".join(str(p) for p in [*closed, first.port, second.port])
    common = ["--tcp", "-p", ports, "--all-states", "--seed", "7", "127.0.0.0/24"]
    with servers(first, second):
        # When the same scan runs in one process and in two workers
        one_rc, one, _ = _scan(*common, "--workers", "1")
        two_rc, two, err = _scan(*common, "--workers", "2")
    # Then both list the same ports with the same states, each once, in one document
    assert (one_rc, two_rc) == (0, 0), err
    assert two["complete"] is True
    assert len(two["results"]) == len(_keyed(two)) == 256 * 6
    assert _keyed(two) == _keyed(one)
    assert _keyed(two)["127.0.0.1", first.port, "tcp"][0] == "open"
    assert _keyed(two)["127.0.0.1", second.port, "tcp"][0] == "open"
    # And one scan: one id, the summary summing both slices
    assert two["summary"]["probes_done"] == two["summary"]["probes_total"] == 256 * 6
    assert two["summary"]["states"] == one["summary"]["states"]
    assert all(r["vantage"] is None for r in two["results"])


def _workers_of(scan: psutil.Process) -> list[psutil.Process]:
    """The scan's worker processes: forked (the scan's own command line) or spawned (not
    multiprocessing's resource tracker)."""
    found = []
    own = scan.cmdline()
    for child in scan.children(recursive=True):
        try:
            cmdline = child.cmdline()
        except psutil.Error:
            continue
        text = " ".join(cmdline)
        if cmdline == own or ("spawn_main" in text and "resource_tracker" not in text):
            found.append(child)
    return found


def _two_worker_scan(
    *argv: str, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[str], psutil.Process, list[psutil.Process]]:
    """A long scan (a rate cap keeps it running) over two workers, once both run: the scan,
    its process and its workers."""
    scan = subprocess.Popen(
        [
            *(sys.executable, "-m", "scanner", "scan", "-q", "--tcp", "--rate", "400"),
            *("--workers", "2", *argv, "127.1.0.0/16"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=env,
    )
    parent = psutil.Process(scan.pid)
    workers: list[psutil.Process] = []
    deadline = time.monotonic() + 60
    while len(workers) < 2 and time.monotonic() < deadline and scan.poll() is None:
        time.sleep(0.2)
        workers = _workers_of(parent)
    if len(workers) != 2:
        scan.kill()
        scan.communicate()
    assert len(workers) == 2, "the scan did not start two workers"
    return scan, parent, workers


@pytest.mark.slow
def test_a_killed_worker_fails_the_scan_loudly_and_keeps_what_was_gathered(
    tmp_path: Path,
) -> None:
    # Given a long scan (a rate cap keeps it running) split over two workers
    out = tmp_path / "out.json"
    ports = ",".join(str(closed_port()) for _ in range(4))
    scan, _, workers = _two_worker_scan("--no-db", "-p", ports, "--all-states", "--json", str(out))
    try:
        time.sleep(3)  # let both send a few batches
        victim = workers[0]
        # When one worker is killed with SIGKILL
        os.kill(victim.pid, signal.SIGKILL)
        _, stderr = scan.communicate(timeout=60)
    finally:
        if scan.poll() is None:
            scan.kill()
            scan.wait()
    # Then the scan fails loudly, naming the worker, and keeps its results, incomplete
    assert scan.returncode == 3, stderr
    assert f"pid {victim.pid}" in stderr and "SIGKILL" in stderr, stderr
    assert "Traceback" not in stderr
    document = json.loads(out.read_text())
    assert document["complete"] is False
    assert document["results"], "the results gathered before the kill are lost"
    keys = [(r["host"], r["port"], r["proto"]) for r in document["results"]]
    assert len(keys) == len(set(keys))
    assert document["summary"]["probes_done"] >= len(keys)


def _open_files(process: psutil.Process) -> set[str]:
    """Where a process's descriptors point (files, pipes, /dev/null)."""
    found = set()
    for fd in os.listdir(f"/proc/{process.pid}/fd"):
        try:
            found.add(os.readlink(f"/proc/{process.pid}/fd/{fd}"))
        except OSError:  # closed meanwhile
            continue
    return found


@pytest.mark.slow
def test_forked_workers_hold_none_of_the_coordinators_files(tmp_path: Path) -> None:
    # Given a recorded scan over two workers, writing its JSON to a file (a rate cap keeps
    # it running)
    out = tmp_path / "out.json"
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "data")}
    scan, parent, workers = _two_worker_scan("-p", str(closed_port()), "--json", str(out), env=env)
    try:
        # When the descriptors of the coordinator, its history writer and its workers are read
        writer = next(
            child for child in parent.children() if "history_writer" in " ".join(child.cmdline())
        )
        writer_pipes = {os.readlink(f"/proc/{writer.pid}/fd/{fd}") for fd in (0, 1)}
        coordinator = _open_files(parent)
        # Then the coordinator holds the JSON file and its ends of the writer's pipes
        assert str(out) in coordinator
        assert writer_pipes <= coordinator
        # And no worker holds either: those descriptors point at /dev/null there
        for worker in workers:
            held = _open_files(worker)
            assert str(out) not in held, held
            assert not held & writer_pipes, held
            assert "/dev/null" in held
    finally:
        interrupt(scan)
    assert scan.returncode == 130


def test_a_broker_only_flag_without_a_broker_is_one_clear_error() -> None:
    rc, _, err = _scan("--vantage", "a=127.0.0.1", "-p", "9")
    assert rc == 2
    assert err.strip().splitlines() == [
        "ghostport: error: --vantage and --shards need --broker URL (or $GHOSTPORT_BROKER)"
    ]
