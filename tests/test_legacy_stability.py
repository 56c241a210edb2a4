"""Fragile legacy daemons, scanned five times in a row: the same complete names every time.

Issue 12: against one real net-snmp agent with SNMP on 161 and a SynOptics port, SMUX, AgentX
and SNMP over TCP all enabled, a scan named 1993 and 705 in one run and not in the next
(probes sent at once to the single-threaded agent's SMUX port stalled it). Here that agent,
inetd's small services and the r-services (probed from a privileged source port, as root),
tftpd-hpa on 69 and on a second port, and snmptrapd (acknowledging an SNMPv2c Inform) run in
a namespace the test makes; five consecutive scans must agree and name every service.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import daemons
from tests.conftest import Netns
from tests.test_cli import validate

pytestmark = [pytest.mark.slow, pytest.mark.netns]

SCANS = 5
# discard over UDP answers nothing by definition: its port stays open|filtered, unnamed
UNNAMEABLE = {(9, "udp")}


@pytest.fixture
def legacy_host(netns: Netns, tmp_path: Path) -> Iterator[list[daemons.Daemon]]:
    """The legacy daemons running and bound in the namespace; stopped by PID after the test
    (before the namespace is removed), also when it fails."""
    running = daemons.legacy()
    missing = sorted({d.package for d in running if not daemons.installed(d)})
    if missing:
        pytest.skip(f"needs the Debian packages {', '.join(missing)}")
    # rshd and rlogind hang up on a client address without a name: the namespace's own hosts
    netns.etc_file("hosts", daemons.hosts_file(running))
    daemons.add_addresses(netns.name, running)
    work = tmp_path / "daemons"
    (work / "snmp").mkdir(parents=True)
    processes: list = []
    try:
        processes = daemons.start(netns.name, work, running)
        daemons.wait_bound(netns.name, running, processes, work)
        yield running
    finally:
        daemons.stop(netns.name, processes)


def test_five_scans_name_the_same_complete_set(
    netns: Netns, legacy_host: list[daemons.Daemon]
) -> None:
    assert os.geteuid() == 0  # the netns fixture skips otherwise; rsh needs port < 1024
    first, last = legacy_host[0].address, legacy_host[-1].address.rsplit(".", 1)[1]
    expected = {
        (d.address, port, proto, service)
        for d in legacy_host
        for (port, proto), service in d.speaks.items()
        if (port, proto) not in UNNAMEABLE
    }
    runs = []
    for run in range(SCANS):
        # When the same scan runs again (each a whole process, as a user runs it)
        started = time.monotonic()
        code, document, stderr = netns.scan(
            "-p", daemons.ports_of(legacy_host), f"{first}-{last}", timeout=300
        )
        print(f"\nscan {run + 1}: {time.monotonic() - started:.2f} s whole-process")
        assert code == 0, stderr
        validate(document)
        runs.append(
            {
                (r["host"], r["port"], r["proto"], r["service"]["id"])
                for r in document["results"]
                if r["state"] == "open" and r["service"]
            }
        )
    # Then every scan names every expected service, and nothing else: the five agree
    assert {n: names for n, names in enumerate(runs, 1) if names != expected} == {}
