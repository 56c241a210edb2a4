"""Classification: the observations of one port + profiles + registry -> state, service, verdict.

Pure: no I/O. A service is named only from a response, never from the port number.

Verdicts:
- legacy: the obsolete (or legacy-risk) service, or its protocol, answers. SNMP on 391 means a
  SynOptics-era relay is alive; telnet on 23 is a legacy risk.
- squatter: the port belongs to an obsolete service but something else answers (HTTP, SSH,
  TLS, an unknown banner): a custom application, or possibly malware.
- unidentified: open, and nothing recognisable.
- None: a current service on a port no obsolete service owns, or a port that did not answer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from scanner.match import Match, match, printable
from scanner.models import (
    Evidence,
    Finding,
    LocalSocket,
    PortObservation,
    PortState,
    ProbeInfo,
    RegistryRef,
    ServiceMatch,
    Severity,
    Transport,
    Verdict,
)
from scanner.profiles import ServiceModel, ServiceStatus

RESPONSE_EVIDENCE_LIMIT = 4096
SQUATTER_SEVERITY = Severity.MEDIUM
_STATE_ORDER = (PortState.OPEN, PortState.CLOSED, PortState.FILTERED, PortState.OPEN_FILTERED)


@dataclass(frozen=True, slots=True)
class Knowledge:
    """Services of the selected profiles, indexed by the ports they own."""

    services: tuple[ServiceModel, ...]
    probes: tuple[ProbeInfo, ...]  # by exchange index; 0 is discovery
    owners: dict[tuple[Transport, int], tuple[ServiceModel, ...]]
    unconfirmable: frozenset[tuple[Transport, int]] = frozenset()
    """Ports whose own probes need a privileged source port this process cannot bind."""

    @classmethod
    def build(cls, services: Iterable[ServiceModel], probes: Sequence[ProbeInfo]) -> Knowledge:
        """Index services by (transport, port); current recognisers own no port."""
        services = tuple(services)
        owners: dict[tuple[Transport, int], list[ServiceModel]] = {}
        for service in services:
            if service.status is ServiceStatus.CURRENT:
                continue
            for transport, ports in (
                (Transport.TCP, service.ports.tcp),
                (Transport.UDP, service.ports.udp),
            ):
                for port in ports:
                    owners.setdefault((transport, port), []).append(service)
        return cls(services, tuple(probes), {k: tuple(v) for k, v in owners.items()})


@dataclass(frozen=True, slots=True)
class PortClassification:
    """The merged outcome of every probe of one port."""

    deciding: PortObservation
    service: ServiceMatch | None
    verdict: Verdict | None
    finding: Finding | None
    note: str | None = None


TARPIT_NOTE = (
    "the host accepts connections on every port (a tarpit, a firewall or a load balancer "
    "answering for it): what answers here is not told apart from the rest"
)
PRIVILEGE_NOTE = (
    "rlogind and rshd hang up on connections from unprivileged source ports: rerun as root "
    "(a source port in 512-1023) to confirm what listens (nmap calls such ports tcpwrapped)"
)

TCPWRAPPED_NOTE = (
    "tcpwrapped: the server hangs up without a byte, whatever is sent (TCP wrappers or another "
    "access list refusing this scanner's address, or a service that serves only its own clients)"
)


def hung_up_every_time(observations: Sequence[PortObservation]) -> bool:
    """At least two exchanges, and in each the server closed the connection without sending
    anything (not: stayed silent). A discovery connect that read nothing is no exchange."""
    exchanges = [o for o in observations if o.probe or o.response is not None]
    return len(exchanges) > 1 and all(
        o.state is PortState.OPEN and o.response == b"" for o in exchanges
    )


def as_tarpit(classified: PortClassification) -> PortClassification:
    """A port of a host that accepts every port: a squatter there is no finding."""
    if classified.verdict is not Verdict.SQUATTER:
        return classified
    return PortClassification(
        classified.deciding, classified.service, Verdict.UNIDENTIFIED, None, TARPIT_NOTE
    )


def deciding_observation(observations: Sequence[PortObservation]) -> PortObservation:
    """The observation that sets the port's state: an answer beats an ICMP error beats
    silence; among answers, the one with the most data."""
    return min(
        observations,
        key=lambda o: (_STATE_ORDER.index(o.state), -(len(o.response or b"")), o.probe),
    )


def _candidates(
    observations: Sequence[PortObservation], knowledge: Knowledge, owners: tuple[ServiceModel, ...]
) -> list[tuple[ServiceModel, Match, PortObservation]]:
    found: list[tuple[ServiceModel, Match, PortObservation]] = []
    for observation in observations:
        if observation.state is not PortState.OPEN:
            continue
        probe = knowledge.probes[observation.probe]
        response = observation.response or b""
        for service in knowledge.services:
            for matcher in service.matchers:
                if matcher.probes and not set(matcher.probes).intersection(probe.ids):
                    continue
                if matcher.type == "silent" and (service not in owners or observation.probe == 0):
                    continue  # silence names a service only on its own port, after a read
                hit = match(matcher, response, probe.payload)
                if hit is not None:
                    found.append((service, hit, observation))
    return found


Candidate = tuple[ServiceModel, Match, PortObservation]


def matched_protocols(
    observation: PortObservation, knowledge: Knowledge, owners: tuple[ServiceModel, ...]
) -> tuple[set[str], set[str]]:
    """The protocols an answer is a hard match for, and those it is only a soft match for
    (the ladder stops at a hard one, unless all are carriers of others, such as HTTP)."""
    hard: set[str] = set()
    soft: set[str] = set()
    for _, hit, _ in _candidates([observation], knowledge, owners):
        (soft if hit.soft else hard).add(hit.protocol)
    return hard, soft


def _rank(
    owners: tuple[ServiceModel, ...],
) -> Callable[[Candidate], tuple[bool, bool, bool, float]]:
    """Hard before soft, a protocol carried over another (a proxy over HTTP) before its
    carrier, the port's own service before others, then confidence."""

    def key(item: Candidate) -> tuple[bool, bool, bool, float]:
        service, hit, _ = item
        return (not hit.soft, service.over is not None, service in owners, hit.confidence)

    return key


def classify_port(
    observations: Sequence[PortObservation],
    knowledge: Knowledge,
    registry: RegistryRef | None,
    hostname: str | None = None,
) -> PortClassification:
    """Merge one port's observations and say what answers there."""
    deciding = deciding_observation(observations)
    first = observations[0]
    owners = knowledge.owners.get((first.transport, first.port), ())
    if deciding.state is not PortState.OPEN:
        return PortClassification(deciding, None, None, None)
    candidates = _candidates(observations, knowledge, owners)
    if not candidates:
        return _unrecognised(observations, deciding, knowledge, owners, registry, hostname)
    service, hit, source = max(candidates, key=_rank(owners))
    speaking_owner = next((o for o in owners if o.protocol == hit.protocol), None)
    expected: ServiceModel | None = None
    verdict: Verdict | None
    if service.status is ServiceStatus.CURRENT and hit.severity is not None and not hit.soft:
        # A recogniser that raises the severity itself (a shell that ran our command) is a
        # finding on any port, never the port's own service by protocol name (rsh is "shell")
        verdict, expected = Verdict.SQUATTER, (owners[0] if owners else None)
    elif service.status is not ServiceStatus.CURRENT and (service in owners or not owners):
        verdict = Verdict.LEGACY
    elif speaking_owner is not None:
        service, verdict = speaking_owner, Verdict.LEGACY
    elif owners:
        verdict, expected = Verdict.SQUATTER, owners[0]
    elif service.status is ServiceStatus.CURRENT:
        verdict = None
    else:
        verdict = Verdict.LEGACY
    extracted: dict[str, str] = {}
    severities: list[Severity] = []
    for other_service, other_hit, _ in candidates:
        if other_service.id == service.id or other_hit.protocol == hit.protocol:
            extracted.update(other_hit.extracted)
            if other_hit.severity is not None:
                severities.append(other_hit.severity)
    extracted.update(hit.extracted)
    matched = ServiceMatch(
        id=service.id,
        protocol=hit.protocol,
        confidence=hit.confidence,
        matcher=hit.matcher,
        extracted=extracted,
    )
    finding: Finding | None = None
    if verdict in (Verdict.LEGACY, Verdict.SQUATTER):
        finding = _finding(
            source,
            knowledge,
            service=service,
            hit=hit,
            verdict=verdict,
            expected=expected,
            registry=registry,
            hostname=hostname,
            extracted=extracted,
            confidence=hit.confidence,
            raised=severities,
        )
    return PortClassification(source, matched, verdict, finding)


def _unrecognised(  # noqa: PLR0917 - one call site, all context
    observations: Sequence[PortObservation],
    deciding: PortObservation,
    knowledge: Knowledge,
    owners: tuple[ServiceModel, ...],
    registry: RegistryRef | None,
    hostname: str | None,
) -> PortClassification:
    """Open, and no matcher knows the answer: a squatter on an obsolete service's port when
    it said something, else unidentified."""
    answered = [o for o in observations if o.response]
    if owners and answered:
        source = max(answered, key=lambda o: len(o.response or b""))
        finding = _finding(
            source,
            knowledge,
            service=None,
            hit=None,
            verdict=Verdict.SQUATTER,
            expected=owners[0],
            registry=registry,
            hostname=hostname,
            extracted={"banner": printable(source.response or b"")},
            confidence=0.3,
        )
        unknown = ServiceMatch(id=None, protocol=None, confidence=0.3, matcher=None)
        return PortClassification(source, unknown, Verdict.SQUATTER, finding)
    nothing = ServiceMatch(id=None, protocol=None, confidence=0.0, matcher=None)
    if owners and (deciding.transport, deciding.port) in knowledge.unconfirmable:
        owner = owners[0]
        finding = _finding(
            deciding,
            knowledge,
            service=None,
            hit=None,
            verdict=Verdict.UNIDENTIFIED,
            expected=owner,
            registry=registry,
            hostname=hostname,
            extracted={},
            confidence=0.0,
        ).model_copy(
            update={
                "severity": owner.severity,
                "title": f"{owner.name} may listen on {deciding.port}/{deciding.transport}: "
                "confirming it needs a privileged source port",
                "why": PRIVILEGE_NOTE,
            }
        )
        return PortClassification(deciding, nothing, Verdict.UNIDENTIFIED, finding, PRIVILEGE_NOTE)
    if deciding.transport is Transport.TCP and hung_up_every_time(observations):
        # nmap's name for it
        named = ServiceMatch(id=None, protocol="tcpwrapped", confidence=0.0, matcher=None)
        return PortClassification(deciding, named, Verdict.UNIDENTIFIED, None, TCPWRAPPED_NOTE)
    return PortClassification(deciding, nothing, Verdict.UNIDENTIFIED, None)


def _finding(
    source: PortObservation,
    knowledge: Knowledge,
    *,
    service: ServiceModel | None,
    hit: Match | None,
    verdict: Verdict,
    expected: ServiceModel | None,
    registry: RegistryRef | None,
    hostname: str | None,
    extracted: dict[str, str],
    confidence: float,
    raised: Sequence[Severity] = (),
) -> Finding:
    probe = knowledge.probes[source.probe]
    response = source.response or b""
    where = f"{source.port}/{source.transport}"
    says = "answers" if response else "listens"  # a silent listener accepted, said nothing
    about: ServiceModel | None
    if verdict is Verdict.LEGACY:
        assert service is not None
        severity = max([service.severity, *raised], key=lambda s: s.rank)
        title = f"{service.name} {says} on {where}"
        about = service
    else:
        severity = max([SQUATTER_SEVERITY, *raised], key=lambda s: s.rank)
        what = service.name.removesuffix(" server") if service else "An unrecognised service"
        if registry is not None:
            title = (
                f"{what} {says} on {where}, registered to {registry.name} ({registry.description})"
            )
        elif expected is not None:
            title = f"{what} {says} on {where}, a port of {expected.name}"
        else:
            title = f"{what} {says} on {where}"
        about = expected if service is None or service.severity.rank < severity.rank else service
    own_words = about is not None and (verdict is Verdict.LEGACY or about is service)
    return Finding(
        host=source.host,
        hostname=hostname,
        port=source.port,
        proto=source.transport,
        service_id=service.id if service else None,
        protocol=hit.protocol if hit else None,
        verdict=verdict,
        severity=severity,
        confidence=confidence,
        title=title,
        expected_service=expected.id if expected else None,
        evidence=Evidence(
            probe=probe.id,
            request_hex=probe.payload.hex() if probe.payload else None,
            response_hex=response[:RESPONSE_EVIDENCE_LIMIT].hex() if response else None,
            response_bytes=len(response),
            decoded=extracted,
        ),
        registry=registry,
        history=about.history or None if about else None,
        why=(about.severity_rationale or None)
        if about is not None and own_words
        else (
            "Something other than the registered, obsolete service listens here: a custom "
            "application that picked a 'free' port, or software hiding on an obscure one."
        ),
        remediation=(about.remediation or None)
        if about is not None and own_words
        else (
            "Identify the process that holds the port (`ss -tulpn`, `lsof -i`), confirm it is "
            "wanted, and move it to a port of its own or remove it."
        ),
        references=list(about.references) if about else [],
    )


def unprobed_local_finding(
    sock: LocalSocket, owner: ServiceModel, registry: RegistryRef | None
) -> Finding:
    """A local socket on an obsolete service's port, found without (or despite) a probe."""
    return Finding(
        host=sock.address or "*",
        port=sock.port,
        proto=sock.proto,
        service_id=None,
        protocol=None,
        verdict=Verdict.UNIDENTIFIED,
        severity=owner.severity,
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
