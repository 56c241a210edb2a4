"""Real daemons squatting on orphaned ports: ghostport against nmap -sV, side by side.

    sudo python3 bench/squatters.py

Starts the daemons of tests/test_squatters.py (tests/daemons.py: redis, mosquitto, nginx,
dropbear, vsftpd, a socat bind shell, tinyproxy, memcached, beanstalkd, nats, ngircd,
dnsmasq, chronyd, tftpd-hpa), each on its own address inside a namespace this script creates
and removes, on ports registered to obsolete services. Then, in that namespace, the same
ports of the same addresses are scanned by `ghostport scan` and by `nmap -Pn -n -sT -sU -sV`
(UDP needs -sU; nmap's names count only when they come from a probe, method="probed", not
from its port table). A port counts as named when the tool's protocol name for it is the
daemon's, through the small table below for nmap's spellings. Wall time is whole-process.
Prints a markdown table.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from tests import daemons  # noqa: E402

# nmap's service names where ghostport's (IANA's) differ
NMAP_NAMES = {"memcached": "memcache", "irc": "ircd", "dns": "domain", "nats": "nats"}

Key = tuple[str, int, str]


def ghostport(namespace: str, hosts: str, ports: str, folder: Path) -> tuple[float, dict[Key, str]]:
    """Whole-process wall time and (host, port, proto) -> protocol named."""
    out = folder / "ghostport.json"
    started = time.monotonic()
    subprocess.run(
        daemons.netns_exec(
            namespace,
            sys.executable,
            "-m",
            "scanner",
            "scan",
            "-q",
            "--json",
            str(out),
            "-p",
            ports,
            hosts,
        ),
        check=True,
        cwd=REPO,
        env={**os.environ, "GHOSTPORT_SCOPE": "127.0.0.0/8,::1"},
    )
    wall = time.monotonic() - started
    document = json.loads(out.read_text())
    named = {
        (r["host"], r["port"], r["proto"]): r["service"]["protocol"]
        for r in document["results"]
        if r["state"] == "open" and r["service"]
    }
    return wall, named


def nmap(
    namespace: str, hosts: list[str], ports: str, folder: Path
) -> tuple[float, dict[Key, str]]:
    """Whole-process wall time and (host, port, proto) -> protocol named by a probe."""
    out = folder / "nmap.xml"
    started = time.monotonic()
    subprocess.run(
        daemons.netns_exec(
            namespace,
            "nmap",
            "-Pn",
            "-n",
            "-sT",
            "-sU",
            "-sV",
            "-p",
            ports,
            "-oX",
            str(out),
            *hosts,
        ),
        check=False,
        capture_output=True,
        timeout=LIMIT[0],
    )
    wall = time.monotonic() - started
    named: dict[Key, str] = {}
    for host in ET.parse(out).getroot().iter("host"):
        address = host.find("address").get("addr")  # type: ignore[union-attr]
        for port in host.iter("port"):
            service = port.find("service")
            state = port.find("state")
            if service is None or state is None or state.get("state") != "open":
                continue
            if service.get("method") != "probed":
                continue
            name = service.get("name", "")
            if service.get("tunnel") == "ssl" and name == "http":
                name = "https"
            key = (address, int(port.get("portid", "0")), port.get("protocol", ""))
            named[key] = NMAP_NAMES.get(name, name)
    return wall, named


LIMIT = [3600.0]  # seconds nmap may take (--nmap-limit)


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--nmap-limit", type=float, default=3600.0, help="seconds for nmap")
    LIMIT[0] = parser.parse_args().nmap_limit
    if os.geteuid() != 0:
        sys.exit("run as root: the daemons live in a network namespace this script creates")
    if shutil.which("nmap") is None:
        sys.exit("needs nmap (Debian package nmap)")
    running = [d for d in daemons.squatters() if daemons.installed(d)]
    namespace = f"gp-bench-squat-{os.getpid()}"
    folder = Path(tempfile.mkdtemp(prefix="gp-bench-squatters-"))
    subprocess.run(["ip", "netns", "add", namespace], check=True)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        subprocess.run(daemons.netns_exec(namespace, "ip", "link", "set", "lo", "up"), check=True)
        daemons.add_addresses(namespace, running)
        processes = daemons.start(namespace, folder / "daemons", running)
        daemons.wait_bound(namespace, running, processes, folder / "daemons")
        addresses = [d.address for d in running]
        ports = daemons.ports_of(running)
        hosts = f"{addresses[0]}-{addresses[-1].rsplit('.', 1)[1]}"
        expected = {
            (d.address, port, proto): protocol
            for d in running
            for (port, proto), protocol in d.speaks.items()
        }
        g_wall, g_named = ghostport(namespace, hosts, ports, folder)
        try:
            n_wall, n_named = nmap(namespace, addresses, ports, folder)
        except subprocess.TimeoutExpired:
            n_wall, n_named = float("inf"), {}  # cut: its XML is not whole
    finally:
        daemons.stop(namespace, processes)
        subprocess.run(["ip", "netns", "del", namespace], check=False)

    def right(named: dict[Key, str]) -> int:
        return sum(named.get(key) == protocol for key, protocol in expected.items())

    total = len(expected)
    print(f"{len(running)} daemons, {total} ports ({ports}) on {hosts}\n")
    print("| tool | named right | wall (whole process) |")
    print("| --- | --- | --- |")
    print(f"| ghostport scan | {right(g_named)}/{total} | {g_wall:.1f} s |")
    if n_wall == float("inf"):
        print(f"| nmap -Pn -n -sT -sU -sV | cut, no complete report | > {LIMIT[0]:.0f} s |")
        print(f"\nspeed-up: more than {LIMIT[0] / g_wall:.1f}x\n")
    else:
        print(f"| nmap -Pn -n -sT -sU -sV | {right(n_named)}/{total} | {n_wall:.1f} s |")
        print(f"\nspeed-up: {n_wall / g_wall:.1f}x\n")
    print("| daemon | port | expected | ghostport | nmap |")
    print("| --- | --- | --- | --- | --- |")
    for daemon in running:
        for (port, proto), protocol in daemon.speaks.items():
            key = (daemon.address, port, proto)
            print(
                f"| {daemon.name} | {port}/{proto} | {protocol} | {g_named.get(key, '-')} |"
                f" {n_named.get(key, '-')} |"
            )


if __name__ == "__main__":
    main()
