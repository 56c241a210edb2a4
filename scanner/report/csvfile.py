"""Findings as CSV: one row per finding, for spreadsheets and ticket imports."""

from __future__ import annotations

import csv
import io

from scanner.models import ScanDocument

COLUMNS = (
    "severity",
    "verdict",
    "host",
    "hostname",
    "port",
    "proto",
    "service_id",
    "protocol",
    "confidence",
    "title",
    "expected_service",
    "registry_name",
    "registry_description",
    "registry_assignee",
    "registration_date",
    "probe",
    "decoded",
    "remediation",
    "scan_id",
    "pid",
    "process_name",
    "process_exe",
    "process_cmdline",
    "process_user",
)


def _cell(value: object) -> str:
    """Text for a cell; a leading = + - @ is neutralised so spreadsheets never run it."""
    text = "" if value is None else str(value)
    text = " ".join(text.split())
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def render_csv(document: ScanDocument) -> str:
    """The findings of one scan as CSV text (RFC 4180 quoting, a header row)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for f in document.findings:
        registry = f.registry
        writer.writerow(
            _cell(v)
            for v in (
                f.severity,
                f.verdict.value,
                f.host,
                f.hostname,
                f.port,
                f.proto.value,
                f.service_id,
                f.protocol,
                f.confidence,
                f.title,
                f.expected_service,
                registry.name if registry else None,
                registry.description if registry else None,
                registry.assignee if registry else None,
                registry.registration_date if registry else None,
                f.evidence.probe,
                "; ".join(f"{k}={v}" for k, v in f.evidence.decoded.items()),
                f.remediation,
                document.scan.id,
                *(
                    (
                        f.process.pid,
                        f.process.name,
                        f.process.exe,
                        " ".join(f.process.cmdline),
                        f.process.user,
                    )
                    if f.process
                    else (None,) * 5
                ),
            )
        )
    return out.getvalue()
