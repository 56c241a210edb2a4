"""What leaves before and outside the scope, counted by nftables in the test's own namespace
(issue 13, items 2 and 5): `local --scope` probes nothing outside the scope, and `-n` sends
not even a DNS query."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from tests.conftest import REPO, Netns

COUNTERS = """
table inet ghostport_count {{
  counter {name} {{ }}
  counter control {{ }}
  chain output {{
    type filter hook output priority 0;
    {rule} counter name {name}
    {control} counter name control
  }}
}}
"""


def _counts(netns: Netns) -> dict[str, int]:
    listed = netns.run("nft", "list", "counters", "table", "inet", "ghostport_count").stdout
    return {
        name: int(packets)
        for name, packets in re.findall(r"counter (\w+) \{\s*packets (\d+)", listed)
    }


def _ghostport(netns: Netns, *args: str) -> subprocess.CompletedProcess[str]:
    return netns.run(sys.executable, "-m", "scanner", *args, check=False, timeout=120)


@pytest.mark.parametrize("command", [["local"], ["scan", "--local"]])
def test_local_audit_probes_no_socket_outside_its_scope(netns: Netns, command: list[str]) -> None:
    # Given orphaned services on 127.0.0.1 (inside 127.0.0.0/24) and on 127.0.1.50 (outside)
    for name, host in (("inside-app", "127.0.0.1"), ("outside-app", "127.0.1.50")):
        process = netns.spawn(
            sys.executable, str(REPO / "tests" / "local_services.py"), name, "banner", host, "3416"
        )
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
    netns.nft(
        COUNTERS.format(
            name="outside", rule="ip daddr 127.0.1.50", control="ip daddr 127.0.0.1 tcp dport 3416"
        )
    )
    # When the local audit runs under --scope 127.0.0.0/24
    done = _ghostport(netns, *command, "--scope", "127.0.0.0/24", "--timeout", "1", "--json", "-")
    assert done.returncode == 0, done.stderr
    # Then both sockets are listed, the one inside is probed, and not one packet went to the
    # one outside
    doc = json.loads(done.stdout)
    assert {(s["address"], s["port"]) for s in doc["local"]["sockets"]} >= {
        ("127.0.0.1", 3416),
        ("127.0.1.50", 3416),
    }
    counts = _counts(netns)
    assert counts["control"] > 0, "the audit probed the socket inside the scope"
    assert counts["outside"] == 0


def test_n_sends_nothing_for_a_hostname_and_without_it_only_the_lookup_leaves(
    netns: Netns,
) -> None:
    # Given a namespace whose resolver asks a (silent) DNS server on its own loopback and whose
    # hosts file does not know the name
    netns.etc_file("resolv.conf", "nameserver 127.0.0.53\noptions timeout:1 attempts:1\n")
    netns.etc_file("hosts", "127.0.0.1 localhost\n")
    netns.serve("udp-silent:127.0.0.53:53")
    netns.nft(COUNTERS.format(name="everything", rule="", control="udp dport 53"))
    # When a hostname is scanned with -n
    done = _ghostport(netns, "scan", "-n", "-p", "23", "legacy-device.lan")
    # Then it is refused in one line naming it, and not one packet left
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "'legacy-device.lan'" in done.stderr
    assert "Traceback" not in done.stderr
    assert _counts(netns) == {"everything": 0, "control": 0}
    # And the same hostname as an exclude is refused too
    done = _ghostport(
        netns, "scan", "-n", "-p", "23", "--exclude", "legacy-device.lan", "127.0.0.1"
    )
    assert done.returncode == 2 and "exclude 'legacy-device.lan'" in done.stderr
    assert _counts(netns)["everything"] == 0
    # And without -n the lookup goes to the resolver (what README and --help say), and nothing
    # else: the name does not resolve, so no probe follows
    done = _ghostport(netns, "scan", "-p", "23", "legacy-device.lan")
    assert "legacy-device.lan" in done.stderr, done.stderr
    counts = _counts(netns)
    assert counts["control"] > 0
    assert counts["everything"] == counts["control"]
