"""Positive samples: per bundled service, the bytes its implementation sends to our probe.

Each says where it comes from: "recorded from ..." (tests/samples/record.py ran the real
daemon and stored its reply in recorded.json), or "constructed per ..." (written from the
protocol's specification or a documented implementation's behaviour, where no Debian package
provides the daemon). `echo` answers with the request; `silent` services accept and say nothing.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

from scanner.models import Transport
from tests.samples.protocols import protocol_samples

_RECORDED = json.loads((Path(__file__).parent / "recorded.json").read_text())
ECHO = b"<echo>"
SILENT = b"<silent>"


@dataclass(frozen=True)
class Sample:
    """What one service sends back to one of its probes."""

    service: str
    transport: Transport
    port: int
    probe: str
    response: bytes
    source: str
    protocol: str


def recorded(name: str) -> tuple[bytes, str]:
    entry = _RECORDED[name]
    return bytes.fromhex(entry["hex"]), entry["source"]


def recorded_or(name: str, constructed: bytes, source: str) -> tuple[bytes, str]:
    """The recorded sample if record.py could record it, else the constructed one."""
    if name in _RECORDED:
        return recorded(name)
    return constructed, f"constructed per {source}"


def _x11_failure() -> bytes:
    reason = b"No protocol specified\n"
    padded = reason + b"\0" * (-len(reason) % 4)
    return struct.pack("<BBHHH", 0, len(reason), 11, 0, len(padded) // 4) + padded


def _rmcp_pong() -> bytes:
    # DSP0136: RMCP v6, seq 0xff, class ASF; ASF 4542, type 0x40 pong, tag, 0, length 16;
    # IANA 4542, OEM 0, supported entities 0x81 (IPMI), interactions 0, 6 reserved bytes.
    return (
        struct.pack(">BBBB", 6, 0, 0xFF, 6)
        + struct.pack(">IBBBB", 4542, 0x40, 0x47, 0, 16)
        + struct.pack(">IIBB", 4542, 0, 0x81, 0)
        + b"\0" * 6
    )


def _samples() -> list[Sample]:
    snmp_v1, snmp_source = recorded("snmp-v1-public")
    snmp_v3, _ = recorded("snmpv3-discovery")
    T, U = Transport.TCP, Transport.UDP  # noqa: N806 - keeps the table readable
    items = [
        Sample("synoptics-relay", U, 391, "snmp-v1-public", snmp_v1, snmp_source, "snmp"),
        Sample("synoptics-broker", U, 392, "snmp-v1-public", snmp_v1, snmp_source, "snmp"),
        Sample("synoptics-trap", U, 412, "snmp-v1-public", snmp_v1, snmp_source, "snmp"),
        Sample(
            "synoptics-relay", T, 391, "snmp-tcp-v1-public", *recorded("snmp-tcp-v1-public"), "snmp"
        ),
        Sample("snmp", U, 161, "snmpv3-discovery", snmp_v3, snmp_source, "snmp"),
        Sample("snmptrap", U, 162, "snmp-v2c-public", *recorded("snmp-v2c-public"), "snmp"),
        Sample("snmptrap", U, 162, "snmp-v2c-inform", *recorded("snmp-v2c-inform"), "snmp"),
        Sample("smux", T, 199, "http-get", *recorded("smux-close"), "smux"),
        Sample("rlogin", T, 513, "rlogin-handshake", *recorded("rlogin-privileged"), "login"),
        Sample("rsh", T, 514, "rsh-command", *recorded("rsh-privileged"), "shell"),
        Sample("snmp-tcp", T, 1993, "snmp-tcp-v1-public", *recorded("snmp-tcp-v1-public"), "snmp"),
        Sample("agentx", T, 705, "agentx-open", *recorded("agentx-open"), "agentx"),
        Sample(
            "airmobile-commandport",
            T,
            3416,
            "amis-hello",
            b"+AMIS 1.0 AirMobile IS command port ready\r\n",
            "constructed per ghostport's documented lab emulation (no specification survives)",
            "commandport",
        ),
        Sample(
            "telnet",
            T,
            23,
            "tcp-null",
            b"\xff\xfd\x18\xff\xfd\x20\xff\xfd\x23\xff\xfd\x27",
            "constructed per Linux telnetd (netkit/inetutils): DO TTYPE, TSPEED, XDISPLOC, "
            "NEW-ENVIRON",
            "telnet",
        ),
        Sample("tftp", U, 69, "tftp-rrq", *recorded("tftp-rrq"), "tftp"),
        Sample(
            "finger",
            T,
            79,
            "finger-list",
            b"No one logged on.\r\n",
            "constructed per BSD fingerd's empty listing",
            "finger",
        ),
        Sample(
            "rexec",
            T,
            512,
            "rexec-login",
            b"\x01Login incorrect.\n",
            "constructed per netkit rexecd (RFC-less BSD protocol)",
            "exec",
        ),
        Sample(
            "rlogin",
            T,
            513,
            "rlogin-handshake",
            b"\x01Permission denied.\n",
            "constructed per netkit rlogind refusing an unprivileged source port",
            "login",
        ),
        Sample(
            "rsh",
            T,
            514,
            "rsh-command",
            b"\x01Permission denied.\n",
            "constructed per netkit rshd refusing an unprivileged source port",
            "shell",
        ),
        Sample("echo", U, 7, "echo-token-udp", ECHO, "inetutils-inetd internal echo", "echo"),
        Sample("echo", T, 7, "echo-token-tcp", ECHO, "inetutils-inetd internal echo", "echo"),
        Sample(
            "discard", T, 9, "echo-token-tcp", SILENT, "inetutils-inetd internal discard", "discard"
        ),
        Sample("daytime", T, 13, "tcp-null", *recorded("daytime-tcp"), "daytime"),
        Sample("daytime", U, 13, "udp-empty", *recorded("daytime-udp"), "daytime"),
        Sample("chargen", T, 19, "tcp-null", *recorded("chargen-tcp"), "chargen"),
        Sample("chargen", U, 19, "udp-empty", *recorded("chargen-udp"), "chargen"),
        Sample("time", T, 37, "tcp-null", *recorded("time-tcp"), "time"),
        Sample("time", U, 37, "udp-empty", *recorded("time-udp"), "time"),
        Sample(
            "ipmi",
            U,
            623,
            "rmcp-ping",
            _rmcp_pong(),
            "constructed per DMTF DSP0136 (ASF presence pong)",
            "asf-rmcp",
        ),
        Sample(
            "smart-install",
            T,
            4786,
            "smart-install-hello",
            bytes.fromhex("000000040000000000000003000000080000000100000000"),
            "constructed per Cisco's Smart Install client reply (smi_check)",
            "smart-install",
        ),
        Sample(
            "x11",
            T,
            6000,
            "x11-setup",
            _x11_failure(),
            "constructed per the X11 protocol: Xorg refusing an unauthorised client",
            "x11",
        ),
        Sample("smux", T, 199, "tcp-null", SILENT, "net-snmp SMUX waits for an OpenPDU", "smux"),
        Sample(
            "http",
            T,
            8080,
            "http-get",
            b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nContent-Length: 2\r\n\r\nok",
            "constructed per nginx 1.22",
            "http",
        ),
        Sample(
            "ssh",
            T,
            2222,
            "tcp-null",
            b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n",
            "constructed per OpenSSH 9.2 (Debian 12)",
            "ssh",
        ),
        Sample(
            "tls",
            T,
            8443,
            "http-get",
            bytes.fromhex("15030300020250"),
            "constructed per a TLS 1.2 server's alert to plain text",
            "tls",
        ),
        Sample(
            "ftp",
            T,
            2121,
            "tcp-null",
            b"220 (vsFTPd 3.0.3)\r\n",
            "constructed per vsftpd 3.0.3",
            "ftp",
        ),
        Sample(
            "smtp",
            T,
            2525,
            "tcp-null",
            b"220 mail.lab.test ESMTP Postfix (Debian/GNU)\r\n",
            "constructed per Postfix",
            "smtp",
        ),
    ]
    return items


SAMPLES = _samples() + protocol_samples()
# Services that own ports but have no protocol of their own to recognise: anything that
# answers there is a squatter (tests check that instead of a positive sample).
PORT_OWNERS_ONLY = {"cabletron-sgwp", "dec-notes", "threecom-tsmux", "netware-ip"}
