"""Raw IPv4 TCP SYN packets for `scan --syn`: one template, the sequence-number cookie, the
raw sockets that send them and read the answers, and the parsing of those answers.

- Packets come from one precomputed template (IPv4 + TCP with an MSS option, as nmap sends);
  per probe only the addresses, ports, sequence number and TCP checksum are patched in, with
  `struct`, the checksum summed incrementally from the constant part. The kernel fills in the
  IP header's checksum and id (IP_HDRINCL).
- The sequence number is a cookie, as zmap and masscan use: a hash of the target address
  and port under random tables of the scan's own (`Cookies`).
  A SYN-ACK or RST counts only if it acknowledges cookie + 1; an ICMP error only if the TCP
  header it quotes carries the cookie.
- Answers are read from a raw IPPROTO_TCP socket with a classic BPF filter that keeps only
  SYN-ACKs and resets to our source port (our own SYNs, seen again on loopback, never reach
  Python), and from a raw ICMP socket.
"""

from __future__ import annotations

import array
import ctypes
import secrets
import socket
import struct
from typing import NamedTuple

from scanner.errors import PrivilegeError

_SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
_SO_ATTACH_FILTER = getattr(socket, "SO_ATTACH_FILTER", 26)
_RCVBUF = 32 << 20  # room for the answers to a burst of SYNs on a fast network
SYN, RST, ACK = 0x02, 0x04, 0x10
_WINDOW, _MSS = 1024, 1460
_QUOTED = struct.Struct("!HHI")

# IPv4 header (20 bytes, no options) + TCP header (24 bytes: an MSS option, as nmap sends).
_TEMPLATE = struct.pack(
    "!BBHHHBBH4s4sHHIIBBHHHBBH",
    0x45,  # version 4, 5 words
    0,
    44,  # total length
    0,  # id: filled in by the kernel
    0,
    64,  # TTL
    socket.IPPROTO_TCP,
    0,  # header checksum: filled in by the kernel
    bytes(4),
    bytes(4),
    0,
    0,
    0,
    0,
    6 << 4,  # data offset: 6 words
    SYN,
    _WINDOW,
    0,  # checksum, patched per packet
    0,
    2,  # MSS option
    4,
    _MSS,
)
# Patched at offset 12, in one call: addresses, ports, sequence number, then the constant ack,
# offset, flags and window again, and the checksum at offset 36.
_PATCH = struct.Struct("!4s4sHHIIBBHH")
_TCP_HEAD = struct.Struct("!HHIIBB")  # sport, dport, seq, ack, offset, flags
# A segment behind a 20-byte IP header (no options, the usual case): source address and the
# TCP head in one unpack.
_PLAIN_ANSWER = struct.Struct("!12xI4xHHIIBB")
_WORDS = struct.Struct("!HH")
# The TCP checksum's constant words: pseudo-header protocol and length, offset+flags,
# window, the MSS option.
_CONSTANT_SUM = socket.IPPROTO_TCP + 24 + ((6 << 12) | SYN) + _WINDOW + 0x0204 + _MSS


def require_raw_sockets() -> None:
    """PrivilegeError unless this process may open raw sockets (root or CAP_NET_RAW)."""
    try:
        socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW).close()
    except PermissionError:
        raise PrivilegeError(
            "--syn sends raw packets and needs root or CAP_NET_RAW, which this process does not "
            "have: run it as root, or scan without --syn (TCP connect, -sT)"
        ) from None


def _bpf_replies_to(port: int) -> bytes:
    """A classic BPF program for a raw IPv4 TCP socket: accept TCP segments to `port` with RST
    or SYN+ACK set (the first 128 bytes), drop everything else in the kernel."""
    code = [
        (0xB1, 0, 0, 0),  # ldxb 4*([0]&0xf): X = IP header length
        (0x48, 0, 0, 2),  # ldh [x+2]: TCP destination port
        (0x15, 0, 5, port),  # jeq port, else drop
        (0x50, 0, 0, 13),  # ldb [x+13]: TCP flags
        (0x45, 2, 0, RST),  # jset RST: accept
        (0x54, 0, 0, SYN | ACK),  # and SYN|ACK
        (0x15, 0, 1, SYN | ACK),  # jeq SYN|ACK: accept, else drop
        (0x06, 0, 0, 128),  # accept
        (0x06, 0, 0, 0),  # drop
    ]
    return b"".join(struct.pack("HBBI", *instruction) for instruction in code)


class Cookies:
    """Sequence numbers no one else can predict: tabulation hashing with random tables of
    this process's own (a fresh 32-bit value for each high half, low half and port).

    A probe's cookie is its address's (high[a >> 16] ^ low[a & 0xFFFF], kept in the host's
    Route) XOR its port's (ports[p]): three table reads, where a keyed hash per probe or per
    host cost a sweep 5%. Anyone who cannot see our SYNs can predict none of them (each is
    uniformly random to them); one who sees them needs no cookie to answer."""

    def __init__(self) -> None:
        self._high = _random_words(1 << 16)
        self._low = _random_words(1 << 16)
        self.ports = _random_words(1 << 16)
        """The port's half of its probes' cookies, by port."""

    def host(self, address: int) -> int:
        """The host's half of its probes' cookies."""
        return self._high[address >> 16] ^ self._low[address & 0xFFFF]


def _random_words(count: int) -> array.array[int]:
    words = array.array("I")
    words.frombytes(secrets.token_bytes(count * words.itemsize))
    return words


class Route(NamedTuple):
    """A target address, packed and as an integer, with the source address the kernel routes
    it from, the host's half of its cookies (Cookies.host) and the part of its SYNs' TCP
    checksum fixed by these (scanner/routes.py makes them)."""

    packed: bytes
    source: bytes
    address: int
    cookie: int
    partial: int
    """Everything of the TCP checksum but the destination port and the sequence number."""


def source_sum(source: bytes, source_port: int) -> int:
    """The part of every SYN's checksum fixed by its source address and port."""
    high, low = _WORDS.unpack(source)
    return int(_CONSTANT_SUM + high + low + source_port)


class RawSockets:
    """The scan's raw sockets: the sender (IP_HDRINCL), the TCP answers (BPF-filtered to our
    source port) and the ICMP errors (sources: scanner/routes.py)."""

    def __init__(self, source_port: int) -> None:
        self.sender = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        self.replies = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
        self.errors = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        self.sender.setsockopt(socket.SOL_IP, socket.IP_HDRINCL, 1)
        program = _bpf_replies_to(source_port)
        self._filter = ctypes.create_string_buffer(program, len(program))  # outlives the socket
        self.replies.setsockopt(
            socket.SOL_SOCKET,
            _SO_ATTACH_FILTER,
            struct.pack("HxxxxxxQ", len(program) // 8, ctypes.addressof(self._filter)),
        )
        for sock in (self.sender, self.replies, self.errors):
            sock.setblocking(False)
        for sock in (self.replies, self.errors):
            try:
                sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, _RCVBUF)
            except OSError:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RCVBUF)

    def close(self) -> None:
        for sock in (self.sender, self.replies, self.errors):
            sock.close()


def fill_syn(packet: bytearray, route: Route, source_port: int, port: int, cookie: int) -> None:
    """Patch one SYN into the template copy `packet`: addresses, ports, cookie, checksum."""
    total = route.partial + port + (cookie >> 16) + (cookie & 0xFFFF)
    total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    _PATCH.pack_into(
        packet,
        12,
        route.source,
        route.packed,
        source_port,
        port,
        cookie,
        0,
        6 << 4,
        SYN,
        _WINDOW,
        ~total & 0xFFFF,
    )


def new_packet() -> bytearray:
    """A copy of the SYN template to patch."""
    return bytearray(_TEMPLATE)


def parse_answer(data: bytes | bytearray) -> tuple[int, int, int, int, int]:
    """(source address, source port, destination port, ack, flags) of a TCP segment."""
    if data[0] == 0x45:  # no IP options: one unpack
        address, port, dport, _seq, ack, _offset, flags = _PLAIN_ANSWER.unpack_from(data)
        return address, port, dport, ack, flags
    head = (data[0] & 0x0F) * 4
    port, dport, _seq, ack, _offset, flags = _TCP_HEAD.unpack_from(data, head)
    return int.from_bytes(data[12:16], "big"), port, dport, ack, flags


def parse_unreachable(data: bytes) -> tuple[int, int, int, int, int] | None:
    """(target address, target port, our port, quoted seq, ICMP code) of an ICMP destination
    unreachable quoting a TCP segment; None for any other ICMP message."""
    head = (data[0] & 0x0F) * 4
    inner = head + 8
    if len(data) < inner + 28 or data[head] != 3 or data[inner + 9] != socket.IPPROTO_TCP:
        return None
    tcp = inner + (data[inner] & 0x0F) * 4
    if len(data) < tcp + 8:
        return None
    sport, port, seq = _QUOTED.unpack_from(data, tcp)
    return int.from_bytes(data[inner + 16 : inner + 20], "big"), port, sport, seq, data[head + 1]
