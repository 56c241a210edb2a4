"""Sweep benchmark: ghostport against the machine's limit, in a namespace this script creates.

    sudo python bench/sweep.py [--prefix 16] [--ports 20] [--with-nmap] [--skip-memory]

Everything runs inside a private network namespace (its own loopback, nothing else): probes
go to 127.1.0.0/PREFIX only. Reported as ratios against a minimal C epoll loop built and run
in the same script, because absolute rates drift on shared machines.

1. TCP connect sweep of one closed port: C epoll connect loop, ghostport (asyncio, uvloop),
   and optionally `nmap -n -Pn -sT`.
2. UDP sweep of one closed port: C loop over connected UDP sockets, ghostport, optionally
   `nmap -n -Pn -sU`.
3. Peak RSS of ghostport for the /20 and the /PREFIX sweep x PORTS closed TCP ports.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
FIRST = "127.1.0.0"
CLOSED_PORT = 9


class Namespace:
    """A private network namespace with loopback up; deleted on exit."""

    def __init__(self) -> None:
        self.name = f"gp-bench-{os.getpid()}"

    def __enter__(self) -> Namespace:
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        self.run("ip", "link", "set", "lo", "up")
        # Room for a /16 of connects in a row; inside this namespace only.
        self.run("sysctl", "-q", "-w", "net.ipv4.ip_local_port_range=1024 65535")
        return self

    def __exit__(self, *_: object) -> None:
        subprocess.run(["ip", "netns", "del", self.name], check=False)

    def run(self, *cmd: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ip", "netns", "exec", self.name, *cmd],
            capture_output=True,
            text=True,
            check=True,
            timeout=timeout,
            cwd=REPO,
        )

    def spawn(self, *cmd: str) -> subprocess.Popen[str]:
        """Start a process in the namespace (it ends with the namespace's owner)."""
        return subprocess.Popen(
            ["ip", "netns", "exec", self.name, *cmd],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=REPO,
        )

    def nft(self, ruleset: str) -> None:
        """Load nftables rules into the namespace only."""
        subprocess.run(
            ["ip", "netns", "exec", self.name, "nft", "-f", "-"],
            input=ruleset,
            text=True,
            check=True,
        )

    def measured(self, *cmd: str) -> tuple[subprocess.CompletedProcess[str], float, float]:
        """Run a command; return it, wall seconds, and its peak RSS in MB."""
        wrapper = (
            "import resource, subprocess, sys, time; t = time.perf_counter(); "
            "p = subprocess.run(sys.argv[1:]); w = time.perf_counter() - t; "
            "print(w, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
            "sys.exit(p.returncode)"
        )
        done = self.run(sys.executable, "-c", wrapper, *cmd)
        wall, rss_kb = done.stderr.strip().splitlines()[-1].split()
        return done, float(wall), int(rss_kb) / 1024


def build_c(build: Path) -> dict[str, Path]:
    build.mkdir(parents=True, exist_ok=True)
    binaries = {}
    for name in ("connect_loop", "udp_loop"):
        target = build / name
        subprocess.run(["gcc", "-O2", "-o", str(target), str(HERE / "c" / f"{name}.c")], check=True)
        binaries[name] = target
    return binaries


def c_rate(ns: Namespace, binary: Path, count: int) -> float:
    out = ns.run(str(binary), FIRST, str(count), str(CLOSED_PORT), "1024").stdout.split()
    probes, seconds = int(out[0]), float(out[1])
    assert probes == count, f"C loop finished {probes} of {count}"
    return probes / seconds


def ghostport(
    ns: Namespace, args: list[str], loop: str
) -> tuple[float, float, dict[str, int], float]:
    """Rate (probes/s over the scan itself), peak RSS in MB, the state counts, and the rate
    over the whole process's wall time (start-up included): what a user waits for."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "scan.json"
        _, wall, rss = ns.measured(
            sys.executable,
            "-m",
            "scanner",
            "scan",
            "-q",
            "--loop",
            loop,
            "--retries",
            "0",
            "--seed",
            "1",
            "--json",
            str(out),
            *args,
        )
        summary = json.loads(out.read_text())["summary"]
    in_scan = summary["probes_done"] / summary["duration_s"]
    return in_scan, rss, summary["states"], summary["probes_done"] / wall


def dgram_rows(ns: Namespace, limit: float, count: int) -> list[tuple[str, str, str]]:
    """asyncio-dgram as one would use it: its rate, and how many closed ports it got right."""
    rows = []
    for loop in ("asyncio", "uvloop"):
        out = ns.run(
            sys.executable,
            str(HERE / "dgram_baseline.py"),
            FIRST,
            str(count),
            str(CLOSED_PORT),
            "0.5",
            loop,
        ).stdout.split()
        probes, seconds, closed = int(out[0]), float(out[1]), int(out[2])
        rate = probes / seconds
        rows.append(
            (
                f"UDP sweep: asyncio-dgram pool ({loop}), {count:,} probes",
                f"{rate:,.0f}/s",
                f"{rate / limit:.0%} of C; {closed:,} of {probes:,} closed ports seen as closed",
            )
        )
    return rows


def nmap_rate(ns: Namespace, flag: str, count: int, target: str) -> float:
    _, wall, _ = ns.measured(
        "nmap",
        "-n",
        "-Pn",
        flag,
        "-p",
        str(CLOSED_PORT),
        "--max-retries",
        "0",
        "-oX",
        "-",
        target,
    )
    return count / wall


def versions() -> str:
    nmap = (
        subprocess.run(
            ["nmap", "--version"], capture_output=True, text=True, check=False
        ).stdout.splitlines()[0]
        if shutil.which("nmap")
        else "nmap not installed"
    )
    try:
        import uvloop

        uv = f"uvloop {uvloop.__version__}"
    except ImportError:
        uv = "uvloop not installed"
    return (
        f"{platform.node()}: {os.cpu_count()} cores, Linux {platform.release()}, "
        f"Python {platform.python_version()}, {uv}, gcc -O2, {nmap}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefix", type=int, default=16, help="sweep 127.1.0.0/PREFIX (16)")
    parser.add_argument("--ports", type=int, default=20, help="ports in the memory sweeps (20)")
    parser.add_argument("--with-nmap", action="store_true", help="also time nmap -sT and -sU")
    parser.add_argument("--skip-memory", action="store_true", help="skip the memory sweeps")
    parser.add_argument(
        "--dgram-count", type=int, default=4096, help="probes of the asyncio-dgram baseline"
    )
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench: needs root to create a network namespace", file=sys.stderr)
        return 2
    target = f"{FIRST}/{args.prefix}"
    count = ipaddress.ip_network(target).num_addresses
    binaries = build_c(HERE / "build")
    rows: list[tuple[str, str, str]] = []
    with Namespace() as ns:
        for proto, binary, flag in (("TCP", "connect_loop", "-sT"), ("UDP", "udp_loop", "-sU")):
            limit = c_rate(ns, binaries[binary], count)
            rows.append(
                (f"{proto} sweep {target}:{CLOSED_PORT}: C epoll loop", f"{limit:,.0f}/s", "100%")
            )
            for loop in ("uvloop", "asyncio"):
                rate, rss, states, whole = ghostport(
                    ns, [f"--{proto.lower()}", "-p", str(CLOSED_PORT), target], loop
                )
                assert states["closed"] == count, states
                rows.append(
                    (
                        f"{proto} sweep: ghostport ({loop}), whole process",
                        f"{whole:,.0f}/s",
                        f"{whole / limit:.0%} of C (in-scan {rate:,.0f}/s, "
                        f"{rate / limit:.0%}), {rss:.0f} MB RSS",
                    )
                )
            if proto == "UDP":
                rows.extend(dgram_rows(ns, limit, args.dgram_count))
            if args.with_nmap and shutil.which("nmap"):
                rate = nmap_rate(ns, flag, count, target)
                rows.append(
                    (f"{proto} sweep: nmap {flag}", f"{rate:,.0f}/s", f"{rate / limit:.0%} of C")
                )
        if not args.skip_memory:
            ports = f"{CLOSED_PORT}-{CLOSED_PORT + args.ports - 1}"
            small_rate, small_rss, _, _ = ghostport(
                ns, ["--tcp", "-p", ports, f"{FIRST}/20"], "uvloop"
            )
            rows.append(
                (
                    f"memory: {FIRST}/20 x {args.ports} TCP ports",
                    f"{small_rss:.0f} MB",
                    f"{small_rate:,.0f}/s",
                )
            )
            big_rate, big_rss, _, _ = ghostport(ns, ["--tcp", "-p", ports, target], "uvloop")
            rows.append(
                (
                    f"memory: {target} x {args.ports} TCP ports",
                    f"{big_rss:.0f} MB",
                    f"{big_rate:,.0f}/s, {big_rss / small_rss - 1:+.0%} vs /20",
                )
            )
    print(f"\n{versions()}\n{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n")
    print("| measurement | result | ratio / notes |\n| --- | --- | --- |")
    for row in rows:
        print(f"| {' | '.join(row)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
