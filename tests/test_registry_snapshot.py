"""The IANA registry snapshot bundled in the package: what a fresh install looks ports up in."""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from scanner.cli import ghostport_main
from scanner.errors import RegistryError
from scanner.profiles import profile_registry_facts
from scanner.registry import (
    BUNDLED_REGISTRY,
    BUNDLED_REGISTRY_INFO,
    IANA_KINDS,
    Registry,
    cache_file,
    describe_source,
    load_registry,
    parse_iana_csv,
)
from tests.conftest import REGISTRY_SNAPSHOT, REPO

BUILD_SCRIPT = REPO / "scripts" / "build_registry_snapshot.py"


@pytest.fixture
def fresh_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No `registry update` has run (an empty cache directory) and no $GHOSTPORT_REGISTRY."""
    monkeypatch.setenv("GHOSTPORT_CACHE_DIR", str(tmp_path / "empty-cache"))
    monkeypatch.delenv("GHOSTPORT_REGISTRY", raising=False)


@pytest.fixture(scope="module")
def info() -> dict[str, object]:
    loaded: dict[str, object] = json.loads(BUNDLED_REGISTRY_INFO.read_text(encoding="utf-8"))
    return loaded


@pytest.fixture(scope="module")
def bundled() -> Registry:
    return load_registry(None, bundled=BUNDLED_REGISTRY)


@pytest.mark.usefixtures("fresh_install")
def test_a_fresh_install_looks_ports_up_in_the_bundled_snapshot(info: dict[str, object]) -> None:
    registry = load_registry(None, profile_registry_facts)
    assert registry.source.kind == "bundled"
    assert registry.source.path == str(BUNDLED_REGISTRY)
    assert registry.source.date == info["snapshot_date"]
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(registry.source.date))
    assert describe_source(registry) == f"IANA, {info['snapshot_date']} snapshot (bundled)"
    assert len(registry) == info["entries"]
    http = registry.at(80, "tcp")[0]
    assert (http.name, http.description) == ("http", "World Wide Web HTTP")
    # the profiles name only a few dozen ports; the snapshot knows far more, with assignees
    assert registry.at(412, "udp")[0].assignee == "[Illan_Raab]"


@pytest.mark.usefixtures("fresh_install")
def test_registry_80_answers_out_of_the_box(capsys: pytest.CaptureFixture[str]) -> None:
    assert ghostport_main(["registry", "80/tcp"]) == 0
    assert "World Wide Web HTTP" in capsys.readouterr().out
    assert ghostport_main(["registry", "info", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["source"], shown["path"]) == ("bundled", str(BUNDLED_REGISTRY))


def test_the_bundled_file_is_the_csv_its_metadata_names(
    bundled: Registry, info: dict[str, object]
) -> None:
    data = gzip.decompress(BUNDLED_REGISTRY.read_bytes())
    assert hashlib.sha256(data).hexdigest() == info["sha256"]
    assert len(data) == info["bytes"]
    assert len(bundled) == info["entries"]
    assert sum(1 for e in bundled.entries if e.port_low is not None) == info["entries_with_port"]
    assert bundled.newest_date() == bundled.source.date == info["snapshot_date"]
    assert str(info["source_url"]).startswith("https://")
    assert 150_000 < BUNDLED_REGISTRY.stat().st_size < 400_000


def test_every_port_the_profiles_name_is_in_the_snapshot(bundled: Registry) -> None:
    # First found wins: with the snapshot ahead of the profiles' facts, a port the profiles
    # know and the snapshot did not would lose its registry entry on a fresh install.
    facts = profile_registry_facts()
    assert facts
    missing = [
        f"{f.name} {f.port_low}/{f.transport}"
        for f in facts
        if f.port_low is None or f.name not in [e.name for e in bundled.at(f.port_low, f.transport)]
    ]
    assert missing == []


def test_gzip_and_plain_csv_parse_the_same(snapshot: Path, tmp_path: Path) -> None:
    assert parse_iana_csv(BUNDLED_REGISTRY) == parse_iana_csv(snapshot)
    # any name: a compressed copy given with --registry is recognised by its content
    renamed = tmp_path / "iana.csv"
    renamed.write_bytes(BUNDLED_REGISTRY.read_bytes())
    registry = load_registry(str(renamed))
    assert registry.source.kind in IANA_KINDS
    assert describe_source(registry) == f"IANA, 2026-04-09 snapshot (--registry {renamed})"


def test_the_build_script_reproduces_the_committed_files(tmp_path: Path) -> None:
    if not REGISTRY_SNAPSHOT.is_file():
        pytest.skip(f"the source CSV of the snapshot is not here: {REGISTRY_SNAPSHOT}")
    built = subprocess.run(
        [sys.executable, str(BUILD_SCRIPT), str(REGISTRY_SNAPSHOT), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    for committed in (BUNDLED_REGISTRY, BUNDLED_REGISTRY_INFO):
        rebuilt = tmp_path / committed.name
        assert rebuilt.read_bytes() == committed.read_bytes(), committed.name


def test_the_build_script_refuses_a_file_that_is_not_the_registry(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("name,port\r\n", newline="")
    built = subprocess.run(
        [sys.executable, str(BUILD_SCRIPT), str(bad), "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert built.returncode == 2
    assert "not the IANA port registry" in built.stderr and "Traceback" not in built.stderr
    assert not (tmp_path / "out").exists()


def _damaged_copies(tmp_path: Path) -> list[tuple[Path, str]]:
    good = BUNDLED_REGISTRY.read_bytes()
    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0xFF
    plain = gzip.decompress(good)
    copies = [
        (good[: len(good) // 2], "ends early"),
        (bytes(flipped), "not valid gzip data"),
        (good[:10] + b"\x00" * 40, "not valid gzip data"),
        (gzip.compress(plain[: len(plain) // 2]), "truncated"),  # valid gzip, cut CSV
        (gzip.compress(b"<!doctype html><p>moved\n"), "not the IANA port registry"),
        (b"", "empty"),
    ]
    paths = []
    for number, (data, problem) in enumerate(copies):
        path = tmp_path / f"damaged-{number}.csv.gz"
        path.write_bytes(data)
        paths.append((path, problem))
    return paths


@pytest.mark.usefixtures("fresh_install")
def test_a_damaged_bundled_snapshot_is_one_clear_error(tmp_path: Path) -> None:
    for path, problem in _damaged_copies(tmp_path):
        with pytest.raises(RegistryError) as caught:
            load_registry(None, profile_registry_facts, bundled=path)
        message = str(caught.value)
        assert "bundled registry snapshot is damaged" in message, message
        assert str(path) in message and problem in message, message
        assert "\n" not in message


@pytest.mark.usefixtures("fresh_install")
def test_the_cache_still_comes_before_the_bundled_snapshot(tmp_path: Path, snapshot: Path) -> None:
    # Given a damaged snapshot (so it cannot be what answers) and a good cache
    cache_file().parent.mkdir(parents=True)
    cache_file().write_bytes(snapshot.read_bytes())
    damaged, _ = _damaged_copies(tmp_path)[0]
    registry = load_registry(None, profile_registry_facts, bundled=damaged)
    assert registry.source.kind == "cache"
    assert describe_source(registry) == f"IANA, 2026-04-09 snapshot (cache {cache_file()})"
