"""Run every benchmark and write bench/RESULTS.md: `sudo python3 bench/run_all.py`.

Each benchmark prints a markdown table of ratios measured in the same run; this collects
them, with the machine and versions, into RESULTS.md. About 10 minutes on 2 cores, most of
it nmap's UDP version scan. Needs root (namespaces), gcc, nmap, nftables.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

STEPS = [
    ("Sweeps: TCP and UDP against C loops and nmap; memory", ["sweep.py", "--with-nmap"]),
    (
        "The legacy-mgmt job over the emulated lab: ghostport against nmap -sT -sU -sV",
        ["lab_vs_nmap.py", "--loss", "5"],
    ),
    ("Loading the IANA registry", ["registry_load.py"]),
    (
        "Silent network and SYN sweep: --syn against connect mode, nmap -sT/-sS and the C loop",
        ["silent.py", "--limit", "60", "--rounds", "3"],
    ),
    ("Start-up: whole-process times against `python -c 'import asyncio'`", ["startup.py"]),
    ("Both cores: --workers against nmap -sT and the C loops; the broker", ["workers.py"]),
    ("The history database's cost on the /16 sweep", ["db_cost.py", "--runs", "7"]),
    (
        "Real daemons squatting on orphaned ports: ghostport against nmap -sT -sU -sV",
        ["squatters.py", "--nmap-limit", "300"],
    ),
]


def compile_package() -> None:
    """Byte-compile the scanner package, as `pip install` does for an installed one. An
    editable checkout under PYTHONDONTWRITEBYTECODE (set on some machines, this VM included)
    would otherwise compile every module from source in every process, which is no user's
    start-up."""
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(HERE.parent / "scanner")],
        env={k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
        check=True,
        stdout=subprocess.DEVNULL,
    )


def main() -> int:
    compile_package()
    sections = []
    for title, command in STEPS:
        print(f"running {' '.join(command)} ...", flush=True)
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, str(HERE / command[0]), *command[1:]],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            print(done.stdout, done.stderr, file=sys.stderr)
            return 1
        table = "\n".join(line for line in done.stdout.splitlines() if line.startswith("|"))
        other = "\n".join(
            line for line in done.stdout.splitlines() if line.strip() and not line.startswith("|")
        )
        sections.append(
            f"## {title}\n\n`sudo python3 bench/{' '.join(command)}` "
            f"({time.perf_counter() - start:.0f} s)\n\n{other}\n\n{table}\n"
        )
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    header = (
        "# Benchmark results\n\n"
        f"Written by `sudo python3 bench/run_all.py` on {when}, "
        f"{platform.node()}: {platform.machine()}, Linux {platform.release()}, Python "
        f"{platform.python_version()}. Ratios are measured within one run; absolute rates "
        "drift between runs on shared machines. See bench/README.md for what each measures "
        "and the goals. The scanner package was byte-compiled first, as `pip install` leaves "
        "it.\n"
    )
    (HERE / "RESULTS.md").write_text(header + "\n" + "\n".join(sections))
    print(f"wrote {HERE / 'RESULTS.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
