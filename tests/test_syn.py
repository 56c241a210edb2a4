"""`scan --syn` (-sS): raw SYN discovery in a private network namespace with nftables rules.

Every state comes from a real rule or socket in the namespace; what the scan sends is counted
by nftables counters in the same namespace, so "nothing outside the targets" is a number.
"""

from __future__ import annotations

import json
import re
import shutil
import sys

import pytest

from tests.conftest import Netns
from tests.test_cli import validate

STATES = """
table inet ghostport_syn {
  chain input {
    type filter hook input priority 0;
    ip daddr 127.0.0.2 drop
    ip daddr 127.0.0.3 reject with icmp type admin-prohibited
    ip daddr 127.0.0.4 reject with icmp type host-unreachable
  }
}
"""


def _counters(netns: Netns, table: str) -> dict[str, int]:
    """Packets counted by each named counter of the namespace's table."""
    listed = json.loads(netns.run("nft", "-j", "list", "counters", "table", "inet", table).stdout)
    return {
        item["counter"]["name"]: item["counter"]["packets"]
        for item in listed["nftables"]
        if "counter" in item
    }


def test_every_state_with_nmaps_reasons_and_open_ports_identified_by_connect(
    netns: Netns,
) -> None:
    # Given a TCP service with a banner and a UDP service on .1, silence on .2,
    # admin-prohibited on .3 and host-unreachable on .4
    netns.serve("tcp:127.0.0.1:2300:220 ready\r\n", "udp:127.0.0.1:16100:pong")
    netns.nft(STATES)
    # When the four hosts are scanned with --syn on a service port and a closed port,
    # with UDP too (-sU), and banners read on open ports
    code, doc, stderr = netns.scan(
        "--syn",
        "-sU",
        "--no-db",
        "--all-states",
        "--timeout",
        "0.3",
        "--retries",
        "1",
        "--banner-wait",
        "0.5",
        "-p",
        "T:2300,2301,U:16100",
        "127.0.0.1-4",
    )
    assert code == 0, stderr
    validate(doc)
    seen = {(r["host"], r["port"], r["proto"]): (r["state"], r["reason"]) for r in doc["results"]}
    # Then each rule gives nmap's -sS state and reason
    assert seen == {
        ("127.0.0.1", 2300, "tcp"): ("open", "syn-ack"),
        ("127.0.0.1", 2301, "tcp"): ("closed", "reset"),
        ("127.0.0.1", 16100, "udp"): ("open", "udp-response"),
        ("127.0.0.2", 2300, "tcp"): ("filtered", "no-response"),
        ("127.0.0.2", 2301, "tcp"): ("filtered", "no-response"),
        ("127.0.0.2", 16100, "udp"): ("open|filtered", "no-response"),
        ("127.0.0.3", 2300, "tcp"): ("filtered", "admin-prohibited"),
        ("127.0.0.3", 2301, "tcp"): ("filtered", "admin-prohibited"),
        ("127.0.0.3", 16100, "udp"): ("filtered", "admin-prohibited"),
        ("127.0.0.4", 2300, "tcp"): ("filtered", "host-unreach"),
        ("127.0.0.4", 2301, "tcp"): ("filtered", "host-unreach"),
        ("127.0.0.4", 16100, "udp"): ("filtered", "host-unreach"),
    }
    by_key = {(r["host"], r["port"], r["proto"]): r for r in doc["results"]}
    # The open port went on to the connect stage, which read its banner; UDP ran as ever
    assert bytes.fromhex(by_key["127.0.0.1", 2300, "tcp"]["response_hex"]) == b"220 ready\r\n"
    assert by_key["127.0.0.1", 16100, "udp"]["response_hex"] == b"pong".hex()
    assert by_key["127.0.0.2", 2300, "tcp"]["attempts"] == 2, "silent SYNs are retransmitted"
    assert "--syn" in doc["scan"]["command_line"]


def test_an_open_port_without_banner_wait_is_open_from_the_syn_ack_alone(netns: Netns) -> None:
    # Given a listener that never speaks, and a closed port beside it
    netns.serve("tcp:127.0.0.1:2300")
    # When it is scanned with -sS (nmap's spelling), TCP only
    code, doc, stderr = netns.scan(
        "-sS", "--no-db", "--all-states", "--timeout", "0.3", "-p", "2300,2301", "127.0.0.1"
    )
    assert code == 0, stderr
    seen = {(r["port"], r["proto"]): (r["state"], r["reason"]) for r in doc["results"]}
    # Then open and closed come from the SYN's answers, and no UDP was probed (-sS is TCP only)
    assert seen == {(2300, "tcp"): ("open", "syn-ack"), (2301, "tcp"): ("closed", "reset")}
    assert doc["summary"]["probes_total"] == 2


COUNTING = """
table inet ghostport_count {
  counter syn_to_targets {}
  counter outside {}
  counter ipv6 {}
  chain output {
    type filter hook output priority 0;
    ip daddr 127.0.0.2-127.0.0.4 tcp flags & (syn | ack) == syn counter name syn_to_targets
    ip saddr != 127.0.0.2-127.0.0.4 ip daddr != 127.0.0.2-127.0.0.4 counter name outside
    meta nfproto ipv6 counter name ipv6
  }
  chain input {
    type filter hook input priority 0;
    ip daddr { 127.0.0.2, 127.0.0.3 } drop
  }
}
"""


def test_nothing_is_sent_outside_the_targets_and_each_silent_syn_is_sent_once_per_attempt(
    netns: Netns,
) -> None:
    # Given two silent hosts (.2, .3) and one that resets (.4), with counters on output
    netns.nft(COUNTING)
    # When three ports of each are scanned with two retries
    code, doc, stderr = netns.scan(
        "--syn",
        "--no-db",
        "--all-states",
        "--timeout",
        "0.2",
        "--retries",
        "2",
        "-p",
        "2300-2302",
        "127.0.0.2-4",
    )
    assert code == 0, stderr
    assert doc["summary"]["states_by_proto"]["tcp"] == {
        "open": 0,
        "closed": 3,
        "filtered": 6,
        "open|filtered": 0,
    }
    # Then the SYNs counted are 6 silent ports x 3 attempts + 3 answered ports x 1,
    # and not one packet went anywhere but to and from the targets
    assert _counters(netns, "ghostport_count") == {
        "syn_to_targets": 6 * 3 + 3,
        "outside": 0,
        "ipv6": 0,
    }


def test_without_cap_net_raw_syn_is_one_error_and_nothing_is_sent(netns: Netns) -> None:
    if shutil.which("setpriv") is None:
        pytest.skip("needs setpriv (util-linux) to drop CAP_NET_RAW")
    netns.nft(
        "table inet ghostport_count {\n  counter sent {}\n  chain output {\n"
        "    type filter hook output priority 0;\n    counter name sent\n  }\n}\n"
    )
    # Given root without CAP_NET_RAW (dropped from the bounding set before exec)
    done = netns.run(
        "setpriv",
        "--inh-caps",
        "-all",
        "--bounding-set",
        "-net_raw",
        sys.executable,
        "-m",
        "scanner",
        "scan",
        "--syn",
        "--no-db",
        "-p",
        "2300",
        "127.0.0.1",
        check=False,
    )
    # Then: exit 2, one line naming --syn and the privilege, no traceback, no packet
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert re.match(r"ghostport: error: --syn .*CAP_NET_RAW", lines[0]), lines[0]
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
    assert _counters(netns, "ghostport_count") == {"sent": 0}


def test_the_syn_wait_follows_measured_round_trips_within_its_floor_and_ceiling() -> None:
    from scanner.ladder import MIN_ADAPTED_WAIT
    from scanner.syn import SynTimer

    # Given a timer with --timeout 1.0, before enough answers were measured
    timer = SynTimer(1.0, min_samples=4)
    for _ in range(3):
        timer.sample(0.0001)
    assert timer.wait == 1.0
    # When a fourth loopback round trip is measured, the wait drops to the floor
    timer.sample(0.0001)
    assert timer.wait == MIN_ADAPTED_WAIT
    assert timer.attempt_wait(2) == 2 * MIN_ADAPTED_WAIT  # doubled for a retransmission
    # When slow answers come in (counted from the first SYN after a retransmission), it rises
    for _ in range(8):
        timer.sample(0.35)
    assert MIN_ADAPTED_WAIT < timer.wait <= 1.0
    # and never beyond --timeout
    for _ in range(8):
        timer.sample(5.0)
    assert timer.wait == 1.0


def test_closed_ports_counted_in_bulk_match_the_listed_ones(netns: Netns) -> None:
    # Given one open port among 200 closed ones on .1, silence on .2, a reject on .3
    netns.serve("tcp:127.0.0.1:2300")
    netns.nft(STATES)
    args = ("--syn", "--no-db", "--timeout", "0.3", "--retries", "1", "-p", "2200-2400")
    # When the same scan runs without --all-states (closed ports only counted, in bulk)
    # and with it (each closed port observed and listed)
    code, counted, stderr = netns.scan(*args, "127.0.0.1-3")
    assert code == 0, stderr
    code, listed, stderr = netns.scan(*args, "--all-states", "127.0.0.1-3")
    assert code == 0, stderr
    validate(counted)
    # Then both count the same states, and list the same ports that are not closed
    tcp = {"open": 1, "closed": 200, "filtered": 402, "open|filtered": 0}
    assert counted["summary"]["states_by_proto"]["tcp"] == tcp
    assert listed["summary"]["states_by_proto"]["tcp"] == tcp
    assert counted["summary"]["probes_done"] == listed["summary"]["probes_done"] == 603

    def rows(doc: dict[str, object], closed: bool) -> set[tuple[str, int, str, str]]:
        return {
            (r["host"], r["port"], r["state"], r["reason"])
            for r in doc["results"]  # type: ignore[attr-defined]
            if (r["state"] == "closed") == closed
        }

    assert rows(counted, closed=False) == rows(listed, closed=False)
    assert ("127.0.0.1", 2300, "open", "syn-ack") in rows(counted, closed=False)
    assert rows(counted, closed=True) == set()
    assert len(rows(listed, closed=True)) == 200
