"""The IANA port registry: parser, indexes, sources, update, and registry: port specs."""

from __future__ import annotations

import gzip
import http.server
import json
import os
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from scanner.cli import ghostport_main, scan_main
from scanner.errors import PortSpecError, RegistryError
from scanner.models import Transport
from scanner.ports import parse_port_spec
from scanner.registry import (
    Registry,
    RegistryEntry,
    RegistrySource,
    cache_file,
    load_registry,
    parse_iana_csv,
    update_cache,
)
from tests.support import closed_port

HEADER = (
    "Service Name,Port Number,Transport Protocol,Description,Assignee,Contact,Registration Date,"
    "Modification Date,Reference,Service Code,Unauthorized Use Reported,Assignment Notes\r\n"
)


@pytest.fixture
def registry(snapshot: Path) -> Registry:
    return load_registry(str(snapshot))


def test_snapshot_counts(snapshot: Path) -> None:
    entries = parse_iana_csv(snapshot)
    assert len(entries) == 14_512
    with_port = [e for e in entries if e.port_low is not None]
    assert len(with_port) == 13_454
    # 763 rows are written as ranges; 6 of them name one port ("4748-4748")
    assert sum(1 for e in with_port if e.port_high != e.port_low) == 757
    assert registry_of(entries).at(4748, "") == []  # unassigned rows name no service
    assert Counter(e.transport for e in entries) == {
        "tcp": 6_593,
        "udp": 6_351,
        "sctp": 93,
        "dccp": 11,
        "": 1_464,
    }
    assert registry_of(entries).newest_date() == "2026-04-09"


def registry_of(entries: list[RegistryEntry]) -> Registry:
    return Registry(tuple(entries), RegistrySource("test"))


def test_multi_line_fields_and_short_dates(registry: Registry) -> None:
    whois = registry.named("whoispp")
    assert whois and "\n" in whois[0].description
    commandport = registry.at(3416, "tcp")[0]
    assert commandport.registration_date == "2002-02"


@pytest.mark.parametrize(
    ("port", "name", "description"),
    [
        (391, "synotics-relay", "SynOptics SNMP Relay Port"),
        (392, "synotics-broker", "SynOptics Port Broker Port"),
        (412, "synoptics-trap", "Trap Convention Port"),
        (3416, "commandport", "AirMobile IS Command Port"),
        (161, "snmp", "SNMP"),
        (162, "snmptrap", "SNMPTRAP"),
        (705, "agentx", "AgentX"),
    ],
)
def test_rows_of_the_ports_we_care_about(
    registry: Registry, port: int, name: str, description: str
) -> None:
    for transport in ("tcp", "udp"):
        entry = registry.at(port, transport)[0]
        assert (entry.name, entry.description) == (name, description)
    assert registry.at(412, "udp")[0].assignee == "[Illan_Raab]"


def test_ranges_are_indexed(registry: Registry) -> None:
    ranged = next(e for e in registry.entries if e.name and e.port_low != e.port_high)
    assert ranged.port_low is not None and ranged.port_high is not None
    middle = (ranged.port_low + ranged.port_high) // 2
    assert ranged in registry.at(middle, ranged.transport)
    assert registry.at(0, "tcp") == []  # "Reserved" names no service


def test_name_glob_and_word_lookups(registry: Registry) -> None:
    assert {e.port_low for e in registry.named("synotics-*")} == {391, 392}
    assert {e.port_low for e in registry.named("SYNOPTICS-TRAP")} == {412}
    assert {e.port_low for e in registry.search("synoptics")} == {391, 392, 412}
    assert {e.port_low for e in registry.query("airmobile")} == {3416}
    assert [e.transport for e in registry.query("3416/udp")] == ["udp"]


@pytest.mark.parametrize(
    ("body", "line", "problem"),
    [
        ("name,port\r\n", 1, "not the IANA port registry"),
        (HEADER + "telnet,23,tcp,Telnet,,,,,,,,\r\nftp,21,tcp,FTP", 3, "middle of a line"),
        (HEADER + 'telnet,23,tcp,"Telnet\r\n', 2, "unexpected end of data"),
        (HEADER + 'telnet,23,tcp,"Telnet,,,,,,,,\r\n', 2, "unexpected end of data"),
        (HEADER + "telnet,23,tcp,Telnet,,,,,,,\r\n", 2, "11 fields"),
        (HEADER + "telnet,23,tcp,Telnet,,,,,,,,\r\nbig,70000,tcp,Big,,,,,,,,\r\n", 3, "70000"),
        (HEADER + "weird,7,quic,Weird,,,,,,,,\r\n", 2, "quic"),
        (HEADER + "when,7,tcp,When,,,21/04/2002,,,,,\r\n", 2, "21/04/2002"),
        ("", 0, "empty"),
    ],
)
def test_malformed_files_name_file_and_line(
    tmp_path: Path, body: str, line: int, problem: str
) -> None:
    path = tmp_path / "broken.csv"
    path.write_text(body, newline="")
    with pytest.raises(RegistryError) as caught:
        parse_iana_csv(path)
    message = str(caught.value)
    assert str(path) in message
    assert problem in message
    if line:
        assert f"{path}:{line}:" in message


def test_truncated_snapshot_never_half_loads(snapshot: Path, tmp_path: Path) -> None:
    data = snapshot.read_bytes()
    for cut in (len(data) // 3, len(data) // 2 + 7, len(data) - 5):
        path = tmp_path / f"cut-{cut}.csv"
        path.write_bytes(data[:cut])
        with pytest.raises(RegistryError, match=str(path)):
            parse_iana_csv(path)


def write_csv(path: Path, *rows: str) -> Path:
    path.write_text(HEADER + "".join(row + "\r\n" for row in rows), newline="")
    return path


def test_source_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GHOSTPORT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("GHOSTPORT_REGISTRY", raising=False)
    services = tmp_path / "services"
    services.write_text("# comment\nfrom-services  412/tcp  alias  # Services file\n")
    facts = [RegistryEntry("from-profiles", 412, 412, "tcp", "Profile facts")]
    explicit = write_csv(tmp_path / "explicit.csv", "from-flag,412,tcp,Flag,,,,,,,,")
    env = write_csv(tmp_path / "env.csv", "from-env,412,tcp,Env,,,,,,,,")
    plain = write_csv(tmp_path / "bundled.csv", "from-bundled,412,tcp,Bundled,,,,,,,,")
    bundled = tmp_path / "bundled.csv.gz"
    bundled.write_bytes(gzip.compress(plain.read_bytes()))
    packaged: Path | None = None  # no bundled snapshot, as in a package built without one

    def name() -> str:
        found = load_registry(None, lambda: facts, str(services), packaged)
        return f"{found.source.kind}:{found.at(412, 'tcp')[0].name}"

    services_only = load_registry(None, lambda: [], str(services), None)
    assert services_only.source.kind == str(services)
    assert services_only.at(412, "tcp")[0].description == "Services file"
    assert name() == "profiles:from-profiles"
    packaged = bundled
    assert name() == "bundled:from-bundled"
    cache_file().parent.mkdir(parents=True, exist_ok=True)  # the index cache may be there
    write_csv(cache_file(), "from-cache,412,tcp,Cache,,,,,,,,")
    assert name() == "cache:from-cache"
    monkeypatch.setenv("GHOSTPORT_REGISTRY", str(env))
    assert name() == "GHOSTPORT_REGISTRY:from-env"
    assert load_registry(str(explicit)).at(412, "tcp")[0].name == "from-flag"
    assert (
        load_registry(None, lambda: [], str(tmp_path / "none")).source.kind == "GHOSTPORT_REGISTRY"
    )
    monkeypatch.delenv("GHOSTPORT_REGISTRY")
    (tmp_path / "cache" / "service-names-port-numbers.csv").unlink()
    assert name() == "bundled:from-bundled"
    assert load_registry(None, lambda: [], str(tmp_path / "none"), None).source.kind == "none"


class _Handler(http.server.BaseHTTPRequestHandler):
    routes: ClassVar[dict[str, tuple[bytes, int | None]]] = {}

    def do_GET(self) -> None:
        body, length = self.routes.get(self.path, (b"not here", None))
        self.send_response(200 if self.path in self.routes else 404)
        self.send_header("Content-Length", str(length if length is not None else len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_server(snapshot: Path) -> Iterator[str]:
    data = snapshot.read_bytes()
    _Handler.routes = {
        "/good.csv": (data, None),
        "/short.csv": (data[: len(data) // 2], len(data)),  # connection ends early
        "/cut.csv": (data[: len(data) // 2 + 3], None),  # complete response, cut file
        "/page.html": (b"<!doctype html><title>IANA</title><p>moved", None),
        "/tiny.csv": ((HEADER + "telnet,23,tcp,Telnet,,,,,,,,\r\n").encode(), None),
    }
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_update_replaces_the_cache_only_with_a_valid_registry(
    http_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GHOSTPORT_CACHE_DIR", str(tmp_path / "cache"))
    updated = update_cache(f"{http_server}/good.csv", timeout=10)
    assert len(updated) == 14_512
    assert (updated.source.kind, updated.source.date) == ("cache", "2026-04-09")
    before = cache_file().read_bytes()
    for path, problem in [
        ("/short.csv", "could not download"),
        ("/cut.csv", "not a valid registry"),
        ("/page.html", "not a valid registry"),
        ("/tiny.csv", "only 1 port entries"),
        ("/missing.csv", "404"),
    ]:
        with pytest.raises(RegistryError, match=problem) as caught:
            update_cache(f"{http_server}{path}", timeout=10)
        assert "cache is unchanged" in str(caught.value)
        assert cache_file().read_bytes() == before, path
    unreachable = f"http://127.0.0.1:{closed_port()}/registry.csv"
    with pytest.raises(RegistryError, match="could not download"):
        update_cache(unreachable, timeout=5)
    assert cache_file().read_bytes() == before
    # no download left behind (beside the CSV: its parsed rows and port index, for the next scan)
    left = {p.name for p in cache_file().parent.iterdir()} - {cache_file().name}
    assert left and all(name.startswith("registry-") for name in left), left


def test_update_and_info_through_the_cli(
    http_server: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("GHOSTPORT_CACHE_DIR", str(tmp_path / "cache"))
    assert ghostport_main(["registry", "update", "--url", f"{http_server}/good.csv"]) == 0
    assert "entries: 14,512" in capsys.readouterr().out
    assert ghostport_main(["registry", "info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info == {
        "source": "cache",
        "path": str(cache_file()),
        "entries": 14_512,
        "newest_date": "2026-04-09",
        "date": "2026-04-09",
    }
    assert ghostport_main(["registry", "update", "--url", f"{http_server}/page.html"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cache is unchanged" in err[0]


def test_registry_port_items(registry: Registry) -> None:
    spec = parse_port_spec("registry:synotics-*", resolve_name=registry.ports_for)
    assert spec.tcp == spec.udp == (391, 392)
    spec = parse_port_spec("T:registry:synoptics-trap", resolve_name=registry.ports_for)
    assert (spec.tcp, spec.udp) == ((412,), ())
    spec = parse_port_spec("23,registry:synotics-relay", resolve_name=registry.ports_for)
    assert spec.tcp == spec.udp == (23, 391)
    spec = parse_port_spec("registry:commandport", (Transport.UDP,), registry.ports_for)
    assert spec.udp == (3416,)
    with pytest.raises(PortSpecError, match="did you mean synotics-relay"):
        parse_port_spec("registry:synotics-rely", resolve_name=registry.ports_for)


def test_scan_lists_412_with_its_registry_entry(
    snapshot: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GHOSTPORT_REGISTRY", str(snapshot))
    code = scan_main(
        [
            "-q",
            "-p",
            "registry:synoptics-trap",
            "--all-states",
            "--timeout",
            "0.3",
            "--json",
            "-",
            "127.0.0.1",
        ]
    )
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    listed = sorted(
        (r["port"], r["proto"], r["registry"]["name"], r["registry"]["description"])
        for r in doc["results"]
    )
    assert listed == [
        (412, "tcp", "synoptics-trap", "Trap Convention Port"),
        (412, "udp", "synoptics-trap", "Trap Convention Port"),
    ]
    assert (
        doc["scan"]["registry_source"]
        == f"IANA, 2026-04-09 snapshot (GHOSTPORT_REGISTRY {snapshot})"
    )


def test_registry_queries_through_the_cli(
    snapshot: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert ghostport_main(["registry", "--registry", str(snapshot), "391"]) == 0
    out = capsys.readouterr().out
    assert "391/tcp" in out and "391/udp" in out and "SynOptics SNMP Relay Port" in out
    assert ghostport_main(["registry", "--registry", str(snapshot), "3416/udp", "--json"]) == 0
    [entry] = json.loads(capsys.readouterr().out)
    assert entry["name"] == "commandport"
    assert entry["assignee"] == entry["contact"] == "[Mike_Klein]"
    assert entry["registration_date"] == "2002-02"
    assert ghostport_main(["registry", "--registry", str(snapshot), "synoptics"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ("synotics-relay", "synotics-broker", "synoptics-trap"))


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["registry", "--registry", "/nonexistent.csv", "391"], "/nonexistent.csv"),
        (["registry"], "give a port"),
        (["scan", "-p", "registry:no-such-service-xyz", "127.0.0.1"], "no-such-service-xyz"),
    ],
)
def test_registry_mistakes_are_one_line(
    argv: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert ghostport_main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and named in err[0]


def test_cache_dir_is_isolated_for_tests() -> None:
    assert "ghostport-test-cache-" in os.environ["GHOSTPORT_CACHE_DIR"]


def test_a_cache_that_cannot_be_checked_counts_as_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a cache path stat() refuses with an error is_file() lets through (a home we cannot
    # enter gives EACCES; a name over the kernel's limit gives ENAMETOOLONG, also as root)
    monkeypatch.setenv("GHOSTPORT_CACHE_DIR", str(tmp_path / ("x" * 300)))
    monkeypatch.delenv("GHOSTPORT_REGISTRY", raising=False)
    with pytest.raises(OSError):
        cache_file().is_file()
    # Then the registry falls through to the next source instead of crashing
    assert load_registry(None, lambda: [], str(tmp_path / "none")).source.kind == "bundled"
