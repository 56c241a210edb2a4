"""What recording the history costs: the /16 sweep with and without the database.

    sudo python3 bench/db_cost.py [--prefix 16] [--runs 3]

Inside a private network namespace this script creates, sweeps 127.1.0.0/PREFIX on one closed
TCP port four ways, whole process (start-up included), median of --runs: `--no-db`; the
default SQLite history (a fresh file); and `--all-states` without and with SQLite, where every
probe is a result row (the worst case: 65,536 rows), each compared with its own `--no-db` run so
the database's share is not confused with what --all-states itself costs. Goal (issue 16): the
default history costs at most 10% of the whole-process time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def run_in(namespace: str, argv: list[str], env: dict[str, str]) -> float:
    """Whole-process wall time of one scan inside the namespace."""
    start = time.perf_counter()
    subprocess.run(
        ["ip", "netns", "exec", namespace, sys.executable, "-m", "scanner", "scan", *argv],
        cwd=REPO,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefix", type=int, default=16)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench: needs root to create a network namespace", file=sys.stderr)
        return 2
    namespace = f"gp-bench-db-{os.getpid()}"
    target = f"127.1.0.0/{args.prefix}"
    common = ["-q", "--tcp", "-p", "9", "--retries", "0", "--seed", "1", target]
    subprocess.run(["ip", "netns", "add", namespace], check=True)
    rows = []
    try:
        subprocess.run(
            ["ip", "netns", "exec", namespace, "ip", "link", "set", "lo", "up"], check=True
        )
        with tempfile.TemporaryDirectory() as data:
            env = {**os.environ, "GHOSTPORT_SCOPE": "127.0.0.0/8", "XDG_DATA_HOME": data}
            env.pop("GHOSTPORT_DB", None)
            modes = {
                "--no-db": ["--no-db"],
                "SQLite history (default)": [],
                "--all-states --no-db": ["--all-states", "--no-db"],
                "SQLite history, --all-states (a row per probe)": ["--all-states"],
            }
            times: dict[str, list[float]] = {name: [] for name in modes}
            for _ in range(args.runs):  # interleaved, so drift hits every mode alike
                for name, extra in modes.items():
                    times[name].append(run_in(namespace, [*extra, *common], env))
        for name, found in times.items():
            reference = "--all-states --no-db" if "--all-states" in modes[name] else "--no-db"
            base, median = statistics.median(times[reference]), statistics.median(found)
            rows.append((name, f"{median:.2f} s", f"{median / base - 1:+.1%} vs {reference}"))
    finally:
        subprocess.run(["ip", "netns", "del", namespace], check=False)
    print(f"{target} x 1 closed TCP port, whole process, median of {args.runs}\n")
    print("| history | wall time | cost |\n| --- | --- | --- |")
    for row in rows:
        print(f"| {' | '.join(row)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
