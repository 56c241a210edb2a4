"""The probe plan: every (host, port, transport) of a scan, in a seeded pseudo-random order.

Index i of the plan is host i // P and (transport, port) pair i % P, where P is the number of
pairs. A cyclic-group permutation walks the indexes, so consecutive probes land on different
hosts and ports, and no list of probes ever exists in memory.
"""

from __future__ import annotations

import itertools
import socket
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from scanner.errors import ScanOptionError
from scanner.models import ProbeTarget, Transport
from scanner.permutation import CyclicPermutation
from scanner.ports import PortSpec
from scanner.targets import TargetSet, format_address

MAX_PROBES = 2**48
_FAMILY = {4: socket.AF_INET, 6: socket.AF_INET6}

PortKey = tuple[str, int, Transport]
# ProbeTarget's fields after `probe`, as its defaults give them (the plan makes the tuples)
_DEFAULTS = tuple(ProbeTarget._field_defaults[name] for name in ProbeTarget._fields[5:])


@dataclass(frozen=True, slots=True)
class ScanSlice:
    """Part `part` of `parts` of one permutation: positions part, part + parts, part + 2 parts...

    Disjoint slices of the same seeded permutation cover the scan exactly once (zmap's
    sharding), so workers, shards and resumed scans all walk the one order.
    """

    part: int = 0
    parts: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.part < self.parts:
            raise ScanOptionError(f"slice {self.part} of {self.parts} does not exist")


WHOLE = ScanSlice()


@dataclass(frozen=True, slots=True)
class ResumePoint:
    """Where an interrupted scan stopped, in positions of its slice of the permutation:
    every position below `watermark` is finished, and so is every position in `above`."""

    watermark: int = 0
    above: frozenset[int] = field(default_factory=frozenset)

    def to_json(self) -> dict[str, Any]:
        """The checkpoint as the history database stores it."""
        return {"watermark": self.watermark, "above": sorted(self.above)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> ResumePoint:
        """A stored checkpoint; anything malformed means 'from the start'."""
        if not data:
            return cls()
        watermark, above = data.get("watermark"), data.get("above")
        if not isinstance(watermark, int) or not isinstance(above, list):
            return cls()
        return cls(watermark, frozenset(p for p in above if isinstance(p, int)))


START = ResumePoint()


class ProbePlan:
    """A lazily generated, seeded permutation of targets x ports x transports."""

    __slots__ = (
        "_pairs",
        "_udp_probes",
        "permutation",
        "ports",
        "position",
        "resume",
        "slice",
        "targets",
    )

    def __init__(  # noqa: PLR0917 - the plan's inputs, in the order they narrow it
        self,
        targets: TargetSet,
        ports: PortSpec,
        seed: int,
        udp_probes: Callable[[int], tuple[int, ...]] = lambda port: (0,),
        part: ScanSlice = WHOLE,
        resume: ResumePoint = START,
    ) -> None:
        total = targets.size * len(ports)
        if total > MAX_PROBES:
            raise ScanOptionError(
                f"the scan would send {total:,} probes, more than the limit of {MAX_PROBES:,}; "
                "narrow the targets or the ports"
            )
        self.targets = targets
        self.ports = ports
        self._pairs: list[tuple[Transport, int]] = [(Transport.TCP, p) for p in ports.tcp] + [
            (Transport.UDP, p) for p in ports.udp
        ]
        self.permutation = CyclicPermutation(total, seed)
        self._udp_probes = udp_probes
        self.slice = part
        self.resume = resume
        self.position = -1  # of the (host, port, transport) last yielded, within the slice

    def __len__(self) -> int:
        """(host, port, transport) triples of this slice; each UDP one may carry several
        probes. Triples a resumed scan already finished are counted: skipped, not forgotten."""
        return len(range(self.slice.part, len(self.permutation), self.slice.parts))

    def __iter__(self) -> Iterator[ProbeTarget]:
        # The hot loop of every scan (a SYN sweep spends a tenth of its time here): the
        # probe tuples are made without ProbeTarget's keyword handling, an IPv4 address is
        # formatted inline, and a target set of one block is indexed without a search.
        pairs = self._pairs
        udp_probes = self._udp_probes
        width = len(pairs)
        locate = self.targets.locate
        blocks = self.targets.blocks
        only = blocks[0] if len(blocks) == 1 else None
        make, ntoa = tuple.__new__, socket.inet_ntoa
        wait, retries = _DEFAULTS
        cache_index, cache_host, cache_family = -1, "", socket.AF_INET
        walk: Iterator[int] = iter(self.permutation)
        if self.slice.parts > 1:
            walk = itertools.islice(walk, self.slice.part, None, self.slice.parts)
        start, above = self.resume.watermark, self.resume.above
        if start:
            walk = itertools.islice(walk, start, None)
        last_above = max(above, default=-1)
        for position, index in enumerate(walk, start):
            if position <= last_above and position in above:
                continue
            self.position = position
            host_index, pair_index = divmod(index, width)
            if host_index != cache_index:
                if only is None:
                    family, value = locate(host_index)
                else:
                    family, value = only.family, only.first + host_index
                cache_index = host_index
                if family == 4:
                    cache_host, cache_family = ntoa(value.to_bytes(4, "big")), socket.AF_INET
                else:
                    cache_host, cache_family = format_address(family, value), _FAMILY[family]
            transport, port = pairs[pair_index]
            if transport is Transport.UDP:
                # A port's probes go out together, so its observations complete together.
                for probe in udp_probes(port):
                    yield make(
                        ProbeTarget,
                        (cache_host, cache_family, port, transport, probe, wait, retries),
                    )
            else:
                yield make(
                    ProbeTarget, (cache_host, cache_family, port, transport, 0, wait, retries)
                )
