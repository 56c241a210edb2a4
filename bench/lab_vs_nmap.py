"""The legacy-mgmt job over the emulated lab: ghostport against nmap -sT -sU -sV, side by side.

    sudo python3 bench/lab_vs_nmap.py [--loss 5]

Runs the lab inside a private namespace this script creates, then, in the same namespace:
`ghostport scan` (the legacy-mgmt profile on its own ports) and `nmap -Pn -n -sT -sU -sV -p
<the same ports> <the lab hosts>`. Both are scored against the lab's known layout: a service
counts as found when its port has the right state and the right protocol name; nmap's names
only count when they come from a probe (method="probed"), not from its port table. Once on a
clean loopback and once with random loss (nftables numgen) on the namespace's loopback.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from sweep import Namespace  # noqa: E402

from scanner.lab.layout import LabService, lab_hosts, lab_map  # noqa: E402
from scanner.profiles import load_profiles, merged, profile_ports  # noqa: E402

BASE = "127.0.10.0"


def expectations() -> dict[tuple[str, int, str], tuple[str, str | None]]:
    """(host, port, proto) -> (state, protocol name) for every lab service."""
    _, services = merged(load_profiles(["legacy-mgmt"]))
    protocol_of = {s.id: s.protocol for s in services}
    wanted: dict[tuple[str, int, str], tuple[str, str | None]] = {}
    service: LabService
    for service in lab_map(BASE):
        verdict, _, what = service.expect.partition(" ")
        key = (service.host, service.port, service.transport)
        if not what:
            wanted[key] = (service.expect, None)
        else:
            wanted[key] = ("open", what if verdict == "squatter" else protocol_of[what])
    return wanted


MISSED: dict[str, set[str]] = {}


def accuracy(
    found: dict[tuple[str, int, str], tuple[str, str | None]], scanner: str
) -> tuple[int, int, int]:
    """(services right, services in the lab, open ports where nothing runs)."""
    wanted = expectations()
    right = 0
    for key, (state, protocol) in wanted.items():
        got_state, got_protocol = found.get(key, ("closed", None))
        if got_state == state and (protocol is None or got_protocol == protocol):
            right += 1
        else:
            MISSED.setdefault(scanner, set()).add(
                f"{key[1]}/{key[2]} {protocol or state} (got {got_state} {got_protocol or '-'})"
            )
    extra = sum(1 for key, (state, _) in found.items() if key not in wanted and state == "open")
    return right, len(wanted), extra


def run_ghostport(ns: Namespace, hosts: str, folder: Path) -> tuple[float, tuple[int, int, int]]:
    out = folder / "ghostport.json"
    start = time.perf_counter()
    ns.run(sys.executable, "-m", "scanner", "scan", "-q", "--json", str(out), hosts)
    wall = time.perf_counter() - start
    doc = json.loads(out.read_text())
    found = {
        (r["host"], r["port"], r["proto"]): (
            r["state"],
            r["service"]["protocol"] if r["service"] else None,
        )
        for r in doc["results"]
    }
    return wall, accuracy(found, "ghostport")


def run_nmap(
    ns: Namespace, hosts: list[str], ports: str, folder: Path
) -> tuple[float, tuple[int, int, int]]:
    out = folder / "nmap.xml"
    start = time.perf_counter()
    ns.run(
        "nmap", "-Pn", "-n", "-sT", "-sU", "-sV", "-p", ports, "-oX", str(out), *hosts, timeout=3600
    )
    wall = time.perf_counter() - start
    found: dict[tuple[str, int, str], tuple[str, str | None]] = {}
    for host in ET.parse(out).getroot().iter("host"):
        address = host.find("address")
        assert address is not None
        for port in host.iter("port"):
            state = port.find("state")
            service = port.find("service")
            name = None
            if service is not None and service.get("method") == "probed":
                name = service.get("name")
            found[
                (address.get("addr", ""), int(port.get("portid", "0")), port.get("protocol", ""))
            ] = (state.get("state", "") if state is not None else "", name)
    return wall, accuracy(found, "nmap")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loss", type=int, default=5, help="random loss percent for run 2 (5)")
    args = parser.parse_args()
    hosts = lab_hosts(BASE)
    ports = profile_ports(load_profiles(["legacy-mgmt"]))
    rows = []
    for loss in (0, args.loss):
        with Namespace() as ns, tempfile.TemporaryDirectory() as tmp:
            lab = ns.spawn(sys.executable, "-m", "scanner", "lab", "--base", BASE)
            assert lab.stdout is not None
            for line in lab.stdout:
                if "lab running" in line:
                    break
            if loss:
                ns.nft(
                    "table inet impair {\n  chain input {\n"
                    "    type filter hook input priority 0;\n"
                    f"    meta l4proto {{ tcp, udp }} numgen random mod 100 < {loss} drop\n"
                    "  }\n}\n"
                )
            folder = Path(tmp)
            g_wall, (g_right, total, g_extra) = run_ghostport(ns, f"{hosts[0]}-5", folder)
            n_wall, (n_right, _, n_extra) = run_nmap(ns, hosts, ports, folder)
            lab.terminate()
            lab.wait(timeout=10)
        condition = f"{loss}% loss" if loss else "clean"
        rows.append((condition, g_wall, g_right, n_wall, n_right, total, g_extra, n_extra))
    print(
        "| lab, legacy-mgmt ports | ghostport wall | ghostport found | nmap -sT -sU -sV wall |"
        " nmap found | speed-up |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for condition, g_wall, g_right, n_wall, n_right, total, g_extra, n_extra in rows:
        print(
            f"| {condition} | {g_wall:.1f} s | {g_right}/{total} (+{g_extra} extra open) | "
            f"{n_wall:.1f} s | {n_right}/{total} (+{n_extra} extra open) | "
            f"{n_wall / g_wall:.0f}x |"
        )
    for scanner, missed in sorted(MISSED.items()):
        print(f"\n{scanner} missed (either run): {'; '.join(sorted(missed))}")


if __name__ == "__main__":
    main()
