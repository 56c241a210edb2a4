"""Every port state, produced by real firewall rules in a private network namespace.

The namespace is the test's own: its loopback, its nftables tables, its /etc/hosts. Nothing
touches the machine's interfaces.
"""

from __future__ import annotations

import pytest

from tests.conftest import Netns
from tests.test_cli import validate

RULES = """
table inet ghostport_test {
  chain input {
    type filter hook input priority 0;
    ip daddr 127.0.0.2 drop
    ip daddr 127.0.0.3 reject with icmp type admin-prohibited
    ip daddr 127.0.0.4 reject with icmp type host-unreachable
  }
}
"""


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_every_state_on_both_transports(netns: Netns, loop: str) -> None:
    if loop == "uvloop":
        pytest.importorskip("uvloop")
    # Given open services on .1, silence on .2, admin-prohibited on .3, host-unreach on .4
    netns.serve("tcp:127.0.0.1:2300:220 ready\r\n", "udp:127.0.0.1:16100:pong")
    netns.nft(RULES)
    # When the four hosts are scanned on a service port and a closed port per transport
    code, doc, stderr = netns.scan(
        "--loop",
        loop,
        "--all-states",
        "--timeout",
        "0.5",
        "--retries",
        "1",
        "--banner-wait",
        "0.5",
        "-p",
        "T:2300,2301,U:16100,16101",
        "127.0.0.1-4",
    )
    assert code == 0, stderr
    validate(doc)
    seen = {(r["host"], r["port"], r["proto"]): (r["state"], r["reason"]) for r in doc["results"]}
    # Then each rule gives nmap's state and reason
    assert seen == {
        ("127.0.0.1", 2300, "tcp"): ("open", "syn-ack"),
        ("127.0.0.1", 2301, "tcp"): ("closed", "conn-refused"),
        ("127.0.0.1", 16100, "udp"): ("open", "udp-response"),
        ("127.0.0.1", 16101, "udp"): ("closed", "port-unreach"),
        ("127.0.0.2", 2300, "tcp"): ("filtered", "no-response"),
        ("127.0.0.2", 2301, "tcp"): ("filtered", "no-response"),
        ("127.0.0.2", 16100, "udp"): ("open|filtered", "no-response"),
        ("127.0.0.2", 16101, "udp"): ("open|filtered", "no-response"),
        ("127.0.0.3", 2300, "tcp"): ("filtered", "admin-prohibited"),
        ("127.0.0.3", 2301, "tcp"): ("filtered", "admin-prohibited"),
        ("127.0.0.3", 16100, "udp"): ("filtered", "admin-prohibited"),
        ("127.0.0.3", 16101, "udp"): ("filtered", "admin-prohibited"),
        ("127.0.0.4", 2300, "tcp"): ("filtered", "host-unreach"),
        ("127.0.0.4", 2301, "tcp"): ("filtered", "host-unreach"),
        ("127.0.0.4", 16100, "udp"): ("filtered", "host-unreach"),
        ("127.0.0.4", 16101, "udp"): ("filtered", "host-unreach"),
    }
    by_key = {(r["host"], r["port"], r["proto"]): r for r in doc["results"]}
    assert bytes.fromhex(by_key["127.0.0.1", 2300, "tcp"]["response_hex"]) == b"220 ready\r\n"
    assert by_key["127.0.0.1", 16100, "udp"]["response_hex"] == b"pong".hex()
    assert by_key["127.0.0.2", 16100, "udp"]["attempts"] == 2, "silent probes are retried"
    assert doc["summary"]["states"] == {
        "open": 2,
        "closed": 2,
        "filtered": 10,
        "open|filtered": 2,
    }


def test_hostnames_resolve_once_and_failures_are_recorded(netns: Netns) -> None:
    # Given a hosts file in the namespace and a resolver that answers nothing (loopback only)
    netns.etc_file("hosts", "127.0.0.1 localhost\n127.0.0.9 lab-router.test\n")
    netns.etc_file("resolv.conf", "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
    netns.serve("tcp:127.0.0.9:2323")
    # When one name resolves and one does not
    code, doc, stderr = netns.scan(
        "--tcp", "-p", "2323", "lab-router.test", "no-such-host.test", "127.0.0.10"
    )
    # Then the scan goes on, records the failure, and names the resolved host
    assert code == 0, stderr
    validate(doc)
    assert [(r["host"], r["hostname"], r["state"]) for r in doc["results"]] == [
        ("127.0.0.9", "lab-router.test", "open")
    ]
    assert [u["target"] for u in doc["unresolved"]] == ["no-such-host.test"]
    assert doc["summary"]["hosts"] == 2
    assert "no-such-host.test did not resolve" in stderr


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_probe_never_mistakes_itself_for_the_port(netns: Netns, loop: str) -> None:
    """With a free port inside the ephemeral range, the kernel can give the probe socket that
    very port as its source: TCP connects to itself, UDP hears its own datagram. Narrowing the
    namespace's ephemeral range to the two probed ports makes that near-certain."""
    if loop == "uvloop":
        pytest.importorskip("uvloop")
    netns.run("sysctl", "-q", "-w", "net.ipv4.ip_local_port_range=40000 40001")
    for _ in range(8):
        code, doc, stderr = netns.scan(
            "--loop",
            loop,
            "--all-states",
            "--timeout",
            "0.3",
            "--retries",
            "0",
            "-p",
            "40000,40001",
            "127.0.0.1",
        )
        assert code == 0, stderr
        assert sorted((r["port"], r["proto"], r["state"]) for r in doc["results"]) == [
            (40000, "tcp", "closed"),
            (40000, "udp", "closed"),
            (40001, "tcp", "closed"),
            (40001, "udp", "closed"),
        ]
