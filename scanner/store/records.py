"""What the history keeps, as values: the listing models, the rows built from result models,
their sort orders and times, and the little the engine and the Store share. No database here.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from scanner.models import (
    Finding,
    PortResult,
    PortState,
    ScanInfo,
    ScanSummary,
    Transport,
    UnresolvedTargetResult,
)
from scanner.models import model_json as model_json  # noqa: PLC0414 - its old home
from scanner.store.common import NO_VANTAGE as NO_VANTAGE  # noqa: PLC0414
from scanner.store.common import (
    SCHEMA_VERSION,
    parse_time,
    scope_key,
    stored_seed,
    stored_vantage,
)
from scanner.store.common import TIME_FORMAT as TIME_FORMAT  # noqa: PLC0414

WRITE_OPTION = "ghostport_write"
"""Execution option on a connection whose transactions write (SQLite then BEGINs IMMEDIATE)."""

# NO_VANTAGE and TIME_FORMAT (above) are defined in common.py, where the light writer finds
# them without pydantic, and re-exported from here, their old home.


class ScanRow(BaseModel):
    """One scan in the history listing."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    id: str
    started_at: str
    finished_at: str | None
    complete: bool
    targets: list[str]
    excludes: list[str]
    ports: dict[str, str]
    profiles: list[str]
    results: int = Field(description="results recorded (each port once per vantage point)")
    open: int = Field(description="results in state open")
    findings: int
    probes_done: int
    probes_total: int | None = Field(description="from the latest summary, when one is known")


class TimelineRow(BaseModel):
    """What one scan recorded for one (host, port, transport)."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    scan_id: str
    started_at: str
    complete: bool
    vantage: str | None = Field(description="the vantage point it was seen from; null: local")
    host: str
    port: int
    proto: Transport
    state: PortState
    reason: str
    service: str | None
    verdict: str | None


class ScanProgress(BaseModel):
    """How far a scan got: its last committed checkpoint and the probes done by then."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    checkpoint: dict[str, Any] | None
    probes_done: int


def result_sort_key(result: PortResult) -> tuple[str, tuple[int, int, str], int, str]:
    """The order of results in a stored document: vantage point (a local scan's none first),
    then address, port and transport; each vantage's results stay together."""
    return (stored_vantage(result.vantage), _host_key(result.host), result.port, result.proto.value)


def finding_sort_key(finding: Finding) -> tuple[str, tuple[int, int, str], int, str, str]:
    """The order of findings in a stored document (as `result_sort_key`, then the service)."""
    return (
        stored_vantage(finding.vantage),
        _host_key(finding.host),
        finding.port,
        finding.proto.value,
        finding_key(finding),
    )


def result_key(result: PortResult) -> tuple[str, str, str, int]:
    """What a scan records once: (vantage, host, transport, port) (the `results` key)."""
    return (stored_vantage(result.vantage), result.host, result.proto.value, result.port)


def finding_id(finding: Finding) -> tuple[str, str, str, int, str]:
    """What a scan records once: (vantage, host, transport, port, service or title)."""
    return (
        stored_vantage(finding.vantage),
        finding.host,
        finding.proto.value,
        finding.port,
        finding_key(finding),
    )


def read_vantage(column: str) -> str | None:
    """The vantage a `vantage` column value stands for: None for NO_VANTAGE."""
    return None if column == NO_VANTAGE else column


def finding_key(finding: Finding) -> str:
    """What tells two findings on one port apart: the service, else the title."""
    return finding.service_id if finding.service_id is not None else f"title:{finding.title}"


def normal_host(host: str) -> str:
    """A host as results record it: an address in compressed form, else the name as given."""
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).compressed
    except ValueError:
        return host.strip()


def _host_key(host: str) -> tuple[int, int, str]:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return (99, 0, host)
    return (address.version, int(address), "")


def _scope(info: ScanInfo) -> dict[str, Any]:
    return {
        "targets": sorted(set(info.targets)),
        "excludes": sorted(set(info.excludes)),
        "ports": {k.value: v for k, v in sorted(info.ports.items())},
    }


def scan_row(
    info: ScanInfo, unresolved: Sequence[UnresolvedTargetResult], complete: bool
) -> dict[str, Any]:
    """The `scans` row of a scan (without its summary and local audit)."""
    scope = _scope(info)
    return {
        "id": info.id,
        "started_at": parse_time(info.id, info.started_at),
        "finished_at": parse_time(info.id, info.finished_at) if info.finished_at else None,
        "complete": complete,
        "scope_key": scope_key(scope),
        "scope": scope,
        "targets": list(info.targets),
        "profiles": list(info.profiles),
        "seed": stored_seed(info.options.seed),
        "options": info.options.model_dump(mode="json"),
        "info": info.model_dump(mode="json"),
        "unresolved": [u.model_dump(mode="json") for u in unresolved],
        "schema_version": SCHEMA_VERSION,
    }


def result_row(scan_id: str, result: PortResult) -> dict[str, Any]:
    """The `results` row of one port result: plain str, int and None (enums as their str()
    values), the model as JSON text."""
    service = result.service
    verdict = result.verdict
    return {
        "scan_id": scan_id,
        "vantage": stored_vantage(result.vantage),
        "host": result.host,
        "proto": str(result.proto),
        "port": result.port,
        "state": str(result.state),
        "reason": str(result.reason),
        "service": (service.id or service.protocol) if service is not None else None,
        "verdict": str(verdict) if verdict is not None else None,
        "data": model_json(result),
    }


def finding_row(scan_id: str, finding: Finding) -> dict[str, Any]:
    """The `findings` row of one finding (plain values, as `result_row`)."""
    return {
        "scan_id": scan_id,
        "vantage": stored_vantage(finding.vantage),
        "host": finding.host,
        "proto": str(finding.proto),
        "port": finding.port,
        "key": finding_key(finding),
        "service_id": finding.service_id,
        "severity": str(finding.severity),
        "verdict": str(finding.verdict),
        "data": model_json(finding),
    }


def counted_summary(
    results: list[PortResult], findings: list[Finding], probes_done: int
) -> ScanSummary:
    """A summary for a scan that never stored one: counted from what was recorded."""
    by_proto = {t: dict.fromkeys(PortState, 0) for t in Transport}
    for result in results:
        by_proto[result.proto][result.state] += 1
    done = max(probes_done, len(results))
    return ScanSummary(
        hosts=len({r.host for r in results}),
        probes_total=done,
        probes_done=done,
        states={s: sum(by_proto[t][s] for t in Transport) for s in PortState},
        states_by_proto=by_proto,
        findings_by_severity=dict(Counter(f.severity for f in findings)),
        findings_by_verdict=dict(Counter(f.verdict.value for f in findings)),
        duration_s=0.0,
    )
