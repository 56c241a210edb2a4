"""Sample scan data for the store tests, and the child process they run and kill.

python -m tests.store_child crash URL SCAN_ID BATCH BATCHES
    records BATCHES whole batches through a StoreWriter, printing "committed N" after
    each, then starts one more batch and stops inside its transaction ("mid-batch"),
    waiting there to be killed
python -m tests.store_child write URL SCAN_ID BATCH BATCHES
    prints "ready", waits for "go" on stdin, then opens the store (migrating it if it
    is new), records BATCHES batches and finishes the scan; prints "done"
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from typing import Any

from scanner.models import (
    Evidence,
    Finding,
    PortResult,
    PortState,
    Reason,
    ScanInfo,
    ScanOptions,
    ScanSummary,
    ServiceMatch,
    Transport,
    Verdict,
)
from scanner.store.database import open_store
from scanner.store.writer import StoreWriter

OPTIONS = ScanOptions(
    timeout_s=1.0,
    retries=1,
    rate=None,
    max_inflight=512,
    per_host=64,
    seed=1234,
    all_states=False,
    event_loop="asyncio",
)


def scan_info(
    scan_id: str,
    started_at: str = "2026-03-01T10:00:00.000000Z",
    targets: tuple[str, ...] = ("127.0.0.0/24",),
    excludes: tuple[str, ...] = (),
    ports: str = "1-1024",
) -> ScanInfo:
    """A scan's info as the runner makes it."""
    return ScanInfo(
        id=scan_id,
        version="0.0-test",
        command_line=["scan", *targets],
        started_at=started_at,
        finished_at=None,
        targets=list(targets),
        excludes=list(excludes),
        ports={Transport.TCP: ports},
        options=OPTIONS,
        profiles=["telnet"],
        profile_hashes={"telnet": "ab" * 32},
    )


def port_result(
    host: str,
    port: int,
    proto: Transport = Transport.TCP,
    state: PortState = PortState.OPEN,
    *,
    service: str | None = None,
    verdict: Verdict | None = None,
    response_hex: str | None = None,
) -> PortResult:
    """A result as classification leaves it."""
    reasons = {
        PortState.OPEN: Reason.SYN_ACK if proto is Transport.TCP else Reason.UDP_RESPONSE,
        PortState.CLOSED: Reason.CONN_REFUSED,
        PortState.FILTERED: Reason.NO_RESPONSE,
        PortState.OPEN_FILTERED: Reason.NO_RESPONSE,
    }
    return PortResult(
        host=host,
        port=port,
        proto=proto,
        state=state,
        reason=reasons[state],
        rtt_ms=0.25,
        attempts=1,
        response_hex=response_hex,
        service=(
            ServiceMatch(id=service, protocol=service, confidence=0.9, matcher="banner")
            if service
            else None
        ),
        verdict=verdict,
    )


def finding(
    host: str,
    port: int,
    service_id: str | None = "telnet",
    title: str = "Telnet: cleartext remote login",
    *,
    severity: str = "high",
    verdict: Verdict = Verdict.LEGACY,
    proto: Transport = Transport.TCP,
) -> Finding:
    """A finding as classification makes it."""
    return Finding(
        host=host,
        port=port,
        proto=proto,
        service_id=service_id,
        protocol=service_id,
        verdict=verdict,
        severity=severity,
        confidence=0.9,
        title=title,
        evidence=Evidence(
            probe="banner", request_hex=None, response_hex="fffd18", response_bytes=3
        ),
    )


def summary(probes_done: int, opened: int) -> ScanSummary:
    """A summary with the given counts."""
    states = {s: 0 for s in PortState}
    states[PortState.OPEN] = opened
    return ScanSummary(
        hosts=256,
        probes_total=probes_done,
        probes_done=probes_done,
        states=states,
        states_by_proto={t: dict(states) if t is Transport.TCP else {} for t in Transport},
        duration_s=1.5,
    )


def numbered_result(index: int) -> PortResult:
    """The index-th result of a long sweep: ports 1-1000 of 127.0.x.y, in order."""
    host = f"127.0.{index // 1000 // 256 % 256}.{index // 1000 % 256}"
    return port_result(host, index % 1000 + 1)


class _StopInside(Mapping[str, Any]):
    """A checkpoint that, when the store reads it inside its transaction (after the batch's
    results are written, before the commit), announces it and waits to be killed."""

    def __init__(self, position: int) -> None:
        self._data = {"position": position}

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __len__(self) -> int:
        return len(self._data)

    def __iter__(self) -> Iterator[str]:
        print("mid-batch", flush=True)
        sys.stdin.readline()  # never answered: the parent sends SIGKILL
        return iter(self._data)


def crash(url: str, scan_id: str, batch: int, batches: int) -> None:
    store = open_store(url)
    store.begin_scan(scan_info(scan_id))
    # Commits happen only at the explicit flushes: each holds one batch and its checkpoint.
    writer = StoreWriter(store, scan_id, batch=batch + 1, interval_s=3600.0)
    index = 0
    for number in range(1, batches + 1):
        for _ in range(batch):
            writer.add_result(numbered_result(index))
            index += 1
        writer.flush(checkpoint={"position": index}, probes_done=index)
        print(f"committed {number}", flush=True)
    for _ in range(batch):
        writer.add_result(numbered_result(index))
        index += 1
    writer.flush(checkpoint=_StopInside(index), probes_done=index)
    print("committed the unfinished batch", flush=True)  # never reached


def write(url: str, scan_id: str, batch: int, batches: int) -> None:
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        raise SystemExit("no go")
    store = open_store(url)
    store.begin_scan(scan_info(scan_id))
    writer = StoreWriter(store, scan_id, batch=batch, interval_s=3600.0)
    for index in range(batch * batches):
        writer.add_result(numbered_result(index))
        if index % 97 == 0:
            writer.add_finding(finding(numbered_result(index).host, index % 1000 + 1))
    writer.close(complete=True, summary=summary(batch * batches, batch * batches))
    store.close()
    print("done", flush=True)


if __name__ == "__main__":
    mode, url, scan_id, batch, batches = sys.argv[1:6]
    {"crash": crash, "write": write}[mode](url, scan_id, int(batch), int(batches))
