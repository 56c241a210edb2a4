"""`scan` in a child process whose address space is capped, reporting its peak.

    python -m tests.scan_under_limit LIMIT_BYTES SCAN_ARGS...

sets RLIMIT_AS to LIMIT_BYTES (0: no cap) before the scan, runs `scan SCAN_ARGS` and writes
`peak BYTES` (the peak of its address space) as the last line on stderr. Exits with the scan's
exit code; a scan that runs out of memory exits 3 (internal error) without that line.
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path


def _peak_address_space() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmPeak:"):
            return int(line.split()[1]) * 1024
    return 0


def main(argv: list[str]) -> int:
    limit = int(argv[0])
    if limit:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    from scanner.cli import scan_main

    code = scan_main(argv[1:])
    sys.stderr.write(f"peak {_peak_address_space()}\n")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
