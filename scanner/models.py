"""Result types. The pydantic models here are the JSON document a scan writes (no copies).

The engine's own values (`PortObservation`) are slotted dataclasses: cheap to create per probe.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = "1.0"


class Transport(StrEnum):
    """The transport a port is probed on."""

    TCP = "tcp"
    UDP = "udp"


class PortState(StrEnum):
    """Port states, with nmap's names and meanings."""

    OPEN = "open"
    CLOSED = "closed"
    FILTERED = "filtered"
    OPEN_FILTERED = "open|filtered"


class Reason(StrEnum):
    """Why a port got its state, named as nmap names its reasons."""

    SYN_ACK = "syn-ack"
    CONN_REFUSED = "conn-refused"
    UDP_RESPONSE = "udp-response"
    PORT_UNREACH = "port-unreach"
    HOST_UNREACH = "host-unreach"
    NET_UNREACH = "net-unreach"
    PROTO_UNREACH = "proto-unreach"
    ADMIN_PROHIBITED = "admin-prohibited"
    HOST_PROHIBITED = "host-prohibited"
    NET_PROHIBITED = "net-prohibited"
    NO_RESPONSE = "no-response"
    ERROR = "error"


class Verdict(StrEnum):
    """What the answer on a port means for an audit (set by classification)."""

    LEGACY = "legacy"
    SQUATTER = "squatter"
    UNIDENTIFIED = "unidentified"


class ProbeTarget(NamedTuple):
    """One (host, port, transport) to probe. A tuple: the engine makes one per probe."""

    host: str
    family: int
    port: int
    transport: Transport
    probe: int = 0  # index of the exchange to run (0: discovery)


@dataclass(frozen=True, slots=True)
class PortObservation:
    """What the engine saw for one (host, port, transport), after all attempts."""

    host: str
    port: int
    transport: Transport
    state: PortState
    reason: Reason
    rtt: float | None
    attempts: int
    response: bytes | None = None
    error: str | None = None
    probe: int = 0


_FROZEN = ConfigDict(extra="forbid", frozen=True)


class RegistryRef(BaseModel):
    """The IANA registry entry for a port and transport, where one exists."""

    model_config = _FROZEN

    name: str
    description: str
    assignee: str | None = None
    registration_date: str | None = None


class ServiceMatch(BaseModel):
    """The application protocol recognised in a port's response."""

    model_config = _FROZEN

    id: str | None = Field(description="profile service id, or null")
    protocol: str | None = Field(description="IANA service name of the protocol recognised")
    confidence: float = Field(ge=0.0, le=1.0)
    matcher: str | None = None
    extracted: dict[str, str] = Field(default_factory=dict)


class PortResult(BaseModel):
    """One (host, port, transport) in the results list."""

    model_config = _FROZEN

    host: str
    hostname: str | None = None
    port: int = Field(ge=1, le=65535)
    proto: Transport
    state: PortState
    reason: Reason
    rtt_ms: float | None = Field(description="round-trip time of the deciding attempt")
    attempts: int = Field(ge=1)
    response_hex: str | None = Field(
        default=None, description="what the port sent back, hex encoded, capped"
    )
    error: str | None = Field(default=None, description="a local error that stopped the probe")
    service: ServiceMatch | None = None
    verdict: Verdict | None = None
    registry: RegistryRef | None = None


class ProcessFacts(BaseModel):
    """The program behind a local socket, as far as it can be read."""

    model_config = _FROZEN

    pid: int | None
    name: str | None = None
    exe: str | None = None
    cmdline: list[str] = Field(default_factory=list)
    user: str | None = None
    started_at: str | None = None
    readable: bool = Field(description="false when the owner could not be fully read")
    note: str | None = Field(default=None, description="why something could not be read")
    exe_deleted: bool = False
    outside_system_paths: bool = False
    started_recently: bool = Field(default=False, description="started less than an hour ago")


class LocalSocket(BaseModel):
    """A listening TCP or bound UDP socket on the audited machine."""

    model_config = _FROZEN

    proto: Transport
    address: str
    port: int = Field(ge=0, le=65535)
    all_interfaces: bool
    loopback_only: bool
    process: ProcessFacts
    registry: RegistryRef | None = None
    finding: bool = Field(default=False, description="the port belongs to an obsolete service")
    holds_several_orphans: bool = Field(
        default=False, description="its program holds more than one orphaned port"
    )


class LocalAudit(BaseModel):
    """The `local` section: this machine's sockets and who holds them."""

    model_config = _FROZEN

    hostname: str
    sockets: list[LocalSocket]
    note: str | None = None


class Evidence(BaseModel):
    """What was sent and what came back, for an auditor to check."""

    model_config = _FROZEN

    probe: str | None = Field(description="id of the probe whose answer decided")
    request_hex: str | None
    response_hex: str | None = Field(description="capped at RESPONSE_EVIDENCE_LIMIT bytes")
    response_bytes: int = Field(ge=0, description="length of the whole response")
    decoded: dict[str, str] = Field(default_factory=dict)


class Finding(BaseModel):
    """A legacy service or a squatter on a port, with what it means and how to fix it."""

    model_config = _FROZEN

    host: str
    hostname: str | None = None
    port: int = Field(ge=1, le=65535)
    proto: Transport
    service_id: str | None
    protocol: str | None
    verdict: Verdict
    severity: str
    confidence: float = Field(ge=0.0, le=1.0)
    title: str
    expected_service: str | None = Field(
        default=None, description="the obsolete service the port belongs to (squatters)"
    )
    evidence: Evidence
    registry: RegistryRef | None = None
    history: str | None = None
    why: str | None = Field(default=None, description="why it matters: the severity rationale")
    remediation: str | None = None
    references: list[str] = Field(default_factory=list)
    process: ProcessFacts | None = Field(
        default=None, description="the local program holding the port (local audit)"
    )


class UnresolvedTargetResult(BaseModel):
    """A target hostname that did not resolve; the scan went on without it."""

    model_config = _FROZEN

    target: str
    error: str


class ScanOptions(BaseModel):
    """The engine settings a scan ran with."""

    model_config = _FROZEN

    timeout_s: float
    retries: int
    rate: float | None = Field(description="probes per second, null for unlimited")
    max_inflight: int
    per_host: int
    seed: int
    all_states: bool
    event_loop: str


class ScanInfo(BaseModel):
    """What was scanned, how, by which tool, and when."""

    model_config = _FROZEN

    id: str
    tool: str = "ghostport"
    version: str
    command_line: list[str]
    started_at: str
    finished_at: str | None
    targets: list[str]
    excludes: list[str]
    ports: dict[Transport, str]
    options: ScanOptions
    profiles: list[str] = Field(default_factory=list)
    profile_hashes: dict[str, str] = Field(
        default_factory=dict, description="sha256 of each profile file, by profile id"
    )
    registry_source: str | None = Field(
        default=None, description="where the port registry came from (see `registry info`)"
    )


class ScanSummary(BaseModel):
    """Counts over every probe of the scan, including the ones not listed."""

    model_config = _FROZEN

    hosts: int = Field(description="addresses in the target set")
    probes_total: int = Field(description="(host, port, transport) probes planned")
    probes_done: int
    states: dict[PortState, int]
    states_by_proto: dict[Transport, dict[PortState, int]]
    findings_by_severity: dict[str, int] = Field(default_factory=dict)
    findings_by_verdict: dict[str, int] = Field(default_factory=dict)
    duration_s: float


class ScanDocument(BaseModel):
    """The whole JSON document of one scan."""

    model_config = _FROZEN

    schema_version: str = SCHEMA_VERSION
    scan: ScanInfo
    unresolved: list[UnresolvedTargetResult] = Field(default_factory=list)
    results: list[PortResult]
    findings: list[Finding] = Field(default_factory=list)
    local: LocalAudit | None = None
    summary: ScanSummary
    complete: bool = Field(description="false when the scan was interrupted or crashed")
