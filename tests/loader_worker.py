"""A child process that runs ghostport's loaders on hostile input under a memory limit.

    python -m tests.loader_worker LIMIT_BYTES DIRECTORY

sets RLIMIT_AS to LIMIT_BYTES before anything else, then answers one JSON request a line on
stdin with one JSON outcome a line on stdout:

    {"kind": "profile", "name": "x.yaml", "data": HEX}   load_profiles, payloads, JSON dump
    {"kind": "registry", "data": HEX}                     load_registry(explicit=the file)
    {"kind": "ports", "text": SPEC}                       parse_port_spec with registry names
    {"kind": "peak"}                                      the peak of its address space, bytes

    -> {"outcome": "loaded" | "error" | "crash", "type": NAME, "message": TEXT}

"error" is a ScannerError (what a user may be shown), "crash" anything else, MemoryError
included. A loader that the kernel kills leaves the parent an end of file.
"""

from __future__ import annotations

import functools
import json
import resource
import sys
import traceback
from pathlib import Path
from typing import Any

from scanner.ports import NamedPortResolver


def _peak_address_space() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmPeak:"):
            return int(line.split()[1]) * 1024
    return 0


@functools.cache
def _registry_names() -> NamedPortResolver:
    from scanner.profiles import profile_registry_facts
    from scanner.registry import Registry, RegistrySource

    return Registry(tuple(profile_registry_facts()), RegistrySource("profiles")).ports_for


def _run(request: dict[str, Any], directory: Path) -> None:
    from scanner.ports import parse_port_spec
    from scanner.probeset import build_probe_set
    from scanner.profiles import load_profiles, merged
    from scanner.registry import load_registry

    kind = request["kind"]
    if kind == "profile":
        path = directory / request["name"]
        path.write_bytes(bytes.fromhex(request["data"]))
        profiles = load_profiles([str(path)])
        json.dumps(  # what `ghostport profiles --json` shows
            [[m.model_dump(mode="json") for m in (*p.probes, *p.services)] for p in profiles]
        )
        build_probe_set(*merged(profiles))  # what a scan does next
    elif kind == "registry":
        path = directory / "registry.csv"
        path.write_bytes(bytes.fromhex(request["data"]))
        load_registry(explicit=str(path))
    elif kind == "ports":
        parse_port_spec(request["text"], resolve_name=_registry_names())
    else:
        raise ValueError(f"unknown request {kind!r}")


def main() -> None:
    limit, directory = int(sys.argv[1]), Path(sys.argv[2])
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    from scanner.errors import ScannerError

    for line in sys.stdin:
        request = json.loads(line)
        if request["kind"] == "peak":
            answer = {"outcome": "peak", "type": "", "message": str(_peak_address_space())}
        else:
            try:
                _run(request, directory)
                answer = {"outcome": "loaded", "type": "", "message": ""}
            except ScannerError as exc:
                answer = {"outcome": "error", "type": type(exc).__name__, "message": str(exc)}
            except BaseException as exc:  # the property under test: nothing else escapes
                answer = {
                    "outcome": "crash",
                    "type": type(exc).__name__,
                    "message": "".join(traceback.format_exception(exc))[-3000:],
                }
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
