"""Fixtures: private network namespaces with their own firewall, hosts file and servers."""

from __future__ import annotations

import gzip
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scanner.registry import BUNDLED_REGISTRY
from tests.postgres import PostgresServer, postgres_unavailable_reason

REPO = Path(__file__).resolve().parent.parent


def run_python(
    code: str, env: dict[str, str] | None = None, timeout: float = 120, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """`python -c code` in a fresh interpreter, from the repository, its output captured."""
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env=env,
        check=check,
    )


def interrupt(process: subprocess.Popen[Any], timeout: float = 60) -> tuple[Any, Any]:
    """Ctrl-C a process and wait for its output; killed if it has not ended in `timeout`."""
    process.send_signal(signal.SIGINT)
    try:
        return process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.communicate()


_COUNTER = itertools.count()

# The network rule, enforced by the scanner itself: every scan the tests start, in-process or
# as a child process, refuses any target outside loopback before a packet is sent.
LOOPBACK_SCOPE = "127.0.0.0/8,::1"
os.environ["GHOSTPORT_SCOPE"] = LOOPBACK_SCOPE
# Tests never read or write the user's registry cache, and choose their registry explicitly.
os.environ["GHOSTPORT_CACHE_DIR"] = tempfile.mkdtemp(prefix="ghostport-test-cache-")
os.environ.pop("GHOSTPORT_REGISTRY", None)
# Scans record their history: into a database of the test run's own, never the user's.
os.environ["XDG_DATA_HOME"] = tempfile.mkdtemp(prefix="ghostport-test-data-")
os.environ.pop("GHOSTPORT_DB", None)

# The IANA registry snapshot shared beside the repository, where there is one; the package
# bundles the same data compressed (scanner/data/, built from it by
# scripts/build_registry_snapshot.py), which the `snapshot` fixture falls back to.
REGISTRY_SNAPSHOT = Path(
    os.environ.get(
        "GHOSTPORT_TEST_REGISTRY",
        REPO.parent / "shared" / "registry" / "service-names-port-numbers.csv",
    )
)


@pytest.fixture(scope="session")
def snapshot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """IANA's registry as a plain CSV file: the shared snapshot, else the bundled one
    decompressed into a temporary file."""
    if REGISTRY_SNAPSHOT.is_file():
        return REGISTRY_SNAPSHOT
    if not BUNDLED_REGISTRY.is_file():
        pytest.skip(f"no IANA registry: neither {REGISTRY_SNAPSHOT} nor {BUNDLED_REGISTRY}")
    path = tmp_path_factory.mktemp("registry") / "service-names-port-numbers.csv"
    path.write_bytes(gzip.decompress(BUNDLED_REGISTRY.read_bytes()))
    return path


def netns_unavailable_reason() -> str | None:
    """Why namespaces cannot be used here, or None when they can."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "needs root to create a network namespace (ip netns add)"
    if shutil.which("ip") is None:
        return "needs `ip` from iproute2"
    return None


class Netns:
    """A private network namespace made by the test; everything in it is the test's own."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.etc = Path("/etc/netns") / name
        self.processes: list[subprocess.Popen[str]] = []

    def run(
        self, *cmd: str, timeout: float = 120, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run a command inside the namespace."""
        return subprocess.run(
            ["ip", "netns", "exec", self.name, *cmd],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=check,
            cwd=REPO,
        )

    def spawn(self, *cmd: str) -> subprocess.Popen[str]:
        """Start a process inside the namespace; it is terminated at teardown."""
        process = subprocess.Popen(
            ["ip", "netns", "exec", self.name, *cmd],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        self.processes.append(process)
        return process

    def serve(self, *specs: str) -> subprocess.Popen[str]:
        """Start tests/netns_servers.py with the given specs and wait until it is bound."""
        process = self.spawn(sys.executable, str(REPO / "tests" / "netns_servers.py"), *specs)
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.strip() == "ready", process.stderr.read() if process.stderr else line
        return process

    def nft(self, ruleset: str) -> None:
        """Load an nftables ruleset into the namespace (never the machine's own tables)."""
        if shutil.which("nft") is None:
            pytest.skip("needs nft (Debian package nftables) for firewall rules")
        subprocess.run(
            ["ip", "netns", "exec", self.name, "nft", "-f", "-"],
            input=ruleset,
            text=True,
            check=True,
            capture_output=True,
        )

    def etc_file(self, filename: str, content: str) -> None:
        """A file `ip netns exec` mounts over /etc/<filename> for commands in the namespace."""
        self.etc.mkdir(parents=True, exist_ok=True)
        (self.etc / filename).write_text(content)

    def scan(self, *args: str, timeout: float = 120) -> tuple[int, dict[str, Any], str]:
        """Run `scan ARGS --json -` inside; return (exit code, document, stderr)."""
        completed = self.run(
            sys.executable,
            "-m",
            "scanner",
            "scan",
            "-q",
            "--json",
            "-",
            *args,
            timeout=timeout,
            check=False,
        )
        document = json.loads(completed.stdout) if completed.stdout.strip() else {}
        return completed.returncode, document, completed.stderr

    def cleanup(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            for stream in (process.stdout, process.stderr):
                if stream is not None:
                    stream.close()
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, check=False)
        shutil.rmtree(self.etc, ignore_errors=True)


@pytest.fixture
def netns() -> Iterator[Netns]:
    """A fresh namespace with loopback up; removed afterwards, also when the test fails."""
    reason = netns_unavailable_reason()
    if reason:
        pytest.skip(reason)
    name = f"gp-test-{os.getpid()}-{next(_COUNTER)}"
    created = subprocess.run(
        ["ip", "netns", "add", name], capture_output=True, text=True, check=False
    )
    if created.returncode != 0:
        pytest.skip(f"`ip netns add` failed: {created.stderr.strip()}")
    namespace = Netns(name)
    try:
        namespace.run("ip", "link", "set", "lo", "up")
        yield namespace
    finally:
        namespace.cleanup()


class ImpairedLab:
    """The emulated lab running inside a private namespace, with conditions on its loopback."""

    def __init__(self, netns: Netns, base: str) -> None:
        from scanner.lab.layout import lab_hosts, lab_map

        self.netns = netns
        self.base = base
        self.hosts = lab_hosts(base)
        self.services = lab_map(base)
        self._rules: list[str] = []
        self._loss = 0

    def drop(self, host: str, transport: str, port: int) -> None:
        """Silently drop packets to host:port (the port becomes filtered)."""
        self._rules.append(f"ip daddr {host} {transport} dport {port} drop")

    def reject(self, host: str, transport: str, port: int) -> None:
        """Answer packets to host:port with ICMP administratively prohibited."""
        self._rules.append(
            f"ip daddr {host} {transport} dport {port} reject with icmp type admin-prohibited"
        )

    def loss(self, percent: int) -> None:
        """Drop this share of all TCP and UDP packets on the namespace's loopback, at random."""
        self._loss = percent

    def apply(self) -> None:
        """Load the conditions into the namespace's own nftables (never the machine's)."""
        rules = list(self._rules)
        if self._loss:
            rules.append(f"meta l4proto {{ tcp, udp }} numgen random mod 100 < {self._loss} drop")
        body = "\n".join(f"    {rule}" for rule in rules)
        self.netns.nft(
            "table inet impair {\n  chain input {\n    type filter hook input priority 0;\n"
            f"{body}\n  }}\n}}\n"
        )

    def scan(self, *args: str) -> tuple[int, dict[str, Any], str]:
        """Scan the lab's hosts from inside the namespace."""
        return self.netns.scan(*args, f"{self.hosts[0]}-{self.hosts[-1].rsplit('.', 1)[1]}")


@pytest.fixture
def impaired_lab(netns: Netns) -> ImpairedLab:
    """The lab in a private namespace (removed afterwards, also on failure), ready for
    conditions: random loss with nftables numgen, DROP and REJECT rules. No delay: the kernel
    here has no sch_netem, and an NFQUEUE delayer is not built (see the notes)."""
    base = "127.0.10.0"
    process = netns.spawn(sys.executable, "-m", "scanner", "lab", "--base", base)
    assert process.stdout is not None
    for line in process.stdout:
        if "lab running" in line:
            break
    else:
        pytest.fail(f"the lab did not start: {process.stderr.read() if process.stderr else ''}")
    return ImpairedLab(netns, base)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the session, stopped by its PID at the end (also on failure)."""
    reason = postgres_unavailable_reason()
    if reason:
        pytest.skip(reason)
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of each kind: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        (tmp_path / "history").mkdir(exist_ok=True)
        return f"sqlite:///{tmp_path / 'history' / 'scans.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.new_database()
