"""Port specifications in nmap syntax -> sorted port lists per transport.

-p 23,161,391-392        every selected transport
-p T:23,412,U:161,391    a prefix applies to the items after it, up to the next prefix
-p -1024, -p 60000-, -p -   open-ended ranges, as in nmap

Ports are written with the ASCII digits 0-9 only: str.isdigit() and int() also take '²' or
'٣', which would end in a ValueError or quietly mean port 3. Every error names the value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from scanner.errors import PortSpecError
from scanner.models import Transport

_PREFIXES = {"T": Transport.TCP, "U": Transport.UDP}

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
        raise PortSpecError(f"port {_shown(item)} is not a number or a range")
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
