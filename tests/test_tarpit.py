"""A host that accepts every port (a tarpit, or a middlebox answering for it): its squatters
are no findings. On a host's first open TCP port, the ladder knocks on two ports nothing
should hold; when both accept, every port of that host is `unidentified` with a note.

Real sockets in a namespace: nftables redirects every TCP port of one address to one SSH-like
listener (the tarpit); a second address holds the same listener on one port only.
"""

from __future__ import annotations

import pytest

from scanner.classify import TARPIT_NOTE
from tests.conftest import Netns

pytestmark = pytest.mark.netns

TARPIT, CONTROL = "127.0.0.5", "127.0.0.6"
BANNER = "SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n"

_REDIRECT = f"""
table ip gp_tarpit {{
  chain output {{
    type nat hook output priority -100;
    ip daddr {TARPIT} tcp dport 1-65535 redirect to :2222
  }}
}}
"""


def test_squatters_on_a_host_that_accepts_every_port_are_no_findings(netns: Netns) -> None:
    # Given an address where every TCP port reaches one SSH server, and an address where
    # that server holds a SynOptics port only
    netns.nft(_REDIRECT)
    netns.serve(f"tcp:127.0.0.1:2222:{BANNER}", f"tcp:{CONTROL}:391:{BANNER}")

    # When both are scanned on legacy ports
    code, document, stderr = netns.scan("-sT", "--no-db", "-p", "391,412", TARPIT, CONTROL)

    # Then the control's SSH on 391 is a squatter finding, named
    assert code == 0, stderr
    results = {(r["host"], r["port"]): r for r in document["results"] if r["proto"] == "tcp"}
    control = results[CONTROL, 391]
    assert control["verdict"] == "squatter"
    assert control["service"]["protocol"] == "ssh"
    assert any(f["host"] == CONTROL and f["port"] == 391 for f in document["findings"])
    # and every port of the tarpit is open, unidentified, with the note, and no finding
    for port in (391, 412):
        result = results[TARPIT, port]
        assert result["state"] == "open"
        assert result["verdict"] == "unidentified", result
        assert result["note"] == TARPIT_NOTE
    assert not [f for f in document["findings"] if f["host"] == TARPIT]
