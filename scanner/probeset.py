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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from scanner.models import ExchangeSpec, ProbeInfo, Transport
from scanner.probes import build_payload
from scanner.profiles import ProbeModel, ServiceModel, ServiceStatus

DISCOVERY = ProbeInfo(("discovery",), b"")


def payload_of(probe: ProbeModel) -> bytes:
    """The bytes a probe sends."""
    if probe.payload is not None:
        return probe.payload.encode("latin-1")
    if probe.payload_hex is not None:
        return bytes.fromhex(probe.payload_hex)
    if probe.builder is not None:
        return build_payload(probe.builder, probe.args, f"probe {probe.id!r}")
    return b""


def built_payloads(probes: Sequence[ProbeModel]) -> list[bytes]:
    """payload_of each probe, through the cache for the probes that name a builder."""
    from scanner import cache  # noqa: PLC0415 - cache imports registry, which imports profiles
    from scanner.probes import builders  # noqa: PLC0415

    recipes = [(p.id, p.builder, p.args) for p in probes if p.builder is not None]
    try:
        slot = cache.content_key("payloads", *(p.id for p in probes))
        spec = json.dumps(recipes, sort_keys=True, default=repr)
        key = cache.content_key("payloads", cache.file_digest(builders.__file__), spec)
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


@dataclass(frozen=True, slots=True)
class ProbeSet:
    """Exchanges by index (0 is discovery) and the indexes each port gets."""

    exchanges: tuple[ExchangeSpec, ...]
    infos: tuple[ProbeInfo, ...]
    udp: dict[int, tuple[int, ...]]
    tcp: dict[int, tuple[int, ...]]
    tcp_generic: tuple[int, ...]

    def for_udp(self, port: int) -> tuple[int, ...]:
        """The probes a UDP port gets (discovery's empty datagram when no service owns it)."""
        return self.udp.get(port, (0,))

    def tcp_follow_ups(self, port: int) -> tuple[int, ...]:
        """The exchanges an open TCP port gets after the connect."""
        return self.tcp.get(port, self.tcp_generic)


def build_probe_set(probes: Iterable[ProbeModel], services: Iterable[ServiceModel]) -> ProbeSet:
    """Build every payload once and index the probes per port."""
    exchanges: list[ExchangeSpec] = []
    payloads: list[bytes] = [b""]
    ids: list[list[str]] = [["discovery"]]
    index_of_key: dict[tuple[object, ...], int] = {}
    index_of_id: dict[str, int] = {}
    transport_of_id: dict[str, Transport] = {}
    probes = list(probes)
    for probe, payload in zip(probes, built_payloads(probes), strict=True):
        reads = probe.read if probe.transport is Transport.TCP else True
        spec = ExchangeSpec(payload, reads, probe.wait, probe.retries, probe.any_source_port)
        key = (probe.transport, spec)
        if key not in index_of_key:
            exchanges.append(spec)
            payloads.append(payload)
            ids.append([])
            index_of_key[key] = len(exchanges)
        index_of_id[probe.id] = index_of_key[key]
        ids[index_of_key[key]].append(probe.id)
        transport_of_id[probe.id] = probe.transport

    def indexes(service: ServiceModel, transport: Transport) -> list[int]:
        return [index_of_id[p] for p in service.probes if transport_of_id.get(p) is transport]

    udp: dict[int, list[int]] = {}
    tcp: dict[int, list[int]] = {}
    generic: list[int] = []
    services = list(services)
    for service in services:
        if service.status is ServiceStatus.CURRENT:
            generic += indexes(service, Transport.TCP)
            continue
        for port in service.ports.udp:
            udp.setdefault(port, []).extend(indexes(service, Transport.UDP))
        for port in service.ports.tcp:
            tcp.setdefault(port, []).extend(indexes(service, Transport.TCP))
    tcp_generic = tuple(dict.fromkeys(generic))
    infos = tuple(ProbeInfo(tuple(names), data) for names, data in zip(ids, payloads, strict=True))
    return ProbeSet(
        tuple(exchanges),
        infos,
        {port: tuple(dict.fromkeys(found)) or (0,) for port, found in udp.items()},
        {port: tuple(dict.fromkeys(found + list(tcp_generic))) for port, found in tcp.items()},
        tcp_generic,
    )
