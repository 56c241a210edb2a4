"""The local audit: which process on this machine holds an orphaned registry port.

A network scan sees the port; only the machine can say which program holds it. psutil lists
every listening TCP socket and bound UDP socket (IPv4 and IPv6) with its owner, on Linux,
macOS and Windows alike. Where the owner cannot be read without more privileges, the socket
says so instead of guessing.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from collections import Counter
from dataclasses import dataclass

import psutil

from scanner.models import LocalSocket, ProcessFacts, Transport

RECENT_S = 3600.0
SYSTEM_PREFIXES = (
    "/usr/",
    "/bin/",
    "/sbin/",
    "/lib/",
    "/lib64/",
    "/opt/",
    "/snap/",
    "/nix/store/",
    "C:\\Windows\\",
    "C:\\Program Files",
    "/System/",
    "/Library/",
    "/Applications/",
)
_WILDCARDS = {"0.0.0.0", "::", ""}


@dataclass(frozen=True, slots=True)
class BoundSocket:
    """One listening TCP or bound UDP socket, before its owner is looked up."""

    transport: Transport
    address: str
    port: int
    pid: int | None


def bound_sockets() -> tuple[list[BoundSocket], str | None]:
    """Every listening TCP and bound UDP socket; and a note when some owners are hidden."""
    note = None
    rows: list[tuple[int, tuple[str, int] | tuple[()], object, str, int | None]] = []
    try:
        rows = [
            (c.type, c.laddr, c.raddr, c.status, c.pid) for c in psutil.net_connections(kind="inet")
        ]
    except psutil.AccessDenied:
        # macOS without root: only this user's processes can be asked, one by one
        for process in psutil.process_iter():
            try:
                rows += [
                    (c.type, c.laddr, c.raddr, c.status, process.pid)
                    for c in process.net_connections(kind="inet")
                ]
            except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
                continue
        note = "only this user's processes could be listed without administrator rights"
    found: list[BoundSocket] = []
    for kind, local, remote, status, pid in rows:
        if not local:
            continue
        if kind == socket.SOCK_STREAM and status != psutil.CONN_LISTEN:
            continue
        if kind == socket.SOCK_DGRAM and remote:
            continue  # a connected UDP socket is a client, not a service
        transport = Transport.TCP if kind == socket.SOCK_STREAM else Transport.UDP
        found.append(BoundSocket(transport, str(local[0]), int(local[1]), pid))
    unique = sorted(set(found), key=lambda s: (s.port, s.transport.value, s.address, s.pid or 0))
    if note is None and any(s.pid is None for s in unique) and not _is_admin():
        note = (
            "some sockets' owners are not readable without root (administrator); run as root "
            "for full ownership"
        )
    return unique, note


def _is_admin() -> bool:
    if hasattr(os, "geteuid"):
        return os.geteuid() == 0
    try:
        import ctypes  # noqa: PLC0415 - Windows only

        return bool(ctypes.windll.shell32.IsUserAnAdmin())  # type: ignore[attr-defined]
    except (AttributeError, OSError):
        return False


def process_facts(pid: int | None, now: float | None = None) -> ProcessFacts:
    """What can be read of a process; unreadable fields say so instead of guessing."""
    if pid is None:
        return ProcessFacts(pid=None, readable=False, note="owner not readable without root")
    now = time.time() if now is None else now
    try:
        process = psutil.Process(pid)
        with process.oneshot():
            name = process.name()
            started = process.create_time()
            try:
                exe: str | None = process.exe() or None
                cmdline = process.cmdline()
                user: str | None = process.username()
                readable, note = True, None
            except (psutil.AccessDenied, psutil.ZombieProcess):
                exe, cmdline, user = None, [], None
                readable, note = False, "executable, command line and user not readable"
    except psutil.NoSuchProcess:
        return ProcessFacts(pid=pid, readable=False, note="the process exited during the audit")
    except psutil.AccessDenied:
        return ProcessFacts(pid=pid, readable=False, note="process not readable without root")
    deleted = exe is not None and (exe.endswith(" (deleted)") or not os.path.exists(exe))
    return ProcessFacts(
        pid=pid,
        name=name,
        exe=exe,
        cmdline=cmdline,
        user=user,
        started_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        readable=readable,
        note=note,
        exe_deleted=deleted,
        outside_system_paths=exe is not None and not exe.startswith(SYSTEM_PREFIXES),
        started_recently=now - started < RECENT_S,
    )


def describe_sockets(sockets: list[BoundSocket]) -> list[LocalSocket]:
    """Sockets with their owners and the flags a defender cares about."""
    now = time.time()
    facts = {pid: process_facts(pid, now) for pid in {s.pid for s in sockets}}
    return [
        LocalSocket(
            proto=s.transport,
            address=s.address,
            port=s.port,
            all_interfaces=s.address in _WILDCARDS,
            loopback_only=s.address.startswith("127.") or s.address == "::1",
            process=facts[s.pid],
        )
        for s in sockets
    ]


def several_orphans(sockets: list[LocalSocket], finding_ports: set[tuple[str, int]]) -> set[int]:
    """Pids that hold more than one port that is a finding."""
    held = Counter(
        s.process.pid
        for s in sockets
        if s.process.pid is not None and (s.proto.value, s.port) in finding_ports
    )
    return {pid for pid, count in held.items() if count > 1}


def probe_address(sock: LocalSocket) -> str:
    """Where to probe a local socket over loopback."""
    if sock.address in ("0.0.0.0", ""):
        return "127.0.0.1"
    if sock.address == "::":
        return "::1"
    return sock.address


def this_host() -> str:
    """The machine's name, for the report."""
    return socket.gethostname() or sys.platform


def port_holder(where: str) -> str:
    """Who holds a lab port ('127.0.10.1 23/tcp'), as far as this user may see, and whether
    moving the lab to another --base would help (not when the holder listens everywhere)."""
    host, _, port_proto = where.partition(" ")
    port_text, _, proto = port_proto.partition("/")
    kind = "tcp" if proto == "tcp" else "udp"
    try:
        connections = psutil.net_connections(kind=kind)
    except (psutil.Error, OSError):
        connections = []
    for conn in connections:
        if not conn.laddr or conn.laddr.port != int(port_text):
            continue
        if conn.laddr.ip != host and conn.laddr.ip not in _WILDCARDS:
            continue
        if kind == "tcp" and conn.status != psutil.CONN_LISTEN:
            continue  # a connection from that port does not stop a listener binding it
        if conn.pid is None:
            who = "another user's process holds it (run as root to see which)"
        else:
            try:
                name = psutil.Process(conn.pid).name()
            except psutil.Error:
                name = "?"
            who = f"process {conn.pid} ({name}) holds it"
        if conn.laddr.ip in _WILDCARDS:
            return (
                f"{who} on every address ({conn.laddr.ip or '*'} port {port_text}), so no "
                "--base can avoid it: stop it first"
            )
        return f"{who} on {host}: stop it first, or start the lab on another --base"
    return "another process holds it, one this user cannot see: stop it first"
