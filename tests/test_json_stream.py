"""The JSON document as a stream (issue 13, item 7): memory flat in the number of results and
findings, bytes once on disk never rewritten, a valid document at every flush."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

from scanner.models import (
    Finding,
    PortResult,
    PortState,
    ScanInfo,
    ScanSummary,
    Transport,
)
from scanner.report.jsonfile import JsonResultWriter
from tests.conftest import Netns
from tests.test_cli import validate

BODY_END = b'\n],\n"findings": ['

INFO = ScanInfo.model_validate(
    {
        "id": "3f1c2d9e-0000-4000-8000-000000000001",
        "version": "0.1.0",
        "command_line": ["scan", "127.0.0.0/24"],
        "started_at": "2026-11-21T11:28:50.940849Z",
        "finished_at": None,
        "targets": ["127.0.0.0/24"],
        "excludes": [],
        "ports": {"tcp": "13", "udp": ""},
        "options": {
            "timeout_s": 1.0,
            "retries": 1,
            "rate": None,
            "max_inflight": 64,
            "per_host": 256,
            "seed": 7,
            "all_states": False,
            "event_loop": "asyncio",
        },
    }
)


def _result(n: int) -> PortResult:
    return PortResult(
        host=f"127.0.{n // 256}.{n % 256}",
        port=13,
        proto=Transport.TCP,
        state=PortState.OPEN,
        reason="syn-ack",
        rtt_ms=0.1,
        attempts=1,
        response_hex=f"Monday, 01 Jan 2026 12:00:{n % 60:02d} UTC".encode().hex(),
    )


def _finding(n: int) -> Finding:
    return Finding.model_validate(
        {
            "host": f"127.0.{n // 256}.{n % 256}",
            "port": 13,
            "proto": "tcp",
            "service_id": "daytime",
            "protocol": "daytime",
            "verdict": "legacy",
            "severity": "low",
            "confidence": 1.0,
            "title": f"Daytime answers on 13/tcp ({n})",
            "evidence": {
                "probe": "tcp-null",
                "request_hex": None,
                "response_hex": "4d6f6e646179",
                "response_bytes": 6,
            },
        }
    )


class _Counts:
    """The summary the writer asks for: counts of what the test has given it."""

    def __init__(self) -> None:
        self.results = 0
        self.findings = 0

    def summary(self) -> ScanSummary:
        return ScanSummary(
            hosts=256,
            probes_total=256,
            probes_done=self.results,
            states={PortState.OPEN: self.results},
            states_by_proto={Transport.TCP: {PortState.OPEN: self.results}},
            findings_by_severity={"low": self.findings},
            duration_s=0.0,
        )


def _feed(writer: JsonResultWriter, counts: _Counts, start: int, stop: int) -> None:
    # Results and findings interleaved, as a scan gives them
    for n in range(start, stop):
        writer.add(_result(n))
        counts.results += 1
        if n % 3 == 0:
            writer.add_finding(_finding(n))
            counts.findings += 1


def test_a_file_grows_at_its_end_and_is_a_document_at_every_flush(tmp_path: Path) -> None:
    path = tmp_path / "scan.json"
    counts = _Counts()
    snapshots: list[bytes] = []
    with open(path, "wb") as stream:
        writer = JsonResultWriter(stream, INFO, [], counts.summary)
        for batch in range(6):
            # When a batch of results and findings arrives and is flushed
            _feed(writer, counts, batch * 40, (batch + 1) * 40)
            writer.flush()
            data = path.read_bytes()
            snapshots.append(data)
            # Then the file is a valid document with every result so far, in order
            doc = json.loads(data)
            assert doc["complete"] is False
            assert [r["host"] for r in doc["results"]] == [
                _result(n).host for n in range((batch + 1) * 40)
            ]
            assert doc["summary"]["probes_done"] == counts.results
        writer.close(complete=True)
    final = path.read_bytes()
    # And no byte written before a flush was rewritten after it: every earlier body (header
    # and results) is still where it was; only the trailer after it and, at the end, the
    # finished_at slot in the header change
    results_start = final.index(b'"results": [')
    # The part rewritten at a flush is the trailer alone, small whatever the findings so far
    assert all(len(earlier) - earlier.rindex(BODY_END) < 512 for earlier in snapshots)
    for earlier, later in zip(snapshots, [*snapshots[1:], final], strict=True):
        end = earlier.rindex(BODY_END)
        assert later.index(b'"results": [') == results_start
        assert later[results_start:end] == earlier[results_start:end]
    doc = json.loads(final)
    validate(doc)
    assert doc["complete"] is True and doc["scan"]["finished_at"]
    assert doc["results"] == [json.loads(_result(n).model_dump_json()) for n in range(240)]
    assert doc["findings"] == [json.loads(_finding(n).model_dump_json()) for n in range(0, 240, 3)]
    assert doc["summary"]["findings_by_severity"]["low"] == len(doc["findings"]) == 80


def test_a_stream_that_cannot_seek_gets_one_document_at_the_end(tmp_path: Path) -> None:
    # Given a pipe (as `--json -` into `| jq` is), drained by a reader thread
    read_end, write_end = os.pipe()
    received: list[bytes] = []

    def drain() -> None:
        with os.fdopen(read_end, "rb") as pipe:
            received.append(pipe.read())

    reader = threading.Thread(target=drain)
    reader.start()
    counts = _Counts()
    stream: IO[bytes] = os.fdopen(write_end, "wb")
    try:
        writer = JsonResultWriter(stream, INFO, [], counts.summary)
        # When more results than one batch and findings go through it
        _feed(writer, counts, 0, 5000)
        writer.close(complete=False)
    finally:
        stream.close()
        reader.join(timeout=60)
    # Then the pipe carries one valid document with all of them, in order
    doc: dict[str, Any] = json.loads(received[0])
    validate(doc)
    assert doc["complete"] is False
    assert [r["host"] for r in doc["results"]] == [_result(n).host for n in range(5000)]
    assert [f["title"] for f in doc["findings"]] == [_finding(n).title for n in range(0, 5000, 3)]


DAYTIME_PROFILE = """\
id: daytime-only
title: Daytime only
description: One service and its one probe, so that every host of a sweep is a finding.
probes:
  - id: tcp-null
    transport: tcp
    description: connect and read what the server says first
    builder: "null"
    wait: 2
    rarity: 1
services:
  - id: daytime
    name: Daytime (inetd small service)
    protocol: daytime
    registry: [daytime]
    ports: {tcp: [13]}
    status: legacy-risk
    history: RFC 867 (1983). Answers with the date and time as text.
    severity: low
    severity_rationale: It leaks the host's clock.
    remediation: Disable the inetd small services.
    probes: [tcp-null]
    matchers:
      - name: daytime-text
        type: regex
        protocol: daytime
        pattern: "(?i)^(mon|tue|wed|thu|fri|sat|sun)[a-z]*,? .{0,40}\\\\d{1,2}:\\\\d{2}:\\\\d{2}"
"""
SWEEP = "127.0.0.0/18"  # 16,384 hosts, each a finding carrying 4 KB of evidence
HOSTS = 16384
MARGIN = 48 << 20  # what the JSON writer may cost on top: a batch of results and buffers


def _scan_under_limit(netns: Netns, limit: int, *args: str) -> tuple[int, str]:
    done = netns.run(
        "env",
        "MALLOC_ARENA_MAX=2",  # the same arenas in both runs: address space comparable
        sys.executable,
        "-m",
        "tests.scan_under_limit",
        str(limit),
        *args,
        check=False,
        timeout=600,
    )
    return done.returncode, done.stderr


def _peak(stderr: str) -> int:
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("peak "), stderr[-2000:]
    return int(last.split()[1])


def test_a_finding_on_every_host_of_a_large_sweep_fits_the_memory_of_no_document(
    netns: Netns, tmp_path: Path
) -> None:
    # Given a daytime service answering 4 KB on every address of the namespace's loopback
    banner = "Monday, 01 Jan 2026 12:00:00 UTC " + "x" * 4064
    netns.serve(f"tcp:0.0.0.0:13:{banner}")
    profile = tmp_path / "daytime-only.yaml"
    profile.write_text(DAYTIME_PROFILE)
    scan = ["-q", "--no-db", "--tcp", "-p", "13", "--profile", str(profile)]
    scan += ["--max-inflight", "64", "--timeout", "1", SWEEP]
    # When the sweep runs without a JSON document, its peak address space is the baseline
    code, stderr = _scan_under_limit(netns, 0, *scan)
    assert code == 0, stderr[-2000:]
    baseline = _peak(stderr)
    # Then the same sweep writing its document (16,384 findings of ~9 KB each: ~150 MB if
    # they were held in memory) completes with its address space capped a little above that
    out = tmp_path / "sweep.json"
    code, stderr = _scan_under_limit(netns, baseline + MARGIN, *scan, "--json", str(out))
    assert code == 0, stderr[-2000:]
    assert _peak(stderr) <= baseline + MARGIN
    doc = json.loads(out.read_text())
    validate(doc)
    assert doc["complete"] is True
    assert len(doc["results"]) == len(doc["findings"]) == HOSTS
    assert {f["service_id"] for f in doc["findings"]} == {"daytime"}
    assert all(len(f["evidence"]["response_hex"]) == 2 * 4096 for f in doc["findings"])


def test_a_device_that_seeks_but_cannot_truncate_is_written_as_a_stream() -> None:
    # /dev/null seeks, but truncate() fails there (EINVAL): `--json - > /dev/null` and
    # `--json /dev/null` once ended as "internal error", exit 3
    command = [sys.executable, "-m", "scanner", "scan", "-q", "--no-db", "-p", "T:9"]
    for extra, stdout in ((["--json", "-"], "/dev/null"), (["--json", "/dev/null"], None)):
        with open(stdout or os.devnull, "wb") as sink:
            done = subprocess.run(
                [*command, *extra, "127.0.0.1"],
                stdout=sink if stdout else subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=False,
                check=False,
            )
        assert done.returncode == 0, done.stderr
        assert not done.stderr
