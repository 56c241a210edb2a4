"""What changed between two scans, compared port by port: pure functions over documents.

Ports are matched by (host, proto, port). A port not in a document's results was not
listed there (closed, or outside that scan). Each port appears in at most one list, the
first that applies:

    opened          open now, not open before (not listed, closed, filtered, ...)
    closed          open before, not open now (gone from the list, or another state)
    state_changed   both listed, other states, neither of them open
    service_changed same state, another service or verdict

Findings are matched by (host, proto, port, service id or title): new, and resolved.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, computed_field

from scanner.models import Finding, PortResult, PortState, ScanDocument, Transport, Verdict

_FROZEN = ConfigDict(extra="forbid", frozen=True)
_FIELD_LIMIT = 200

PortKey = tuple[str, str, int]


class PortChange(BaseModel):
    """One port whose state, service or verdict differs between the two scans."""

    model_config = _FROZEN

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
        findings_new=[new_findings[k] for k in sorted(new_findings.keys() - old_findings.keys())],
        findings_resolved=[
            old_findings[k] for k in sorted(old_findings.keys() - new_findings.keys())
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
    return {(r.host, r.proto.value, r.port): r for r in results}


def _finding_id(finding: Finding) -> tuple[str, str, int, str]:
    label = finding.service_id if finding.service_id is not None else f"title:{finding.title}"
    return (finding.host, finding.proto.value, finding.port, label)


def _by_finding(findings: Iterable[Finding]) -> dict[tuple[str, str, int, str], Finding]:
    return {_finding_id(f): f for f in findings}


def _port_order(key: PortKey) -> tuple[str, int, str]:
    host, proto, port = key
    return (host, port, proto)


def _service(result: PortResult | None) -> str | None:
    if result is None or result.service is None:
        return None
    return result.service.id or result.service.protocol


def _change(key: PortKey, was: PortResult | None, now: PortResult | None) -> PortChange:
    host, proto, port = key
    return PortChange(
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


def _port_line(change: PortChange) -> str:
    where = f"{_clean(change.host)} {change.port}/{change.proto.value}"
    was = _describe(change.old_state, change.old_service, change.old_verdict)
    now = _describe(change.new_state, change.new_service, change.new_verdict)
    return f"{where}: {was} -> {now}"


def _finding_line(finding: Finding) -> str:
    where = f"{_clean(finding.host)} {finding.port}/{finding.proto.value}"
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
