"""The registry's port index: a scan reads the entries of its ports, not all 14,500 rows.

After the bundled IANA snapshot has been parsed once, the next load is deferred: its port
index (scanner/registry_index.py, in the cache dir) answers every (port, transport) exactly
as the parsed rows do, the rows are not read for it, and a damaged slot of the index falls
back to the rows with the same answers.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from scanner import cache
from scanner.registry import BUNDLED_REGISTRY, _cache_keys, load_registry


@pytest.fixture
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GHOSTPORT_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("GHOSTPORT_REGISTRY", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))  # no user cache of IANA's CSV
    return tmp_path


def test_the_index_answers_every_port_as_the_parsed_rows_do(own_cache: Path) -> None:
    # Given the bundled snapshot parsed once (which keeps its index)
    parsed = load_registry()
    assert parsed.source.kind == "bundled"
    # When it is loaded again
    indexed = load_registry()
    # Then every port of both transports has the same entry, and the date is the same
    for transport in ("tcp", "udp"):
        for port in range(65536):
            assert indexed.ref(port, transport) == parsed.ref(port, transport), (port, transport)
    assert indexed.newest_date() == parsed.newest_date() is not None
    assert indexed.ref(391, "tcp") is not None and indexed.ref(391, "tcp").name == "synotics-relay"
    # and what needs every row still has it
    assert len(indexed) == len(parsed) > 10_000
    assert [e.name for e in indexed.named("synotics-*")] == [
        e.name for e in parsed.named("synotics-*")
    ]


def test_a_scan_process_reads_no_rows_for_its_ports(own_cache: Path) -> None:
    load_registry()  # parsed once: the index is kept
    # When a fresh process loads the registry and asks for a few ports
    code = (
        "from scanner.registry import load_registry\n"
        "r = load_registry()\n"
        "refs = [r.ref(p, 'tcp') for p in (23, 391, 392, 412, 3416)]\n"
        "print(r._entries is None, sum(ref is not None for ref in refs), r.source.date)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ
    ).stdout.split()
    # Then it answered from the index alone
    assert out[:2] == ["True", "5"], out
    assert out[2] == load_registry().newest_date()


def test_a_damaged_slot_falls_back_to_the_rows(own_cache: Path) -> None:
    parsed = load_registry()
    slots = sorted(own_cache.glob("registry-ports-*.json"))
    assert len(slots) == 65  # 64 slots of 1,024 ports and the date
    # When every slot but the date's is damaged (a truncated write, someone else's file)
    keys = _cache_keys(BUNDLED_REGISTRY)
    assert keys is not None
    meta = cache.slot_path("registry-ports", keys[0])
    for slot in slots:
        if slot != meta:
            slot.write_text('{"format": 1, "key": "x", "da')
    indexed = load_registry()
    # Then the answers are the rows', read from the rows
    for port in (0, 23, 391, 3416, 8080, 65535):
        assert indexed.ref(port, "udp") == parsed.ref(port, "udp")
    assert indexed._entries is not None
