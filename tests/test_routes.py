"""Sources of `scan --syn`'s raw SYNs (scanner/routes.py): the kernel's choice for each host,
asked once per /24 block where the routing tables hold nothing finer, host by host elsewhere.

Everything runs in a namespace of the test's own, whose loopback gets a second address and a
/25 route that sends half of 127.1.2.0/24 from it. Looking up a source sends nothing.
"""

from __future__ import annotations

import json
import sys

from tests.conftest import Netns

# Looks up sources in the namespace; prints what it found, as JSON.
LOOKUP = """
import json, socket, sys
from scanner.packets import Cookies
from scanner.routes import Routes, fine_blocks
routes = Routes(40000, Cookies())
found = {host: socket.inet_ntoa(routes.lookup(host).source) for host in sys.argv[1:]}
blocks = sorted(socket.inet_ntoa((b << 8).to_bytes(4, "big")) for b in fine_blocks() or ())
print(json.dumps({"sources": found, "fine": blocks, "asked_blocks": len(routes._blocks)}))
"""


def _lookup(netns: Netns, *hosts: str) -> dict[str, object]:
    done = netns.run(sys.executable, "-c", LOOKUP, *hosts)
    result: dict[str, object] = json.loads(done.stdout)
    return result


def _second_source(netns: Netns) -> None:
    netns.run("ip", "addr", "add", "127.0.0.7/8", "dev", "lo")
    netns.run(
        "ip", "route", "add", "unicast", "127.1.2.128/25", "dev", "lo", "src", "127.0.0.7",
        "table", "local",
    )  # fmt: skip


def test_a_block_with_a_finer_route_is_asked_host_by_host(netns: Netns) -> None:
    # Given a /25 inside 127.1.2.0/24 routed from a second address
    _second_source(netns)
    # When sources are looked up on both sides of it, and in the next block
    found = _lookup(netns, "127.1.2.5", "127.1.2.200", "127.1.2.201", "127.1.3.5", "127.1.3.6")
    # Then each half of 127.1.2.0/24 gets its own source, as the kernel routes it
    assert found["sources"] == {
        "127.1.2.5": "127.0.0.1",
        "127.1.2.200": "127.0.0.7",
        "127.1.2.201": "127.0.0.7",
        "127.1.3.5": "127.0.0.1",
        "127.1.3.6": "127.0.0.1",
    }
    # And only 127.1.3.0/24, which holds nothing finer than /24, was asked once for all
    assert "127.1.2.0" in found["fine"]  # type: ignore[operator]
    assert "127.1.3.0" not in found["fine"]  # type: ignore[operator]
    assert found["asked_blocks"] == 1


def test_without_finer_routes_a_block_shares_one_answer(netns: Netns) -> None:
    # Given the namespace's own tables: 127.0.0.0/8, 127.0.0.1 and the broadcast address
    found = _lookup(netns, *(f"127.1.{block}.{host}" for block in (1, 2) for host in (1, 99)))
    # Then two blocks were asked, for four hosts, and the answer is the kernel's
    assert found["asked_blocks"] == 2
    assert set(found["sources"].values()) == {"127.0.0.1"}  # type: ignore[attr-defined]
    # And the blocks with this machine's own /32 routes are asked host by host
    assert found["fine"] == ["127.0.0.0", "127.255.255.0"]
