"""The HTML findings report: one self-contained file for an audit.

Jinja2 over templates/, autoescape on and StrictUndefined. Everything a scanned host sent
(banners, decoded fields, raw bytes) is untrusted: it goes through `visible`, which caps it
and turns control characters and bidirectional overrides into visible escapes, and then
through autoescaping. Nothing is fetched when the report opens: CSS and the small sorting and
filtering script are inline, and the report reads fully with JavaScript off.
"""

from __future__ import annotations

import re
import shlex
import string
from collections import Counter, defaultdict
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup
from pydantic import BaseModel

from scanner import __version__
from scanner.models import Finding, PortResult, PortState, ScanDocument, ScanOptions

TEXT_LIMIT = 512
FINAL_LIMIT = 20_000
HEXDUMP_LIMIT = 1024
PRINT_DUMP_LINES = 16
"""A printed hex dump shows its first 16 lines (256 bytes) and says how many more the screen
and the JSON have: a chargen's 1 KiB would fill a page on its own."""
_SEVERITIES = ("critical", "high", "medium", "low", "info")
_PRINTABLE = set(string.printable) - set("\t\n\r\x0b\x0c")
PAPER_SIZES = {"a4": "A4", "letter": "letter"}
"""--paper's choices and their CSS @page size; Chromium's --print-to-pdf follows @page."""
_CVE = re.compile(r"CVE-\d{4}-\d{4,}")
_CSS_PLAIN = set(string.ascii_letters + string.digits + " .:_-")
_BIDI = {chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C)}


def templates_dir() -> Path:
    """templates/ as installed inside the package, or at the top of a source checkout."""
    installed = Path(str(resources.files("scanner"))) / "templates"
    if (installed / "report.html.j2").is_file():
        return installed
    return Path(__file__).resolve().parent.parent.parent / "templates"


def visible(value: object, limit: int = TEXT_LIMIT, keep: str = "") -> str:
    """Untrusted text made inert and visible: control and bidi characters as \\uXXXX, capped.
    `keep` names control characters to let through (newlines in a hexdump)."""
    text = str(value)
    out = []
    for ch in text[:limit]:
        if ch in keep:
            out.append(ch)
        elif ch in _BIDI or (not ch.isprintable() and ch != " "):
            out.append(f"\\u{ord(ch):04x}" if ord(ch) > 0xFF else f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    if len(text) > limit:
        out.append(f" [... {len(text) - limit:,} more characters]")
    return "".join(out)


def hexdump(hex_text: str | None, limit: int = HEXDUMP_LIMIT) -> str:
    """Offset, hex bytes and a printable column, 16 bytes a line, capped."""
    if not hex_text:
        return ""
    data = bytes.fromhex(hex_text)
    lines = []
    for offset in range(0, min(len(data), limit), 16):
        chunk = data[offset : offset + 16]
        hex_part = " ".join(f"{b:02x}" for b in chunk)
        text = "".join(chr(b) if chr(b) in _PRINTABLE else "." for b in chunk)
        lines.append(f"{offset:08x}  {hex_part:<47}  |{text}|")
    if len(data) > limit:
        lines.append(f"... {len(data) - limit:,} more bytes not shown")
    return "\n".join(lines)


def css_string(value: object, limit: int = 120) -> Markup:
    """A quoted CSS string for the print stylesheet's running footer: every character but
    letters, digits and ' .:_-' as a CSS escape, so nothing in it can end the string or the
    <style> element (a tampered scan id is just text)."""
    text = visible(value, limit)
    return Markup('"{}"').format(
        Markup("".join(ch if ch in _CSS_PLAIN else f"\\{ord(ch):06x}" for ch in text))
    )


def reference_link(reference: str) -> str | None:
    """Where a profile's reference points to: its own http(s) URL, a CVE record for a CVE id,
    or None (then it is shown as text)."""
    if reference.startswith(("https://", "http://")) and not any(c.isspace() for c in reference):
        return reference
    if _CVE.fullmatch(reference):
        return f"https://www.cve.org/CVERecord?id={reference}"
    return None


def waited(result: PortResult, options: ScanOptions) -> str:
    """The RTT where an answer came back; else how long the scan at least waited for one
    (each retry waits twice as long; a probe of its own may wait longer)."""
    if result.rtt_ms is not None:
        return f"{result.rtt_ms:.3g} ms"
    total = options.timeout_s * (2**result.attempts - 1)
    attempts = f"{result.attempts} attempt{'s' if result.attempts != 1 else ''}"
    return f"no answer; waited at least {total:g} s ({attempts})"


def what_answers(result: PortResult) -> str:
    """What spoke on the port, from its answer: never claims an answer where none came."""
    service = result.service
    named = (service.protocol or service.id) if service else None
    if not result.response_hex:
        if result.state is PortState.OPEN and result.proto.value == "tcp":
            said = "accepts connections, sends nothing"
            return f"{said} (as {named} does)" if named else said
        return "no answer"
    return named or f"an unrecognised service ({len(result.response_hex) // 2:,} bytes)"


def _finalize(value: object) -> object:
    """Every string the template prints: no control or bidi character ever reaches the page
    active, whatever field it came from (a tampered saved scan can carry them anywhere).
    Markup is built here from escaped parts (css_string) and passes as it is."""
    if isinstance(value, str) and not isinstance(value, Markup):
        return visible(value, FINAL_LIMIT, keep="\n")
    return value


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        finalize=_finalize,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["visible"] = visible
    env.filters["hexdump"] = hexdump
    env.filters["css_string"] = css_string
    env.filters["reference_link"] = reference_link
    env.filters["what_answers"] = what_answers
    env.filters["waited"] = waited
    return env


def _chart(counts: dict[str, int]) -> list[dict[str, Any]]:
    """Bars of the severity chart (an inline SVG in the template)."""
    top = max(counts.values(), default=0) or 1
    return [
        {"severity": s, "count": counts.get(s, 0), "width": round(300 * counts.get(s, 0) / top)}
        for s in _SEVERITIES
    ]


def report_context(
    document: ScanDocument,
    title: str | None = None,
    org: str | None = None,
    changes: BaseModel | None = None,
    paper: str = "a4",
) -> dict[str, Any]:
    """Everything the template shows, computed here so the template stays declarative.

    A host is listed once per vantage point that saw it. When the results hold more than one
    vantage (a distributed scan over several segments), the hosts are grouped under a heading
    per vantage and the findings and the appendix name theirs; otherwise the report has no
    vantage in it at all.
    """
    findings = sorted(
        document.findings,
        key=lambda f: (
            _SEVERITIES.index(f.severity),
            _vantage_order(f.vantage),
            f.host,
            f.port,
            f.proto,
        ),
    )
    by_place: dict[tuple[str | None, str], list[PortResult]] = defaultdict(list)
    for result in document.results:
        by_place[result.vantage, result.host].append(result)
    findings_by_place: dict[tuple[str | None, str], list[Finding]] = defaultdict(list)
    finding_at: dict[tuple[str | None, str, int, str], tuple[int, Finding]] = {}
    for number, finding in enumerate(findings, 1):
        findings_by_place[finding.vantage, finding.host].append(finding)
        finding_at.setdefault(
            (finding.vantage, finding.host, finding.port, finding.proto.value), (number, finding)
        )
    severity_counts = Counter(f.severity.value for f in findings)
    verdict_counts = Counter(f.verdict.value for f in findings)
    listed_hosts = {host for _, host in by_place}
    clean_targets = [
        t
        for t in document.scan.targets
        if "/" not in t
        and "-" not in t
        and t not in listed_hosts
        and t not in {u.target for u in document.unresolved}
    ]
    scan = document.scan
    started, finished = scan.started_at, scan.finished_at
    groups: dict[str | None, list[dict[str, Any]]] = defaultdict(list)
    for (vantage, host), results in sorted(by_place.items(), key=lambda i: i[0][1]):
        groups[vantage].append(
            {
                "host": host,
                "vantage": vantage,
                "results": results,
                "open": sorted(
                    (r for r in results if r.state is PortState.OPEN),
                    key=lambda r: (r.port, r.proto.value),
                ),
                "findings": findings_by_place.get((vantage, host), []),
            }
        )
    ordered = sorted(groups, key=_vantage_order)
    vantage_groups = [{"vantage": vantage, "hosts": groups[vantage]} for vantage in ordered]
    hosts = [entry for vantage in ordered for entry in groups[vantage]]
    return {
        "doc": document,
        "scan": scan,
        "title": title or "Legacy service exposure report",
        "org": org,
        "tool_version": __version__,
        "findings": findings,
        "severity_counts": {s: severity_counts.get(s, 0) for s in _SEVERITIES},
        "verdict_counts": {v: verdict_counts.get(v, 0) for v in ("legacy", "squatter")},
        "chart": _chart(dict(severity_counts)),
        "hosts": hosts,
        "vantage_groups": vantage_groups,
        "several_vantages": len(vantage_groups) > 1,
        "finding_at": finding_at,
        "command_line": shlex.join(scan.command_line),
        "page_size": PAPER_SIZES.get(paper, "A4"),
        "print_dump_lines": PRINT_DUMP_LINES,
        "hosts_with_findings": len(findings_by_place),
        "clean_targets": clean_targets,
        "clean_other": max(0, document.summary.hosts - len(hosts) - len(clean_targets)),
        "duration": document.summary.duration_s,
        "started": started,
        "finished": finished or "not finished",
        "complete": document.complete,
        "changes": changes,
    }


def _vantage_order(vantage: str | None) -> tuple[bool, str]:
    """No vantage (a local scan) first, then vantages by name."""
    return (vantage is not None, vantage or "")


def render_html(
    document: ScanDocument,
    title: str | None = None,
    org: str | None = None,
    changes: BaseModel | None = None,
    paper: str = "a4",
) -> str:
    """The whole report as one HTML document; `changes` (a ScanDiff) adds what changed since
    the previous scan of the same scope; `paper` ('a4', 'letter') sizes its printed pages."""
    template = _environment().get_template("report.html.j2")
    return template.render(**report_context(document, title, org, changes, paper))


def render_diff_html(changes: BaseModel) -> str:
    """The differences between two scans (a ScanDiff) as one self-contained page."""
    template = _environment().get_template("diff.html.j2")
    return template.render(changes=changes, tool_version=__version__)
