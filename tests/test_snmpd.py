"""Integration with a real net-snmp agent (Debian package snmpd) in a private namespace."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from tests.conftest import Netns
from tests.test_cli import validate

SYS_DESCR = "SynOptics Model 2813 Hub, agent rev 5.20 (ghostport integration)"


def start_snmpd(netns: Netns, workdir: Path) -> None:
    if shutil.which("snmpd") is None:
        pytest.skip("needs snmpd (Debian package snmpd), which .ci/run installs")
    conf = workdir / "snmpd.conf"
    conf.write_text(
        "agentaddress udp:127.0.0.1:161,udp:127.0.0.1:391\n"
        "rocommunity public 127.0.0.0/8\n"
        f"sysdescr {SYS_DESCR}\n"
        "sysname synoptics-lab\n"
    )
    netns.spawn("snmpd", "-f", "-Lo", "-C", "-c", str(conf), "-p", str(workdir / "snmpd.pid"))
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if ":391 " in netns.run("ss", "-uln").stdout:
            return
        time.sleep(0.1)
    pytest.fail("snmpd did not bind 127.0.0.1:391 in 15 s")


def test_real_snmpd_squatter_echo_and_closed(netns: Netns, tmp_path: Path) -> None:
    # Given net-snmp on 161/udp and 391/udp, an HTTP server on 412/tcp, echo on 7/udp
    start_snmpd(netns, tmp_path)
    netns.serve(
        "tcp-reply:127.0.0.1:412:HTTP/1.0 200 OK\r\nServer: custom-app/1.0\r\n\r\nhello",
        "udp-echo:127.0.0.1:7",
    )
    # When the legacy-mgmt profile scans them and two closed ports
    code, doc, stderr = netns.scan(
        "--profile",
        "legacy-mgmt",
        "--timeout",
        "1",
        "-p",
        "T:412,9999,U:7,161,391,9999",
        "127.0.0.1",
    )
    assert code == 0, stderr
    validate(doc)
    results = {(r["port"], r["proto"]): r for r in doc["results"]}
    findings = {(f["port"], f["proto"]): f for f in doc["findings"]}
    # Then SNMP on 391/udp is a live SynOptics-era relay, with the agent's sysDescr
    relay = results[391, "udp"]
    assert (relay["verdict"], relay["service"]["id"], relay["service"]["protocol"]) == (
        "legacy",
        "synoptics-relay",
        "snmp",
    )
    assert relay["service"]["extracted"]["sysDescr"] == SYS_DESCR
    assert findings[391, "udp"]["severity"] == "critical"  # community public works
    assert findings[391, "udp"]["evidence"]["decoded"]["sysName"] == "synoptics-lab"
    assert results[161, "udp"]["service"]["id"] == "snmp"
    # And the web server on the SynOptics trap port is a squatter speaking HTTP
    squatter = results[412, "tcp"]
    assert (squatter["verdict"], squatter["service"]["protocol"]) == ("squatter", "http")
    assert findings[412, "tcp"]["expected_service"] == "synoptics-trap"
    assert squatter["service"]["extracted"]["server"] == "custom-app/1.0"
    # And echo is echo, not SNMP; the closed ports are counted, not findings
    assert results[7, "udp"]["service"]["protocol"] == "echo"
    assert (9999, "udp") not in results and (9999, "tcp") not in results
    assert doc["summary"]["states"]["closed"] == 2
    assert set(findings) == {(391, "udp"), (161, "udp"), (412, "tcp"), (7, "udp")}
