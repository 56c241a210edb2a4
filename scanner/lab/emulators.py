"""asyncio emulators of legacy services, each speaking enough of its protocol to be recognised
the way the real thing would be. TCP with asyncio streams, UDP with asyncio-dgram.

The AirMobile IS command port protocol is ghostport's own emulation: no specification survives.
It is line-based over TCP and UDP:
    client: HELLO <name>     server: +AMIS 1.0 AirMobile IS command port ready
    client: STATUS           server: +OK clients=3 queue=0
    client: QUIT             server: +BYE            (TCP: then closes)
    anything else            server: -ERR unknown command
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncio_dgram

SYNOPTICS_SYS_DESCR = "SynOptics System 3000 Network Management Module, Agent Rev 5.3.1 (emulated)"
SYNOPTICS_SYS_OBJECT_ID = "1.3.6.1.4.1.45.3.1.5"  # enterprise 45 is SynOptics
_RFC868_TO_UNIX = 2_208_988_800
_CHARGEN_RING = bytes(range(32, 127))
_TELNET_GREETING = (
    b"\xff\xfd\x18\xff\xfd\x20\xff\xfd\x23\xff\xfd\x27"
    b"\r\nSynOptics System 3000 Network Management Module\r\nLogin: "
)


@dataclass(frozen=True, slots=True)
class LabService:
    """One emulated service on the map."""

    host: str
    port: int
    transport: str
    name: str
    expect: str  # what ghostport should say: a verdict and protocol, or "closed"


TcpHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
UdpReply = Callable[[bytes], bytes | None]


def snmp_agent(sys_name: str, started: float) -> UdpReply:
    """An SNMP v1/v2c agent answering the system group to community `public` only."""

    def reply(request: bytes) -> bytes | None:
        from scapy.asn1.asn1 import (  # noqa: PLC0415 - scapy loads slowly
            ASN1_NULL,
            ASN1_OID,
            ASN1_STRING,
            ASN1_TIME_TICKS,
        )
        from scapy.layers.snmp import SNMP, SNMPget, SNMPresponse, SNMPvarbind  # noqa: PLC0415

        try:
            packet = SNMP(request)
        except Exception:
            return None  # not SNMP: a real agent drops it
        if bytes(packet.community.val) != b"public" or not isinstance(packet.PDU, SNMPget):
            return None  # wrong community: agents stay silent
        values = {
            "1.3.6.1.2.1.1.1.0": ASN1_STRING(SYNOPTICS_SYS_DESCR.encode()),
            "1.3.6.1.2.1.1.2.0": ASN1_OID(SYNOPTICS_SYS_OBJECT_ID),
            "1.3.6.1.2.1.1.3.0": ASN1_TIME_TICKS(int((time.monotonic() - started) * 100)),
            "1.3.6.1.2.1.1.5.0": ASN1_STRING(sys_name.encode()),
        }
        binds = [
            SNMPvarbind(oid=bind.oid, value=values.get(str(bind.oid.val), ASN1_NULL(None)))
            for bind in packet.PDU.varbindlist
        ]
        response = SNMP(
            version=packet.version,
            community=packet.community,
            PDU=SNMPresponse(id=packet.PDU.id, varbindlist=binds),
        )
        return bytes(response)

    return reply


def amis_reply(line: bytes) -> bytes:
    """The emulated AirMobile IS command protocol (see the module docstring)."""
    command = line.strip().split(b" ", 1)[0].upper()
    if command == b"HELLO":
        return b"+AMIS 1.0 AirMobile IS command port ready\r\n"
    if command == b"STATUS":
        return b"+OK clients=3 queue=0\r\n"
    if command == b"QUIT":
        return b"+BYE\r\n"
    return b"-ERR unknown command\r\n"


def daytime_text() -> bytes:
    """Daytime as inetd sends it."""
    return time.strftime("%a %b %d %H:%M:%S %Y\r\n", time.gmtime()).encode()


def time_bytes() -> bytes:
    """RFC 868: seconds since 1900, 32 bits."""
    return struct.pack(">I", (int(time.time()) + _RFC868_TO_UNIX) & 0xFFFFFFFF)


def chargen_line(offset: int) -> bytes:
    """Line `offset` of RFC 864's rotating 72-character pattern."""
    start = offset % len(_CHARGEN_RING)
    ring = _CHARGEN_RING[start:] + _CHARGEN_RING[:start]
    return ring[:72] + b"\r\n"


# ------------------------------------------------------------------------- TCP handlers


async def _close(writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        writer.close()
        await writer.wait_closed()


def tcp_send_and_close(payload: Callable[[], bytes]) -> TcpHandler:
    """Say something and hang up (daytime, time)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            writer.write(payload())
            await writer.drain()
        await _close(writer)

    return handle


def tcp_lines(answer: Callable[[bytes], bytes | None], greeting: bytes = b"") -> TcpHandler:
    """A line protocol: greet, then answer each line until the client leaves."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if greeting:
                writer.write(greeting)
                await writer.drain()
            while line := await asyncio.wait_for(reader.readline(), 30):
                reply = answer(line)
                if reply is None:
                    break
                writer.write(reply)
                await writer.drain()
                if reply.startswith(b"+BYE"):
                    break
        except (ConnectionError, OSError, TimeoutError, asyncio.IncompleteReadError):
            pass
        await _close(writer)

    return handle


async def tcp_echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """RFC 862 echo."""
    with contextlib.suppress(ConnectionError, OSError, TimeoutError):
        while data := await asyncio.wait_for(reader.read(4096), 30):
            writer.write(data)
            await writer.drain()
    await _close(writer)


async def tcp_discard(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """RFC 863 discard."""
    with contextlib.suppress(ConnectionError, OSError, TimeoutError):
        while await asyncio.wait_for(reader.read(4096), 30):
            pass
    await _close(writer)


async def tcp_chargen(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """RFC 864 chargen: stream lines until the client closes (capped for the lab)."""
    with contextlib.suppress(ConnectionError, OSError):
        for offset in range(2000):
            writer.write(chargen_line(offset))
            await writer.drain()
    await _close(writer)


def tcp_telnet_login() -> TcpHandler:
    """Telnet option negotiation and a vendor login banner, then silence."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError, TimeoutError):
            writer.write(_TELNET_GREETING)
            await writer.drain()
            while await asyncio.wait_for(reader.read(1024), 10):
                pass
        await _close(writer)

    return handle


def tcp_finger() -> TcpHandler:
    """RFC 1288 finger: one query line, a listing, close."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError, TimeoutError):
            await asyncio.wait_for(reader.readline(), 5)
            writer.write(
                b"Login     Name              Tty      Idle  Login Time\r\n"
                b"netadmin  Network Admin     console    3d  Mar 14 09:12\r\n"
            )
            await writer.drain()
        await _close(writer)

    return handle


def tcp_http_squatter() -> TcpHandler:
    """A small web application that took a 'free' port."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError, TimeoutError):
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            body = b"<html><body>inventory-app</body></html>"
            writer.write(
                b"HTTP/1.0 200 OK\r\nServer: inventory-app/2.3\r\nContent-Type: text/html\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        await _close(writer)

    return handle


def tcp_ssh_banner() -> TcpHandler:
    """An SSH server's identification line, then silence."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError, TimeoutError):
            writer.write(b"SSH-2.0-OpenSSH_8.4p1 Debian-5+deb11u1\r\n")
            await writer.drain()
            await asyncio.wait_for(reader.read(1024), 10)
        await _close(writer)

    return handle


# ------------------------------------------------------------------------- UDP servers


async def bind_udp(host: str, port: int) -> asyncio_dgram.aio.DatagramServer:
    """A bound UDP server socket (bound before the lab reports itself started)."""
    return await asyncio_dgram.bind((host, port))


async def serve_udp(
    server: asyncio_dgram.aio.DatagramServer, host: str, reply: UdpReply, tftp_style: bool = False
) -> None:
    """Answer datagrams until cancelled; TFTP answers from a new port, as real servers do."""
    try:
        while True:
            data, peer = await server.recv()
            try:
                answer = reply(data)
            except Exception:
                answer = None
            if answer is None:
                continue
            if tftp_style:
                other = await asyncio_dgram.bind((host, 0))
                try:
                    await other.send(answer, peer)
                finally:
                    other.close()
            else:
                await server.send(answer, peer)
    finally:
        server.close()


def tftp_reply(request: bytes) -> bytes | None:
    """RFC 1350: a read request for anything gets ERROR 1, File not found."""
    if request[:2] != b"\x00\x01":
        return None
    return b"\x00\x05\x00\x01File not found\x00"
