"""Time to load the IANA registry CSV into an indexed Registry (goal: <= 100 ms).

    python3 bench/registry_load.py [CSV] [--runs 20]
    python3 bench/registry_load.py scanner/data/iana-registry.csv.gz   # the bundled snapshot

Reports the median and best of several loads in this process, three ways: as a scan loads it
(the port index kept in the cache, rows deferred, and five ports looked up); with every row
and both indexes (what `ghostport registry` and --top-ports read, from the rows' cache); and
cold, a full parse with every check into an empty cache directory (the first run after an
install or an update). Next to them, a bare `csv.reader` pass over the same file (the floor
any CSV-based loader starts from).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import os
import statistics
import sys
import tempfile
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
    registry = load_registry(args.csv)  # keeps the rows' cache and the port index

    def as_a_scan() -> None:
        scan = load_registry(args.csv)
        for port in (23, 161, 391, 412, 3416):
            scan.ref(port, "tcp")

    def every_row() -> None:
        full = load_registry(args.csv)
        full.at(391, "tcp")
        full.named("synotics-*")

    def cold() -> None:
        with tempfile.TemporaryDirectory() as empty:
            os.environ["GHOSTPORT_CACHE_DIR"] = empty
            try:
                load_registry(args.csv).at(391, "tcp")
            finally:
                os.environ.pop("GHOSTPORT_CACHE_DIR")

    loads = timed(as_a_scan, args.runs)
    full = timed(every_row, args.runs)
    parsed = timed(cold, max(3, args.runs // 4))

    def bare() -> None:
        opener = gzip.open if args.csv.endswith(".gz") else open
        with opener(args.csv, "rt", newline="", encoding="utf-8") as handle:
            for _ in csv.reader(handle):
                pass

    floor = timed(bare, args.runs)
    print(f"{len(registry):,} entries, newest {registry.newest_date()}, {args.runs} runs")
    print("| measurement | median | best |\n| --- | --- | --- |")
    for label, times in (
        ("load_registry as a scan does (port index, 5 ports)", loads),
        ("load_registry with every row and both indexes (rows' cache)", full),
        ("load_registry cold: parse, validate, index (empty cache)", parsed),
    ):
        print(f"| {label} | {statistics.median(times):.1f} ms | {min(times):.1f} ms |")
    print(f"| bare csv.reader pass | {statistics.median(floor):.1f} ms | {min(floor):.1f} ms |")
    print(
        f"\nbudget 100 ms: a scan's median load is {statistics.median(loads) / 100:.0%} of it, "
        f"every row {statistics.median(full) / 100:.0%}, cold {statistics.median(parsed) / 100:.0%}"
    )


if __name__ == "__main__":
    main()
