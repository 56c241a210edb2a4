"""The local audit from start to finish: this machine's sockets -> owners -> loopback probes
(only addresses every scope allows) -> one document, with the scan's own judge and engine."""

from __future__ import annotations

import socket
from dataclasses import dataclass, replace
from typing import Any

from scanner.assembly import Judge, PortAssembler, to_result
from scanner.classify import PortClassification, unprobed_local_finding
from scanner.engine import Engine, EngineOptions
from scanner.models import (
    Finding,
    LocalAudit,
    LocalSocket,
    PortResult,
    PortState,
    ProbeTarget,
    RegistryRef,
    ScanDocument,
    Transport,
    utc_timestamp,
)
from scanner.plan import PortKey
from scanner.profiles import Profile, ServiceStatus
from scanner.registry import Registry
from scanner.scan import ScanTally, scan_info, scan_options
from scanner.targets import AddressBlock, in_scopes


@dataclass(frozen=True, slots=True)
class LocalAuditConfig:
    """What the local audit needs, as validated by the CLI."""

    profiles: tuple[Profile, ...]
    registry: Registry
    engine: EngineOptions
    probe: bool
    command_line: tuple[str, ...]
    scopes: tuple[tuple[AddressBlock, ...], ...] = ()
    scope_specs: tuple[tuple[str, str], ...] = ()


def _local_sockets(
    judge: Judge, registry: Registry
) -> tuple[list[LocalSocket], str | None, dict[tuple[Transport, int], Any]]:
    """This machine's sockets, marked where an obsolete service owns the port."""
    from scanner.local import bound_sockets, describe_sockets, several_orphans  # noqa: PLC0415

    raw, note = bound_sockets()
    owned = {
        key: owners
        for key, owners in judge.knowledge.owners.items()
        if any(o.status is not ServiceStatus.CURRENT for o in owners)
    }
    sockets = [
        sock.model_copy(
            update={
                "registry": registry.ref(sock.port, sock.proto.value),
                "finding": (sock.proto, sock.port) in owned,
            }
        )
        for sock in describe_sockets(raw)
    ]
    crowded = several_orphans(sockets, {(s.proto.value, s.port) for s in sockets if s.finding})
    sockets = [
        s.model_copy(update={"holds_several_orphans": s.process.pid in crowded}) for s in sockets
    ]
    return sockets, note, owned


async def run_local_audit(config: LocalAuditConfig, event_loop: str) -> ScanDocument:
    """List this machine's sockets, match them, probe the orphaned ones over loopback (only
    the addresses every scope allows), and return one document."""
    from scanner.local import probe_address, this_host  # noqa: PLC0415 - psutil: only here

    started = utc_timestamp()
    judge = Judge.of(config.profiles)
    sockets, note, owned = _local_sockets(judge, config.registry)
    targets: list[ProbeTarget] = []
    if config.probe:
        for sock in sockets:
            host = probe_address(sock)
            if not sock.finding or not in_scopes(host, config.scopes):
                continue
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            indexes = (
                (judge.probe_set.first_udp(sock.port),) if sock.proto is Transport.UDP else (0,)
            )
            targets.extend(ProbeTarget(host, family, sock.port, sock.proto, i) for i in indexes)
    tally = ScanTally(1, len({(t.host, t.port, t.transport) for t in targets}))
    classified: dict[PortKey, tuple[PortClassification, RegistryRef | None]] = {}

    def deliver(item: PortClassification) -> None:
        tally.record(item)
        key = (item.deciding.host, item.deciding.port, item.deciding.transport)
        classified[key] = (item, assembler.registry_ref(item.deciding))

    assembler = PortAssembler(judge, config.registry, {}, deliver)
    if targets:
        options = replace(config.engine, exchanges=judge.probe_set.exchanges)
        await Engine(options, assembler.add).run(sorted(set(targets)))
    findings: list[Finding] = []
    results: list[PortResult] = []
    for sock in sockets:
        if not sock.finding:
            continue
        found = classified.get((probe_address(sock), sock.port, sock.proto))
        if found is not None:
            item, ref = found
            results.append(to_result(item, None, ref))
            if item.finding is not None:
                findings.append(item.finding.model_copy(update={"process": sock.process}))
                continue
        owner = owned[sock.proto, sock.port][0]
        findings.append(unprobed_local_finding(sock, owner, sock.registry))
    tally.severities.clear()
    tally.verdicts.clear()
    for finding in findings:
        tally.record_finding(finding)
    info = scan_info(
        config.command_line,
        ["local"],
        [],
        {t: [s.port for s in sockets if s.proto is t] for t in Transport},
        scan_options(config.engine, 0, False, event_loop),
        config.profiles,
        config.registry,
        started,
        scope_specs=config.scope_specs,
    )
    return ScanDocument(
        scan=info.model_copy(update={"finished_at": utc_timestamp()}),
        results=[r for r in results if r.state is not PortState.CLOSED],
        findings=findings,
        local=LocalAudit(hostname=this_host(), sockets=sockets, note=note),
        summary=tally.summary().model_copy(update={"hosts": 1}),
        complete=True,
    )
