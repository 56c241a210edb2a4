"""Real daemons squatting on ports registered to obsolete services: one scan names them all.

Issue 12's proof: Debian's own daemons, each on its own loopback address inside a namespace
the test makes, on the SynOptics, AirMobile, Cabletron, DEC Notes, 3Com, NetWare/IP, Cisco
Smart Install, X11 and SNMP-over-TCP ports, over TCP and UDP. Whatever ghostport's profiles
expect there, something else answers, and the scan must say what.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import daemons
from tests.conftest import Netns
from tests.test_cli import validate

pytestmark = [pytest.mark.slow, pytest.mark.netns]


@pytest.fixture
def squatting(netns: Netns, tmp_path: Path) -> Iterator[list[daemons.Daemon]]:
    """The installed squatters, running and bound in the namespace; stopped by PID after the
    test (before the namespace is removed), also when it fails."""
    running = [d for d in daemons.squatters() if daemons.installed(d)]
    if len(running) < 12:
        missing = sorted({d.package for d in daemons.squatters()} - {d.package for d in running})
        pytest.skip(f"needs at least 12 of the daemons; not installed: {', '.join(missing)}")
    daemons.add_addresses(netns.name, running)
    processes: list = []
    try:
        processes = daemons.start(netns.name, tmp_path / "daemons", running)
        daemons.wait_bound(netns.name, running, processes, tmp_path / "daemons")
        yield running
    finally:
        daemons.stop(netns.name, processes)


def test_one_scan_names_every_squatting_daemon(
    netns: Netns, squatting: list[daemons.Daemon], tmp_path: Path
) -> None:
    # Given 12+ real daemons of different protocols, each on its own address, on orphaned
    # ports (TCP and UDP), and every one of those ports scanned on every address
    addresses = [d.address for d in squatting]
    first, last = addresses[0], addresses[-1].rsplit(".", 1)[1]
    out = tmp_path / "scan.json"
    # When one scan runs, as a user would run it, inside the namespace
    started = time.monotonic()
    completed = netns.run(
        sys.executable,
        "-m",
        "scanner",
        "scan",
        "-q",
        "--json",
        str(out),
        "-p",
        daemons.ports_of(squatting),
        f"{first}-{last}",
        check=False,
    )
    wall = time.monotonic() - started
    print(f"\nscan of {len(squatting)} daemons: {wall:.2f} s whole-process")
    assert completed.returncode == 0, completed.stderr
    document = json.loads(out.read_text())
    validate(document)
    results = {(r["host"], r["port"], r["proto"]): r for r in document["results"]}
    findings = {(f["host"], f["port"], f["proto"]): f for f in document["findings"]}
    # Then every daemon is a squatter, named by the protocol it speaks
    named = {}
    for daemon in squatting:
        for port, proto in daemon.speaks:
            result = results.get((daemon.address, port, proto))
            service = (result or {}).get("service") or {}
            named[daemon.name, port, proto] = (
                (result or {}).get("state"),
                (result or {}).get("verdict"),
                service.get("protocol"),
            )
    expected = {
        (d.name, port, proto): ("open", "squatter", protocol)
        for d in squatting
        for (port, proto), protocol in d.speaks.items()
    }
    assert named == expected
    # And the bind shell is its own critical finding
    shells = [d for d in squatting if "shell" in d.speaks.values()]
    for shell in shells:
        (port, proto), _ = next(iter(shell.speaks.items()))
        assert findings[shell.address, port, proto]["severity"] == "critical"
    # And nothing else on those addresses is open: each daemon answers on its own only
    listed = {k for k, r in results.items() if r["state"] not in ("closed",)}
    assert listed == {(d.address, p, t) for d in squatting for (p, t) in d.speaks}
