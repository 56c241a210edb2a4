"""What changed between two scans, compared port by port: pure functions over documents.

Ports are matched by (vantage, host, proto, port): a distributed scan sees one address from
several vantage points, and each is compared with the same vantage's view before. A port not
in a document's results was not listed there (closed, or outside that scan). Each port
appears in at most one list, the first that applies:

    opened          open now, not open before (not listed, closed, filtered, ...)
    closed          open before, not open now (gone from the list, or another state)
    state_changed   both listed, other states, neither of them open
    service_changed same state, another service or verdict

Findings are matched by (vantage, host, proto, port, service id or title): new, and resolved.
Text output names the vantage of a change (`[site-a] 10.0.0.1 23/tcp: ...`) where it has one.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, computed_field

from scanner.models import Finding, PortResult, PortState, ScanDocument, Transport, Verdict

_FROZEN = ConfigDict(extra="forbid", frozen=True)
_FIELD_LIMIT = 200

PortKey = tuple[str | None, str, str, int]
FindingKey = tuple[str | None, str, str, int, str]


class PortChange(BaseModel):
    """One port whose state, service or verdict differs between the two scans."""

    model_config = _FROZEN

    vantage: str | None = None
    host: str
    proto: Transport
    port: int
    old_state: PortState | None
    new_state: PortState | None
    old_service: str | None = None
    new_service: str | None = None
    old_verdict: Verdict | None = None
    new_verdict: Verdict | None = None


class ScanDiff(BaseModel):
    """The differences between an old and a new scan."""

    model_config = _FROZEN

    old_scan: str
    new_scan: str
    old_started_at: str
    new_started_at: str
    opened: list[PortChange]
    closed: list[PortChange]
    state_changed: list[PortChange]
    service_changed: list[PortChange]
    findings_new: list[Finding]
    findings_resolved: list[Finding]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def equal(self) -> bool:
        """True when nothing differs."""
        return not (
            self.opened
            or self.closed
            or self.state_changed
            or self.service_changed
            or self.findings_new
            or self.findings_resolved
        )

    @property
    def vantages(self) -> list[str]:
        """The vantage points the changes name, sorted (none when both scans were local)."""
        named = {c.vantage for c in self._port_changes()} | {
            f.vantage for f in (*self.findings_new, *self.findings_resolved)
        }
        return sorted(v for v in named if v is not None)

    def _port_changes(self) -> list[PortChange]:
        return [*self.opened, *self.closed, *self.state_changed, *self.service_changed]


def diff_documents(old: ScanDocument, new: ScanDocument) -> ScanDiff:
    """Compare two scans' documents (either may come from the database or from a file)."""
    before = _by_port(old.results)
    after = _by_port(new.results)
    opened: list[PortChange] = []
    closed: list[PortChange] = []
    state_changed: list[PortChange] = []
    service_changed: list[PortChange] = []
    for key in sorted(before.keys() | after.keys(), key=_port_order):
        was, now = before.get(key), after.get(key)
        change = _change(key, was, now)
        old_state = was.state if was else None
        new_state = now.state if now else None
        if new_state is PortState.OPEN and old_state is not PortState.OPEN:
            opened.append(change)
        elif old_state is PortState.OPEN and new_state is not PortState.OPEN:
            closed.append(change)
        elif old_state is not new_state:
            state_changed.append(change)
        elif (change.old_service, change.old_verdict) != (change.new_service, change.new_verdict):
            service_changed.append(change)
    old_findings = _by_finding(old.findings)
    new_findings = _by_finding(new.findings)
    return ScanDiff(
        old_scan=old.scan.id,
        new_scan=new.scan.id,
        old_started_at=old.scan.started_at,
        new_started_at=new.scan.started_at,
        opened=opened,
        closed=closed,
        state_changed=state_changed,
        service_changed=service_changed,
        findings_new=[
            new_findings[k]
            for k in sorted(new_findings.keys() - old_findings.keys(), key=_finding_order)
        ],
        findings_resolved=[
            old_findings[k]
            for k in sorted(old_findings.keys() - new_findings.keys(), key=_finding_order)
        ],
    )


def render_diff_text(diff: ScanDiff) -> str:
    """The diff as plain text lines; every value from the network or a file is one line
    with its control characters escaped."""
    lines = [
        f"diff {_clean(diff.old_scan)} ({_clean(diff.old_started_at)})"
        f" -> {_clean(diff.new_scan)} ({_clean(diff.new_started_at)})"
    ]
    if diff.equal:
        lines.append("no differences")
        return "\n".join(lines) + "\n"
    sections: list[tuple[str, list[str]]] = [
        ("opened", [_port_line(c) for c in diff.opened]),
        ("closed", [_port_line(c) for c in diff.closed]),
        ("state changed", [_port_line(c) for c in diff.state_changed]),
        ("service changed", [_port_line(c) for c in diff.service_changed]),
        ("new findings", [_finding_line(f) for f in diff.findings_new]),
        ("resolved findings", [_finding_line(f) for f in diff.findings_resolved]),
    ]
    for title, entries in sections:
        if entries:
            lines.append(f"{title} ({len(entries)}):")
            lines.extend(f"  {entry}" for entry in entries)
    return "\n".join(lines) + "\n"


def _by_port(results: Iterable[PortResult]) -> dict[PortKey, PortResult]:
    return {(r.vantage, r.host, r.proto.value, r.port): r for r in results}


def _finding_id(finding: Finding) -> FindingKey:
    label = finding.service_id if finding.service_id is not None else f"title:{finding.title}"
    return (finding.vantage, finding.host, finding.proto.value, finding.port, label)


def _by_finding(findings: Iterable[Finding]) -> dict[FindingKey, Finding]:
    return {_finding_id(f): f for f in findings}


def _vantage_order(vantage: str | None) -> tuple[bool, str]:
    """No vantage (a local scan) first, then vantages by name."""
    return (vantage is not None, vantage or "")


def _port_order(key: PortKey) -> tuple[tuple[bool, str], str, int, str]:
    vantage, host, proto, port = key
    return (_vantage_order(vantage), host, port, proto)


def _finding_order(key: FindingKey) -> tuple[tuple[bool, str], str, str, int, str]:
    vantage, host, proto, port, label = key
    return (_vantage_order(vantage), host, proto, port, label)


def _service(result: PortResult | None) -> str | None:
    if result is None or result.service is None:
        return None
    return result.service.id or result.service.protocol


def _change(key: PortKey, was: PortResult | None, now: PortResult | None) -> PortChange:
    vantage, host, proto, port = key
    return PortChange(
        vantage=vantage,
        host=host,
        proto=Transport(proto),
        port=port,
        old_state=was.state if was else None,
        new_state=now.state if now else None,
        old_service=_service(was),
        new_service=_service(now),
        old_verdict=was.verdict if was else None,
        new_verdict=now.verdict if now else None,
    )


def _describe(state: PortState | None, service: str | None, verdict: Verdict | None) -> str:
    text = state.value if state is not None else "not listed"
    if service is not None:
        text += f" {_clean(service)}"
    if verdict is not None:
        text += f" ({verdict.value})"
    return text


def _where(vantage: str | None, host: str, port: int, proto: Transport) -> str:
    """'[site-a] 10.0.0.1 23/tcp', without the brackets where there is no vantage."""
    seen_from = f"[{_clean(vantage)}] " if vantage is not None else ""
    return f"{seen_from}{_clean(host)} {port}/{proto.value}"


def _port_line(change: PortChange) -> str:
    where = _where(change.vantage, change.host, change.port, change.proto)
    was = _describe(change.old_state, change.old_service, change.old_verdict)
    now = _describe(change.new_state, change.new_service, change.new_verdict)
    return f"{where}: {was} -> {now}"


def _finding_line(finding: Finding) -> str:
    where = _where(finding.vantage, finding.host, finding.port, finding.proto)
    return f"{where}: [{_clean(finding.severity)}] {finding.verdict.value}: {_clean(finding.title)}"


def _clean(text: str) -> str:
    """One line: control and other unprintable characters become escapes, length capped."""
    out = []
    for char in text:
        if char.isprintable():
            out.append(char)
        elif ord(char) < 0x100:
            out.append(f"\\x{ord(char):02x}")
        elif ord(char) < 0x10000:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    cleaned = "".join(out)
    return cleaned if len(cleaned) <= _FIELD_LIMIT else cleaned[: _FIELD_LIMIT - 3] + "..."
