"""The lab's map and its lifecycle: which emulator runs on which 127.x host and port.

base+1  synoptics-hub     SNMP agent (v1/v2c, community public) on udp 161, 391, 392, 412;
                          trap receiver on udp 162; telnet with a vendor banner on 23
base+2  airmobile-server  AirMobile command port 3416 tcp+udp; finger 79; TFTP 69/udp
base+3  inetd-host        echo 7, discard 9, daytime 13, chargen 19, time 37 (tcp and udp)
base+4  squatter-host     an HTTP application on 412/tcp, an SSH server on 3416/tcp
base+5  closed-host       nothing: every port closed
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import time
from dataclasses import dataclass, field

from scanner.errors import LabError, ScanOptionError
from scanner.lab.emulators import (
    LabService,
    TcpHandler,
    UdpReply,
    amis_reply,
    bind_udp,
    chargen_line,
    daytime_text,
    serve_udp,
    snmp_agent,
    tcp_chargen,
    tcp_discard,
    tcp_echo,
    tcp_finger,
    tcp_http_squatter,
    tcp_lines,
    tcp_send_and_close,
    tcp_ssh_banner,
    tcp_telnet_login,
    tftp_reply,
    time_bytes,
)
from scanner.local import port_holder

DEFAULT_BASE = "127.0.10.0"
LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
HOST_NAMES = ("synoptics-hub", "airmobile-server", "inetd-host", "squatter-host", "closed-host")


def lab_hosts(base: str) -> list[str]:
    """The five lab addresses after the base; only loopback is accepted."""
    try:
        first = ipaddress.IPv4Address(base)
    except ValueError:
        raise ScanOptionError(f"lab base {base!r} is not an IPv4 address") from None
    hosts = [first + offset for offset in range(1, 6)]
    if not all(host in LOOPBACK for host in [first, *hosts]):
        raise ScanOptionError(f"lab base {base!r}: the lab only runs on 127.0.0.0/8")
    return [str(host) for host in hosts]


@dataclass
class _Plan:
    tcp: list[tuple[LabService, TcpHandler]] = field(default_factory=list)
    udp: list[tuple[LabService, UdpReply, bool]] = field(default_factory=list)


def _plan(base: str) -> _Plan:
    hub, airmobile, inetd, squatter, _closed = lab_hosts(base)
    started = time.monotonic()
    plan = _Plan()

    def tcp(host: str, port: int, name: str, expect: str, handler: TcpHandler) -> None:
        plan.tcp.append((LabService(host, port, "tcp", name, expect), handler))

    def udp(  # noqa: PLR0917 - a table of calls reads best positionally
        host: str, port: int, name: str, expect: str, reply: UdpReply, tftp: bool = False
    ) -> None:
        plan.udp.append((LabService(host, port, "udp", name, expect), reply, tftp))

    agent = snmp_agent("synoptics-hub-3f", started)
    for port, what in (
        (161, "snmp"),
        (391, "synoptics-relay"),
        (392, "synoptics-broker"),
        (412, "synoptics-trap"),
    ):
        udp(hub, port, f"SynOptics SNMP agent ({what})", f"legacy {what}", agent)
    udp(hub, 162, "SNMP trap receiver (silent)", "open|filtered", lambda data: None)
    tcp(hub, 23, "telnet, SynOptics login banner", "legacy telnet", tcp_telnet_login())
    tcp(
        airmobile,
        3416,
        "AirMobile IS command port (emulated)",
        "legacy airmobile-commandport",
        tcp_lines(amis_reply),
    )
    udp(
        airmobile,
        3416,
        "AirMobile IS command port (emulated)",
        "legacy airmobile-commandport",
        amis_reply,
    )
    tcp(airmobile, 79, "finger", "legacy finger", tcp_finger())
    udp(airmobile, 69, "TFTP (answers from a new port)", "legacy tftp", tftp_reply, tftp=True)
    tcp(inetd, 7, "echo", "legacy echo", tcp_echo)
    udp(inetd, 7, "echo", "legacy echo", lambda data: data)
    tcp(inetd, 9, "discard", "legacy discard", tcp_discard)
    udp(inetd, 9, "discard", "open|filtered", lambda data: None)
    tcp(inetd, 13, "daytime", "legacy daytime", tcp_send_and_close(daytime_text))
    udp(inetd, 13, "daytime", "legacy daytime", lambda data: daytime_text())
    tcp(inetd, 19, "chargen", "legacy chargen", tcp_chargen)
    udp(inetd, 19, "chargen", "legacy chargen", lambda data: chargen_line(0))
    tcp(inetd, 37, "time", "legacy time", tcp_send_and_close(time_bytes))
    udp(inetd, 37, "time", "legacy time", lambda data: time_bytes())
    tcp(squatter, 412, "HTTP application (squatter)", "squatter http", tcp_http_squatter())
    tcp(squatter, 3416, "SSH server (squatter)", "squatter ssh", tcp_ssh_banner())
    return plan


def lab_map(base: str = DEFAULT_BASE) -> list[LabService]:
    """Every emulated service, in map order."""
    plan = _plan(base)
    return sorted(
        [service for service, _ in plan.tcp] + [service for service, _, _ in plan.udp],
        key=lambda s: (ipaddress.IPv4Address(s.host), s.port, s.transport),
    )


class Lab:
    """The running emulators; close() stops them all."""

    def __init__(self, base: str = DEFAULT_BASE) -> None:
        self.base = base
        self.hosts = lab_hosts(base)
        self.services = lab_map(base)
        self._servers: list[asyncio.Server] = []
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> Lab:
        """Bind every emulator; LabError names the first port that cannot be bound and why."""
        plan = _plan(self.base)
        where = ""
        try:
            for service, handler in plan.tcp:
                where = f"{service.host} {service.port}/tcp"
                self._servers.append(
                    await asyncio.start_server(handler, service.host, service.port)
                )
            for service, reply, tftp in plan.udp:
                where = f"{service.host} {service.port}/udp"
                server = await bind_udp(service.host, service.port)
                self._tasks.append(
                    asyncio.create_task(serve_udp(server, service.host, reply, tftp))
                )
        except PermissionError:
            await self.close()
            raise LabError(
                "the lab binds privileged ports (23, 69, 79, 161, ...): run it as root"
            ) from None
        except OSError as exc:
            await self.close()
            raise LabError(
                f"the lab cannot bind {where} ({exc.strerror}): {port_holder(where)}"
            ) from None
        except BaseException:
            await self.close()
            raise
        return self

    async def close(self) -> None:
        """Stop every emulator."""
        for server in self._servers:
            server.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await task
        for server in self._servers:
            with contextlib.suppress(OSError):
                await server.wait_closed()
        self._servers.clear()
        self._tasks.clear()
