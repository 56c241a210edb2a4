"""Results in nmap's "normal" (-oN) and "grepable" (-oG) text formats: pure renderers.

Both follow the shape nmap writes, so people and scripts used to nmap's files can read ours:
a `#` header naming the producer and the command line, one block (normal) or line (grepable)
per host, and nmap's `# Nmap done at ... -- N IP addresses (M hosts up) scanned in X seconds`
trailer. ghostport never pings first (nmap's -Pn), so every host with a listed port is "up".
What nmap has no column for (the verdict and severity of a finding) goes where nmap puts script
output: `|_ghostport: ...` lines under the port (normal) or the version field (grepable).
Everything that came from the network passes `one_line` first.
"""

from __future__ import annotations

import shlex
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from scanner import __version__
from scanner.models import (
    TIMESTAMP_FORMAT,
    Finding,
    PortResult,
    PortState,
    ScanDocument,
    Transport,
)
from scanner.report.text import one_line

SHOWN_WITH_OPEN = (PortState.OPEN, PortState.OPEN_FILTERED)
"""The states nmap's --open keeps: open, or possibly open."""


def only_open(document: ScanDocument) -> ScanDocument:
    """The document with only open and open|filtered ports listed (nmap's --open)."""
    kept = [r for r in document.results if r.state in SHOWN_WITH_OPEN]
    return document.model_copy(update={"results": kept})


def _moment(stamp: str | None) -> str:
    when = datetime.strptime(stamp, TIMESTAMP_FORMAT).replace(tzinfo=UTC) if stamp else None
    seconds = when.timestamp() if when else time.time()
    return time.strftime("%a %b %d %H:%M:%S %Y UTC", time.gmtime(seconds))


def _header(document: ScanDocument) -> str:
    scan = document.scan
    return (
        f"# Nmap-style output by ghostport {__version__}, scan initiated "
        f"{_moment(scan.started_at)} as: {one_line(shlex.join(scan.command_line))}"
    )


def _trailer(document: ScanDocument, hosts_up: int) -> str:
    total = document.summary.hosts
    addresses = "1 IP address" if total == 1 else f"{total} IP addresses"
    up = "1 host up" if hosts_up == 1 else f"{hosts_up} hosts up"
    return (
        f"# Nmap done at {_moment(document.scan.finished_at)} -- {addresses} ({up}) "
        f"scanned in {document.summary.duration_s:.2f} seconds"
    )


def _by_host(results: Iterable[PortResult]) -> dict[str, list[PortResult]]:
    hosts: dict[str, list[PortResult]] = defaultdict(list)
    for result in results:
        hosts[result.host].append(result)
    for listed in hosts.values():
        listed.sort(key=lambda r: (r.proto.value, r.port))
    return dict(sorted(hosts.items()))


def _service_name(result: PortResult) -> str:
    """What answers when it was recognised, else what the port is registered to (as nmap
    names a port from its services table), else `unknown`."""
    if result.service and result.service.protocol:
        return one_line(result.service.protocol)
    if result.registry:
        return one_line(result.registry.name)
    return "unknown"


def _version(result: PortResult) -> str:
    """Product and version from the answer, as nmap's -sV column shows them."""
    if not result.service:
        return ""
    extracted = result.service.extracted
    product = extracted.get("sysDescr") or extracted.get("server") or extracted.get("banner")
    return one_line(" ".join(p for p in (product, extracted.get("version")) if p), limit=80)


def _hidden(
    document: ScanDocument, listed: Sequence[PortResult], shown: Sequence[PortResult]
) -> dict[tuple[str, Transport], int]:
    """How many of a host's probed ports are not shown, by (state, transport): the ports the
    document does not list are closed (it lists them only with --all-states); the others were
    left out by --open."""
    hidden: dict[tuple[str, Transport], int] = defaultdict(int)
    for proto in Transport:
        unlisted = document.scan.port_counts.get(proto, 0) - sum(
            1 for r in listed if r.proto is proto
        )
        if unlisted > 0:
            hidden[PortState.CLOSED.value, proto] += unlisted
    for result in listed:
        if result not in shown:
            hidden[result.state.value, result.proto] += 1
    return dict(hidden)


def _not_shown(hidden: dict[tuple[str, Transport], int]) -> str | None:
    """nmap's `Not shown: 16 closed tcp ports, 2 filtered udp ports` line."""
    parts = [
        f"{n} {state} {proto.value} port{'' if n == 1 else 's'}"
        for (state, proto), n in sorted(hidden.items())
    ]
    return f"Not shown: {', '.join(parts)}" if parts else None


def _finding_lines(findings: Sequence[Finding]) -> list[str]:
    lines = []
    for index, finding in enumerate(findings):
        lead = "|_" if index == len(findings) - 1 else "| "
        lines.append(
            f"{lead}ghostport: {finding.severity.value} {finding.verdict.value}: "
            f"{one_line(finding.title, limit=160)}"
        )
    return lines


def _findings_at(document: ScanDocument) -> dict[tuple[str, int, Transport], list[Finding]]:
    found: dict[tuple[str, int, Transport], list[Finding]] = defaultdict(list)
    for finding in document.findings:
        found[finding.host, finding.port, finding.proto].append(finding)
    return found


def _table(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        " ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def _shown(listed: Sequence[PortResult], open_only: bool) -> list[PortResult]:
    return [r for r in listed if r.state in SHOWN_WITH_OPEN] if open_only else list(listed)


def render_nmap_normal(document: ScanDocument, open_only: bool = False) -> str:
    """The scan as nmap's normal output (-oN): a report block per host, a port table each.
    With `open_only` (nmap's --open), only open and open|filtered ports, and only the hosts
    that have one."""
    lines = [_header(document)]
    if not document.complete:
        lines.append("# ghostport: the scan was interrupted; these results are partial")
    for item in document.unresolved:
        lines.append(f"Failed to resolve {one_line(item.target)!r}: {one_line(item.error)}")
    findings = _findings_at(document)
    hosts = _by_host(document.results)
    for host, listed in hosts.items():
        shown = _shown(listed, open_only)
        if not shown:
            continue
        name = listed[0].hostname
        lines.append(
            f"Nmap scan report for {one_line(name)} ({host})"
            if name
            else f"Nmap scan report for {host}"
        )
        lines.append("Host is up (user-set: ghostport never pings first).")
        not_shown = _not_shown(_hidden(document, listed, shown))
        if not_shown:
            lines.append(not_shown)
        with_version = any(_version(r) for r in shown)
        header = ["PORT", "STATE", "SERVICE", "REASON"] + (["VERSION"] if with_version else [])
        rows = [header]
        for result in shown:
            row = [f"{result.port}/{result.proto.value}", result.state.value]
            row += [_service_name(result), result.reason.value]
            rows.append(row + ([_version(result)] if with_version else []))
        table = _table(rows)
        lines.append(table[0])
        for result, line in zip(shown, table[1:], strict=True):
            lines.append(line)
            lines.extend(_finding_lines(findings.get((host, result.port, result.proto), [])))
        lines.append("")
    lines.append(_trailer(document, len(hosts)))
    return "\n".join(lines) + "\n"


def _field(text: str) -> str:
    """A value inside grepable's `port/state/proto/owner/service/rpc/version/` fields, where
    `/` and `,` separate (nmap writes `|` for a `/` inside a field)."""
    return one_line(text).replace("/", "|").replace(",", ";")


def render_nmap_grepable(document: ScanDocument, open_only: bool = False) -> str:
    """The scan as nmap's grepable output (-oG): a Status and a Ports line per host. The
    version field carries the product and version, then the finding's verdict (`legacy`)."""
    lines = [_header(document)]
    findings = _findings_at(document)
    hosts = _by_host(document.results)
    for host, listed in hosts.items():
        shown = _shown(listed, open_only)
        if not shown:
            continue
        name = _field(listed[0].hostname or "")
        lines.append(f"Host: {host} ({name})\tStatus: Up")
        ports = []
        for result in shown:
            at = findings.get((host, result.port, result.proto), [])
            verdicts = sorted({f.verdict.value for f in at})
            version = "; ".join(p for p in (_version(result), *verdicts) if p)
            ports.append(
                f"{result.port}/{result.state.value}/{result.proto.value}//"
                f"{_field(_service_name(result))}//{_field(version)}/"
            )
        hidden = _hidden(document, listed, shown)
        ignored = ""
        if hidden:
            (state, _), _n = max(hidden.items(), key=lambda item: item[1])
            count = sum(n for (s, _), n in hidden.items() if s == state)
            ignored = f"\tIgnored State: {state} ({count})"
        lines.append(f"Host: {host} ({name})\tPorts: {', '.join(ports)}{ignored}")
    lines.append(_trailer(document, len(hosts)))
    return "\n".join(lines) + "\n"
