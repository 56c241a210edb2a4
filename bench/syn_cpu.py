"""CPU time of a SYN sweep's whole process tree: this checkout against other checkouts.

    sudo python3 bench/syn_cpu.py [--runs 8] [--baseline CHECKOUT ...]

Runs `scan -q --no-db --syn --retries 0 -p 9-12 127.1.0.0/16` (262,144 closed ports) inside a
namespace it creates, --runs times per checkout, alternating the checkouts (in reversed order
every other round, so a machine that slows down mid-run hits all alike). For each checkout it
prints the median whole-process wall time and the median user and system CPU seconds of the
scan with its workers (RUSAGE_CHILDREN: every process adds the children it waited for).

Wall time on a shared VM drifts by 15% within minutes; CPU seconds drift less, which makes
this the script for before/after figures of a change to the SYN path. A baseline is another
checkout, e.g. `git worktree add /tmp/old <commit>`; its `scanner` package runs with the same
interpreter. Every package is byte-compiled first, as `pip install` leaves it.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from sweep import Namespace  # noqa: E402

REPO = HERE.parent
SCAN = ["-q", "--no-db", "--syn", "--retries", "0", "--seed", "1", "-p", "9-12", "127.1.0.0/16"]


def one_run(ns: Namespace, checkout: Path) -> tuple[float, float, float]:
    """(wall, user CPU, system CPU) seconds of one sweep run from `checkout`."""
    env = {
        **os.environ,
        "PYTHONPATH": str(checkout),
        "GHOSTPORT_SCOPE": "127.0.0.0/8",
        "PYTHONDONTWRITEBYTECODE": "",
    }
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(
        ["ip", "netns", "exec", ns.name, sys.executable, "-m", "scanner", "scan", *SCAN],
        cwd=checkout,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--baseline", type=Path, action="append", default=[])
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench: needs root (a namespace and raw sockets)", file=sys.stderr)
        return 2
    checkouts = [REPO, *(path.resolve() for path in args.baseline)]
    for checkout in checkouts:
        subprocess.run(
            [sys.executable, "-m", "compileall", "-q", str(checkout / "scanner")],
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": ""},
            check=True,
        )
    measured: dict[Path, list[tuple[float, float, float]]] = {path: [] for path in checkouts}
    with Namespace() as ns:
        for round_number in range(args.runs):
            order = checkouts if round_number % 2 == 0 else checkouts[::-1]
            for checkout in order:
                measured[checkout].append(one_run(ns, checkout))
    print(f"`scan {' '.join(SCAN)}`, median of {args.runs} alternating runs\n")
    print("| checkout | wall | user CPU | system CPU |\n| --- | --- | --- | --- |")
    for checkout, runs in measured.items():
        wall, user, system = (statistics.median(run[i] for run in runs) for i in range(3))
        name = "this checkout" if checkout == REPO else str(checkout)
        print(f"| {name} | {wall:.2f} s | {user:.2f} s | {system:.2f} s |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
