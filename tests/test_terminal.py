"""The terminal: live lines and tables on a terminal (coloured) and piped (plain), the grepable
lines, -q, hostile text from outside, and the lab as a normal user with a scan inside it."""

from __future__ import annotations

import csv
import os
import re
import select
import shutil
import site
import socket
import socketserver
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from scanner.cli import ghostport_main
from scanner.lab.namespace import private_namespace_command
from scanner.models import PortResult, PortState, Reason, RegistryRef, ServiceMatch, Transport
from scanner.registry import COLUMNS
from scanner.report.terminal import result_line
from scanner.report.text import grepable_line
from tests.conftest import REPO, interrupt

HOSTILE_NAME = "evil\x1b[31m[bold red]x[/]"
HOSTILE_DESCRIPTION = "desc\x1b]0;pwned\x07 :smile: \u202eoops"
GREPABLE_FIELDS = 11
ANSI = re.compile(r"\x1b\[[0-9;]*m")


class _Banner(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.request.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")


class _Servers(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True


@pytest.fixture
def ssh_ports() -> Iterator[list[int]]:
    """Three SSH-speaking TCP ports on 127.0.0.1 (the kernel picks), stopped afterwards."""
    servers = [_Servers(("127.0.0.1", 0), _Banner) for _ in range(3)]
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers]
    for thread in threads:
        thread.start()
    try:
        yield sorted(s.server_address[1] for s in servers)
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


def _hostile_registry(tmp_path: Path, port: int) -> Path:
    """A registry naming one port with escape sequences, rich markup and a bidi override."""
    path = tmp_path / "registry.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        row = [""] * len(COLUMNS)
        row[0], row[1], row[2], row[3] = HOSTILE_NAME, str(port), "tcp", HOSTILE_DESCRIPTION
        writer.writerow(row)
    return path


def _scan_argv(ports: list[int], registry: Path, *extra: str) -> list[str]:
    return [
        "scan",
        "--no-db",
        "-sT",
        "--timeout",
        "1",
        "--retries",
        "0",
        "--registry",
        str(registry),
        "-p",
        ",".join(map(str, reversed(ports))),
        *extra,
        "127.0.0.1",
    ]


def _on_a_terminal(argv: list[str]) -> tuple[int, str]:
    """Runs `python -m scanner ARGV` with stdout and stderr on one pseudo-terminal."""
    master, slave = os.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "scanner", *argv],
        cwd=REPO,
        stdout=slave,
        stderr=slave,
        stdin=subprocess.DEVNULL,
        env={k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "TERM")},
    )
    os.close(slave)
    chunks: list[bytes] = []
    try:
        while select.select([master], [], [], 60)[0]:
            try:
                data = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(master)
    return process.returncode, b"".join(chunks).decode(errors="replace")


def _piped(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scanner", *argv],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        **kwargs,  # type: ignore[arg-type]
    )


def test_a_terminal_gets_colour_one_live_line_per_open_port_and_escaped_text(
    ssh_ports: list[int], tmp_path: Path
) -> None:
    code, shown = _on_a_terminal(_scan_argv(ssh_ports, _hostile_registry(tmp_path, ssh_ports[0])))
    assert code == 0, shown
    assert "\x1b[" in shown, "colour on a terminal"
    plain = ANSI.sub("", shown).replace("\r\x1b[K", "\n").replace("\r\n", "\n")
    # Then one live line per open port (what answers: ssh, not the registered name), then
    # the host's table with the same ports in order, and the summary
    live, _, table = plain.partition("\n127.0.0.1\n")
    for port in ssh_ports:
        assert len(re.findall(rf"127\.0\.0\.1 +{port}/tcp open +ssh ", live)) == 1, live
    assert [int(p) for p in re.findall(r"^ *(\d+)/tcp +open +ssh", table, re.M)] == ssh_ports
    assert ": 3 of 3 ports on 1 host" in table
    # And the hostile registry name shows escaped: no escape sequence, no markup applied
    assert "\x1b[31m[bold" not in shown and "\x1b]0;" not in shown
    assert "evil\\x1b[31m[bold red]x[/]" in plain


def test_piped_output_is_plain_sorted_and_one_line_per_open_port(
    ssh_ports: list[int], tmp_path: Path
) -> None:
    done = _piped(_scan_argv(ssh_ports, _hostile_registry(tmp_path, ssh_ports[0])))
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stdout + done.stderr, "no colour, no raw escape, when piped"
    rows = re.findall(r"^ *(\d+)/tcp +open +ssh", done.stdout, re.M)
    assert [int(p) for p in rows] == ssh_ports, done.stdout
    assert done.stdout.splitlines()[0] == "127.0.0.1"
    assert all(line == line.rstrip() for line in done.stdout.splitlines())
    assert "evil\\x1b[31m[bold red]x[/]" in done.stdout
    assert "done: 3 of 3 ports on 1 host in " in done.stderr
    assert "1 hosts" not in done.stderr


def test_grepable_lines_parse(ssh_ports: list[int], tmp_path: Path) -> None:
    argv = _scan_argv(ssh_ports, _hostile_registry(tmp_path, ssh_ports[0]), "--format", "grepable")
    done = _piped(argv)
    assert done.returncode == 0, done.stderr
    rows = [line.split("\t") for line in done.stdout.splitlines()]
    assert all(len(row) == GREPABLE_FIELDS for row in rows), rows
    assert sorted(int(row[1]) for row in rows) == ssh_ports
    assert {(row[0], row[2], row[3], row[4], row[5]) for row in rows} == {
        ("127.0.0.1", "tcp", "open", "syn-ack", "ssh")
    }
    hostile = next(row for row in rows if int(row[1]) == ssh_ports[0])
    assert hostile[8] == "evil\\x1b[31m[bold red]x[/]"
    assert "\x1b" not in done.stdout
    # `lines` is the same format; a second stdout output is refused by name
    assert _piped([*argv[:-1], "--format", "lines", "127.0.0.1"]).stdout.count("\n") == 3
    clash = _piped([*argv[:-1], "--json", "-", "127.0.0.1"])
    assert clash.returncode == 2
    assert clash.stderr.count("\n") == 1 and "--format grepable" in clash.stderr


def test_quiet_prints_nothing_but_errors(ssh_ports: list[int], tmp_path: Path) -> None:
    registry = _hostile_registry(tmp_path, ssh_ports[0])
    done = _piped(_scan_argv(ssh_ports, registry, "-q"))
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    code, shown = _on_a_terminal(_scan_argv(ssh_ports, registry, "-q"))
    assert (code, shown) == (0, "")
    # An error still says itself, on one line
    bad = _piped(_scan_argv(ssh_ports, registry, "-q", "--timeout", "-1"))
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr


def test_outside_text_is_escaped_in_every_rendering() -> None:
    result = PortResult(
        host="127.0.0.1",
        hostname="host\x1b[2Jname\tx",
        port=3416,
        proto=Transport.TCP,
        state=PortState.OPEN,
        reason=Reason.SYN_ACK,
        rtt_ms=0.1,
        attempts=1,
        service=ServiceMatch(id=None, protocol="ss\x1bh\n[red]", confidence=1.0),
        registry=RegistryRef(name=HOSTILE_NAME, description=HOSTILE_DESCRIPTION),
    )
    line = result_line(result, None)
    assert line.spans == [s for s in line.spans if "red" not in str(s.style)]
    assert "\x1b" not in line.plain and "\n" not in line.plain
    assert "ss\\x1bh\\n[red]" in line.plain and "host\\x1b[2Jname\\tx" in line.plain
    fields = grepable_line(result, None).split("\t")
    assert len(fields) == GREPABLE_FIELDS
    assert fields[9] == "host\\x1b[2Jname\\tx"


def test_the_lab_flag_goes_before_the_inner_scan() -> None:
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare (util-linux)")
    command = private_namespace_command(["lab", "--base", "127.0.10.0", "--", "scan", "-q"])
    assert command[-5:] == ["127.0.10.0", "--inside-private-namespace", "--", "scan", "-q"]


def test_lab_then_dashes_needs_a_scan(capsys: pytest.CaptureFixture[str]) -> None:
    assert ghostport_main(["lab", "--", "report", "x"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "ghostport lab -- scan" in error


# ---------------------------------------------------------------- the lab as a normal user

AS_NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def nobody_python() -> tuple[str, dict[str, str]]:
    """An interpreter user 65534 can run inside a user namespace, and its environment: this
    one where it can; else the system python of the same version, given this one's packages
    (an interpreter under /root is out of reach of another user)."""
    if os.geteuid() != 0 or not (shutil.which("setpriv") and shutil.which("unshare")):
        pytest.skip("needs root to switch to another user, and setpriv and unshare")
    packages = os.pathsep.join([str(REPO), *site.getsitepackages()])
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    reasons = []
    for python, path in ((sys.executable, str(REPO)), (f"/usr/bin/python{version}", packages)):
        env = {**os.environ, "PYTHONPATH": path}
        inside = ["unshare", "--user", "--map-root-user", "--net", python, "-c"]
        probe = subprocess.run(
            [*AS_NOBODY, *inside, "import scanner.cli, rich, pydantic_core"],
            cwd="/",
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        if probe.returncode == 0:
            return python, env
        reasons.append(f"{python}: {probe.stderr.strip()[-100:]}")
    pytest.skip(f"no interpreter usable by another user: {'; '.join(reasons)}")


def test_lab_as_a_normal_user_says_where_it_runs_and_scans_inside(tmp_path: Path) -> None:
    python, env = nobody_python()
    tmp_path.chmod(0o777)
    env = {**env, "HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    # Given `ghostport lab` as user 65534: it says it is private and how to scan it
    lab = subprocess.Popen(
        [*AS_NOBODY, python, "-m", "scanner", "lab", "--base", "127.0.50.0"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert lab.stdout is not None
        said = []
        for line in lab.stdout:
            said.append(line)
            if "lab running" in line:
                break
        text = "".join(said)
        assert "private user and network namespace" in text, text
        assert "`ghostport lab --base 127.0.50.0 -- scan 127.0.50.1-5`" in text
    finally:
        interrupt(lab, timeout=30)
    # When the scan runs inside it
    scan = ["scan", "--no-db", "--format", "grepable", "-sT", "-p", "23,412,3416", "127.0.50.1-5"]
    done = subprocess.run(
        [*AS_NOBODY, python, "-m", "scanner", "lab", "--base", "127.0.50.0", "--", *scan],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    # Then it finds the lab's services, each on one line with its verdict and severity
    assert done.returncode == 0, done.stderr
    assert "in a private network namespace" in done.stderr
    found = {
        (row[0], row[1]): (row[5], row[6])
        for row in (line.split("\t") for line in done.stdout.splitlines())
        if row[3] == "open"
    }
    assert found == {
        ("127.0.50.1", "23"): ("telnet", "legacy"),
        ("127.0.50.2", "3416"): ("commandport", "legacy"),
        ("127.0.50.4", "412"): ("http", "squatter"),
        ("127.0.50.4", "3416"): ("ssh", "squatter"),
    }, done.stdout


# ---------------------------------------------------------------- a port the lab cannot bind


def _needs_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("binds port 23: needs root")


def test_a_held_lab_port_names_its_holder_and_suggests_another_base(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _needs_root()
    with socket.create_server(("127.0.51.1", 23)):
        code = ghostport_main(["lab", "--base", "127.0.51.0"])
    error = capsys.readouterr().err
    assert code == 2
    assert error.count("\n") == 1, error
    assert f"process {os.getpid()} (" in error and "another --base" in error


def test_a_port_held_on_every_address_says_no_base_helps(tmp_path: Path) -> None:
    _needs_root()
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare (util-linux)")
    # In a network namespace of its own, a process listens on port 23 of every address
    script = (
        "import socket, sys\n"
        "from scanner.lab.namespace import bring_loopback_up\n"
        "from scanner.cli import ghostport_main\n"
        "bring_loopback_up()\n"
        "held = socket.create_server(('0.0.0.0', 23))\n"
        "sys.exit(ghostport_main(['lab', '--base', '127.0.52.0']))\n"
    )
    done = subprocess.run(
        ["unshare", "--net", sys.executable, "-c", script],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "on every address (0.0.0.0 port 23)" in done.stderr
    assert "no --base can avoid it" in done.stderr and "another --base" not in done.stderr


def test_a_normal_user_is_told_another_user_holds_the_port(tmp_path: Path) -> None:
    python, env = nobody_python()
    ask = "from scanner.local import port_holder; print(port_holder('127.0.53.1 23/tcp'))"
    with socket.create_server(("127.0.53.1", 23)):
        done = subprocess.run(
            [*AS_NOBODY, python, "-c", ask],
            cwd="/",
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    assert "another user's process holds it (run as root to see which)" in done.stdout
