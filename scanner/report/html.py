"""The HTML findings report: one self-contained file for an audit.

Jinja2 over templates/, autoescape on and StrictUndefined. Everything a scanned host sent
(banners, decoded fields, raw bytes) is untrusted: it goes through `visible`, which caps it
and turns control characters and bidirectional overrides into visible escapes, and then
through autoescaping. Nothing is fetched when the report opens: CSS and the small sorting and
filtering script are inline, and the report reads fully with JavaScript off.
"""

from __future__ import annotations

import string
from collections import Counter, defaultdict
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
from pydantic import BaseModel

from scanner import __version__
from scanner.models import Finding, PortResult, ScanDocument

TEXT_LIMIT = 512
FINAL_LIMIT = 20_000
HEXDUMP_LIMIT = 1024
_SEVERITIES = ("critical", "high", "medium", "low", "info")
_PRINTABLE = set(string.printable) - set("\t\n\r\x0b\x0c")
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


def _finalize(value: object) -> object:
    """Every string the template prints: no control or bidi character ever reaches the page
    active, whatever field it came from (a tampered saved scan can carry them anywhere)."""
    return visible(value, FINAL_LIMIT, keep="\n") if isinstance(value, str) else value


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
) -> dict[str, Any]:
    """Everything the template shows, computed here so the template stays declarative."""
    findings = sorted(
        document.findings,
        key=lambda f: (_SEVERITIES.index(f.severity), f.host, f.port, f.proto),
    )
    by_host: dict[str, list[PortResult]] = defaultdict(list)
    for result in document.results:
        by_host[result.host].append(result)
    findings_by_host: dict[str, list[Finding]] = defaultdict(list)
    for finding in findings:
        findings_by_host[finding.host].append(finding)
    severity_counts = Counter(f.severity.value for f in findings)
    verdict_counts = Counter(f.verdict.value for f in findings)
    listed_hosts = set(by_host)
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
        "hosts": sorted(by_host.items()),
        "findings_by_host": findings_by_host,
        "hosts_with_findings": len(findings_by_host),
        "clean_targets": clean_targets,
        "clean_other": max(0, document.summary.hosts - len(listed_hosts) - len(clean_targets)),
        "duration": document.summary.duration_s,
        "started": started,
        "finished": finished or "not finished",
        "complete": document.complete,
        "changes": changes,
    }


def render_html(
    document: ScanDocument,
    title: str | None = None,
    org: str | None = None,
    changes: BaseModel | None = None,
) -> str:
    """The whole report as one HTML document; `changes` (a ScanDiff) adds what changed since
    the previous scan of the same scope."""
    template = _environment().get_template("report.html.j2")
    return template.render(**report_context(document, title, org, changes))


def render_diff_html(changes: BaseModel) -> str:
    """The differences between two scans (a ScanDiff) as one self-contained page."""
    template = _environment().get_template("diff.html.j2")
    return template.render(changes=changes, tool_version=__version__)
