"""The local audit from start to finish: sockets -> owners -> loopback probes -> one document.

Uses the same engine, classification and result models as the network scan, so the JSON,
HTML and CSV writers and --fail-on work the same; the document gains a `local` section.
"""

from __future__ import annotations

import dataclasses
import socket
import uuid

from scanner import __version__
from scanner.classify import Knowledge, PortClassification
from scanner.engine import Engine, EngineOptions
from scanner.local import bound_sockets, describe_sockets, probe_address, several_orphans, this_host
from scanner.models import (
    Evidence,
    Finding,
    LocalAudit,
    LocalSocket,
    PortResult,
    PortState,
    ProbeTarget,
    RegistryRef,
    ScanDocument,
    ScanInfo,
    Transport,
    Verdict,
)
from scanner.ports import compress_ports
from scanner.probeset import build_probe_set
from scanner.profiles import Profile, ServiceModel, ServiceStatus, merged
from scanner.registry import Registry, describe_source
from scanner.report.jsonfile import utc_timestamp
from scanner.runner import PortAssembler, ScanTally, scan_options, to_result


def _unprobed_finding(
    sock: LocalSocket, owner: ServiceModel, registry: RegistryRef | None
) -> Finding:
    """A socket on an obsolete service's port, found without (or despite) a loopback probe."""
    return Finding(
        host=sock.address or "*",
        port=sock.port,
        proto=sock.proto,
        service_id=None,
        protocol=None,
        verdict=Verdict.UNIDENTIFIED,
        severity=owner.severity.value,
        confidence=0.0,
        title=f"A local process listens on {sock.port}/{sock.proto.value}, a port of {owner.name}",
        expected_service=owner.id,
        evidence=Evidence(probe=None, request_hex=None, response_hex=None, response_bytes=0),
        registry=registry,
        history=owner.history or None,
        why="Nothing current should hold this port; find out which program does and why.",
        remediation=(
            "Check the program below: remove it if unwanted, or move it to a port of its own."
        ),
        references=list(owner.references),
        process=sock.process,
    )


async def run_local_audit(
    *,
    profiles: tuple[Profile, ...],
    registry: Registry,
    options: EngineOptions,
    probe: bool,
    event_loop: str,
    command_line: tuple[str, ...],
) -> ScanDocument:
    """List this machine's sockets, match them, probe the orphaned ones over loopback."""
    started = utc_timestamp()
    raw, note = bound_sockets()
    probes, services = merged(profiles)
    probe_set = build_probe_set(probes, services)
    knowledge = Knowledge.build(services, probe_set.infos)
    owned = {
        key: owners
        for key, owners in knowledge.owners.items()
        if any(o.status is not ServiceStatus.CURRENT for o in owners)
    }
    sockets = []
    for sock in describe_sockets(raw):
        sockets.append(
            sock.model_copy(
                update={
                    "registry": registry.ref(sock.port, sock.proto.value),
                    "finding": (sock.proto, sock.port) in owned,
                }
            )
        )
    finding_ports = {(s.proto.value, s.port) for s in sockets if s.finding}
    crowded = several_orphans(sockets, finding_ports)
    sockets = [
        s.model_copy(update={"holds_several_orphans": s.process.pid in crowded}) for s in sockets
    ]
    classified: dict[tuple[str, int, Transport], tuple[PortClassification, RegistryRef | None]] = {}
    tally = ScanTally(1, 0)
    if probe:
        targets: list[ProbeTarget] = []
        for sock in sockets:
            if not sock.finding:
                continue
            host = probe_address(sock)
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            indexes = probe_set.for_udp(sock.port) if sock.proto is Transport.UDP else (0,)
            targets.extend(ProbeTarget(host, family, sock.port, sock.proto, i) for i in indexes)
        tally = ScanTally(1, len({(t.host, t.port, t.transport) for t in targets}))

        def deliver(item: PortClassification) -> None:
            tally.record(item)
            key = (item.deciding.host, item.deciding.port, item.deciding.transport)
            classified[key] = (item, assembler.registry_ref(item.deciding))

        assembler = PortAssembler(probe_set, knowledge, registry, {}, deliver)
        engine = Engine(dataclasses.replace(options, exchanges=probe_set.exchanges), assembler.add)
        assembler.submit = engine.submit
        await engine.run(sorted(set(targets)))
    findings: list[Finding] = []
    results: list[PortResult] = []
    for sock in sockets:
        if not sock.finding:
            continue
        owner = owned[(sock.proto, sock.port)][0]
        found = classified.get((probe_address(sock), sock.port, sock.proto))
        if found is not None:
            item, ref = found
            results.append(to_result(item, None, ref))
            if item.finding is not None:
                findings.append(item.finding.model_copy(update={"process": sock.process}))
                continue
        findings.append(_unprobed_finding(sock, owner, sock.registry))
    summary = tally.summary().model_copy(update={"hosts": 1})
    info = ScanInfo(
        id=str(uuid.uuid4()),
        version=__version__,
        command_line=list(command_line),
        started_at=started,
        finished_at=utc_timestamp(),
        targets=["local"],
        excludes=[],
        ports={
            Transport.TCP: compress_ports(s.port for s in sockets if s.proto is Transport.TCP),
            Transport.UDP: compress_ports(s.port for s in sockets if s.proto is Transport.UDP),
        },
        options=scan_options(options, 0, False, event_loop),
        profiles=[p.id for p in profiles],
        profile_hashes={p.id: p.sha256 for p in profiles},
        registry_source=describe_source(registry),
    )
    by_severity: dict[str, int] = {}
    by_verdict: dict[str, int] = {}
    for finding in findings:
        by_severity[finding.severity] = by_severity.get(finding.severity, 0) + 1
        by_verdict[finding.verdict.value] = by_verdict.get(finding.verdict.value, 0) + 1
    summary = summary.model_copy(
        update={
            "findings_by_severity": {**summary.findings_by_severity, **by_severity},
            "findings_by_verdict": {**summary.findings_by_verdict, **by_verdict},
        }
    )
    return ScanDocument(
        scan=info,
        results=[r for r in results if r.state is not PortState.CLOSED],
        findings=findings,
        local=LocalAudit(hostname=this_host(), sockets=sockets, note=note),
        summary=summary,
        complete=True,
    )
