"""nmap's tcpwrapped: a server that hangs up without a byte, whatever is sent.

TCP wrappers (tcpd in front of an inetd service) accept the connection and close it at once
for a client they refuse. Sending every other protocol's probe to such a port only repeats
the hang-up, so the ladder stops once the server-first wait and the port's own probes were
all hung up on; the result says `tcpwrapped`, as nmap's does. Real sockets in a namespace;
an nftables counter counts the connections each port got.
"""

from __future__ import annotations

import json

import pytest

from scanner.assembly import Judge
from scanner.profiles import load_profiles
from tests.conftest import Netns

pytestmark = pytest.mark.netns

HANG_UP_PORTS = (391, 40000)  # a SynOptics port with probes of its own, and a port of nobody's
SILENT_PORT = 40001  # accepts and keeps the connection, saying nothing: not a hang-up

_COUNTERS = """
table inet gp_wrapped {{
  {counters}
  chain output {{
    type filter hook output priority 0;
    {rules}
  }}
}}
"""


def _connections(netns: Netns, port: int) -> int:
    listed = json.loads(
        netns.run("nft", "-j", "list", "counter", "inet", "gp_wrapped", f"syn{port}").stdout
    )
    return int(next(i["counter"]["packets"] for i in listed["nftables"] if "counter" in i))


def test_a_port_that_hangs_up_on_everything_is_tcpwrapped_after_its_own_probes(
    netns: Netns,
) -> None:
    # Given servers that accept and close at once, and one that accepts and stays silent,
    # with a counter of the SYNs each port receives
    ports = (*HANG_UP_PORTS, SILENT_PORT)
    netns.nft(
        _COUNTERS.format(
            counters="\n  ".join(f"counter syn{p} {{ }}" for p in ports),
            rules="\n    ".join(
                f"ip daddr 127.0.0.1 tcp dport {p} tcp flags syn / syn,ack counter name syn{p}"
                for p in ports
            ),
        )
    )
    specs = [f"tcp:127.0.0.1:{p}" for p in HANG_UP_PORTS]
    netns.serve(*specs)
    netns.serve(f"tcp-reply:127.0.0.1:{SILENT_PORT}:")  # its own process: it blocks reading

    # When they are scanned
    code, document, stderr = netns.scan(
        "-sT", "--no-db", "-p", ",".join(map(str, ports)), "127.0.0.1"
    )

    # Then the hang-up ports are open, named tcpwrapped, unidentified, with the note saying why
    assert code == 0, stderr
    results = {r["port"]: r for r in document["results"] if r["proto"] == "tcp"}
    for port in HANG_UP_PORTS:
        result = results[port]
        assert result["state"] == "open"
        assert result["service"]["protocol"] == "tcpwrapped", result
        assert result["verdict"] == "unidentified"
        assert "hangs up without a byte" in result["note"]
    assert results[SILENT_PORT]["service"]["protocol"] != "tcpwrapped"

    # And each hang-up port got the discovery connect, the server-first wait and its own
    # probes (a port of nobody's: one other probe), nothing more
    probe_set = Judge.of(load_profiles(["legacy-mgmt"])).probe_set  # the default profile
    for port in HANG_UP_PORTS:
        own = len(probe_set.tcp.get(port, ()))
        assert _connections(netns, port) == 2 + max(own, 1), port
    # while the silent port went on through the other protocols' probes
    assert _connections(netns, SILENT_PORT) > 2
