"""Plain-text renderings for the terminal: pure functions from models to strings.

Everything that came from outside (a banner, registry text, a hostname, a file name) passes
`one_line` first: control characters, escape sequences and bidi overrides are shown escaped,
and the text stays on one line, so a hostile source can neither paint the terminal nor break
a line-oriented output apart.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from scanner.models import Finding, PortResult, RegistryRow, ScanDocument
from scanner.ports import compress_ports
from scanner.profiles import Profile, ServiceStatus, merged
from scanner.registry import Registry, RegistryEntry, describe_source

if TYPE_CHECKING:
    from scanner.store.records import ScanRow, TimelineRow

_SAFE_WHITESPACE = {" "}


def one_line(text: object, limit: int | None = None) -> str:
    """The text made safe for a terminal line: C0/C1 controls, DEL, bidi and other format
    characters shown as escapes (\\x1b, \\u202e), line breaks as \\n; cut at `limit`."""
    out: list[str] = []
    for char in str(text):
        if char in _SAFE_WHITESPACE:
            out.append(char)
            continue
        category = unicodedata.category(char)
        if char == "\n":
            out.append("\\n")
        elif char == "\t":
            out.append("\\t")
        elif char == "\r":
            out.append("\\r")
        elif category in ("Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"):
            code = ord(char)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(char)
    line = "".join(out)
    if limit is not None and len(line) > limit:
        return line[: max(0, limit - 1)] + "~"
    return line


def plural(number: int, word: str) -> str:
    """'1 host', '2 hosts', '1,024 ports': a count with its noun, thousands separated."""
    return f"{number:,} {word}" + ("" if number == 1 else "s")


def grepable_line(result: PortResult, finding: Finding | None) -> str:
    """One result as one tab-separated line (`scan --format grepable`), fields in this order,
    '-' where empty: host, port, proto, state, reason, service (the protocol that answered),
    verdict, severity (of the port's finding), registry (the port's registered name),
    hostname, title (of the finding). Every field passes `one_line`, so a tab or a line break
    from outside shows escaped and never splits a field or a line."""
    service = result.service
    verdict = finding.verdict if finding is not None else result.verdict
    fields = (
        result.host,
        result.port,
        result.proto,
        result.state,
        result.reason,
        (service.protocol or service.id) if service is not None else None,
        verdict,
        finding.severity if finding is not None else None,
        result.registry.name if result.registry is not None else None,
        result.hostname,
        finding.title if finding is not None else None,
    )
    return "\t".join(one_line(v) if v not in (None, "") else "-" for v in fields)


def registry_rows(entries: Iterable[RegistryEntry]) -> list[RegistryRow]:
    """Registry entries as the rows `ghostport registry` prints and dumps."""
    return [
        RegistryRow(
            port=entry.ports or None,
            transport=entry.transport or None,
            name=entry.name,
            description=entry.description,
            assignee=entry.assignee or None,
            contact=entry.contact or None,
            registration_date=entry.registration_date or None,
            modification_date=entry.modification_date or None,
            reference=entry.reference or None,
            notes=entry.notes or None,
        )
        for entry in entries
    ]


def render_table(header: Sequence[str], rows: Sequence[Sequence[str]], width: int = 48) -> str:
    """Columns padded to their widest cell (each at most `width`, cut with '~')."""
    cells = [[one_line(c) for c in row] for row in [header, *rows]]
    widths = [min(width, max(len(r[i]) for r in cells)) for i in range(len(header))]
    lines = []
    for row in cells:
        cut = [c if len(c) <= widths[i] else c[: widths[i] - 1] + "~" for i, c in enumerate(row)]
        lines.append("  ".join(c.ljust(widths[i]) for i, c in enumerate(cut)).rstrip())
    return "\n".join(lines)


def render_registry_rows(rows: Sequence[RegistryRow]) -> str:
    """The registry lookup table."""
    header = ("PORT", "NAME", "DESCRIPTION", "ASSIGNEE", "CONTACT", "REGISTERED")
    return render_table(
        header,
        [
            (
                f"{r.port or '-'}/{r.transport or '-'}",
                r.name,
                " ".join(r.description.split()),
                r.assignee or "-",
                r.contact or "-",
                r.registration_date or "-",
            )
            for r in rows
        ],
    )


def registry_facts(registry: Registry) -> dict[str, object]:
    """What `registry info --json` says about the registry in use."""
    return {
        "source": registry.source.kind,
        "path": registry.source.path,
        "entries": len(registry),
        "newest_date": registry.newest_date(),
        "date": registry.source.date,
    }


def render_registry_info(registry: Registry, status: str) -> str:
    """Which registry is in use, how big and how recent."""
    newest = registry.newest_date() or "none recorded"
    return (
        f"registry {status}: {one_line(describe_source(registry))}\n"
        f"entries: {len(registry):,}\nnewest date: {newest}\n"
        f"snapshot date: {registry.source.date or 'unknown'}"
    )


def render_profile(profile: Profile) -> str:
    """One profile in full: services, ports, probes."""
    probes = {p.id: p for p in profile.probes}
    lines = [f"{profile.id}: {one_line(profile.title)}"]
    if profile.includes:
        lines.append(f"  includes: {', '.join(profile.includes)}")
    lines.append(f"  file: {one_line(profile.path)}\n  sha256: {profile.sha256}")
    for service in profile.services:
        ports = ", ".join(
            f"{name}/{compress_ports(found)}"
            for name, found in (("tcp", service.ports.tcp), ("udp", service.ports.udp))
            if found
        )
        lines.append(
            f"\n  {service.id}  [{service.status}, {service.severity}]  {one_line(service.name)}"
        )
        lines.append(
            f"    ports: {ports or 'any (recogniser)'}   protocol: {one_line(service.protocol)}"
        )
        for probe_id in service.probes:
            probe = probes[probe_id]
            how = probe.builder or ("hex" if probe.payload_hex else "text")
            lines.append(f"    probe {probe_id}: {probe.transport} {how}, wait {probe.wait:g} s")
    return "\n".join(lines)


def render_profile_list(profiles: Iterable[Profile]) -> str:
    """One line per profile: id, title, how many obsolete services."""
    lines = []
    for profile in profiles:
        _, services = merged([profile])
        obsolete = sum(1 for s in services if s.status is not ServiceStatus.CURRENT)
        lines.append(f"{profile.id:<20} {one_line(profile.title)} ({obsolete} services)")
    return "\n".join(lines)


def render_local(document: ScanDocument) -> str:
    """The local audit: every socket with its owner and flags, then the findings."""
    audit = document.local
    if audit is None:
        return ""
    lines = [f"{len(audit.sockets)} listening sockets on {one_line(audit.hostname)}:"]
    for sock in audit.sockets:
        process = sock.process
        who = (
            f"pid {process.pid} {one_line(process.name or '?')}" if process.pid else "owner unknown"
        )
        flags = [
            name
            for name, on in (
                ("all interfaces", sock.all_interfaces),
                ("loopback only", sock.loopback_only),
                ("deleted executable", process.exe_deleted),
                ("outside system paths", process.outside_system_paths),
                ("started recently", process.started_recently),
                ("holds several orphaned ports", sock.holds_several_orphans),
            )
            if on
        ]
        registered = f"  [{one_line(sock.registry.name)}]" if sock.registry else ""
        mark = "FINDING " if sock.finding else "        "
        lines.append(
            f"  {mark}{sock.port}/{sock.proto.value:<3} {sock.address:<15} {who}"
            f"{registered}{'  (' + ', '.join(flags) + ')' if flags else ''}"
        )
    if audit.note:
        lines.append(f"note: {one_line(audit.note)}")
    lines.extend(
        f"FINDING [{f.severity}] {f.verdict.value}: {one_line(f.title)}" for f in document.findings
    )
    return "\n".join(lines)


def render_findings_list(document: ScanDocument, heading: str) -> str:
    """Findings sorted by host and port, under a heading (the demo's closing list)."""
    lines = [heading]
    for finding in sorted(document.findings, key=lambda f: (f.host, f.port, f.proto)):
        lines.append(
            f"  [{finding.severity:>8}] {finding.verdict.value:<8} {one_line(finding.host)} "
            f"{finding.port}/{finding.proto}: {one_line(finding.title)}"
        )
    return "\n".join(lines)


def render_history(rows: Sequence[ScanRow]) -> str:
    """The recorded scans, oldest first."""
    if not rows:
        return "no scans recorded yet"
    return render_table(
        ("ID", "STARTED", "SCOPE", "PROFILES", "PROBES", "OPEN", "FINDINGS", "STATUS"),
        [
            (
                r.id[:8],
                r.started_at[:19].replace("T", " "),
                " ".join(r.targets),
                ",".join(r.profiles),
                f"{r.probes_done:,}/{r.probes_total:,}" if r.probes_total else f"{r.probes_done:,}",
                f"{r.open:,}",
                f"{r.findings:,}",
                "complete" if r.complete else "incomplete",
            )
            for r in rows
        ],
    )


def render_timeline(rows: Sequence[TimelineRow], where: str) -> str:
    """One host's or port's results across scans; a VANTAGE column where a distributed scan
    saw it from a vantage point."""
    if not rows:
        return f"no recorded scan listed {one_line(where)}"
    vantages = any(r.vantage is not None for r in rows)
    table = [
        (
            r.scan_id[:8],
            r.started_at[:19].replace("T", " "),
            *((r.vantage or "-",) if vantages else ()),
            r.host,
            f"{r.port}/{r.proto}",
            str(r.state),
            r.reason,
            r.service or "-",
            r.verdict or "-",
        )
        for r in rows
    ]
    header = ("SCAN", "STARTED", *(("VANTAGE",) if vantages else ()), "HOST", "PORT")
    return render_table((*header, "STATE", "REASON", "SERVICE", "VERDICT"), table)
