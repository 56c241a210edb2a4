"""The registry's file formats: IANA's CSV export (plain or gzip) and /etc/services.

Read strictly: a malformed or truncated file is one RegistryError naming the file and line,
never a half-loaded registry; reads are bounded in bytes (also after decompression) and in
the ports a file may cover.
"""

from __future__ import annotations

import csv
import io
import re
import zlib
from pathlib import Path
from typing import NamedTuple

from scanner.errors import RegistryError
from scanner.models import RegistryRef

COLUMNS = (
    "Service Name",
    "Port Number",
    "Transport Protocol",
    "Description",
    "Assignee",
    "Contact",
    "Registration Date",
    "Modification Date",
    "Reference",
    "Service Code",
    "Unauthorized Use Reported",
    "Assignment Notes",
)
TRANSPORTS = frozenset({"tcp", "udp", "sctp", "dccp", ""})
_DATE = re.compile(r"^(\d{4}-\d{2}(-\d{2})?)?$")
_PORT = re.compile(r"^(\d{1,5})(?:-(\d{1,5}))?$")
_SERVICES_LINE = re.compile(
    r"^([A-Za-z0-9][\w.+-]*)\s+(\d{1,5})/(\w+)((?:\s+[^\s#]+)*)\s*(?:#\s*(.*))?$"
)


class RegistryEntry(NamedTuple):
    """One row of the registry (a tuple: 14,500 of them are made per load)."""

    name: str
    port_low: int | None
    port_high: int | None
    transport: str
    description: str = ""
    assignee: str = ""
    contact: str = ""
    registration_date: str = ""
    modification_date: str = ""
    reference: str = ""
    notes: str = ""
    line: int = 0

    @property
    def ports(self) -> str:
        """'391', '4795-4799' or '' for a name-only row."""
        if self.port_low is None:
            return ""
        if self.port_high == self.port_low:
            return str(self.port_low)
        return f"{self.port_low}-{self.port_high}"

    def ref(self) -> RegistryRef:
        """The compact form carried on scan results."""
        return RegistryRef(
            name=self.name,
            description=self.description,
            assignee=self.assignee or None,
            registration_date=self.registration_date or None,
        )


MAX_REGISTRY_BYTES = 16 << 20
"""A registry CSV larger than this is refused (IANA's own is 1.2 MB)."""
MAX_REGISTRY_PORTS = 200_000
"""Ports that named rows may cover, ranges expanded: the index holds each (IANA's: 12,036)."""


def _parse_port(text: str, where: str) -> tuple[int | None, int | None]:
    if not text:
        return None, None
    if not text.isascii():  # '²'.isdigit() is True but int('²') fails; int('٣') is 3
        raise RegistryError(f"{where}: port {text!r} is not a number or a range")
    if text.isdigit() and len(text) <= 5 and int(text) <= 65535:
        return int(text), int(text)
    match = _PORT.match(text)
    if not match:
        raise RegistryError(f"{where}: port {text!r} is not a number or a range")
    low = int(match.group(1))
    high = int(match.group(2)) if match.group(2) else low
    if high > 65535 or high < low:
        raise RegistryError(f"{where}: port range {text!r} is not within 0-65535")
    return low, high


def parse_iana_csv(path: str | Path) -> list[RegistryEntry]:
    """Parse IANA's CSV strictly; raise RegistryError naming the file and line of any fault.

    A gzip-compressed file (recognised by its magic bytes, whatever its name) is decompressed
    first; line numbers then count lines of the CSV inside.
    """
    name = str(path)
    try:
        with Path(path).open("rb") as handle:
            raw = handle.read(MAX_REGISTRY_BYTES + 1)
    except FileNotFoundError:
        raise RegistryError(f"registry file {name!r} does not exist") from None
    except OSError as exc:
        raise RegistryError(f"registry file {name!r} cannot be read: {exc.strerror}") from None
    if len(raw) > MAX_REGISTRY_BYTES:
        raise RegistryError(f"{name}: larger than {MAX_REGISTRY_BYTES:,} bytes, the limit")
    if raw.startswith(b"\x1f\x8b"):
        raw = _gunzip_limited(raw, name)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise RegistryError(f"{name}:{line}: not UTF-8 text") from None
    if not text:
        raise RegistryError(f"{name}: the file is empty")
    if not text.endswith("\n"):
        line = text.count("\n") + 1
        raise RegistryError(f"{name}:{line}: the file ends in the middle of a line (truncated?)")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    entries: list[RegistryEntry] = []
    covered = 0
    try:
        header = next(reader)
        if tuple(h.strip() for h in header) != COLUMNS:
            raise RegistryError(
                f"{name}:1: not the IANA port registry CSV (expected the columns "
                f"{', '.join(COLUMNS[:3])}, ...; found {', '.join(header[:3])[:80]!r})"
            )
        for row in reader:
            line = reader.line_num
            where = f"{name}:{line}"
            if len(row) != len(COLUMNS):
                raise RegistryError(f"{where}: {len(row)} fields where the registry has 12")
            service, port, transport, description, assignee, contact, reg, mod, ref = row[:9]
            transport = transport.strip().lower()
            if transport not in TRANSPORTS:
                raise RegistryError(f"{where}: unknown transport protocol {transport!r}")
            for date in (reg, mod):
                if date and not _DATE.match(date.strip()):
                    raise RegistryError(f"{where}: date {date!r} is not YYYY-MM-DD or YYYY-MM")
            low, high = _parse_port(port.strip(), where)
            if service.strip() and low is not None and high is not None:
                covered += high - low + 1  # unnamed rows (Unassigned, Reserved) are not indexed
                if covered > MAX_REGISTRY_PORTS:
                    raise RegistryError(f"{where}: rows cover over {MAX_REGISTRY_PORTS:,} ports")
            entries.append(
                RegistryEntry(
                    service.strip(),
                    low,
                    high,
                    transport,
                    description.strip(),
                    assignee.strip(),
                    contact.strip(),
                    reg.strip(),
                    mod.strip(),
                    ref.strip(),
                    row[11].strip(),
                    line,
                )
            )
    except csv.Error as exc:
        raise RegistryError(f"{name}:{reader.line_num}: {exc} (truncated or not CSV?)") from None
    except StopIteration:
        raise RegistryError(f"{name}: the file has no header line") from None
    return entries


def _gunzip_limited(raw: bytes, name: str) -> bytes:
    """Decompress a gzip registry, refusing one that expands past MAX_REGISTRY_BYTES (a
    gzip bomb costs no more than the limit)."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        text = inflater.decompress(raw, MAX_REGISTRY_BYTES + 1)
    except zlib.error as exc:
        raise RegistryError(f"{name}: not valid gzip data ({exc})") from None
    if len(text) > MAX_REGISTRY_BYTES:
        raise RegistryError(
            f"{name}: decompresses to more than {MAX_REGISTRY_BYTES:,} bytes, the limit"
        )
    if not inflater.eof:
        raise RegistryError(f"{name}: the gzip data ends early (truncated?)")
    return text


def parse_etc_services(path: str | Path) -> list[RegistryEntry]:
    """Parse a services(5) file: `name port/proto [aliases] [# comment]`."""
    entries: list[RegistryEntry] = []
    try:
        lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        raise RegistryError(f"services file {str(path)!r} cannot be read: {exc.strerror}") from None
    for number, line in enumerate(lines, 1):
        match = _SERVICES_LINE.match(line.strip())
        if not match or int(match.group(2)) > 65535:
            continue
        port = int(match.group(2))
        entries.append(
            RegistryEntry(
                match.group(1),
                port,
                port,
                match.group(3).lower(),
                (match.group(5) or "").strip(),
                line=number,
            )
        )
    return entries
