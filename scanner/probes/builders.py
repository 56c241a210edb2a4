"""The payload recipes. Each returns the bytes of one request."""

from __future__ import annotations

import struct


def null() -> bytes:
    """Send nothing: read what the server says first (TCP), or an empty datagram (UDP)."""
    return b""


def text(value: str) -> bytes:
    """A literal text payload (latin-1, so any byte can be written as \\xNN in YAML)."""
    return value.encode("latin-1")


def snmp_get(
    community: str = "public",
    version: str = "1",
    oids: list[str] | None = None,
    request_id: int = 0x6770,
) -> bytes:
    """SNMP GetRequest (v1 or v2c) for a list of OIDs, built by scapy."""
    from scapy.asn1.asn1 import ASN1_OID  # noqa: PLC0415 - scapy loads slowly; only when used
    from scapy.layers.snmp import SNMP, SNMPget, SNMPvarbind  # noqa: PLC0415

    versions = {"1": 0, "2c": 1}
    if version not in versions:
        raise ValueError(f"version {version!r} is not 1 or 2c")
    binds = [SNMPvarbind(oid=ASN1_OID(oid)) for oid in (oids or ["1.3.6.1.2.1.1.1.0"])]
    packet = SNMP(
        version=versions[version],
        community=community.encode(),
        PDU=SNMPget(id=request_id, varbindlist=binds),
    )
    return bytes(packet)


def _tlv(tag: int, content: bytes) -> bytes:
    """One BER element (short and long length forms)."""
    size = len(content)
    if size < 0x80:
        return bytes([tag, size]) + content
    encoded = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(encoded)]) + encoded + content


def _ber_int(value: int) -> bytes:
    return _tlv(0x02, value.to_bytes(max(1, (value.bit_length() + 8) // 8), "big", signed=True))


def snmpv3_discovery(message_id: int = 0x4742, request_id: int = 0x4743) -> bytes:
    """SNMPv3 engine discovery (RFC 3414 section 4): a reportable, unauthenticated GetRequest
    with an empty USM user and engine id. An SNMPv3 agent answers with a Report carrying its
    engine id, boots and time, even to an unknown user."""
    global_data = _tlv(
        0x30,
        _ber_int(message_id)
        + _ber_int(65507)  # msgMaxSize
        + _tlv(0x04, b"\x04")  # msgFlags: reportable, no auth, no priv
        + _ber_int(3),  # msgSecurityModel: USM
    )
    usm = _tlv(
        0x30,
        _tlv(0x04, b"")  # authoritative engine id
        + _ber_int(0)  # engine boots
        + _ber_int(0)  # engine time
        + _tlv(0x04, b"")  # user name
        + _tlv(0x04, b"")  # authentication parameters
        + _tlv(0x04, b""),  # privacy parameters
    )
    pdu = _tlv(0xA0, _ber_int(request_id) + _ber_int(0) + _ber_int(0) + _tlv(0x30, b""))
    scoped = _tlv(0x30, _tlv(0x04, b"") + _tlv(0x04, b"") + pdu)
    return _tlv(0x30, _ber_int(3) + global_data + _tlv(0x04, usm) + scoped)


def tftp_rrq(filename: str = "ghostport-probe.txt", mode: str = "octet") -> bytes:
    """TFTP read request (RFC 1350), built by scapy. A server answers from a new port with
    DATA or ERROR."""
    from scapy.layers.tftp import TFTP, TFTP_RRQ  # noqa: PLC0415

    return bytes(TFTP() / TFTP_RRQ(filename=filename.encode(), mode=mode.encode()))


def finger(query: str = "") -> bytes:
    """A finger query (RFC 1288): empty lists the users logged in."""
    return query.encode("latin-1") + b"\r\n"


def http_get(path: str = "/", host: str | None = None) -> bytes:
    """A plain HTTP/1.0 GET; TLS servers answer it with an alert, which names them too."""
    head = f"GET {path} HTTP/1.0\r\n"
    if host:
        head += f"Host: {host}\r\n"
    return (head + "User-Agent: ghostport\r\n\r\n").encode("latin-1")


def rmcp_ping(tag: int = 0x47) -> bytes:
    """ASF RMCP presence ping (DMTF DSP0136): RMCP v6, sequence 0xff (no ack), class ASF;
    ASF IANA enterprise 4542, message type 0x80. IPMI BMCs answer with a presence pong."""
    return struct.pack(">BBBB", 6, 0, 0xFF, 6) + struct.pack(">IBBBB", 4542, 0x80, tag, 0, 0)


def agentx_open(subagent: str = "ghostport", timeout: int = 5) -> bytes:
    """AgentX Open-PDU (RFC 2741 6.2.1), network byte order. A master agent answers with a
    Response-PDU (type 18)."""
    descr = subagent.encode()
    padded = descr + b"\x00" * (-len(descr) % 4)
    oid = struct.pack(">BBBB", 0, 0, 0, 0)  # null OID
    body = struct.pack(">B3x", timeout) + oid + struct.pack(">I", len(descr)) + padded
    flags = 0x10  # NETWORK_BYTE_ORDER
    header = struct.pack(">BBBBIIII", 1, 1, flags, 0, 0, 1, 1, len(body))
    return header + body


def x11_setup() -> bytes:
    """X11 connection setup, little-endian, protocol 11.0, no authorisation. A server
    answers success (1), failure (0) or authenticate (2) with its protocol version."""
    return struct.pack("<cxHHHH2x", b"l", 11, 0, 0, 0)


def smart_install_hello() -> bytes:
    """Cisco Smart Install director message (the 4-word header used by Cisco's own checker):
    a client on 4786 answers with a header beginning 0x00000004."""
    return struct.pack(">IIIIII", 1, 1, 4, 8, 1, 0)


def rexec(
    user: str = "ghostport", password: str = "not-a-password", command: str = "true"
) -> bytes:
    """rexec request: stderr port (0: none), user, password, command, NUL-separated."""
    return b"0\x00" + f"{user}\x00{password}\x00{command}\x00".encode()


def rlogin(user: str = "ghostport", terminal: str = "vt100/9600") -> bytes:
    """rlogin handshake: NUL, client user, server user, terminal/speed, NUL-separated."""
    return f"\x00{user}\x00{user}\x00{terminal}\x00".encode()


def rsh(user: str = "ghostport", command: str = "true") -> bytes:
    """rsh request: stderr port (0), client user, server user, command. From an unprivileged
    source port rshd refuses with an \\x01 error line, which is what recognises it."""
    return f"0\x00{user}\x00{user}\x00{command}\x00".encode()


def echo_token(token: str = "ghostport-echo-7f3a") -> bytes:
    """A distinctive token an echo service sends back unchanged."""
    return token.encode()
