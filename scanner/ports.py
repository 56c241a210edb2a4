"""Port specifications in nmap syntax -> sorted port lists per transport.

-p 23,161,391-392        every selected transport
-p T:23,412,U:161,391    a prefix applies to the items after it, up to the next prefix
-p -1024, -p 60000-, -p -   open-ended ranges, as in nmap
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from scanner.errors import PortSpecError
from scanner.models import Transport

_PREFIXES = {"T": Transport.TCP, "U": Transport.UDP}

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


def _port_number(text: str, item: str) -> int:
    if not text.isdigit():
        raise PortSpecError(f"port {item!r} is not a number or a range")
    number = int(text)
    if not 1 <= number <= 65535:
        raise PortSpecError(f"port {number} in {item!r} is outside 1-65535")
    return number


def _expand_item(item: str) -> range:
    if "-" not in item:
        port = _port_number(item, item)
        return range(port, port + 1)
    low_text, _, high_text = item.partition("-")
    low = _port_number(low_text, item) if low_text else 1
    high = _port_number(high_text, item) if high_text else 65535
    if high < low:
        raise PortSpecError(f"port range {item!r} ends before it starts")
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
        raise PortSpecError("empty port specification")
    for raw in text.split(","):
        item = raw.strip()
        head, sep, rest = item.partition(":")
        if sep and head.upper() in _PREFIXES:
            current = (_PREFIXES[head.upper()],)
            item = rest.strip()
        elif sep and head.upper() == "S":
            raise PortSpecError(f"port item {raw.strip()!r}: SCTP is not supported")
        if not item:
            raise PortSpecError(f"empty item in port specification {text!r}")
        if ":" in item:
            if resolve_name is None:
                raise PortSpecError(f"port item {item!r} is not a number or a range")
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
        raise PortSpecError(f"port specification {text!r} selects no {names} port")
    return spec
