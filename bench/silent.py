"""Silent-network benchmark: SYN mode against connect mode and nmap, in a namespace of its own.

    sudo python bench/silent.py [--limit 120] [--skip-sweep | --skip-silent]
                                [--rounds N] [--baseline CHECKOUT]

1. A /22 x 15 TCP ports where nftables drops every packet except to 4 live hosts, which listen
   on the legacy-mgmt ports 23, 161, 391 and 3416 (16 open ports; the rest of their ports are
   dropped too). ghostport connect, ghostport --syn, `nmap -sT` and `nmap -sS`, each cut at
   --limit seconds ("> limit" when cut); whole-process wall time and the open ports found.
2. A sweep of 127.1.0.0/16 x 4 closed ports: ghostport --syn (whole process) against the C
   epoll connect loop of bench/c/connect_loop.c, run once per port in the same script.
   With --rounds N both run N times, alternately, and the medians are reported (the machine
   may be shared); with --baseline, `python -m scanner` from another checkout (e.g.
   `git worktree add /tmp/old <commit>`) runs in each round too, for before/after figures.

Everything runs inside the namespace (its own loopback and nftables); nothing else is touched.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from sweep import Namespace, build_c, versions  # noqa: E402

BLOCK = "127.2.0.0/22"
LIVE = ("127.2.0.10", "127.2.1.20", "127.2.2.30", "127.2.3.40")
LIVE_PORTS = (23, 161, 391, 3416)
PORTS = (7, 9, 13, 19, 23, 37, 79, 161, 162, 391, 392, 412, 513, 514, 3416)
SWEEP = "127.1.0.0/16"
SWEEP_PORTS = (9, 10, 11, 12)


def _ruleset() -> str:
    live = ", ".join(LIVE)
    ports = ", ".join(str(p) for p in LIVE_PORTS)
    return (
        "table inet silent {\n  chain input {\n    type filter hook input priority 0;\n"
        f"    ip daddr {BLOCK} ip daddr != {{ {live} }} drop\n"
        f"    ip daddr {BLOCK} tcp dport != {{ {ports} }} drop\n  }}\n}}\n"
    )


def _timed(
    ns: Namespace,
    cmd: list[str],
    limit: float,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> float | None:
    """Whole-process wall seconds of a command in the namespace; None when cut at the limit."""
    start = time.perf_counter()
    try:
        subprocess.run(
            ["ip", "netns", "exec", ns.name, *cmd],
            capture_output=True,
            text=True,
            timeout=limit,
            check=True,
            env=env,
            cwd=cwd,
        )
    except subprocess.TimeoutExpired:
        return None
    return time.perf_counter() - start


def _ghostport_states(path: Path) -> tuple[int, str]:
    """Open ports found, and every state's count (to compare the modes)."""
    try:
        summary = json.loads(path.read_text())["summary"]
    except (OSError, json.JSONDecodeError, KeyError):
        return 0, "no complete report"
    states = ", ".join(f"{n:,} {state}" for state, n in summary["states"].items() if n)
    return summary["states"]["open"], states


def _nmap_open(path: Path) -> int | None:
    if not path.exists():
        return None
    return len(re.findall(r'<state state="open"', path.read_text()))


def silent_rows(ns: Namespace, limit: float) -> list[tuple[str, str, str]]:
    ports = ",".join(str(p) for p in PORTS)
    probes = ipaddress.ip_network(BLOCK).num_addresses * len(PORTS)
    expected = len(LIVE) * len(LIVE_PORTS)
    runs = {
        "ghostport connect (-sT)": ["--tcp"],
        "ghostport --syn": ["--syn"],
    }
    rows: list[tuple[str, str, str]] = []
    times: dict[str, float | None] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, flags in runs.items():
            out = Path(tmp) / f"{len(times)}.json"
            cmd = [sys.executable, "-m", "scanner", "scan", "-q", "--no-db", *flags]
            cmd += ["--seed", "1", "-p", ports, "--json", str(out), BLOCK]
            times[name] = wall = _timed(ns, cmd, limit)
            found, states = _ghostport_states(out)
            rows.append(
                (name, _seconds(wall, limit), f"{found} of {expected} open ports ({states})")
            )
        for flag in ("-sT", "-sS"):
            out = Path(tmp) / f"nmap{flag}.xml"
            cmd = ["nmap", "-n", "-Pn", flag, "-p", ports, "-oX", str(out), BLOCK]
            wall = _timed(ns, cmd, limit)
            found = _nmap_open(out) if wall is not None else None
            rows.append(
                (
                    f"nmap {flag}",
                    _seconds(wall, limit),
                    f"{found} of {expected} open ports"
                    if found is not None
                    else "cut: no complete report",
                )
            )
    connect, syn = times["ghostport connect (-sT)"], times["ghostport --syn"]
    if connect and syn:
        rows.append(("ghostport --syn vs connect", f"{connect / syn:.1f}x faster", "goal >= 5x"))
    rows.insert(0, (f"silent {BLOCK} x {len(PORTS)} TCP ports ({probes:,} probes)", "", ""))
    return rows


def _seconds(wall: float | None, limit: float) -> str:
    return f"> {limit:.0f} s" if wall is None else f"{wall:.1f} s"


def _c_sweep(binary: Path, ns: Namespace) -> float:
    """Seconds of the C connect loop over the sweep, one run per port."""
    first = SWEEP.split("/", maxsplit=1)[0]
    count = ipaddress.ip_network(SWEEP).num_addresses
    seconds = 0.0
    for port in SWEEP_PORTS:
        out = ns.run(str(binary), first, str(count), str(port), "1024").stdout.split()
        assert int(out[0]) == count and int(out[3]) == count, out
        seconds += float(out[1])
    return seconds


def _ghostport_sweep(ns: Namespace, checkout: Path | None) -> tuple[float, dict[str, Any]]:
    """Whole-process seconds of the --syn sweep and its summary; `checkout`: run that
    checkout's scanner package instead of this one."""
    env = None
    if checkout is not None:  # run from there too: `-m` puts the working directory first
        env = {**os.environ, "PYTHONPATH": str(checkout)}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "sweep.json"
        ports = f"{SWEEP_PORTS[0]}-{SWEEP_PORTS[-1]}"
        cmd = [sys.executable, "-m", "scanner", "scan", "-q", "--no-db", "--syn", "--retries"]
        cmd += ["0", "--seed", "1", "-p", ports, "--json", str(out), SWEEP]
        wall = _timed(ns, cmd, 900, env, checkout)
        assert wall is not None
        summary: dict[str, Any] = json.loads(out.read_text())["summary"]
    assert summary["states"]["closed"] == ipaddress.ip_network(SWEEP).num_addresses * len(
        SWEEP_PORTS
    ), summary["states"]
    return wall, summary


def sweep_rows(
    ns: Namespace, rounds: int = 1, baseline: Path | None = None
) -> list[tuple[str, str, str]]:
    binary = build_c(HERE / "build")["connect_loop"]
    total = ipaddress.ip_network(SWEEP).num_addresses * len(SWEEP_PORTS)
    c_runs: list[float] = []
    runs: dict[Path | None, list[tuple[float, dict[str, Any]]]] = {None: []}
    if baseline is not None:
        runs[baseline] = []
    for _ in range(rounds):  # alternately: a busy moment of the machine hits all of them
        c_runs.append(_c_sweep(binary, ns))
        for checkout, measured in runs.items():
            measured.append(_ghostport_sweep(ns, checkout))
    c_seconds = statistics.median(c_runs)
    c_rate = total / c_seconds
    many = f"median of {rounds}, " if rounds > 1 else ""
    rows = [
        (
            f"sweep {SWEEP} x {len(SWEEP_PORTS)} closed ports: C epoll connect loop",
            f"{c_rate:,.0f}/s",
            f"{many}{c_seconds:.2f} s",
        )
    ]
    for checkout, measured in runs.items():
        wall = statistics.median(w for w, _ in measured)
        in_scan = statistics.median(s["probes_done"] / s["duration_s"] for _, s in measured)
        whole = total / wall
        name = "this checkout" if checkout is None else f"baseline {checkout}"
        rows.append(
            (
                f"sweep: ghostport --syn, whole process ({name})",
                f"{whole:,.0f}/s",
                f"{whole / c_rate:.2f}x C (goal >= 2x); {many}{wall:.2f} s; in-scan "
                f"{in_scan:,.0f}/s; {measured[-1][1]['states']['closed']:,} closed",
            )
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=float, default=120, help="seconds per run (120)")
    skip = parser.add_mutually_exclusive_group()
    skip.add_argument("--skip-sweep", action="store_true", help="only the silent network")
    skip.add_argument("--skip-silent", action="store_true", help="only the /16 sweep")
    parser.add_argument(
        "--rounds", type=int, default=1, help="sweep runs, alternating, medians reported (1)"
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        metavar="CHECKOUT",
        help="also sweep with the scanner package of another checkout (before/after)",
    )
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench: needs root (namespace, raw sockets)", file=sys.stderr)
        return 2
    if args.baseline is not None and not (args.baseline / "scanner" / "__init__.py").exists():
        print(f"bench: --baseline {args.baseline}: no scanner package there", file=sys.stderr)
        return 2
    rows: list[tuple[str, str, str]] = []
    with Namespace() as ns:
        if not args.skip_silent:
            ns.nft(_ruleset())
            specs = [f"tcp:{host}:{port}" for host in LIVE for port in LIVE_PORTS]
            server = ns.spawn(
                sys.executable, str(HERE.parent / "tests" / "netns_servers.py"), *specs
            )
            try:
                assert server.stdout is not None and server.stdout.readline().strip() == "ready"
                rows += silent_rows(ns, args.limit)
            finally:
                server.terminate()
                server.wait(timeout=10)
        if not args.skip_sweep:
            rows += sweep_rows(ns, max(1, args.rounds), args.baseline)
    print(f"\n{versions()}\n{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n")
    print("| measurement | result | notes |\n| --- | --- | --- |")
    for row in rows:
        print(f"| {' | '.join(row)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
