"""Port specifications in nmap syntax -> sorted port lists per transport.

-p 23,161,391-392        every selected transport
-p T:23,412,U:161,391    a prefix applies to the items after it, up to the next prefix
-p -1024, -p 60000-, -p -   open-ended ranges, as in nmap

Ports are written with the ASCII digits 0-9 only: str.isdigit() and int() also take '²' or
'٣', which would end in a ValueError or quietly mean port 3. Every error names the value.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from scanner.errors import PortSpecError
from scanner.models import Transport

_PREFIXES = {"T": Transport.TCP, "U": Transport.UDP}
_SERVICE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9._*?+-]*$")

_SHOWN = 60  # characters of a bad value an error quotes: a megabyte-long spec is not repeated
_DIGITS = frozenset("0123456789")

NamedPortResolver = Callable[[str], dict[Transport, list[int]]]
"""Expands a named item (such as `registry:synoptics-trap`) to ports per transport."""


@dataclass(frozen=True, slots=True)
class PortSpec:
    """The ports to probe on each transport, sorted and unique."""

    tcp: tuple[int, ...] = ()
    udp: tuple[int, ...] = ()

    def __len__(self) -> int:
        return len(self.tcp) + len(self.udp)

    def describe(self) -> dict[str, str]:
        """Compact text per transport, as ranges: {'tcp': '1-3,7', 'udp': ''}."""
        return {"tcp": compress_ports(self.tcp), "udp": compress_ports(self.udp)}


def compress_ports(ports: Iterable[int]) -> str:
    """'1,2,3,7' -> '1-3,7'."""
    parts: list[str] = []
    run: list[int] = []
    for port in sorted(set(ports)):
        if run and port == run[-1] + 1:
            run.append(port)
            continue
        if run:
            parts.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
        run = [port]
    if run:
        parts.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
    return ",".join(parts)


def _shown(value: str) -> str:
    """The value quoted for an error message, shortened when long."""
    if len(value) > _SHOWN:
        value = value[: _SHOWN - 3] + "..."
    return repr(value)


def _port_number(text: str, item: str) -> int:
    if not text or not _DIGITS.issuperset(text):
        hint = ""
        if _SERVICE_NAME.match(item):
            hint = f"; for the ports registered to a service, write registry:{item}"
        raise PortSpecError(f"port {_shown(item)} is not a number or a range{hint}")
    if len(text.lstrip("0")) > 5 or not 1 <= int(text) <= 65535:
        number = text if len(text) <= 12 else text[:9] + "..."
        raise PortSpecError(f"port {number} in {_shown(item)} is outside 1-65535")
    return int(text)


def _expand_item(item: str) -> range:
    if "-" not in item:
        port = _port_number(item, item)
        return range(port, port + 1)
    low_text, _, high_text = item.partition("-")
    low = _port_number(low_text, item) if low_text else 1
    high = _port_number(high_text, item) if high_text else 65535
    if high < low:
        raise PortSpecError(f"port range {_shown(item)} ends before it starts")
    return range(low, high + 1)


def parse_port_spec(
    text: str,
    transports: Iterable[Transport] = (Transport.TCP, Transport.UDP),
    resolve_name: NamedPortResolver | None = None,
) -> PortSpec:
    """Parse an nmap-style port spec for the selected transports."""
    selected = tuple(transports)
    chosen: dict[Transport, set[int]] = {t: set() for t in Transport}
    current: tuple[Transport, ...] = selected
    if not text.strip():
        raise PortSpecError(f"port specification {text!r} is empty")
    if not text.isascii():
        odd = next(ch for ch in text if not ch.isascii())
        raise PortSpecError(
            f"port specification {_shown(text)} has the character {odd!r}: "
            "ports are written with the digits 0-9"
        )
    for raw in text.split(","):
        item = raw.strip()
        head, sep, rest = item.partition(":")
        if sep and head.upper() in _PREFIXES:
            current = (_PREFIXES[head.upper()],)
            item = rest.strip()
        elif sep and head.upper() == "S":
            raise PortSpecError(f"port item {_shown(raw.strip())}: SCTP is not supported")
        if not item:
            raise PortSpecError(f"empty item in port specification {_shown(text)}")
        if ":" in item:
            if resolve_name is None:
                raise PortSpecError(f"port item {_shown(item)} is not a number or a range")
            for transport, ports in resolve_name(item).items():
                if transport in current:
                    chosen[transport].update(ports)
            continue
        for transport in current:
            chosen[transport].update(_expand_item(item))
    spec = PortSpec(
        tuple(sorted(chosen[Transport.TCP])) if Transport.TCP in selected else (),
        tuple(sorted(chosen[Transport.UDP])) if Transport.UDP in selected else (),
    )
    if not len(spec):
        names = "/".join(t.value for t in selected)
        raise PortSpecError(f"port specification {_shown(text)} selects no {names} port")
    return spec


# The most common service ports, most useful first, as ghostport's own judgement (written from
# what networks run, not copied from any tool's frequency table). `--top-ports N` and `-F`
# take the profiles' ports first, then these, then the registered well-known ports in order.
# fmt: off
TOP_TCP_PORTS: tuple[int, ...] = (
    # web, remote shells and desktops
    80, 443, 22, 23, 3389, 5900, 8080, 8443, 8000, 8888, 8008, 8081,
    # mail
    25, 587, 465, 110, 995, 143, 993,
    # Windows and file sharing
    445, 139, 135, 593, 5985, 5986, 2049, 111, 548, 873, 21, 990,
    # name, directory and time services
    53, 88, 389, 636, 464, 3268, 3269,
    # databases and caches
    3306, 5432, 1433, 1521, 6379, 27017, 9200, 11211, 5984, 9042,
    # printing
    631, 515, 9100,
    # network gear and its management
    161, 199, 705, 1993, 830, 2000, 4786, 8291, 10000, 179, 1723, 3128, 1080,
    # the Berkeley r-services, inetd small services and other old guard
    512, 513, 514, 79, 113, 119, 7, 9, 13, 19, 37, 6000, 5631,
    # messaging, containers and clusters
    1883, 8883, 5672, 5671, 61616, 2375, 2376, 6443, 10250, 2379, 9092, 2181,
    # voice and video
    5060, 5061, 1720, 554,
    # industrial control
    502, 102, 44818, 20000, 2404, 47808,
    # version control, chat and the rest
    9418, 6667, 5222, 8009, 3000, 5000, 9090, 1194,
)

TOP_UDP_PORTS: tuple[int, ...] = (
    # name, time, address and network management
    53, 123, 161, 162, 67, 68, 69, 514, 520, 1900, 5353, 5355,
    # Windows, file sharing and directories
    137, 138, 111, 2049, 389, 88, 464, 1434,
    # VPNs and tunnels
    500, 4500, 1194, 1701, 51820, 4789,
    # authentication, voice and media
    1812, 1813, 1645, 1646, 5060, 3478, 5004, 5005,
    # management controllers and discovery
    623, 427, 3702, 177, 1604, 5632, 3283, 10161,
    # the inetd small services
    7, 9, 13, 17, 19, 37,
    # industrial control, IoT and caches
    47808, 20000, 2123, 2152, 5683, 11211, 443, 631, 33434,
)
# fmt: on


def top_ports(
    count: int,
    first: PortSpec = PortSpec(),
    registered: Callable[[int, Transport], bool] | None = None,
) -> PortSpec:
    """The `count` top ports per transport, deterministically: the ports in `first` (the
    profiles' own) in order, then TOP_TCP_PORTS / TOP_UDP_PORTS, then the registered
    well-known ports (1-1023) in order, then every other port in order."""
    chosen: dict[Transport, tuple[int, ...]] = {}
    for transport, own, common in (
        (Transport.TCP, first.tcp, TOP_TCP_PORTS),
        (Transport.UDP, first.udp, TOP_UDP_PORTS),
    ):
        well_known = (p for p in range(1, 1024) if registered and registered(p, transport))
        picked: dict[int, None] = {}
        for port in itertools.chain(own, common, well_known, range(1, 65536)):
            if len(picked) >= count:
                break
            picked.setdefault(port)
        chosen[transport] = tuple(sorted(picked))
    return PortSpec(chosen[Transport.TCP], chosen[Transport.UDP])
