"""nmap's spellings: each one through the real CLI and real scans of loopback servers; the
flags ghostport does not have refused by name; a file name given as a target refused with
nothing sent, counted by a firewall in the test's own namespace."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from scanner.cli import ghostport_main, scan_main
from scanner.cli.nmapflags import TIMING_TEMPLATES, describe_plan, translate_argv
from scanner.engine import EngineOptions
from scanner.errors import UsageError
from scanner.models import ScanDocument
from scanner.ports import TOP_TCP_PORTS, TOP_UDP_PORTS, PortSpec, top_ports
from scanner.report.nmaptext import render_nmap_grepable, render_nmap_normal
from scanner.scan import ScanConfig
from tests.conftest import REPO, Netns
from tests.support import TcpServer, UdpServer, closed_port, servers
from tests.test_cli import validate
from tests.test_report import NMAP_DTD

# What a telnet daemon says first: IAC DO TERMINAL-TYPE, IAC DO NAWS, IAC WILL ECHO, a prompt.
TELNET_BANNER = b"\xff\xfd\x18\xff\xfd\x1f\xff\xfb\x01login: "


def _one_error_line(captured: pytest.CaptureResult[str]) -> str:
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err + captured.out
    return lines[0]


def _valid_nmap_xml(text: str) -> ET.Element:
    root = ET.fromstring(text.split("-->", 1)[1])
    assert root.tag == "nmaprun"
    if NMAP_DTD.is_file():
        from lxml import etree

        dtd = etree.DTD(str(NMAP_DTD))
        parsed = etree.fromstring(text.encode())
        assert dtd.validate(parsed), dtd.error_log.filter_from_errors()
    return root


def _scan_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    code = scan_main(["-q", "--json", "-", *argv])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    document: dict[str, Any] = json.loads(captured.out)
    validate(document)
    return code, document


def test_o_a_writes_the_three_nmap_files_and_nothing_else(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a telnet daemon, a silent UDP service and a closed port on loopback
    monkeypatch.chdir(tmp_path)
    telnet, silent = TcpServer(banner=TELNET_BANNER), UdpServer(reply=None)
    with servers(telnet, silent):
        shut = closed_port()
        # When an nmap user asks for all three formats
        code = scan_main(
            [
                "-q",
                "-oA",
                "audit",
                "--banner-wait",
                "0.5",
                "--timeout",
                "0.3",
                "--retries",
                "0",
                "-p",
                f"T:{telnet.port},{shut},U:{silent.port}",
                "127.0.0.1",
            ]
        )
    assert code == 0, capsys.readouterr().err
    # Then exactly BASE.xml, BASE.nmap and BASE.gnmap exist (no `X.*`, no stray target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audit.gnmap", "audit.nmap", "audit.xml"]
    root = _valid_nmap_xml((tmp_path / "audit.xml").read_text())
    port = root.find(f"./host/ports/port[@portid='{telnet.port}'][@protocol='tcp']")
    assert port is not None and port.find("state").get("state") == "open"  # type: ignore[union-attr]
    normal = (tmp_path / "audit.nmap").read_text()
    assert normal.startswith("# Nmap-style output by ghostport ")
    assert "Nmap scan report for 127.0.0.1\n" in normal
    assert re.search(r"^PORT +STATE +SERVICE +REASON", normal, re.MULTILINE)
    assert re.search(rf"^{telnet.port}/tcp +open +telnet +syn-ack", normal, re.MULTILINE)
    assert re.search(rf"^{silent.port}/udp +open\|filtered +\S+ +no-response", normal, re.MULTILINE)
    assert "|_ghostport: high legacy: " in normal
    assert "Not shown: 1 closed tcp port\n" in normal
    assert re.search(
        r"^# Nmap done at .+ -- 1 IP address \(1 host up\) scanned in [0-9.]+ seconds$",
        normal,
        re.MULTILINE,
    )
    grepable = (tmp_path / "audit.gnmap").read_text().splitlines()
    assert grepable[0].startswith("# Nmap-style output by ghostport ")
    assert grepable[1] == "Host: 127.0.0.1 ()\tStatus: Up"
    host, ports, ignored = grepable[2].split("\t")
    assert host == "Host: 127.0.0.1 ()"
    listed = ports.removeprefix("Ports: ").split(", ")
    assert f"{telnet.port}/open/tcp//telnet//" in listed[0] and listed[0].endswith("legacy/")
    assert listed[1].startswith(f"{silent.port}/open|filtered/udp//")
    assert ignored == "Ignored State: closed (1)"
    assert grepable[3].startswith("# Nmap done at ")


@pytest.mark.parametrize(
    "words",
    [
        [flag, f"out.{ending}"] if apart else [f"{flag}out.{ending}"]
        for flag, ending in (("-oX", "xml"), ("-oN", "nmap"), ("-oG", "gnmap"))
        for apart in (True, False)
    ],
)
def test_each_nmap_output_flag_glued_or_apart(
    words: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    path = "out." + words[-1].rsplit(".", 1)[1]
    with servers(server := TcpServer()):
        code = scan_main(["-q", "--tcp", "-p", str(server.port), *words, "127.0.0.1"])
    assert code == 0, capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == [path]
    text = (tmp_path / path).read_text()
    if path.endswith(".xml"):
        _valid_nmap_xml(text)
    else:
        assert f"{server.port}/open/tcp" in text or re.search(
            rf"^{server.port}/tcp +open", text, re.M
        )


def test_o_base_and_xml_keep_ghostports_meaning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with servers(server := TcpServer()):
        code = scan_main(
            [
                "-q",
                "--tcp",
                "-p",
                str(server.port),
                "-o",
                str(tmp_path / "run"),
                "--xml",
                str(tmp_path / "other.xml"),
                "127.0.0.1",
            ]
        )
    assert code == 0, capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "other.xml",
        "run.csv",
        "run.html",
        "run.json",
    ]
    _valid_nmap_xml((tmp_path / "other.xml").read_text())


@pytest.mark.parametrize("flag", ["-oN", "-oG", "-oX"])
def test_nmap_output_to_stdout_keeps_the_listing_off_it(
    flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with servers(server := TcpServer()):
        code = scan_main(["--tcp", "-p", str(server.port), flag, "-", "127.0.0.1"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert captured.out.startswith("<?xml" if flag == "-oX" else "# Nmap-style output by ghostport")
    assert "\tsyn-ack" not in captured.out, "the terminal's tab lines stay off a redirected output"
    if flag == "-oX":
        _valid_nmap_xml(captured.out)


def test_two_outputs_on_stdout_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    code = scan_main(["--json", "-", "-oG", "-", "127.0.0.1"])
    assert code == 2
    assert "only one can" in _one_error_line(capsys.readouterr())


def test_an_unwritable_nmap_output_stops_the_scan_before_the_first_probe(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with servers(server := TcpServer()):
        code = scan_main(
            [
                "-q",
                "--tcp",
                "-p",
                str(server.port),
                "-oA",
                str(tmp_path / "missing" / "base"),
                "127.0.0.1",
            ]
        )
        connections = server.connections
    assert code == 2
    assert "base.xml" in _one_error_line(capsys.readouterr())
    assert connections == 0


def test_open_keeps_only_open_ports_in_the_nmap_outputs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given an open and a closed port, closed ones listed too (--all-states)
    with servers(server := TcpServer()):
        shut = closed_port()
        ports = ["--all-states", "--tcp", "-p", f"{server.port},{shut}", "127.0.0.1"]
        assert scan_main(["-q", "-oA", str(tmp_path / "all"), *ports]) == 0
        # When --open is added
        assert scan_main(["-q", "--open", "-oA", str(tmp_path / "open"), *ports]) == 0
    capsys.readouterr()
    every = (tmp_path / "all.nmap").read_text()
    only = (tmp_path / "open.nmap").read_text()
    # Then the closed port is left out, and counted under Not shown
    assert re.search(rf"^{shut}/tcp +closed +\S+ +conn-refused", every, re.MULTILINE)
    assert f"{shut}/tcp" not in only and "Not shown: 1 closed tcp port" in only
    assert f"{shut}/closed/tcp" in (tmp_path / "all.gnmap").read_text()
    assert f"{shut}/closed/tcp" not in (tmp_path / "open.gnmap").read_text()
    xml_ports = _valid_nmap_xml((tmp_path / "open.xml").read_text()).findall("./host/ports/port")
    assert [p.get("portid") for p in xml_ports] == [str(server.port)]


@pytest.mark.parametrize("number", range(6))
def test_timing_templates_set_rate_timeout_and_retries(
    number: int, capsys: pytest.CaptureFixture[str]
) -> None:
    template = TIMING_TEMPLATES[number]
    _, doc = _scan_json(capsys, f"-T{number}", "--tcp", "-p", str(closed_port()), "127.0.0.1")
    options = doc["scan"]["options"]
    assert (options["rate"], options["timeout_s"], options["retries"]) == (
        template.rate,
        template.timeout,
        template.retries,
    )


def test_explicit_timing_flags_win_over_the_template(capsys: pytest.CaptureFixture[str]) -> None:
    port = str(closed_port())
    _, doc = _scan_json(
        capsys,
        "--timeout",
        "2",
        "-T",
        "insane",
        "--max-retries",
        "3",
        "--tcp",
        "-p",
        port,
        "127.0.0.1",
    )
    assert (doc["scan"]["options"]["timeout_s"], doc["scan"]["options"]["retries"]) == (2.0, 3)
    _, doc = _scan_json(capsys, "--max-rate", "50", "--tcp", "-p", port, "127.0.0.1")
    assert doc["scan"]["options"]["rate"] == 50.0
    assert scan_main(["-T6", "127.0.0.1"]) == 2
    assert "'6' is not a timing template" in _one_error_line(capsys.readouterr())


def test_accepted_nmap_flags_change_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    with servers(server := TcpServer()):
        plain_args = ["--tcp", "-p", str(server.port), "--seed", "7", "127.0.0.1"]
        _, plain = _scan_json(capsys, *plain_args)
        _, nmapish = _scan_json(capsys, "-n", "-Pn", "-sV", "--reason", *plain_args)
    key = [(r["port"], r["state"], r["reason"]) for r in plain["results"]]
    assert key == [(server.port, "open", "syn-ack")]
    assert [(r["port"], r["state"], r["reason"]) for r in nmapish["results"]] == key


def test_verbosity_says_the_plan(capsys: pytest.CaptureFixture[str]) -> None:
    port = str(closed_port())
    assert scan_main(["--tcp", "-p", port, "--seed", "42", "127.0.0.1"]) == 0
    quiet = capsys.readouterr().err
    assert scan_main(["-v", "--tcp", "-p", port, "--seed", "42", "127.0.0.1"]) == 0
    verbose = capsys.readouterr().err
    assert scan_main(["-vv", "--tcp", "-p", port, "--seed", "42", "127.0.0.1"]) == 0
    very = capsys.readouterr().err
    assert "seed 42" not in quiet
    assert f"tcp ports: {port}" in verbose and "seed 42; timeout 1 s, retries 1" in verbose
    assert "profiles: legacy-mgmt" not in verbose and "profiles: legacy-mgmt" in very


def test_every_scan_says_its_transports_at_start(capsys: pytest.CaptureFixture[str]) -> None:
    port = str(closed_port())
    assert scan_main(["-p", port, "127.0.0.1", "127.0.0.2"]) == 0
    both = capsys.readouterr().err.splitlines()[0]
    assert both == (
        "scanning 2 ports on tcp and udp (1 tcp, 1 udp) of 2 hosts; "
        "tcp and udp is ghostport's default: -sT or -sU for one"
    )
    assert scan_main(["-sT", "-p", port, "127.0.0.1"]) == 0
    assert capsys.readouterr().err.splitlines()[0] == "scanning 1 port on tcp (1 tcp) of 1 host"
    assert scan_main(["-q", "-p", port, "127.0.0.1"]) == 0
    assert "scanning" not in capsys.readouterr().err


def test_all_ports_on_both_transports_are_said_plainly() -> None:
    every = tuple(range(1, 65536))
    config = ScanConfig(("127.0.0.1",), (), PortSpec(every, every), EngineOptions(), seed=1)
    line = describe_plan(config, 1, default_transports=True)
    assert line.startswith("scanning 131,070 ports on tcp and udp (65,535 tcp, 65,535 udp)")
    assert "nmap's -p- is tcp only: add -sT for that" in line
    assert "default" not in describe_plan(config, 1, default_transports=False)


def _expand(ranges: str) -> set[int]:
    ports: set[int] = set()
    for part in ranges.split(","):
        low, _, high = part.partition("-")
        ports.update(range(int(low), int(high or low) + 1))
    return ports


def test_top_ports_and_fast(capsys: pytest.CaptureFixture[str]) -> None:
    _, doc = _scan_json(capsys, "-F", "--tcp", "--timeout", "0.2", "127.0.0.1")
    assert doc["scan"]["port_counts"] == {"tcp": 100, "udp": 0}
    tcp = _expand(doc["scan"]["ports"]["tcp"])
    assert {391, 3416, 23} <= tcp, "the profile's own ports come first"
    assert {80, 443, 22, 3389} <= tcp, "then the most common services"
    _, doc = _scan_json(
        capsys, "--top-ports", "3", "-sU", "--timeout", "0.2", "--retries", "0", "127.0.0.1"
    )
    assert doc["scan"]["port_counts"] == {"tcp": 0, "udp": 3}
    assert scan_main(["-F", "-p", "23", "127.0.0.1"]) == 2
    assert "give one of them" in _one_error_line(capsys.readouterr())


def test_top_ports_order_is_fixed() -> None:
    own = PortSpec((391, 3416), (161,))
    picked = top_ports(4, own)
    assert picked.tcp == tuple(sorted((391, 3416, *TOP_TCP_PORTS[:2])))
    assert picked.udp == tuple(sorted((161, *[p for p in TOP_UDP_PORTS if p != 161][:3])))
    assert len(top_ports(1000).tcp) == 1000 == len(set(top_ports(1000).tcp))
    registered = top_ports(len(TOP_TCP_PORTS) + 1, registered=lambda port, t: port == 1)
    assert 1 in registered.tcp


def test_targets_from_stdin_and_excludefile(tmp_path: Path) -> None:
    with servers(server := TcpServer()):
        excluded = tmp_path / "skip.list"
        excluded.write_text("127.0.0.2\n")
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "scanner",
                "scan",
                "-q",
                "--json",
                "-",
                "--tcp",
                "-p",
                str(server.port),
                "-iL",
                "-",
                "--excludefile",
                str(excluded),
            ],
            input="127.0.0.1 # the server\n127.0.0.2\n",
            capture_output=True,
            text=True,
            timeout=60,
            cwd=REPO,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["summary"]["hosts"] == 1
    assert [(r["host"], r["state"]) for r in doc["results"]] == [("127.0.0.1", "open")]


@pytest.mark.parametrize(
    ("flag", "advice"),
    [
        ("-sA", "-sS (SYN)"),
        ("-O", "OS detection"),
        ("-A", "--profile"),
        ("-sC", "--profile"),
        ("--script=vuln", "--profile"),
        ("-6", "IPv6 addresses"),
        ("-PE", "never pings"),
        ("-PS22,80", "never pings"),
        ("--traceroute", "traceroute"),
        ("-sn", "ping-only"),
        ("-oS", "-oN"),
    ],
)
def test_unsupported_nmap_flags_are_refused_by_name_with_nothing_sent(
    flag: str, advice: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with servers(server := TcpServer()):
        code = ghostport_main(["scan", "--tcp", "-p", str(server.port), flag, "127.0.0.1"])
        connections = server.connections
    assert code == 2
    line = _one_error_line(capsys.readouterr())
    assert line.startswith(f"ghostport: error: {flag.split('=', maxsplit=1)[0]} is not supported: ")
    assert advice in line
    assert connections == 0


def test_a_bare_service_name_as_port_suggests_the_registry(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert scan_main(["-p", "telnet", "127.0.0.1"]) == 2
    assert "write registry:telnet" in _one_error_line(capsys.readouterr())


@pytest.mark.parametrize(
    "argv",
    [
        ["-o", "X", "out.xml"],
        ["scan.nmap"],
        ["127.0.0.1", "hosts.TXT"],
        ["report.html"],
        ["a.gnmap"],
    ],
)
def test_a_file_name_as_target_is_refused(
    argv: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    assert scan_main(argv) == 2
    line = _one_error_line(capsys.readouterr())
    assert "looks like a file name, not a host; nothing was sent" in line
    assert list(tmp_path.iterdir()) == [], "no output is created either"


def test_translate_argv_splits_glued_forms_and_skips_values() -> None:
    assert translate_argv(["-oXa.xml", "-oA", "b", "-v3"]) == [
        "-oX",
        "a.xml",
        "-oA",
        "b",
        "-v",
        "-v",
        "-v",
    ]
    assert translate_argv(["--title", "-O", "x"], takes_value={"--title"}) == ["--title", "-O", "x"]
    assert translate_argv(["--", "-O"]) == ["--", "-O"]
    with pytest.raises(UsageError, match="-oN needs a file name"):
        translate_argv(["-oN"])


def test_renderers_name_hostnames_and_partial_scans(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with servers(server := TcpServer()):
        code = scan_main(
            ["-q", "--tcp", "-p", str(server.port), "--json", str(tmp_path / "r.json"), "localhost"]
        )
    assert code == 0, capsys.readouterr().err
    document = ScanDocument.model_validate_json((tmp_path / "r.json").read_text())
    assert "Nmap scan report for localhost (127.0.0.1)" in render_nmap_normal(document)
    assert "Host: 127.0.0.1 (localhost)\tStatus: Up" in render_nmap_grepable(document)
    partial = document.model_copy(update={"complete": False})
    assert "these results are partial" in render_nmap_normal(partial)


COUNTING = """
table inet gp_count {
  counter probes { }
  chain output {
    type filter hook output priority 0;
    ip daddr 127.0.0.7 counter name "probes"
  }
}
"""


def _probes_counted(netns: Netns) -> int:
    listed = json.loads(
        netns.run("nft", "-j", "list", "counter", "inet", "gp_count", "probes").stdout
    )
    return int(next(item["counter"]["packets"] for item in listed["nftables"] if "counter" in item))


def test_a_file_name_target_that_resolves_is_still_refused_with_nothing_sent(
    netns: Netns, tmp_path: Path
) -> None:
    # Given a namespace whose hosts file resolves `out.xml` (and a control name) to a local
    # address with a listening service, and a firewall counter on every packet to it
    netns.etc_file("hosts", "127.0.0.1 localhost\n127.0.0.7 out.xml control.test\n")
    netns.serve("tcp:127.0.0.7:2323")
    netns.nft(COUNTING)
    # When the nmap habit `-oX out.xml` is typed the old way: `-o X` and a target `out.xml`
    code, _, stderr = netns.scan("-o", str(tmp_path / "X"), "-p", "2323", "out.xml")
    # Then the scan is refused and not one packet went to the address
    assert code == 2, stderr
    assert "'out.xml' looks like a file name" in stderr and "Traceback" not in stderr
    assert _probes_counted(netns) == 0
    assert list(tmp_path.iterdir()) == []
    # And the counter does count: the same address by an ordinary name is scanned
    code, doc, stderr = netns.scan("--tcp", "-p", "2323", "control.test")
    assert code == 0, stderr
    assert [(r["host"], r["state"]) for r in doc["results"]] == [("127.0.0.7", "open")]
    assert _probes_counted(netns) > 0
