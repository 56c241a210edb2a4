"""Start-up: what `scan` imports before it is needed, and the caches that spare the rest.

No timings here (bench/startup.py measures them): these tests hold the reasons for the speed.
`--version` and `--help` import nothing of the scan layer; a scan whose caches are warm never
imports scapy or yaml; a damaged, foreign or outdated cache is never used.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from scanner import cache
from scanner.cli import no_plugins_loader
from scanner.cli.options import SEVERITIES
from scanner.models import Severity
from scanner.probes import build_payload
from scanner.probeset import built_payloads, payload_of
from scanner.profile_cache import load_profiles_cached
from scanner.profiles import ProbeModel, bundled_profile_ids, load_profiles
from scanner.registry import COLUMNS, parse_cached, parse_iana_csv
from tests.conftest import REPO, run_python

HEAVY = ("scapy", "yaml", "jinja2", "psutil", "pydantic", "rich")
MARK = "\nMODULES:"

# Runs one command in a fresh interpreter, then prints which modules it imported.
WRAPPER = f"""
import json, sys
from scanner.cli import ghostport_main, scan_main
main = ghostport_main if sys.argv[1] == "ghostport" else scan_main
try:
    code = main(sys.argv[2:])
except SystemExit as exc:
    code = exc.code
print({MARK!r} + json.dumps([code, sorted(sys.modules)]))
"""


def run_fresh(
    cache_dir: Path, *argv: str, env: dict[str, str] | None = None
) -> tuple[int, str, set[str]]:
    """(exit code, stdout before the module list, the modules imported by full dotted name)."""
    env = {**os.environ, **(env or {}), "GHOSTPORT_CACHE_DIR": str(cache_dir)}
    done = subprocess.run(
        [sys.executable, "-c", WRAPPER, *argv],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env=env,
        check=False,
    )
    assert MARK in done.stdout, done.stderr
    output, _, listing = done.stdout.rpartition(MARK)
    code, modules = json.loads(listing)
    assert "Traceback" not in done.stderr, done.stderr
    return code, output, set(modules)


def closed_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on: bound by us, then closed."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def scan_results(cache_dir: Path, port: int, tmp_path: Path) -> tuple[set[str], Any]:
    """Scan one closed TCP port and U:161 with the default profile in a fresh interpreter:
    (modules imported, every port's state and reason)."""
    out = tmp_path / f"scan-{len(list(tmp_path.glob('scan-*')))}.json"
    argv = ["scan", "-q", "--all-states", "-p", f"T:{port},U:161", "--json", str(out)]
    code, _, modules = run_fresh(cache_dir, *argv, "127.0.0.1")
    assert code == 0
    document = json.loads(out.read_text())
    states = sorted((r["port"], r["proto"], r["state"], r["reason"]) for r in document["results"])
    return modules, states


@pytest.mark.parametrize(
    "argv",
    [
        ["scan", "--version"],
        ["scan", "--help"],
        ["ghostport", "scan", "--help"],
        ["ghostport", "local", "--help"],
        ["ghostport", "--version"],
    ],
)
def test_version_and_help_import_nothing_heavy(argv: list[str], tmp_path: Path) -> None:
    code, output, modules = run_fresh(tmp_path, *argv)
    assert code == 0
    assert "ghostport 0." in output or "usage:" in output
    assert sorted(modules & set(HEAVY)) == []


def test_a_usage_error_from_the_light_parser_is_still_one_line(tmp_path: Path) -> None:
    # Given a flag value the light parser refuses
    env = {**os.environ, "GHOSTPORT_CACHE_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "scanner", "scan", "--fail-on", "severe", "127.0.0.1"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env=env,
        check=False,
    )
    # Then it is the usual one line naming the value, exit 2
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "ghostport: error: argument --fail-on: invalid choice: 'severe' "
        "(choose from 'info', 'low', 'medium', 'high', 'critical')"
    ]


def test_the_parser_knows_every_severity() -> None:
    assert tuple(s.value for s in Severity) == SEVERITIES


def test_a_warm_scan_imports_neither_scapy_nor_yaml(tmp_path: Path) -> None:
    cache_dir, port = tmp_path / "cache", closed_port()
    # Given a first scan with an empty cache: the SNMP payloads need scapy, the profiles yaml
    cold_modules, cold = scan_results(cache_dir, port, tmp_path)
    assert {"scapy", "yaml"} <= cold_modules
    # When the same scan runs again
    warm_modules, warm = scan_results(cache_dir, port, tmp_path)
    # Then it finds the same and never imports scapy, yaml, jinja2 or psutil
    assert (
        warm
        == cold
        == sorted([(port, "tcp", "closed", "conn-refused"), (161, "udp", "closed", "port-unreach")])
    )
    assert sorted(warm_modules & {"scapy", "yaml", "jinja2", "psutil"}) == []
    # nor importlib.metadata, which pydantic's plugin loader imports to find no plugins
    assert "importlib.metadata" not in warm_modules


def test_pydantic_plugins_are_looked_up_when_not_all_turned_off(tmp_path: Path) -> None:
    # Given plugins turned off by name only (pydantic must look the others up)
    argv = ["scan", "-q", "--no-db", "-p", f"T:{closed_port()}", "127.0.0.1"]
    code, _, modules = run_fresh(tmp_path, *argv, env={"PYDANTIC_DISABLE_PLUGINS": "nosuch"})
    # Then the scan runs with pydantic's own loader, which reads the installed entry points
    assert code == 0
    assert "importlib.metadata" in modules


def test_the_loader_given_in_advance_answers_as_pydantics_own() -> None:
    # With every plugin off, pydantic's own loader (in a fresh interpreter, where nothing
    # stands in for it) finds no plugins, as the one scanner/cli/__init__.py gives in advance
    code = "from pydantic.plugin._loader import get_plugins; print(list(get_plugins()))"
    env = {**os.environ, "PYDANTIC_DISABLE_PLUGINS": "__all__"}
    done = run_python(code, env=env)
    assert done.stdout.split() == ["[]"]
    assert list(no_plugins_loader().get_plugins()) == []


@pytest.mark.parametrize("damage", ["garbage", "truncated", "wrong-shape", "foreign"])
def test_a_damaged_or_foreign_cache_is_ignored_and_rebuilt(damage: str, tmp_path: Path) -> None:
    cache_dir, port = tmp_path / "cache", closed_port()
    _, expected = scan_results(cache_dir, port, tmp_path)
    files = sorted(cache_dir.glob("*.json"))
    # (the registry in use is the bundled IANA snapshot, whose index is cached too)
    assert {f.name.split("-")[0] for f in files} == {"profiles", "payloads", "registry"}
    # Given every cache file damaged (or writable by others: someone else's, as far as we know)
    for path in files:
        text = path.read_text()
        if damage == "garbage":
            path.write_bytes(b"\x00\xffnot json")
        elif damage == "truncated":
            path.write_text(text[: len(text) // 2])
        elif damage == "wrong-shape":
            envelope = json.loads(text)
            envelope["data"] = [{"id": 1}] if isinstance(envelope["data"], list) else "zz"
            path.write_text(json.dumps(envelope))
        else:
            path.chmod(0o666)
    # When the scan runs again
    modules, results = scan_results(cache_dir, port, tmp_path)
    # Then it rebuilt what it needed (scapy and yaml again) and found the same
    assert results == expected
    assert {"scapy", "yaml"} <= modules
    for path in cache_dir.glob("*.json"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert json.loads(path.read_text())["format"] == cache.FORMAT


@pytest.fixture
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("GHOSTPORT_CACHE_DIR", str(folder))
    return folder


def test_a_cache_for_changed_profile_content_is_not_used(own_cache: Path, tmp_path: Path) -> None:
    # Given a user profile loaded once (and so cached)
    source = (REPO / "profiles" / "legacy-mgmt.yaml").read_text()
    path = tmp_path / "legacy-mgmt.yaml"
    path.write_text(source)
    first = load_profiles_cached([str(path)])
    assert first == load_profiles([str(path)])
    assert load_profiles_cached([str(path)]) == first  # now from the cache
    assert list(own_cache.glob("profiles-*.json"))
    # When the file changes (a service renamed)
    assert "name: SNMP trap receiver" in source
    path.write_text(source.replace("name: SNMP trap receiver", "name: Changed SNMP trap", 1))
    # Then the cached profiles are not used: the load matches the new content
    second = load_profiles_cached([str(path)])
    assert second == load_profiles([str(path)])
    assert second != first
    assert any(s.name.startswith("Changed SNMP trap") for s in second[0].services)


def test_cached_profiles_come_back_exactly_as_validated(own_cache: Path) -> None:
    # Given every bundled profile, alone and together, loaded once (and so cached)
    for names in [[name] for name in bundled_profile_ids()] + [bundled_profile_ids()]:
        validated = load_profiles(names)
        assert load_profiles_cached(names) == validated
        # When they are read back from the cache
        cached = load_profiles_cached(names)
        # Then they are the validated ones, type for type (repr shows enums, tuples, models)
        assert repr(cached) == repr(validated), names
    assert len(list(own_cache.glob("profiles-*.json"))) == len(bundled_profile_ids()) + 1


def test_a_warm_profile_load_builds_no_validator(own_cache: Path) -> None:
    # Given the default profile cached by one process
    load_profiles_cached(["legacy-mgmt"])
    # When another process loads it
    script = (
        "import sys; from scanner.profile_cache import load_profiles_cached\n"
        "from scanner.profiles import ProbeModel, ServiceModel\n"
        "profiles = load_profiles_cached(['legacy-mgmt'])\n"
        "print(len(profiles[0].services), 'yaml' in sys.modules,"
        " ProbeModel.__pydantic_complete__, ServiceModel.__pydantic_complete__)"
    )
    done = run_python(script, env={**os.environ, "GHOSTPORT_CACHE_DIR": str(own_cache)})
    # Then it parsed no YAML and built no pydantic validator for them
    count, yaml_loaded, probe_built, service_built = done.stdout.split()
    assert int(count) > 0
    assert (yaml_loaded, probe_built, service_built) == ("False", "False", "False")


@pytest.mark.parametrize(
    ("field", "damage"),
    [
        ("wait", 600.0),  # the right type, out of the model's range
        ("transport", "sctp"),  # not a Transport
        ("retries", "3"),  # a string for an int
    ],
)
def test_a_damaged_profile_cache_is_not_used(own_cache: Path, field: str, damage: Any) -> None:
    # Given the default profile cached
    expected = load_profiles(["legacy-mgmt"])
    load_profiles_cached(["legacy-mgmt"])
    (kept,) = own_cache.glob("profiles-*.json")
    envelope = json.loads(kept.read_text())
    # When one probe's field is changed in the file (its digest left as it was)
    envelope["data"]["profiles"][0]["probes"][0][field] = damage
    kept.write_text(json.dumps(envelope))
    # Then the cache is not used: the profiles are the validated ones from the YAML
    assert repr(load_profiles_cached(["legacy-mgmt"])) == repr(expected)
    # And the entry was written again, whole
    assert json.loads(kept.read_text())["data"]["profiles"][0]["probes"][0][field] != damage


def test_payloads_follow_their_builder_arguments(own_cache: Path) -> None:
    # Given an SNMP probe whose payload was built once (and so cached)
    probe = ProbeModel.model_validate(
        {"id": "snmp", "transport": "udp", "builder": "snmp-get", "args": {"community": "a"}}
    )
    literal = ProbeModel.model_validate({"id": "text", "transport": "tcp", "payload": "hi"})
    first = built_payloads([probe, literal])
    assert first == [payload_of(probe), b"hi"]
    assert built_payloads([probe, literal]) == first  # now from the cache
    # When the same probe id gets another community
    changed = probe.model_copy(update={"args": {"community": "b"}})
    # Then the payload is built again for it
    again = built_payloads([changed, literal])
    assert again == [build_payload("snmp-get", {"community": "b"}, "t"), b"hi"]
    assert again != first


def _registry_csv(path: Path, name: str) -> None:
    rows = [",".join(COLUMNS), f"{name},391,udp,SynOptics SNMP,,,,,,,,", "echo,7,tcp,Echo,,,,,,,,"]
    path.write_text("\n".join(rows) + "\n")


def test_a_registry_cache_follows_the_file_and_survives_damage(
    own_cache: Path, tmp_path: Path
) -> None:
    # Given a registry file parsed once (and so cached)
    csv_path = tmp_path / "ports.csv"
    _registry_csv(csv_path, "synoptics-relay")
    assert parse_cached(csv_path) == parse_iana_csv(csv_path)
    (kept,) = own_cache.glob("registry-*.json")
    envelope = json.loads(kept.read_text())
    # When the cached rows are damaged: a port range no registry has
    envelope["data"][2][0] = 99999
    kept.write_text(json.dumps(envelope))
    # Then they are not used
    assert parse_cached(csv_path) == parse_iana_csv(csv_path)
    # And when the file itself changes, its new rows are what comes back
    _registry_csv(csv_path, "synoptics-changed")
    assert parse_cached(csv_path)[0].name == "synoptics-changed"


def test_the_cache_never_fails_a_command(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a cache dir that cannot exist
    monkeypatch.setenv("GHOSTPORT_CACHE_DIR", "/proc/version/ghostport")
    # Then loading still works, from the files
    assert load_profiles_cached(["legacy-mgmt"]) == load_profiles(["legacy-mgmt"])
