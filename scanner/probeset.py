"""Profiles' probes -> the engine's exchange table and the probes each port gets.

Identical probes (same transport and bytes, same way of reading) share one exchange, so they
run once per (host, port, transport) and every service that wants the answer gets it.
A port gets the probes of the services that own it; TCP ports also get the probes of the
current-protocol recognisers (HTTP, SSH, TLS) so a squatter can be named. Payloads are built
here, once per scan; the engine only ever sees bytes. Builders' payloads are kept in the user
cache (scanner/cache.py), keyed by the builders' code and arguments, so a scan whose payloads
were built before never imports scapy.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from scanner.models import ExchangeSpec, ProbeInfo, Transport
from scanner.profiles import ProbeModel, ServiceModel

DISCOVERY = ProbeInfo(("discovery",), b"")


_BUILDERS_SOURCE = os.path.join(os.path.dirname(__file__), "probes", "builders.py")
"""The builders' code, part of the payload cache's key (a warm start does not import it)."""


def payload_of(probe: ProbeModel) -> bytes:
    """The bytes a probe sends."""
    if probe.payload is not None:
        return probe.payload.encode("latin-1")
    if probe.payload_hex is not None:
        return bytes.fromhex(probe.payload_hex)
    if probe.builder is not None:
        from scanner.probes import build_payload  # noqa: PLC0415 - on a cache miss only

        return build_payload(probe.builder, probe.args, f"probe {probe.id!r}")
    return b""


def built_payloads(probes: Sequence[ProbeModel]) -> list[bytes]:
    """payload_of each probe, through the cache for the probes that name a builder."""
    from scanner import cache  # noqa: PLC0415 - cache imports registry, which imports profiles

    recipes = [(p.id, p.builder, p.args) for p in probes if p.builder is not None]
    try:
        slot = cache.content_key("payloads", *(p.id for p in probes))
        spec = json.dumps(recipes, sort_keys=True, default=repr)
        key = cache.content_key("payloads", cache.file_digest(_BUILDERS_SOURCE), spec)
    except OSError:
        return [payload_of(p) for p in probes]
    data = cache.fetch("payloads", slot, key)
    kept: list[bytes] | None = None
    if isinstance(data, list) and len(data) == len(recipes):
        try:
            kept = [bytes.fromhex(item) for item in data]
        except (TypeError, ValueError):  # not hex: someone else's file, or a damaged one
            kept = None
    if kept is None:
        kept = [payload_of(p) for p in probes if p.builder is not None]
        cache.store("payloads", slot, key, [payload.hex() for payload in kept])
    from_builders = iter(kept)
    return [next(from_builders) if p.builder is not None else payload_of(p) for p in probes]


LADDER_RARITY = 7
"""Probes rarer than this (nmap's default intensity) are not sent to a port that does not
own them."""


@dataclass(frozen=True, slots=True)
class ProbeSet:
    """Exchanges by index (0 is discovery) and the order each port gets them in.

    The identification ladder of an open TCP port: the server-first wait (`tcp_null`), the
    port's own services' probes, then every other probe by rarity (the most common protocols,
    and the ones one exchange names, first). A UDP port gets its own probes one at a time, and
    when it stays silent, the fallback set: one datagram of each other UDP probe.
    """

    exchanges: tuple[ExchangeSpec, ...]
    infos: tuple[ProbeInfo, ...]
    udp: dict[int, tuple[int, ...]]
    tcp: dict[int, tuple[int, ...]]
    tcp_null: int | None = None
    tcp_ladder: tuple[int, ...] = ()
    udp_fallback: tuple[int, ...] = ()
    carried: dict[str, frozenset[int]] = field(default_factory=dict)
    """For a protocol others are carried over (http): the probes of those others."""

    def for_udp(self, port: int) -> tuple[int, ...]:
        """A UDP port's own probes (discovery's empty datagram when no service owns it)."""
        return self.udp.get(port, (0,))

    def first_udp(self, port: int) -> int:
        """The probe that decides whether a UDP port is closed: only it goes out first."""
        return self.udp.get(port, (0,))[0]

    def tcp_follow_ups(self, port: int) -> tuple[int, ...]:
        """The exchanges an open TCP port gets after the connect, in ladder order."""
        own = self.tcp.get(port, ())
        first = (self.tcp_null,) if self.tcp_null is not None else ()
        return tuple(dict.fromkeys((*first, *own, *self.tcp_ladder)))

    def udp_fallbacks(self, port: int) -> tuple[int, ...]:
        """The datagrams a silent UDP port gets after its own, in ladder order."""
        own = set(self.for_udp(port))
        return tuple(i for i in self.udp_fallback if i not in own)


def build_probe_set(probes: Iterable[ProbeModel], services: Iterable[ServiceModel]) -> ProbeSet:
    """Build every payload once and order the probes per port."""
    probes = list(probes)
    exchanges: list[ExchangeSpec] = []
    payloads: list[bytes] = [b""]
    ids: list[list[str]] = [["discovery"]]
    index_of_key: dict[tuple[object, ...], int] = {}
    index_of_id: dict[str, int] = {}
    transport_of_id: dict[str, Transport] = {}
    rarity_of: dict[int, int] = {}
    ladder_ok: dict[int, bool] = {}
    for probe, payload in zip(probes, built_payloads(probes), strict=True):
        reads = probe.read if probe.transport is Transport.TCP else True
        spec = ExchangeSpec(
            payload,
            reads,
            probe.wait,
            probe.retries,
            probe.any_source_port,
            probe.privileged_source,
        )
        key = (probe.transport, spec)
        if key not in index_of_key:
            exchanges.append(spec)
            payloads.append(payload)
            ids.append([])
            index_of_key[key] = len(exchanges)
        index = index_of_key[key]
        index_of_id[probe.id] = index
        ids[index].append(probe.id)
        transport_of_id[probe.id] = probe.transport
        rarity_of[index] = min(rarity_of.get(index, 9), probe.rarity)
        ladder_ok[index] = ladder_ok.get(index, True) and not probe.privileged_source

    def indexes(service: ServiceModel, transport: Transport) -> list[int]:
        return [index_of_id[p] for p in service.probes if transport_of_id.get(p) is transport]

    udp: dict[int, list[int]] = {}
    tcp: dict[int, list[int]] = {}
    used: dict[Transport, set[int]] = {Transport.TCP: set(), Transport.UDP: set()}
    carried: dict[str, set[int]] = {}
    for service in services:
        for transport in Transport:
            used[transport].update(indexes(service, transport))
            if service.over:
                carried.setdefault(service.over, set()).update(indexes(service, transport))
        # A port's own probes: of every service registered there, current ones included
        # (which own no port for verdicts: see classify.Knowledge)
        for port in service.ports.udp:
            udp.setdefault(port, []).extend(indexes(service, Transport.UDP))
        for port in service.ports.tcp:
            tcp.setdefault(port, []).extend(indexes(service, Transport.TCP))
    null = next(
        (i for i in sorted(used[Transport.TCP]) if not exchanges[i - 1].payload),
        None,
    )

    def ladder(transport: Transport) -> tuple[int, ...]:
        return tuple(
            sorted(
                (
                    i
                    for i in used[transport]
                    if i != null and ladder_ok[i] and rarity_of[i] <= LADDER_RARITY
                ),
                key=lambda i: (rarity_of[i], i),
            )
        )

    infos = tuple(ProbeInfo(tuple(names), data) for names, data in zip(ids, payloads, strict=True))
    return ProbeSet(
        tuple(exchanges),
        infos,
        {port: tuple(dict.fromkeys(found)) or (0,) for port, found in udp.items()},
        {port: tuple(dict.fromkeys(found)) for port, found in tcp.items()},
        null,
        ladder(Transport.TCP),
        ladder(Transport.UDP),
        {protocol: frozenset(found) for protocol, found in carried.items()},
    )
