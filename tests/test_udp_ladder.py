"""UDP identification, counted by nftables in the test's own namespace (issues 12 and 15):
one datagram decides a closed port whatever its service's probes, and a silent port on a
live host gets its own probes and then the fallback datagrams, each once."""

from __future__ import annotations

import json
import sys

from tests.conftest import Netns
from tests.test_scope_packets import COUNTERS, _counts, _ghostport


def test_one_datagram_per_closed_udp_port(netns: Netns) -> None:
    # Given SNMP's ports (which own several probes: v1 and v2c, public and private) and the
    # discard port, all closed, on 64 addresses
    netns.nft(COUNTERS.format(name="datagrams", rule="meta l4proto udp", control="icmp type 3"))
    # When they are scanned
    done = _ghostport(
        netns, "scan", "-q", "--no-db", "--udp", "-p", "161,412,9", "--json", "-", "127.0.40.0/26"
    )
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    # Then every port is closed, and each got exactly one datagram
    assert doc["summary"]["states"]["closed"] == 64 * 3
    counts = _counts(netns)
    assert counts["datagrams"] == 64 * 3
    assert counts["control"] == 64 * 3  # the port-unreachable errors that said so


def test_a_silent_udp_port_on_a_live_host_gets_each_fallback_once(netns: Netns) -> None:
    # Given a UDP socket that reads and never answers, on a host that answers elsewhere (a
    # closed TCP port resets)
    silent = netns.spawn(
        sys.executable,
        "-c",
        "import socket,sys; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
        "s.bind(('127.0.41.1', 3416)); print('ready', flush=True); "
        "[s.recvfrom(2048) for _ in iter(int, 1)]",
    )
    assert silent.stdout is not None and silent.stdout.readline().strip() == "ready"
    netns.nft(
        COUNTERS.format(
            name="datagrams", rule="ip daddr 127.0.41.1 udp dport 3416", control="tcp dport 1"
        )
    )
    # When the port is scanned with the TCP port that tells the host is alive
    done = _ghostport(
        netns,
        "scan",
        "-q",
        "--no-db",
        "--retries",
        "0",
        "-p",
        "T:1,U:3416",
        "--json",
        "-",
        "127.0.41.1",
    )
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    (udp,) = [r for r in doc["results"] if r["proto"] == "udp"]
    # Then it stays open|filtered, and it heard its own probes and every fallback datagram
    # once each: never more than the profiles' UDP probes, never fewer than its own plus a
    # dozen fallbacks (DNS, NTP, SNMP, memcached, SIP, NetBIOS, SSDP, RPC, mDNS, CoAP, ...)
    assert udp["state"] == "open|filtered"
    from scanner.assembly import Judge
    from scanner.profiles import load_profiles

    probe_set = Judge.of(load_profiles(["legacy-mgmt"])).probe_set
    own = len(probe_set.for_udp(3416))
    fallbacks = len(probe_set.udp_fallbacks(3416))
    assert fallbacks >= 12
    assert _counts(netns)["datagrams"] == own + fallbacks
