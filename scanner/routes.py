"""Where `scan --syn` sends from: the source address of each target, as the kernel routes it.

A raw SYN carries its source address, and its TCP checksum covers it, so each target needs
the kernel's routing decision before its first SYN: a new UDP socket connected to the target
(a connect sends nothing) names the source. That costs four system calls per host, a fifth
of a sweep's time when every probe goes to a new host.

Hosts of one /24 block share that decision whenever no route and no policy rule more
specific than /24 lies inside the block: then every address of the block matches the same
entries of every table. So the routing tables and rules are read once (a netlink dump of
every table, as `ip route show table all` and `ip rule` read them), and the source found for
one host of such a block serves the whole block. A block that holds a longer prefix (this
machine's own addresses and broadcast addresses are /32 routes in the local table, a /25
subnet, a host route) is looked up host by host, and so is everything when the tables cannot
be read. Routes that change during a scan are not followed (nor were they per host).
"""

from __future__ import annotations

import socket
import struct

from scanner.packets import Cookies, Route, source_sum

_NLMSG = struct.Struct("=IHHII")  # length, type, flags, sequence, port id
_HEAD = struct.Struct("=BBBBBBBBI")  # rtmsg and fib_rule_hdr alike: family, dst_len, ...
_ATTR = struct.Struct("=HH")  # length, type
_RTM_GETROUTE, _RTM_GETRULE = 26, 34
_NLM_F_REQUEST, _NLM_F_DUMP = 0x1, 0x300
_NLMSG_ERROR, _NLMSG_DONE = 2, 3
_DST = 1  # RTA_DST and FRA_DST
_BLOCK_BITS = 8  # a /24
_HOST_CACHE = 1 << 17
_new = tuple.__new__  # a Route without NamedTuple's argument handling


def fine_blocks() -> set[int] | None:
    """The /24 blocks (address >> 8) that hold a route or rule more specific than /24; None
    when the tables cannot be read (every host is then looked up)."""
    try:
        return _dump(_RTM_GETROUTE) | _dump(_RTM_GETRULE)
    except (OSError, ValueError, IndexError, struct.error):
        return None


def _dump(kind: int) -> set[int]:
    blocks: set[int] = set()
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as sock:
        sock.settimeout(2.0)
        body = _HEAD.pack(socket.AF_INET, 0, 0, 0, 0, 0, 0, 0, 0)
        flags = _NLM_F_REQUEST | _NLM_F_DUMP
        sock.send(_NLMSG.pack(_NLMSG.size + len(body), kind, flags, 1, 0) + body)
        while True:
            data = sock.recv(1 << 16)
            offset = 0
            while offset + _NLMSG.size <= len(data):
                length, kind_of, _, _, _ = _NLMSG.unpack_from(data, offset)
                if kind_of == _NLMSG_DONE:
                    return blocks
                if kind_of == _NLMSG_ERROR or length < _NLMSG.size + _HEAD.size:
                    raise ValueError("netlink: an error or a short message")
                head = offset + _NLMSG.size
                if data[head] == socket.AF_INET and data[head + 1] > 32 - _BLOCK_BITS:
                    blocks.add(_destination(data, head + _HEAD.size, offset + length))
                offset += (length + 3) & ~3


def _destination(data: bytes, start: int, end: int) -> int:
    """The /24 block of a message's destination attribute; ValueError when it has none."""
    while start + _ATTR.size <= end:
        length, kind = _ATTR.unpack_from(data, start)
        if length < _ATTR.size:
            break
        if kind == _DST and length >= _ATTR.size + 4:
            address = int.from_bytes(data[start + 4 : start + 8], "big")
            return address >> _BLOCK_BITS
        start += (length + 3) & ~3
    raise ValueError("netlink: a prefix longer than /24 without its destination")


class Routes:
    """The Route of each target host: its source address, and its half of the cookies."""

    def __init__(self, source_port: int, cookies: Cookies) -> None:
        self.hosts: dict[str, Route] = {}
        """Routes by host: the engine's fast path reads it directly."""
        self._source_port = source_port
        self._cookies = cookies
        self._fine = fine_blocks()
        self._blocks: dict[int, tuple[bytes, int]] = {}
        """(source address, its source_sum) of each shared /24 block looked up so far."""

    def lookup(self, host: str) -> Route:
        """The route of a host not in `hosts` yet (and now in it); OSError when the kernel
        has no route to it. Once per host of a sweep: the Route is built in place (a
        quarter of a SYN's Python time when every probe goes to a new host)."""
        packed = socket.inet_aton(host)
        address = int.from_bytes(packed, "big")
        block = address >> _BLOCK_BITS
        shared = self._fine is not None and block not in self._fine
        known = self._blocks.get(block) if shared else None
        if known is None:
            # A socket of its own each time: a UDP socket keeps the source address of its
            # first connect for every later one
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as router:
                router.connect((host, 9))
                source = socket.inet_aton(router.getsockname()[0])
            known = (source, source_sum(source, self._source_port))
            if shared:
                self._blocks[block] = known
        if len(self.hosts) >= _HOST_CACHE:
            self.hosts.clear()
        partial = known[1] + (address >> 16) + (address & 0xFFFF)
        route = _new(Route, (packed, known[0], address, self._cookies.host(address), partial))
        self.hosts[host] = route
        return route
