"""The IANA Service Name and Transport Protocol Port Number Registry.

Loads IANA's CSV export (12 columns, quoted fields with embedded newlines, CRLF, port ranges,
rows without a port) strictly: a malformed or truncated file is one error naming the file and
line, never a half-loaded registry; a gzip-compressed copy is read the same way. Indexed by
(port, transport), by service name (exact and glob) and searchable by words in the description
or assignee.

Where the data comes from, first found wins:
    1. --registry FILE
    2. $GHOSTPORT_REGISTRY
    3. the user cache written by `ghostport registry update`
    4. the IANA snapshot bundled in the package (scanner/data/, made by
       scripts/build_registry_snapshot.py), so a fresh install knows every registered port
    5. the registry facts carried in the bundled profiles
    6. the system's /etc/services
"""

from __future__ import annotations

import contextlib
import difflib
import fnmatch
import gc
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from scanner.errors import PortSpecError, RegistryError
from scanner.models import RegistryRef, Transport
from scanner.registry_files import (
    COLUMNS,
    MAX_REGISTRY_BYTES,
    MAX_REGISTRY_PORTS,
    TRANSPORTS,
    RegistryEntry,
    parse_etc_services,
    parse_iana_csv,
)

if TYPE_CHECKING:
    from scanner.registry_index import PortIndex

__all__ = [
    "COLUMNS",
    "MAX_REGISTRY_BYTES",
    "MAX_REGISTRY_PORTS",
    "TRANSPORTS",
    "Registry",
    "RegistryEntry",
    "RegistrySource",
    "load_registry",
    "parse_etc_services",
    "parse_iana_csv",
]

IANA_CSV_URL = (
    "https://www.iana.org/assignments/service-names-port-numbers/service-names-port-numbers.csv"
)
# The snapshot that ships with the package, and its provenance (source URL, date, sha256).
BUNDLED_REGISTRY = Path(__file__).resolve().parent / "data" / "iana-registry.csv.gz"
BUNDLED_REGISTRY_INFO = BUNDLED_REGISTRY.with_name("iana-registry.json")
# Sources that are IANA's CSV export; the others are profiles, a services file or none.
IANA_KINDS = ("--registry", "GHOSTPORT_REGISTRY", "cache", "bundled")
# A downloaded registry smaller than this is not IANA's, whatever it parses as.
MIN_UPDATE_ENTRIES = 1000


@dataclass(frozen=True, slots=True)
class RegistrySource:
    """Where the registry in use came from, and how recent its data is."""

    kind: str  # --registry, GHOSTPORT_REGISTRY, cache, bundled, profiles, the services path, none
    path: str | None = None
    # For IANA's CSV (IANA_KINDS): the newest registration or modification date in the data,
    # the snapshot's date. None for the other kinds and for a CSV without dates.
    date: str | None = None


class Registry:
    """Registry entries with indexes by port and name.

    Made from its entries, or deferred: `entries` is then a loader called on first need, and
    a port index (registry_index.py) answers `ref`, all a scan asks, without it.
    """

    def __init__(
        self,
        entries: tuple[RegistryEntry, ...] | Callable[[], Iterable[RegistryEntry]],
        source: RegistrySource,
        index: PortIndex | None = None,
    ) -> None:
        self._entries = None if callable(entries) else entries
        self._load = entries if callable(entries) else None
        self.source = source
        self._index = index
        self._by_port: dict[tuple[int, str], list[RegistryEntry]] | None = None
        self._by_name: dict[str, list[RegistryEntry]] | None = None
        self._refs: dict[tuple[int, str], RegistryRef | None] = {}

    @property
    def entries(self) -> tuple[RegistryEntry, ...]:
        """Every row (loaded now if it was deferred)."""
        if self._entries is None:
            assert self._load is not None
            with _collector_paused():
                self._entries = tuple(self._load())
        return self._entries

    def _ports(self) -> dict[tuple[int, str], list[RegistryEntry]]:
        if self._by_port is None:
            by_port: dict[tuple[int, str], list[RegistryEntry]] = {}
            for entry in self.entries:
                if entry.port_low is None or entry.port_high is None or not entry.name:
                    continue  # unassigned and reserved rows name no service
                for port in range(entry.port_low, entry.port_high + 1):
                    by_port.setdefault((port, entry.transport), []).append(entry)
            self._by_port = by_port
        return self._by_port

    def _names(self) -> dict[str, list[RegistryEntry]]:
        if self._by_name is None:
            by_name: dict[str, list[RegistryEntry]] = {}
            for entry in self.entries:
                if entry.name:
                    by_name.setdefault(entry.name.lower(), []).append(entry)
            self._by_name = by_name
        return self._by_name

    def __len__(self) -> int:
        return len(self.entries)

    def __bool__(self) -> bool:
        """Whether it has entries (a deferred registry has: its file parsed with some)."""
        return self._entries is None or bool(self._entries)

    def at(self, port: int, transport: str) -> list[RegistryEntry]:
        """Named entries registered for the port on the transport."""
        return self._ports().get((port, transport), [])

    def ref(self, port: int, transport: str) -> RegistryRef | None:
        """The result-ready entry for a port, or None (memoised: called once per result)."""
        key = (port, transport)
        if key not in self._refs:
            indexed = self._index.ref(port, transport) if self._index is not None else False
            if indexed is not False:
                self._refs[key] = indexed
            else:
                found = self.at(port, transport)
                self._refs[key] = found[0].ref() if found else None
        return self._refs[key]

    def named(self, pattern: str) -> list[RegistryEntry]:
        """Entries whose service name is the pattern, or matches it as a glob (case-insensitive)."""
        pattern = pattern.lower()
        if not any(ch in pattern for ch in "*?["):
            return list(self._names().get(pattern, []))
        names = self._names()
        return [e for name in fnmatch.filter(names, pattern) for e in names[name]]

    def search(self, words: str) -> list[RegistryEntry]:
        """Entries whose name, description or assignee contain every word (case-insensitive)."""
        needles = words.lower().split()
        return [
            e
            for e in self.entries
            if e.name
            and all(
                n in e.name.lower() or n in e.description.lower() or n in e.assignee.lower()
                for n in needles
            )
        ]

    def query(self, text: str) -> list[RegistryEntry]:
        """`391`, `3416/udp`, a name or glob, else words: what `ghostport registry QUERY` shows."""
        text = text.strip()
        port_text, _, transport = text.partition("/")
        if port_text.isdigit():
            port = int(port_text)
            transports = [transport.lower()] if transport else ["tcp", "udp", "sctp", "dccp"]
            return [e for t in transports for e in self.at(port, t)]
        return self.named(text) or self.search(text)

    def suggestions(self, name: str, limit: int = 3) -> list[str]:
        """Service names close to a misspelt one."""
        return difflib.get_close_matches(name.lower(), list(self._names()), n=limit, cutoff=0.6)

    def ports_for(self, item: str) -> dict[Transport, list[int]]:
        """Expand `registry:NAME-OR-GLOB` to its registered TCP and UDP ports."""
        _, _, name = item.partition(":")
        if not item.lower().startswith("registry:") or not name:
            raise PortSpecError(f"port item {item!r} is not a number, a range or registry:NAME")
        matches = self.named(name)
        ports: dict[Transport, list[int]] = {Transport.TCP: [], Transport.UDP: []}
        for entry in matches:
            if entry.transport in ("tcp", "udp") and entry.port_low is not None:
                assert entry.port_high is not None
                ports[Transport(entry.transport)].extend(range(entry.port_low, entry.port_high + 1))
        if not any(ports.values()):
            close = self.suggestions(name)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            where = f" (registry: {describe_source(self)})"
            raise PortSpecError(f"no registered TCP or UDP port for {item!r}{where}{hint}")
        return ports

    def newest_date(self) -> str | None:
        """The latest registration or modification date in the data."""
        if self._entries is None and self._index is not None:
            return self._index.date
        return newest_date(self.entries)


def newest_date(entries: Iterable[RegistryEntry]) -> str | None:
    """The latest registration or modification date of the entries: a snapshot's date."""
    dates = [d for e in entries for d in (e.registration_date, e.modification_date) if d]
    return max(dates) if dates else None


def describe_source(registry: Registry) -> str:
    """Kind and date of the registry in use, for people and the scan's `registry_source`.

    'IANA, 2026-04-09 snapshot (bundled)',
    'IANA, 2026-04-09 snapshot (cache /root/.cache/ghostport/service-names-port-numbers.csv)',
    'IANA, 2026-04-09 snapshot (--registry iana.csv)', 'profiles', '/etc/services', 'none'.
    """
    source = registry.source
    if source.kind in IANA_KINDS:
        when = f"{source.date} snapshot" if source.date else "undated"
        where = source.kind if source.kind == "bundled" else f"{source.kind} {source.path}"
        return f"IANA, {when} ({where})"
    return (
        f"{source.kind} ({source.path})"
        if source.path and source.path != source.kind
        else (source.kind)
    )


def cache_dir() -> Path:
    """Where `ghostport registry update` keeps its copy."""
    explicit = os.environ.get("GHOSTPORT_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ghostport"


def cache_file() -> Path:
    """The cached IANA CSV."""
    return cache_dir() / "service-names-port-numbers.csv"


_COLUMN_TYPES = (str, int | None, int | None, *[str] * 8, int)  # RegistryEntry's, for the cache


def parse_cached(
    path: str | Path, parse: Callable[[str | Path], list[RegistryEntry]] = parse_iana_csv
) -> list[RegistryEntry]:
    """parse(path), through the user cache (scanner/cache.py), keyed by the file's sha256 and
    this module's code; rows are kept as JSON columns, checked when read back."""
    from scanner import cache  # noqa: PLC0415 - only the cache users need it

    keys = _cache_keys(path, parse)
    if keys is None:
        return parse(path)  # parse names what is wrong with the file
    slot, key = keys
    columns = cache.checked_columns(cache.fetch("registry", slot, key), _COLUMN_TYPES)
    if columns is not None and all(
        (low is None and high is None) or (low is not None and 0 <= low <= high <= 65535)
        for low, high in zip(columns[1], columns[2], strict=True)
    ):
        return list(map(RegistryEntry._make, zip(*columns, strict=True)))
    entries = parse(path)
    columns = [list(column) for column in zip(*entries, strict=True)]
    cache.store("registry", slot, key, columns if entries else None)
    return entries


def _cache_keys(
    path: str | Path, parse: Callable[[str | Path], list[RegistryEntry]] = parse_iana_csv
) -> tuple[str, str] | None:
    """The cache slot and key of a registry file's data; None when it cannot be read."""
    from scanner import cache  # noqa: PLC0415 - only the cache users need it

    try:
        slot = cache.content_key("registry", parse.__qualname__, str(Path(path).resolve()))
        return slot, cache.content_key(slot, cache.file_digest(path), cache.file_digest(__file__))
    except OSError:
        return None


ProfileFacts = Callable[[], Iterable[RegistryEntry]]


def _no_profile_facts() -> Iterator[RegistryEntry]:
    return iter(())


def _readable_file(path: Path) -> bool:
    """A file we may read; a cache under a home we cannot enter counts as no cache."""
    try:
        return path.is_file() and os.access(path, os.R_OK)
    except OSError:  # PermissionError from stat: is_file() lets it through
        return False


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Bulk loads make tens of thousands of tuples: the cyclic GC would rescan them many times
    over (a third of the load time) for cycles that cannot exist."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def load_registry(
    explicit: str | None = None,
    profile_facts: ProfileFacts = _no_profile_facts,
    services: str = "/etc/services",
    bundled: str | Path | None = BUNDLED_REGISTRY,
) -> Registry:
    """The registry from the first source that exists, in the documented order.

    `bundled` is the packaged IANA snapshot (None leaves it out of the chain).
    """
    with _collector_paused():
        return _load_first_source(explicit, profile_facts, services, bundled)


def _iana_registry(path: str | Path, kind: str) -> Registry:
    """IANA's CSV: deferred behind its port index when that is kept in the cache (the file
    parsed cleanly under the same key before), else parsed now and indexed for next time."""
    from scanner.registry_index import PortIndex, store_index  # noqa: PLC0415

    keys = _cache_keys(path)
    index = PortIndex.cached(*keys) if keys is not None else None
    if index is not None:
        source = RegistrySource(kind, str(path), index.date)
        return Registry(lambda: parse_cached(path), source, index)
    entries = parse_cached(path)
    date = newest_date(entries)
    if keys is not None and entries:
        store_index(*keys, entries, date)
    return Registry(tuple(entries), RegistrySource(kind, str(path), date))


def _load_first_source(
    explicit: str | None, profile_facts: ProfileFacts, services: str, bundled: str | Path | None
) -> Registry:
    if explicit:
        return _iana_registry(explicit, "--registry")
    from_env = os.environ.get("GHOSTPORT_REGISTRY")
    if from_env:
        return _iana_registry(from_env, "GHOSTPORT_REGISTRY")
    cached = cache_file()
    if _readable_file(cached):
        try:
            return _iana_registry(cached, "cache")
        except RegistryError as exc:
            raise RegistryError(f"{exc}; run `ghostport registry update` to replace it") from None
    if bundled is not None and _readable_file(Path(bundled)):
        try:
            return _iana_registry(bundled, "bundled")
        except RegistryError as exc:
            raise RegistryError(
                f"the bundled registry snapshot is damaged ({exc}); reinstall ghostport, "
                "or run `ghostport registry update` to use a fresh copy instead"
            ) from None
    facts = tuple(profile_facts())
    if facts:
        return Registry(facts, RegistrySource("profiles"))
    if _readable_file(Path(services)):
        return Registry(tuple(parse_etc_services(services)), RegistrySource(services, services))
    return Registry((), RegistrySource("none"))


def update_cache(url: str = IANA_CSV_URL, timeout: float = 60.0) -> Registry:
    """Download the registry, validate it fully, and replace the cache atomically.

    On any failure the old cache stays as it was and RegistryError says why.
    """
    import urllib.error  # noqa: PLC0415 - 20 ms of start-up that only an update needs
    import urllib.request  # noqa: PLC0415
    from http.client import HTTPException  # noqa: PLC0415

    target = cache_file()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=".download-", suffix=".csv", dir=target.parent)
    except OSError as exc:
        raise RegistryError(
            f"cannot write the registry cache in {str(target.parent)!r}: {exc.strerror}; "
            "set GHOSTPORT_CACHE_DIR to a writable directory"
        ) from None
    try:
        with os.fdopen(handle, "wb") as out:
            try:
                request = urllib.request.Request(url, headers={"User-Agent": "ghostport"})
                with urllib.request.urlopen(request, timeout=timeout) as response:
                    expected = response.headers.get("Content-Length")
                    received = 0
                    while chunk := response.read(1 << 16):
                        out.write(chunk)
                        received += len(chunk)
                    # http.client ends a short body quietly: count the bytes ourselves.
                    if expected and expected.isdigit() and received < int(expected):
                        raise OSError(
                            f"the connection closed after {received:,} of {int(expected):,} bytes"
                        )
            except (urllib.error.URLError, HTTPException, OSError, ValueError) as exc:
                if isinstance(exc, urllib.error.HTTPError):
                    exc.close()  # it holds the response and its socket
                    reason: object = f"HTTP {exc.code} {exc.reason}"
                else:
                    reason = getattr(exc, "reason", None) or exc
                raise RegistryError(
                    f"could not download the registry from {url}: {reason}; the cache is unchanged"
                ) from None
        try:
            entries = parse_iana_csv(temporary)
        except RegistryError as exc:
            problem = str(exc).replace(temporary, "line ").replace("line :", "line ")
            raise RegistryError(
                f"the download from {url} is not a valid registry ({problem}); "
                "the cache is unchanged"
            ) from None
        with_ports = sum(1 for e in entries if e.port_low is not None)
        if with_ports < MIN_UPDATE_ENTRIES:
            raise RegistryError(
                f"the download from {url} has only {with_ports} port entries (IANA's has over "
                f"{MIN_UPDATE_ENTRIES:,}); the cache is unchanged"
            )
        os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return _iana_registry(target, "cache")  # parsed again into the cache: the next scan is warm
