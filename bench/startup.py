"""Start-up as a user waits for it: whole `scan` processes against `python -c 'import asyncio'`.

    python bench/startup.py [--runs 20] [--scan PATH] [--iana CSV | --no-iana]

Every row is a whole process (interpreter start, imports, argument parsing, profiles, registry,
the probe, the summary line), timed from fork to exit, N runs each. The runs are interleaved
round by round (after one untimed warm-up round), so a machine that slows down mid-run slows
every row alike; each ratio is a median against the `import asyncio` reference of the same run.

Caches: "cold" runs get a fresh, empty GHOSTPORT_CACHE_DIR each time (the first scan of a
user); "warm" runs share one that an untimed run filled. With an IANA CSV (by default the
shared copy, if present) the rows are repeated with the CSV in the cache dir, where
`ghostport registry update` puts it; the CSV is kept in the cold dirs too (only ghostport's
derived caches are cold).

The scanner package is byte-compiled first, as `pip install` leaves an installed package.

Goals (performance issue): --version and --help within 1.5x of the reference, a one-port scan
of a closed 127.0.0.1 port within 3x.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CSV = REPO.parent / "shared" / "registry" / "service-names-port-numbers.csv"
CSV_NAME = "service-names-port-numbers.csv"


@dataclass
class Case:
    """One command line, timed whole, with the cache directory it runs against."""

    label: str
    argv: list[str]
    goal: float | None = None
    cache: str = "none"  # none, cold, warm
    iana: Path | None = None
    times: list[float] = field(default_factory=list)
    last_stderr: str = ""
    warm_dir: str | None = None


def closed_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on: bound by us, then closed."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def new_cache_dir(iana: Path | None) -> str:
    folder = tempfile.mkdtemp(prefix="ghostport-bench-cache-")
    if iana is not None:
        shutil.copyfile(iana, Path(folder) / CSV_NAME)
    return folder


def run_once(case: Case, env: dict[str, str]) -> float:
    cold_dir = None
    run_env = dict(env)
    if case.cache == "cold":
        cold_dir = new_cache_dir(case.iana)
        run_env["GHOSTPORT_CACHE_DIR"] = cold_dir
    elif case.cache == "warm":
        assert case.warm_dir is not None
        run_env["GHOSTPORT_CACHE_DIR"] = case.warm_dir
    try:
        start = time.perf_counter()
        done = subprocess.run(
            case.argv,
            env=run_env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            check=False,
        )
        elapsed = time.perf_counter() - start
    finally:
        if cold_dir is not None:
            shutil.rmtree(cold_dir, ignore_errors=True)
    if done.returncode != 0:
        raise SystemExit(
            f"{' '.join(case.argv)} exited {done.returncode}: {done.stderr.decode()[-500:]}"
        )
    case.last_stderr = done.stderr.decode(errors="replace").strip()
    return elapsed * 1000


def cases_for(scan: list[str], python: str, iana: Path | None) -> list[Case]:
    port = closed_port()
    one_port = [*scan, "-q", "-p", f"T:{port}", "127.0.0.1"]
    default = [*scan, "-q", "127.0.0.1"]
    cases = [
        Case("`python -c 'import asyncio'` (reference)", [python, "-c", "import asyncio"]),
        Case("`scan --version`", [*scan, "--version"], goal=1.5),
        Case("`scan --help`", [*scan, "--help"], goal=1.5),
    ]
    for registry, csv in (("", None), (", IANA CSV cached", iana)):
        if registry and csv is None:
            continue
        for cache in ("cold", "warm"):
            cases.append(
                Case(
                    f"`scan -q -p T:{port} 127.0.0.1`, {cache} cache{registry}",
                    one_port,
                    goal=3.0,
                    cache=cache,
                    iana=csv,
                )
            )
            cases.append(
                Case(
                    f"`scan -q 127.0.0.1` (legacy-mgmt ports), {cache} cache{registry}",
                    default,
                    goal=3.0,
                    cache=cache,
                    iana=csv,
                )
            )
    # The history's share: the same one-port scan without it (no goal of its own)
    no_db = [*scan, "-q", "--no-db", "-p", f"T:{port}", "127.0.0.1"]
    cases.append(Case(f"`scan -q --no-db -p T:{port} 127.0.0.1`, warm cache", no_db, cache="warm"))
    return cases


def fmt(ms: float) -> str:
    return f"{ms:.0f} ms" if ms >= 100 else f"{ms:.1f} ms"


def table(cases: list[Case]) -> str:
    reference = statistics.median(cases[0].times)
    rows = [
        "| command | median | min - max | IQR | x reference | goal |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for case in cases:
        median = statistics.median(case.times)
        quartiles = statistics.quantiles(case.times, n=4)
        ratio = median / reference
        goal = (
            ""
            if case.goal is None
            else f"<= {case.goal:g}x: {'met' if ratio <= case.goal else 'NOT met'}"
        )
        rows.append(
            f"| {case.label} | {fmt(median)} | {fmt(min(case.times))} - {fmt(max(case.times))} | "
            f"{fmt(quartiles[2] - quartiles[0])} | {ratio:.2f}x | {goal} |"
        )
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="timed runs per command (20)")
    parser.add_argument("--scan", help="the scan executable (default: `scan` beside this python)")
    parser.add_argument("--iana", type=Path, default=DEFAULT_CSV, help="IANA CSV for extra rows")
    parser.add_argument("--no-iana", action="store_true", help="skip the rows with the IANA CSV")
    args = parser.parse_args()
    beside = Path(sys.executable).with_name("scan")
    scan_path = args.scan or (str(beside) if beside.exists() else shutil.which("scan"))
    if not scan_path:
        raise SystemExit("no `scan` executable: install ghostport or pass --scan")
    iana = None if args.no_iana or not args.iana.is_file() else args.iana
    env = dict(os.environ)
    env.setdefault("GHOSTPORT_SCOPE", "127.0.0.0/8,::1")
    env.pop("GHOSTPORT_REGISTRY", None)
    # As `pip install` leaves an installed package: byte-compiled (an editable checkout under
    # PYTHONDONTWRITEBYTECODE would compile every module from source in every run)
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(REPO / "scanner")],
        env={k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"},
        check=True,
        stdout=subprocess.DEVNULL,
    )
    cases = cases_for([scan_path], sys.executable, iana)
    warm_dirs = []
    for case in cases:
        if case.cache == "warm":
            case.warm_dir = new_cache_dir(case.iana)
            warm_dirs.append(case.warm_dir)
    try:
        for case in cases:  # warm-up round: page cache, .pyc files, the warm cache dirs
            run_once(case, env)
        for _ in range(args.runs):
            for case in cases:
                case.times.append(run_once(case, env))
    finally:
        for folder in warm_dirs:
            shutil.rmtree(folder, ignore_errors=True)
    print(
        f"{args.runs} runs each, interleaved; Python {sys.version.split()[0]}, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; scan = {scan_path}"
    )
    for case in cases:
        if case.cache != "none" and case.last_stderr:
            print(f"- {case.label}: {case.last_stderr.splitlines()[-1]}")
    print()
    print(table(cases))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
