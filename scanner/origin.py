"""Where a scan comes from: this machine's name and the local addresses that reach the targets.

An audit report has to say which machine scanned and from which address, so a firewall log
can be matched to it. The source address is the one the kernel's routing picks: a UDP socket
connected to the first target of each family gets it from getsockname(). A UDP connect()
sends no packet; it only looks up the route.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable

from scanner.targets import AddressBlock, format_address

_ANY_PORT = 9  # any port: connect() on UDP only picks a route


def scanner_host() -> str:
    """This machine's host name."""
    return socket.gethostname()


def source_addresses(blocks: Iterable[AddressBlock]) -> list[str]:
    """For each address family among the targets (IPv4 first), the local address that reaches
    its first address; a family the kernel has no route for is left out."""
    firsts: dict[int, int] = {}
    for block in blocks:
        firsts.setdefault(block.family, block.first)
    found: list[str] = []
    for family, first in sorted(firsts.items()):
        target = format_address(family, first)
        kind = socket.AF_INET if family == 4 else socket.AF_INET6
        try:
            with socket.socket(kind, socket.SOCK_DGRAM) as probe:
                probe.connect((target, _ANY_PORT))
                found.append(str(probe.getsockname()[0]))
        except OSError:
            continue
    return found
