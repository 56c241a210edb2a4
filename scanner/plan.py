"""The probe plan: every (host, port, transport) of a scan, in a seeded pseudo-random order.

Index i of the plan is host i // P and (transport, port) pair i % P, where P is the number of
pairs. A cyclic-group permutation walks the indexes, so consecutive probes land on different
hosts and ports, and no list of probes ever exists in memory.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator

from scanner.errors import ScanOptionError
from scanner.models import ProbeTarget, Transport
from scanner.permutation import CyclicPermutation
from scanner.ports import PortSpec
from scanner.targets import TargetSet, format_address

MAX_PROBES = 2**48
_FAMILY = {4: socket.AF_INET, 6: socket.AF_INET6}


class ProbePlan:
    """A lazily generated, seeded permutation of targets x ports x transports."""

    __slots__ = ("_pairs", "_udp_probes", "permutation", "ports", "targets")

    def __init__(
        self,
        targets: TargetSet,
        ports: PortSpec,
        seed: int,
        udp_probes: Callable[[int], tuple[int, ...]] = lambda port: (0,),
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

    def __len__(self) -> int:
        """(host, port, transport) triples; each UDP one may carry several probes."""
        return len(self.permutation)

    def __iter__(self) -> Iterator[ProbeTarget]:
        pairs = self._pairs
        udp_probes = self._udp_probes
        width = len(pairs)
        locate = self.targets.locate
        cache_index, cache_host, cache_family = -1, "", socket.AF_INET
        for index in self.permutation:
            host_index, pair_index = divmod(index, width)
            if host_index != cache_index:
                family, value = locate(host_index)
                cache_index, cache_host = host_index, format_address(family, value)
                cache_family = _FAMILY[family]
            transport, port = pairs[pair_index]
            if transport is Transport.UDP:
                # A port's probes go out together, so its observations complete together.
                for probe in udp_probes(port):
                    yield ProbeTarget(cache_host, cache_family, port, transport, probe)
            else:
                yield ProbeTarget(cache_host, cache_family, port, transport)
