"""Socket-level TCP and UDP exchanges: open, send, read, and map OS errors to our outcomes.

Knows nothing of profiles or scheduling. Everything here is non-blocking and cheap: the engine
calls it once or twice per probe on the hot path.

How the kernel reports what happened (Linux; checked in a namespace with nftables rules):
- TCP connect: ECONNREFUSED for an RST. Any ICMP destination unreachable aborts a connect in
  SYN_SENT with one errno (EHOSTUNREACH for host unreachable, admin prohibited, filtered...),
  so errno alone cannot say which; with IP_RECVERR set, the kernel also queues the ICMP type
  and code on the socket's error queue, and we read the exact reason from there.
- UDP on a connected socket with IP_RECVERR: the ICMP error is queued with its type and code
  and also returned by the next recv(); port unreachable means closed, every other
  unreachable means filtered.
"""

from __future__ import annotations

import _socket
import errno
import functools
import random
import socket
import struct
from pathlib import Path

from scanner.models import PortState, Reason

IP_RECVERR = getattr(socket, "IP_RECVERR", 11)
IPV6_RECVERR = getattr(socket, "IPV6_RECVERR", 25)
MSG_ERRQUEUE = getattr(socket, "MSG_ERRQUEUE", 0x2000)
_SOL_IPV6 = getattr(socket, "SOL_IPV6", 41)
SO_LINGER_RESET = struct.pack("ii", 1, 0)
_EXTENDED_ERR = struct.Struct("=IBBBBII")
_ORIGIN_ICMP, _ORIGIN_ICMP6 = 2, 3

# The C socket type: the same methods without the Python wrapper's per-socket __init__,
# which costs several microseconds on a path taken once per probe.
RawSocket = _socket.socket
STREAM_NONBLOCK = socket.SOCK_STREAM | getattr(socket, "SOCK_NONBLOCK", 0)
DGRAM_NONBLOCK = socket.SOCK_DGRAM | getattr(socket, "SOCK_NONBLOCK", 0)

# Errors that say "this machine ran out of something", not "the port is X": retry later.
LOCAL_RESOURCE_ERRNOS = frozenset(
    {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM, errno.EADDRNOTAVAIL, errno.EAGAIN}
)

_ICMP4_UNREACH = {
    0: Reason.NET_UNREACH,
    1: Reason.HOST_UNREACH,
    2: Reason.PROTO_UNREACH,
    3: Reason.PORT_UNREACH,
    6: Reason.NET_UNREACH,
    7: Reason.HOST_UNREACH,
    9: Reason.NET_PROHIBITED,
    10: Reason.HOST_PROHIBITED,
    13: Reason.ADMIN_PROHIBITED,
}
_ICMP6_UNREACH = {
    0: Reason.NET_UNREACH,
    1: Reason.ADMIN_PROHIBITED,
    3: Reason.HOST_UNREACH,
    4: Reason.PORT_UNREACH,
    5: Reason.ADMIN_PROHIBITED,
    6: Reason.ADMIN_PROHIBITED,
}
_ERRNO_REASON = {
    errno.ECONNREFUSED: Reason.PORT_UNREACH,
    errno.EHOSTUNREACH: Reason.HOST_UNREACH,
    errno.EHOSTDOWN: Reason.HOST_UNREACH,
    errno.ENETUNREACH: Reason.NET_UNREACH,
    errno.EACCES: Reason.ADMIN_PROHIBITED,
    errno.EPERM: Reason.ADMIN_PROHIBITED,
    errno.ENOPROTOOPT: Reason.PROTO_UNREACH,
}


def socket_address(
    family: int, host: str, port: int
) -> tuple[str, int] | tuple[str, int, int, int]:
    """The address tuple connect() wants for the family."""
    return (host, port) if family == socket.AF_INET else (host, port, 0, 0)


def open_tcp(family: int, privileged: bool = False) -> RawSocket:
    """A non-blocking TCP socket that queues the ICMP errors it receives. `privileged` binds
    it to a free source port in 512-1023 first, as rlogin and rsh clients do (root only:
    without the privilege it is an ordinary socket; `can_bind_privileged` says which)."""
    sock = RawSocket(family, STREAM_NONBLOCK)
    if family == socket.AF_INET:
        sock.setsockopt(socket.SOL_IP, IP_RECVERR, 1)
    else:
        sock.setsockopt(_SOL_IPV6, IPV6_RECVERR, 1)
    if privileged and can_bind_privileged():
        _bind_privileged(sock, family)
    return sock


def can_bind_privileged() -> bool:
    """True when this process may bind ports below 1024 (root, or CAP_NET_BIND_SERVICE)."""
    global _PRIVILEGED  # noqa: PLW0603 - asked once per process
    if _PRIVILEGED is None:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            _PRIVILEGED = _bind_low(probe, socket.AF_INET)
    return _PRIVILEGED


_PRIVILEGED: bool | None = None


def _bind_privileged(sock: RawSocket, family: int) -> None:
    _bind_low(sock, family)


def _bind_low(sock: socket.socket | RawSocket, family: int) -> bool:
    """Bind to a free port in 512-1023 (another on EADDRINUSE), as rcmd(3) does; False when
    this process may not, or none is free."""
    wildcard = "0.0.0.0" if family == socket.AF_INET else "::"
    for port in random.sample(range(512, 1024), 512):
        try:
            sock.bind((wildcard, port))
            return True
        except PermissionError:
            return False
        except OSError as exc:
            if exc.errno not in (errno.EADDRINUSE, errno.EADDRNOTAVAIL):
                raise
    return False


def tcp_connect_outcome(sock: RawSocket, code: int) -> tuple[PortState, Reason] | None:
    """State and reason for a finished connect() errno; None when it is still in progress."""
    if code in (0, errno.EISCONN):
        return PortState.OPEN, Reason.SYN_ACK
    if code in (errno.EINPROGRESS, errno.EALREADY, errno.EWOULDBLOCK):
        return None
    if code == errno.ECONNREFUSED:
        return PortState.CLOSED, Reason.CONN_REFUSED
    return PortState.FILTERED, _queued_icmp_reason(sock) or _ERRNO_REASON.get(code, Reason.ERROR)


def local_error_outcome(code: int) -> tuple[PortState, Reason]:
    """State and reason when this host refused to send the probe at all (no route, policy)."""
    return PortState.FILTERED, _ERRNO_REASON.get(code, Reason.ERROR)


def open_udp(
    family: int, address: tuple[str, int] | tuple[str, int, int, int], connected: bool = True
) -> RawSocket:
    """A non-blocking UDP socket connected to the address (unless not `connected`, for peers
    that answer from another port), with ICMP errors queued."""
    sock = RawSocket(family, DGRAM_NONBLOCK)
    try:
        sock.setblocking(False)
        if family == socket.AF_INET:
            sock.setsockopt(socket.SOL_IP, IP_RECVERR, 1)
        else:
            sock.setsockopt(_SOL_IPV6, IPV6_RECVERR, 1)
        if connected:
            sock.connect(address)
        else:  # take the source port now, so a self-addressed probe can be seen and redone
            sock.bind(("0.0.0.0", 0) if family == socket.AF_INET else ("::", 0))
    except BaseException:
        sock.close()
        raise
    return sock


def udp_error_outcome(sock: RawSocket, code: int) -> tuple[PortState, Reason]:
    """State and reason for an error a UDP socket reported, from the ICMP type and code."""
    reason = _queued_icmp_reason(sock) or _ERRNO_REASON.get(code, Reason.ERROR)
    state = PortState.CLOSED if reason is Reason.PORT_UNREACH else PortState.FILTERED
    return state, reason


def icmp4_unreach_reason(code: int) -> Reason:
    """The reason an ICMPv4 destination unreachable of this code gives (as nmap names it)."""
    return _ICMP4_UNREACH.get(code, Reason.HOST_UNREACH)


def _queued_icmp_reason(sock: RawSocket) -> Reason | None:
    """The first queued ICMP error; the socket closes next, so the rest need no draining."""
    reason: Reason | None = None
    try:
        _, ancillary, _, _ = sock.recvmsg(1, 512, MSG_ERRQUEUE)
    except OSError:
        return None
    for _level, _kind, data in ancillary:
        if len(data) < _EXTENDED_ERR.size:
            continue
        _errno, origin, icmp_type, icmp_code, _pad, _info, _data = _EXTENDED_ERR.unpack_from(data)
        if origin == _ORIGIN_ICMP and icmp_type == 3:
            reason = _ICMP4_UNREACH.get(icmp_code, Reason.HOST_UNREACH)
        elif origin == _ORIGIN_ICMP6 and icmp_type == 1:
            reason = _ICMP6_UNREACH.get(icmp_code, Reason.HOST_UNREACH)
    return reason


@functools.cache
def ephemeral_ports() -> range:
    """The kernel's ephemeral port range: where a probe socket's own source port comes from."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return range(int(low), int(high) + 1)
    except (OSError, ValueError):
        return range(49152, 65536)  # the IANA dynamic range, used by BSDs, macOS and Windows


def is_self_connected(
    sock: RawSocket, address: tuple[str, int] | tuple[str, int, int, int]
) -> bool:
    """True when the kernel gave the socket the very address and port it probes: a TCP
    self-connect (simultaneous open) or a UDP socket that would hear its own datagram. It only
    happens when the probed port is free, inside the ephemeral range, on this machine."""
    try:
        name = sock.getsockname()
    except OSError:
        return False
    return int(name[1]) == address[1] and str(name[0]) in (address[0], "0.0.0.0", "::")


def errno_name(code: int) -> str:
    """'ECONNREFUSED' for 111."""
    return errno.errorcode.get(code, str(code))
