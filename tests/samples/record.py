"""Record the bytes real daemons send to ghostport's probes: `sudo python tests/samples/record.py`.

Runs, inside a private network namespace it creates: net-snmp's snmpd (UDP 161 and 391, SNMP
over TCP on 1993, AgentX master on 705), inetutils-inetd's built-in small services, and
tftpd-hpa; sends each profile probe and writes what came back to recorded.json beside this
file, with the daemon's version. Needs the Debian packages snmpd, inetutils-inetd, tftpd-hpa.

`--protocols` (also part of a plain run) records the current-protocol recognisers of
common-protocols.yaml from real daemons in a second namespace (see record_protocols.py beside
this file); `--protocols-only` records just those and keeps the other samples.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO))

from scanner.probeset import payload_of  # noqa: E402
from scanner.profiles import load_profiles, merged  # noqa: E402

SYS_DESCR = "SynOptics Model 3030 Ethernet Hub (net-snmp test agent for ghostport)"
NS = f"gp-record-{os.getpid()}"

SNMPD_CONF = f"""
agentaddress udp:127.0.0.1:161,udp:127.0.0.1:391,tcp:127.0.0.1:1993
rocommunity public 127.0.0.0/8
sysdescr {SYS_DESCR}
sysname hub-3f
syslocation ghostport lab
master agentx
agentXSocket tcp:127.0.0.1:705
"""
INETD_CONF = "\n".join(
    f"{name} {kind} {proto} {'nowait' if kind == 'stream' else 'wait'} root internal"
    for name in ("echo", "discard", "daytime", "chargen", "time")
    for kind, proto in (("stream", "tcp"), ("dgram", "udp"))
)


def inside(code: str) -> bytes:
    """Run Python code in the namespace; it prints the reply as hex."""
    done = subprocess.run(
        ["ip", "netns", "exec", NS, sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return bytes.fromhex(done.stdout.strip())


def udp_reply(port: int, payload: bytes, any_port: bool = False) -> bytes:
    return inside(f"""
        import socket
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(3)
        s.sendto({payload!r}, ("127.0.0.1", {port}))
        print(s.recvfrom(65535)[0].hex())
    """)


def tcp_reply(port: int, payload: bytes, limit: int = 4096) -> bytes:
    return inside(f"""
        import socket, time
        s = socket.create_connection(("127.0.0.1", {port}), timeout=3)
        if {payload!r}:
            s.sendall({payload!r})
        data = b""
        end = time.monotonic() + 1.5
        s.settimeout(0.5)
        while len(data) < {limit} and time.monotonic() < end:
            try:
                chunk = s.recv({limit} - len(data))
            except socket.timeout:
                continue
            if not chunk:
                break
            data += chunk
        print(data.hex())
    """)


def version(command: list[str]) -> str:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    return (done.stdout + done.stderr).strip().splitlines()[0]


def main() -> None:
    probes, _ = merged(load_profiles(["legacy-mgmt"]))
    payload = {p.id: payload_of(p) for p in probes}
    work = Path(tempfile.mkdtemp(prefix="gp-record-"))
    (work / "snmpd.conf").write_text(SNMPD_CONF)
    (work / "inetd.conf").write_text(INETD_CONF + "\n")
    (work / "tftp").mkdir()
    subprocess.run(["ip", "netns", "add", NS], check=True)
    daemons: list[subprocess.Popen[bytes]] = []
    try:
        subprocess.run(["ip", "netns", "exec", NS, "ip", "link", "set", "lo", "up"], check=True)
        for command in (
            ["snmpd", "-f", "-Lo", "-C", "-c", str(work / "snmpd.conf"), "-p", str(work / "pid")],
            ["inetutils-inetd", "-d", str(work / "inetd.conf")],
            # No -a: tftpd resolves it with AI_ADDRCONFIG, which fails in a namespace that
            # has only loopback; the wildcard address is the namespace's own anyway.
            ["in.tftpd", "-L", "-u", "root", "-s", str(work / "tftp")],
        ):
            daemons.append(
                subprocess.Popen(
                    ["ip", "netns", "exec", NS, *command],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        time.sleep(2)
        snmpd = version(["snmpd", "-v"]) or "net-snmp snmpd"
        samples = {
            "snmp-v1-public": (udp_reply(391, payload["snmp-v1-public"]), snmpd),
            "snmp-v2c-public": (udp_reply(161, payload["snmp-v2c-public"]), snmpd),
            "snmpv3-discovery": (udp_reply(161, payload["snmpv3-discovery"]), snmpd),
            "snmp-tcp-v1-public": (tcp_reply(1993, payload["snmp-tcp-v1-public"]), snmpd),
            "agentx-open": (tcp_reply(705, payload["agentx-open"]), snmpd + " (AgentX master)"),
            "daytime-tcp": (tcp_reply(13, b""), "inetutils-inetd internal daytime"),
            "chargen-tcp": (tcp_reply(19, b"", 1024), "inetutils-inetd internal chargen"),
            "time-tcp": (tcp_reply(37, b""), "inetutils-inetd internal time"),
            "daytime-udp": (udp_reply(13, b""), "inetutils-inetd internal daytime"),
            "chargen-udp": (udp_reply(19, b""), "inetutils-inetd internal chargen"),
            "time-udp": (udp_reply(37, b""), "inetutils-inetd internal time"),
            "tftp-rrq": (udp_reply(69, payload["tftp-rrq"]), "tftpd-hpa in.tftpd"),
        }
    finally:
        for daemon in daemons:
            daemon.terminate()
            daemon.wait(timeout=5)
        subprocess.run(["ip", "netns", "del", NS], check=False)
    write(samples)


def write(samples: dict[str, tuple[bytes, str]]) -> None:
    """Merge samples into recorded.json (a sample recorded again replaces the old one)."""
    path = HERE / "recorded.json"
    recorded = json.loads(path.read_text()) if path.exists() else {}
    recorded.update(
        {
            name: {"hex": data.hex(), "source": f"recorded from {source}"}
            for name, (data, source) in samples.items()
        }
    )
    path.write_text(json.dumps(recorded, indent=2, sort_keys=True) + "\n")
    print(f"wrote {len(samples)} samples to {path}")


if __name__ == "__main__":
    if "--protocols-only" not in sys.argv:
        main()
    from tests.samples.record_protocols import record_protocols

    write(record_protocols())
