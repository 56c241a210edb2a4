"""The registry as a scan asks it: one entry per (port, transport), without loading the rest.

A scan needs one thing from the IANA registry: the entry registered for each port it reports
on. Loading all 14,500 rows for that costs a small scan more than its probes (tens of
milliseconds and about 12 MB in every process, workers included). So, once a registry file
has been parsed, its first named entry per (port, transport) is kept in the user cache
(scanner/cache.py: JSON, checked when read) in 64 slots of 1,024 ports each, beside a small
slot with the data's date. A scan of a few ports reads the slots of those ports; the whole
registry is read only for what needs every row (search, --top-ports, `ghostport registry`).

Each slot is keyed by the registry file's content (the same key as the rows' cache), so an
index read back always describes the file in use; a missing or damaged slot is a miss, and
the caller parses the file as before.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from scanner import cache
from scanner.models import RegistryRef
from scanner.registry_files import RegistryEntry

SHARD_PORTS = 1024
SHARDS = 65536 // SHARD_PORTS
INDEXED = ("tcp", "udp")  # the transports a scan reports on
_REF_FIELDS = 4  # name, description, assignee, registration date

Refs = dict[tuple[int, str], list[str | None]]  # name, description, assignee, date


def _shard_slot(slot: str, shard: int) -> str:
    return cache.content_key(slot, "ports", str(shard))


def store_index(slot: str, key: str, entries: Iterable[RegistryEntry], date: str | None) -> None:
    """Keep the port index of freshly parsed entries (best effort, as every cache write)."""
    shards: list[dict[str, dict[str, list[str | None]]]] = [
        {t: {} for t in INDEXED} for _ in range(SHARDS)
    ]
    for entry in entries:
        if entry.transport not in INDEXED or not entry.name or entry.port_low is None:
            continue
        assert entry.port_high is not None
        fields = [
            entry.name,
            entry.description,
            entry.assignee or None,
            entry.registration_date or None,
        ]
        for port in range(entry.port_low, entry.port_high + 1):
            shards[port // SHARD_PORTS][entry.transport].setdefault(str(port), fields)
    for number, shard in enumerate(shards):
        cache.store("registry-ports", _shard_slot(slot, number), key, shard)
    cache.store("registry-ports", slot, key, {"date": date, "shards": SHARDS})


class PortIndex:
    """Registry entries by (port, transport), read from the cache a slot at a time."""

    __slots__ = ("_key", "_loaded", "_refs", "_slot", "date")

    def __init__(self, slot: str, key: str, date: str | None) -> None:
        self._slot = slot
        self._key = key
        self._refs: Refs = {}
        self._loaded: set[int] = set()
        self.date = date
        """The newest registration or modification date in the data (the snapshot's)."""

    @classmethod
    def cached(cls, slot: str, key: str) -> PortIndex | None:
        """The index kept for this registry file, or None (not kept yet, or damaged)."""
        meta = cache.fetch("registry-ports", slot, key)
        if not isinstance(meta, dict) or meta.get("shards") != SHARDS:
            return None
        date = meta.get("date")
        if date is not None and not isinstance(date, str):
            return None
        return cls(slot, key, date)

    def ref(self, port: int, transport: str) -> RegistryRef | Literal[False] | None:
        """The entry for the port; None when none is registered; False when the index cannot
        say (its slot is missing or damaged: the caller asks the whole registry)."""
        if transport not in INDEXED or not 0 <= port <= 65535:
            return False
        shard = port // SHARD_PORTS
        if shard not in self._loaded and not self._load(shard):
            return False
        fields = self._refs.get((port, transport))
        if fields is None:
            return None
        name, description, assignee, date = fields
        assert name is not None and description is not None  # checked when read
        return RegistryRef(
            name=name, description=description, assignee=assignee, registration_date=date
        )

    def _load(self, shard: int) -> bool:
        data = cache.fetch("registry-ports", _shard_slot(self._slot, shard), self._key)
        refs = _checked_shard(data, shard)
        if refs is None:
            return False
        self._refs.update(refs)
        self._loaded.add(shard)
        return True


def _checked_shard(data: Any, shard: int) -> Refs | None:
    """A slot's refs when every value has the shape `store_index` wrote; else None."""
    if not isinstance(data, dict) or set(data) != set(INDEXED):
        return None
    refs: Refs = {}
    first = shard * SHARD_PORTS
    for transport, ports in data.items():
        if not isinstance(ports, dict):
            return None
        for port_text, fields in ports.items():
            if not (port_text.isdigit() and first <= int(port_text) < first + SHARD_PORTS):
                return None
            if not _ref_fields(fields):
                return None
            refs[int(port_text), transport] = fields
    return refs


def _ref_fields(fields: Any) -> bool:
    return (
        isinstance(fields, list)
        and len(fields) == _REF_FIELDS
        and isinstance(fields[0], str)
        and isinstance(fields[1], str)
        and all(f is None or isinstance(f, str) for f in fields[2:])
    )
