"""The scan's terminal output as rich renderables: live port lines, the per-host tables, the
progress line and the closing summary. Pure: `cli/console.py` prints them.

Every text from outside (hostnames, service names, registry names) passes `one_line` and goes
into `Text` objects, never into markup strings, so neither an escape sequence nor a `[red]`
in a banner can style or move anything. Colour comes from the styles here; rich drops them
when the output is not a terminal (or NO_COLOR is set).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from scanner.activity import ScanActivity
from scanner.models import Finding, PortResult, PortState, Severity, Verdict
from scanner.report.text import one_line, plural

SEVERITY_STYLE = {
    Severity.CRITICAL: "bold white on red",
    Severity.HIGH: "bold red",
    Severity.MEDIUM: "yellow",
    Severity.LOW: "cyan",
    Severity.INFO: "dim",
}
VERDICT_STYLE = {
    Verdict.LEGACY: "bold yellow",
    Verdict.SQUATTER: "bold magenta",
    Verdict.UNIDENTIFIED: "dim",
}
STATE_STYLE = {
    PortState.OPEN: "green",
    PortState.OPEN_FILTERED: "yellow",
    PortState.FILTERED: "dim",
    PortState.CLOSED: "dim",
}
_BAR_WIDTH = 24
_HOST_WIDTH = 15


def answered(result: PortResult) -> str:
    """What answered on the port: the protocol recognised, else what is known of the answer."""
    service = result.service
    if service is not None and (service.protocol or service.id):
        return one_line(service.protocol or service.id)
    if result.state is not PortState.OPEN:
        return "-"
    return "unrecognised answer" if result.response_hex else "no answer"


def registered(result: PortResult) -> str:
    """The registry's name for the port, or '-'."""
    return one_line(result.registry.name) if result.registry is not None else "-"


def _host_label(host: str, hostname: str | None) -> str:
    return f"{host} ({one_line(hostname)})" if hostname else host


_LIVE_COLUMNS = (("HOST", 15), ("PORT", -9), ("STATE", 6), ("ANSWERS", 12), ("VERDICT", 12))


def result_header() -> Text:
    """The header over the live lines (the widths of `result_line`)."""
    cells = [name.rjust(-w) if w < 0 else name.ljust(w) for name, w in _LIVE_COLUMNS]
    return Text(" ".join([*cells, "SEVERITY", "REGISTERED"]), "bold")


def result_line(result: PortResult, finding: Finding | None) -> Text:
    """One live line per open port: where, its state, what answers, the verdict, the severity
    of its finding, and what the registry says the port is for (under `result_header`)."""
    verdict = finding.verdict if finding is not None else result.verdict
    line = Text()
    if result.vantage:
        line.append(f"[{one_line(result.vantage)}] ", "dim")
    line.append(_host_label(result.host, result.hostname).ljust(_HOST_WIDTH) + " ")
    line.append(f"{result.port}/{result.proto}".rjust(9) + " ")
    line.append(str(result.state).ljust(6), STATE_STYLE.get(result.state, ""))
    line.append(" ")
    line.append(answered(result).ljust(12), "bold")
    line.append(" ")
    line.append(str(verdict or "-").ljust(12), VERDICT_STYLE.get(verdict, "") if verdict else "")
    line.append(" ")
    if finding is not None:
        line.append(str(finding.severity).ljust(8), SEVERITY_STYLE[finding.severity])
    else:
        line.append("-".ljust(8))
    line.append(" ")
    line.append(registered(result))
    return line


@dataclass
class HostResults:
    """What one host showed: its listed ports (open or with a finding) and other counts."""

    hostname: str | None = None
    rows: dict[tuple[int, str], tuple[PortResult, Finding | None]] = field(default_factory=dict)
    others: dict[PortState, int] = field(default_factory=dict)


def _address_key(host: str) -> tuple[int, int, str]:
    import ipaddress  # noqa: PLC0415 - only sorting needs it

    try:
        address = ipaddress.ip_address(host.split(" [", 1)[0])  # "host [vantage]"
    except ValueError:
        return (2, 0, host)
    return (address.version, int(address), host)


def host_tables(hosts: Mapping[str, HostResults]) -> RenderableType:
    """A table per host with listed ports, hosts in address order, ports in number order."""
    parts: list[RenderableType] = []
    for host in sorted(hosts, key=_address_key):
        found = hosts[host]
        if not found.rows:
            continue
        heading = Text(_host_label(host, found.hostname), "bold")
        table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold underline")
        for name, justify in (
            ("PORT", "right"),
            ("STATE", "left"),
            ("ANSWERS", "left"),
            ("VERDICT", "left"),
            ("SEVERITY", "left"),
            ("REGISTERED", "left"),
        ):
            table.add_column(name, justify=justify)  # type: ignore[arg-type]
        for key in sorted(found.rows):
            result, finding = found.rows[key]
            verdict = finding.verdict if finding is not None else result.verdict
            table.add_row(
                Text(f"{result.port}/{result.proto}"),
                Text(str(result.state), STATE_STYLE.get(result.state, "")),
                Text(answered(result)),
                Text(str(verdict or "-"), VERDICT_STYLE.get(verdict, "") if verdict else ""),
                Text(str(finding.severity), SEVERITY_STYLE[finding.severity])
                if finding is not None
                else Text("-"),
                Text(registered(result)),
            )
        parts.extend([Text(""), heading, table] if parts else [heading, table])
        others = ", ".join(f"{n:,} {state}" for state, n in sorted(found.others.items()) if n)
        if others:
            parts.append(Text(f"also {others}", "dim"))
    return Group(*parts)


def summary_line(
    status: str,
    *,
    done: int,
    total: int,
    hosts: int,
    elapsed: float,
    states: Sequence[tuple[PortState, int]],
    severities: Iterable[Severity],
) -> Text:
    """The one closing line: how far, how long, what states, how many findings of what."""
    line = Text()
    line.append(status, "bold green" if status == "done" else "bold red")
    counted = ", ".join(f"{n:,} {state}" for state, n in states if n) or "nothing"
    line.append(
        f": {done:,} of {plural(total, 'port')} on {plural(hosts, 'host')} in "
        f"{elapsed:,.2f} s: {counted}"
    )
    by_severity: dict[Severity, int] = {}
    for severity in severities:
        by_severity[severity] = by_severity.get(severity, 0) + 1
    count = sum(by_severity.values())
    line.append(f"; {plural(count, 'finding')}")
    if count:
        line.append(" (")
        ranked = sorted(by_severity, key=lambda s: s.rank, reverse=True)
        for index, severity in enumerate(ranked):
            if index:
                line.append(", ")
            line.append(f"{by_severity[severity]:,} {severity}", SEVERITY_STYLE[severity])
        line.append(")")
    return line


def _minutes(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 60}:{whole % 60:02d}"


def progress_line(
    *,
    done: int,
    total: int,
    elapsed: float,
    opened: int,
    activity: ScanActivity | None,
    width: int = 80,
) -> Text:
    """The progress line, at most `width - 1` wide: ports done of all, the open count, then
    the rate and time left while probes go out, or, once all are out, what the remaining
    ports wait for (identification, or silent probes and how long they may still take); a bar
    in front where there is room."""
    fraction = done / total if total else 1.0
    text = Text()
    text.append(f"{done:,}/{plural(total, 'port')} {100.0 * fraction:.1f}% · open ")
    text.append(f"{opened:,}", "green" if opened else "")
    rate = done / elapsed if elapsed > 0 else 0.0
    if activity is None or not activity.sent_all:
        left = _minutes((total - done) / rate) if rate > 0 else "-"
        text.append(f" · {rate:,.0f}/s · ETA {left}")
    else:
        if activity.identifying:
            text.append(f" · identifying {activity.identifying:,}", "cyan")
        if activity.waiting:
            text.append(f" · {activity.waiting:,} silent", "yellow")
            if activity.wait_left_s:
                text.append(f", waiting up to {activity.wait_left_s:,.1f} s", "yellow")
    bar_width = min(_BAR_WIDTH, width - 2 - len(text))
    if bar_width < _BAR_WIDTH // 3:
        text.truncate(width - 1, overflow="ellipsis")
        return text
    filled = round(bar_width * fraction)
    line = Text()
    line.append("━" * filled, "magenta" if fraction < 1 else "green")
    line.append("━" * (bar_width - filled), "grey23")
    line.append(" ")
    line.append_text(text)
    return line
