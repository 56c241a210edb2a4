"""Result types. The pydantic models here are the JSON document a scan writes (no copies).

The engine's own values (`PortObservation`) are slotted dataclasses: cheap to create per probe.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticSerializationError

# Defined beside the history's light writer, which must not import this module (pydantic).
from scanner.store.common import SCHEMA_VERSION as SCHEMA_VERSION  # noqa: PLC0414
from scanner.store.common import TIME_FORMAT

TIMESTAMP_FORMAT = TIME_FORMAT


def utc_timestamp(moment: datetime | None = None) -> str:
    """UTC time in a fixed-width ISO 8601 form: 2026-11-21T11:22:28.123456Z."""
    return (moment or datetime.now(UTC)).strftime(TIMESTAMP_FORMAT)


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
    RESET = "reset"  # an RST to a raw SYN (--syn), where a connect sees conn-refused
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


class Severity(StrEnum):
    """How much a finding matters, lowest first (as nuclei grades its templates)."""

    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """0 for info up to 4 for critical."""
        return _SEVERITY_RANK[self]


_SEVERITY_RANK = {severity: rank for rank, severity in enumerate(Severity)}


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
    wait: float = 0.0  # this probe's wait, adapted to the host's round trips (0: the exchange's)
    retries: int = -1  # extra attempts when silent (-1: the exchange's, else the scan's)


@dataclass(frozen=True, slots=True)
class ExchangeSpec:
    """What one probe does once it reaches its port.

    TCP: connect; then, when `read` is set, send `payload` (if any) and read until the peer
    closes, the read cap is reached or `wait` runs out (one deadline for the exchange).
    UDP: send `payload` and wait for a reply. With `any_source_port`, the socket is not
    connected, so a reply from another port of the same host counts (TFTP answers that way).
    """

    payload: bytes = b""
    read: bool = False
    wait: float | None = None
    retries: int | None = None
    any_source_port: bool = False
    privileged_source: bool = False  # rlogin/rsh/rexec: connect from a port in 512-1023


@dataclass(frozen=True, slots=True)
class ProbeInfo:
    """A probe as classification needs it: the bytes it sent, and the ids of every profile
    probe that sends exactly these bytes (identical probes share one exchange)."""

    ids: tuple[str, ...]
    payload: bytes

    @property
    def id(self) -> str:
        """The first profile probe with these bytes."""
        return self.ids[0]


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


_FROZEN = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class RegistryRef(BaseModel):
    """The IANA registry entry for a port and transport, where one exists."""

    model_config = _FROZEN

    name: str
    description: str
    assignee: str | None = None
    registration_date: str | None = None


class RegistryRow(BaseModel):
    """One registry entry as `ghostport registry` shows it, in text and in JSON."""

    model_config = _FROZEN

    port: str | None = Field(description="'391', '4795-4799', or null for a name-only row")
    transport: str | None
    name: str
    description: str
    assignee: str | None = None
    contact: str | None = None
    registration_date: str | None = None
    modification_date: str | None = None
    reference: str | None = None
    notes: str | None = None


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
    note: str | None = Field(
        default=None,
        description="why a verdict is what it is where that is not obvious (a host that "
        "accepts every port; a port that needs a privileged source port to confirm)",
    )
    vantage: str | None = Field(
        default=None, description="the vantage point it was seen from; null for a local scan"
    )


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
    severity: Severity
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
    vantage: str | None = Field(
        default=None, description="the vantage point it was seen from; null for a local scan"
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
    ports: dict[Transport, str] = Field(description="ports per transport, as ranges: 1-3,7")
    port_counts: dict[Transport, int] = Field(
        default_factory=dict, description="how many ports per transport `ports` names"
    )
    options: ScanOptions
    profiles: list[str] = Field(default_factory=list)
    profile_hashes: dict[str, str] = Field(
        default_factory=dict, description="sha256 of each profile file, by profile id"
    )
    registry_source: str | None = Field(
        default=None, description="where the port registry came from (see `registry info`)"
    )
    scope: dict[str, list[str]] = Field(
        default_factory=dict,
        description="the scope allow-lists as written, by where they came from ('--scope', "
        "'GHOSTPORT_SCOPE'); every one of them must hold",
    )
    scanner_host: str | None = Field(default=None, description="host name of the scanning machine")
    source_addresses: list[str] = Field(
        default_factory=list,
        description="local addresses the scan reached its targets from, one per address family",
    )

    @model_validator(mode="before")
    @classmethod
    def _count_ports_of_older_documents(cls, data: Any) -> Any:
        """Documents written before `port_counts` existed get it from `ports`."""
        if isinstance(data, dict) and "port_counts" not in data and "ports" in data:
            ports = data["ports"]
            if isinstance(ports, dict):
                data = {**data, "port_counts": {k: _count_ranges(v) for k, v in ports.items()}}
        return data


def _count_ranges(spec: object) -> int:
    """How many ports '1-3,7' names; 0 for anything that is not such a list."""
    total = 0
    for part in str(spec).split(","):
        low, _, high = part.partition("-")
        digits = low + high
        if not (low and digits.isascii() and digits.isdigit()):
            return 0
        total += int(high or low) - int(low) + 1
    return total


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


def model_json(model: BaseModel) -> str:
    """A model's JSON text, as the scan's JSON file writes it (model_dump_json) and the
    history's JSON columns hold it; it reads back to the same model. The serializer
    model_dump_json calls, without its per-call argument handling (a row per probe pays it)."""
    try:
        return model.__pydantic_serializer__.to_json(model).decode()
    except PydanticSerializationError:
        # Text pydantic cannot encode (a lone surrogate): json.dumps escapes it.
        return json.dumps(model.model_dump(mode="json"))
