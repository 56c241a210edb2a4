"""The local audit, in a namespace of the test's own so only its sockets are seen."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, Netns
from tests.test_cli import validate

SERVICES = [  # process name, kind, address, port
    ("legacy-snmpd", "snmp", "0.0.0.0", 391),
    ("inventory-app", "http", "127.0.0.1", 412),
    ("amis-agent", "banner", "127.0.0.1", 3416),
    ("plain-app", "plain", "127.0.0.1", 45677),  # unassigned (45678 is IANA's eba)
]


@pytest.fixture
def local_services(netns: Netns, tmp_path: Path) -> dict[str, subprocess.Popen[str]]:
    started = {}
    for name, kind, host, port in SERVICES:
        process = netns.spawn(
            sys.executable, str(REPO / "tests" / "local_services.py"), name, kind, host, str(port)
        )
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
        started[name] = process
    return started


def test_local_audit_names_the_process_behind_each_orphaned_port(
    netns: Netns, local_services: dict[str, subprocess.Popen[str]]
) -> None:
    done = netns.run(
        sys.executable, "-m", "scanner", "local", "--json", "-", "--timeout", "1", check=False
    )
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    validate(doc)
    sockets = {(s["port"], s["proto"]): s for s in doc["local"]["sockets"]}
    assert set(sockets) == {(391, "udp"), (412, "tcp"), (3416, "tcp"), (45677, "tcp")}
    for name, kind, host, port in SERVICES:
        sock = sockets[port, "udp" if kind == "snmp" else "tcp"]
        process = sock["process"]
        assert process["pid"] == local_services[name].pid
        assert process["name"] == name
        assert process["cmdline"][1:] == [
            str(REPO / "tests" / "local_services.py"),
            name,
            kind,
            host,
            str(port),
        ]
        assert sock["all_interfaces"] is (host == "0.0.0.0")
        assert sock["loopback_only"] is (host == "127.0.0.1")
    assert sockets[391, "udp"]["registry"]["name"] == "synotics-relay"
    assert sockets[412, "tcp"]["registry"]["name"] == "synoptics-trap"
    assert sockets[45677, "tcp"]["finding"] is False and sockets[45677, "tcp"]["registry"] is None
    findings = {(f["port"], f["proto"]): f for f in doc["findings"]}
    assert set(findings) == {(391, "udp"), (412, "tcp"), (3416, "tcp")}
    assert findings[391, "udp"]["verdict"] == "legacy"  # an SNMP responder on 391
    assert findings[391, "udp"]["process"]["name"] == "legacy-snmpd"
    assert (findings[412, "tcp"]["verdict"], findings[412, "tcp"]["protocol"]) == (
        "squatter",
        "http",
    )
    assert findings[412, "tcp"]["process"]["pid"] == local_services["inventory-app"].pid
    assert findings[3416, "tcp"]["verdict"] == "squatter"  # an unknown banner
    # --fail-on works the same as for a network scan; --no-probe still lists the findings
    assert (
        netns.run(
            sys.executable, "-m", "scanner", "local", "--no-probe", "--fail-on", "high", check=False
        ).returncode
        == 1
    )


def test_local_audit_as_a_normal_user_reports_partial_ownership(
    netns: Netns, local_services: dict[str, subprocess.Popen[str]], tmp_path: Path
) -> None:
    if shutil.which("setpriv") is None:
        pytest.skip("needs setpriv (util-linux)")
    as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    probe = netns.run(*as_nobody, sys.executable, "-c", "import scanner.cli", check=False)
    if probe.returncode != 0:
        pytest.skip(
            f"this interpreter is not usable by another user: {probe.stderr.strip()[-120:]}"
        )
    done = netns.run(
        *as_nobody,
        sys.executable,
        "-m",
        "scanner",
        "local",
        "--no-probe",
        "--json",
        "-",
        check=False,
    )
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert "not readable" in doc["local"]["note"]
    assert all(s["process"]["readable"] is False for s in doc["local"]["sockets"])
