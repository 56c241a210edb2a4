"""Time to load the IANA registry CSV into an indexed Registry (goal: <= 100 ms).

    python3 bench/registry_load.py [CSV] [--runs 20]
    python3 bench/registry_load.py scanner/data/iana-registry.csv.gz   # the bundled snapshot

Reports the median and best of several loads in this process, each a full parse with every
check plus the port and name indexes, next to a bare `csv.reader` pass over the same file
(the floor any CSV-based loader starts from).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from scanner.registry import load_registry  # noqa: E402

DEFAULT_CSV = REPO.parent / "shared" / "registry" / "service-names-port-numbers.csv"


def timed(work: object, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        work()  # type: ignore[operator]
        times.append((time.perf_counter() - start) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", nargs="?", default=str(DEFAULT_CSV))
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    registry = load_registry(args.csv)
    loads = timed(lambda: load_registry(args.csv), args.runs)

    def bare() -> None:
        opener = gzip.open if args.csv.endswith(".gz") else open
        with opener(args.csv, "rt", newline="", encoding="utf-8") as handle:
            for _ in csv.reader(handle):
                pass

    floor = timed(bare, args.runs)
    print(f"{len(registry):,} entries, newest {registry.newest_date()}, {args.runs} runs")
    print("| measurement | median | best |\n| --- | --- | --- |")
    print(
        f"| load_registry (parse, validate, index) | {statistics.median(loads):.1f} ms | "
        f"{min(loads):.1f} ms |"
    )
    print(f"| bare csv.reader pass | {statistics.median(floor):.1f} ms | {min(floor):.1f} ms |")
    print(f"\nbudget 100 ms: median load is {statistics.median(loads) / 100:.0%} of it")


if __name__ == "__main__":
    main()
