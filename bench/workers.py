"""Both cores and the broker: `--workers N` and `--broker` against one process, nmap and C.

    sudo python bench/workers.py [--prefix 16] [--skip-broker] [--skip-nmap]

Inside a private namespace (bench/sweep.py's), 127.1.0.0/PREFIX x 4 closed TCP ports, each
figure whole-process wall time (start-up included) with the peak RSS summed over every
process of the scan (sampled), against `nmap -sT` and the C connect loop run in the same
script. UDP: the same sweep on one closed UDP port against the C UDP loop. Then the /PREFIX
sweep of one closed port through a real redis-server (Unix socket) with 1 and 2 local
`ghostport worker`s, against the plain local scan.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from sweep import FIRST, REPO, Namespace, build_c, c_rate

PORTS = "9,10,11,12"


def measured(ns: Namespace, *cmd: str) -> tuple[float, float]:
    """Wall seconds and the peak of the summed RSS (MB) of the command's process tree."""
    started = time.perf_counter()
    process = subprocess.Popen(
        ["ip", "netns", "exec", ns.name, *cmd],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=REPO,
    )
    root = psutil.Process(process.pid)
    peak = 0
    while process.poll() is None:
        total = 0
        try:
            for item in [root, *root.children(recursive=True)]:
                total += item.memory_info().rss
        except psutil.Error:
            pass
        peak = max(peak, total)
        time.sleep(0.05)
    wall = time.perf_counter() - started
    assert process.returncode == 0, f"{cmd[:6]} exited {process.returncode}"
    return wall, peak / 2**20


def scan(ns: Namespace, *args: str) -> tuple[float, float, int]:
    """A whole `scan` process: wall seconds, peak RSS of all its processes, probes done."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "scan.json"
        wall, rss = measured(
            ns,
            sys.executable,
            "-m",
            "scanner",
            "scan",
            "-q",
            "--no-db",
            "--retries",
            "0",
            "--seed",
            "1",
            "--json",
            str(out),
            *args,
        )
        done = json.loads(out.read_text())["summary"]["probes_done"]
    return wall, rss, int(done)


def row(name: str, probes: int, wall: float, rss: float | None, refs: dict[str, float]) -> str:
    rate = probes / wall
    ratios = ", ".join(f"{rate / r:.2f}x {n}" for n, r in refs.items())
    memory = f"{rss:.0f} MB" if rss is not None else "-"
    return f"| {name} | {wall:.2f} s | {rate:,.0f}/s | {memory} | {ratios} |"


def broker_rows(ns: Namespace, target: str, count: int, tmp: Path) -> list[str]:
    sock = tmp / "redis.sock"
    redis = ns.spawn("redis-server", "--port", "0", "--unixsocket", str(sock), "--save", "")
    while not sock.exists():
        time.sleep(0.05)
    url = f"redis+socket://{sock}"
    rows = []
    try:
        wall, rss, done = scan(ns, "--tcp", "-p", "9", "--workers", "1", target)
        local = done / wall
        rows.append(row("local scan, 1 process", done, wall, rss, {"local": local}))
        for workers in (1, 2):
            started = [
                ns.spawn(
                    sys.executable,
                    "-m",
                    "scanner",
                    "worker",
                    "--broker",
                    url,
                    "--concurrency",
                    "1",
                )
                for _ in range(workers)
            ]
            time.sleep(3)  # the workers connect (not counted: they serve many scans)
            try:
                wall, rss, done = scan(
                    ns, "--tcp", "-p", "9", "--broker", url, "--shards", str(workers), target
                )
                rows.append(
                    row(f"--broker, {workers} worker(s)", done, wall, rss, {"local": local})
                )
            finally:
                for process in started:
                    process.terminate()
                    process.wait(10)
    finally:
        redis.terminate()
        redis.wait(10)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prefix", type=int, default=16)
    parser.add_argument("--skip-broker", action="store_true")
    parser.add_argument("--skip-nmap", action="store_true")
    args = parser.parse_args()
    target = f"{FIRST}/{args.prefix}"
    hosts = 2 ** (32 - args.prefix)
    count = hosts * 4
    lines = [
        f"127.1.0.0/{args.prefix} x 4 closed TCP ports ({count:,} probes), whole process",
        "",
        "| run | wall | rate | peak RSS (all processes) | ratios |",
        "| --- | --- | --- | --- | --- |",
    ]
    with tempfile.TemporaryDirectory() as tmp, Namespace() as ns:
        binaries = build_c(Path(tmp) / "c")
        c_tcp = c_rate(ns, binaries["connect_loop"], count)
        refs = {"C": c_tcp}
        if not args.skip_nmap and shutil.which("nmap"):
            wall, rss = measured(
                ns,
                "nmap",
                "-n",
                "-Pn",
                "-sT",
                "-p",
                PORTS,
                "--max-retries",
                "0",
                "-oX",
                "/dev/null",
                target,
            )
            refs["nmap -sT"] = count / wall
            lines.append(row("nmap -sT", count, wall, rss, {"C": c_tcp}))
        lines.append(f"| C connect loop | - | {c_tcp:,.0f}/s | - | 1.00x C |")
        for workers in (1, 2):
            wall, rss, done = scan(ns, "--tcp", "-p", PORTS, "--workers", str(workers), target)
            lines.append(row(f"ghostport --workers {workers}", done, wall, rss, refs))
        c_udp = c_rate(ns, binaries["udp_loop"], hosts)
        lines += ["", f"UDP: 127.1.0.0/{args.prefix} x 1 closed port ({hosts:,} probes)", ""]
        lines += ["| run | wall | rate | peak RSS | ratios |", "| --- | --- | --- | --- | --- |"]
        lines.append(f"| C UDP loop | - | {c_udp:,.0f}/s | - | 1.00x C |")
        for workers in (1, 2):
            wall, rss, done = scan(ns, "--udp", "-p", "9", "--workers", str(workers), target)
            lines.append(row(f"ghostport --workers {workers}", done, wall, rss, {"C UDP": c_udp}))
        if not args.skip_broker and shutil.which("redis-server"):
            lines += ["", f"Through the broker: 127.1.0.0/{args.prefix} x 1 closed TCP port", ""]
            lines += ["| run | wall | rate | peak RSS | ratio |", "| --- | --- | --- | --- | --- |"]
            lines += broker_rows(ns, target, hosts, Path(tmp))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
