"""The payload recipes, each with the model of the arguments it takes.

A builder is a name (what a profile writes after `builder:`), a pydantic model of its `args`
(strict, unknown keys refused) and a function from that model to the bytes of one request.
Profiles check `args` against the model when they load, so a wrong argument is a profile
problem reported with the others, never a surprise at scan time. scapy is imported inside the
builders that use it: loading profiles never pays for it.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

MAX_DATAGRAM = 65507  # the largest UDP payload over IPv4: no payload may be longer


def _text_check(encoding: str, forbidden: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        for char in forbidden:
            if char in value:
                raise ValueError(f"{char!r} is not allowed here")
        value.encode(encoding)  # a UnicodeEncodeError is a ValueError: pydantic reports it
        return value

    return check


Latin1 = Annotated[str, AfterValidator(_text_check("latin-1", ""))]
"""Text sent as latin-1, so any byte can be written as \\xNN in YAML."""
Field8 = Annotated[str, Field(max_length=255), AfterValidator(_text_check("utf-8", "\x00"))]
"""A short UTF-8 field of a NUL-separated request (a NUL would end it early)."""
Line = Annotated[str, Field(max_length=2048), AfterValidator(_text_check("latin-1", "\r\n"))]
"""One line of a line-based request: the builder ends it; a CR or LF would add another."""
Oid = Annotated[str, Field(pattern=r"^[0-2](\.(0|[1-9][0-9]{0,9})){1,127}$")]
"""A dotted OID such as 1.3.6.1.2.1.1.1.0."""
Int31 = Annotated[int, Field(ge=0, le=2**31 - 1)]
Byte = Annotated[int, Field(ge=0, le=255)]


class BuilderArgs(BaseModel):
    """The arguments of a builder: strict types, no unknown key, frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, defer_build=True)


A = TypeVar("A", bound=BuilderArgs)


@dataclass(frozen=True, slots=True)
class Builder(Generic[A]):
    """A named recipe: the model of its arguments and the function that builds the bytes."""

    name: str
    args: type[A]
    build: Callable[[A], bytes]

    def payload(self, args: dict[str, Any]) -> bytes:
        """Validate `args` (pydantic's ValidationError when wrong) and build the bytes."""
        return self.build(self.args.model_validate(args))


class NoArgs(BuilderArgs):
    """A builder that takes no argument."""


def null(args: NoArgs) -> bytes:
    """Send nothing: read what the server says first (TCP), or an empty datagram (UDP)."""
    return b""


class TextArgs(BuilderArgs):
    """text: the payload itself."""

    value: Annotated[Latin1, Field(max_length=MAX_DATAGRAM)]


def text(args: TextArgs) -> bytes:
    """A literal text payload (latin-1, so any byte can be written as \\xNN in YAML)."""
    return args.value.encode("latin-1")


class SnmpGetArgs(BuilderArgs):
    """snmp-get: community, version (1 or 2c), the OIDs to get and the request id."""

    community: Field8 = "public"
    version: Literal["1", "2c"] = "1"
    oids: Annotated[list[Oid], Field(min_length=1, max_length=64)] = ["1.3.6.1.2.1.1.1.0"]
    request_id: Int31 = 0x6770


def snmp_get(args: SnmpGetArgs) -> bytes:
    """SNMP GetRequest (v1 or v2c) for a list of OIDs, built by scapy."""
    from scapy.asn1.asn1 import ASN1_OID  # noqa: PLC0415 - scapy loads slowly; only when used
    from scapy.layers.snmp import SNMP, SNMPget, SNMPvarbind  # noqa: PLC0415

    binds = [SNMPvarbind(oid=ASN1_OID(oid)) for oid in args.oids]
    packet = SNMP(
        version={"1": 0, "2c": 1}[args.version],
        community=args.community.encode(),
        PDU=SNMPget(id=args.request_id, varbindlist=binds),
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


class SnmpV3DiscoveryArgs(BuilderArgs):
    """snmpv3-discovery: the message and request ids."""

    message_id: Int31 = 0x4742
    request_id: Int31 = 0x4743


def snmpv3_discovery(args: SnmpV3DiscoveryArgs) -> bytes:
    """SNMPv3 engine discovery (RFC 3414 section 4): a reportable, unauthenticated GetRequest
    with an empty USM user and engine id. An SNMPv3 agent answers with a Report carrying its
    engine id, boots and time, even to an unknown user."""
    global_data = _tlv(
        0x30,
        _ber_int(args.message_id)
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
    pdu = _tlv(0xA0, _ber_int(args.request_id) + _ber_int(0) + _ber_int(0) + _tlv(0x30, b""))
    scoped = _tlv(0x30, _tlv(0x04, b"") + _tlv(0x04, b"") + pdu)
    return _tlv(0x30, _ber_int(3) + global_data + _tlv(0x04, usm) + scoped)


class SnmpInformArgs(BuilderArgs):
    """snmp-inform: community, request id and the notification's snmpTrapOID."""

    community: Field8 = "public"
    request_id: Int31 = 0x6771
    trap_oid: Oid = "1.3.6.1.6.3.1.1.5.1"  # coldStart


def snmp_inform(args: SnmpInformArgs) -> bytes:
    """SNMPv2c InformRequest (RFC 3416 4.2.7) with sysUpTime.0 and snmpTrapOID.0, built by
    scapy. A trap receiver acknowledges an Inform with a Response PDU of the same request id,
    where it stays silent to a GetRequest."""
    from scapy.asn1.asn1 import ASN1_OID, ASN1_TIME_TICKS  # noqa: PLC0415 - loads slowly
    from scapy.layers.snmp import SNMP, SNMPinform, SNMPvarbind  # noqa: PLC0415

    binds = [
        SNMPvarbind(oid=ASN1_OID("1.3.6.1.2.1.1.3.0"), value=ASN1_TIME_TICKS(0)),
        SNMPvarbind(oid=ASN1_OID("1.3.6.1.6.3.1.1.4.1.0"), value=ASN1_OID(args.trap_oid)),
    ]
    packet = SNMP(
        version=1,  # v2c
        community=args.community.encode(),
        PDU=SNMPinform(id=args.request_id, varbindlist=binds),
    )
    return bytes(packet)


class TftpRrqArgs(BuilderArgs):
    """tftp-rrq: the file to ask for and the transfer mode."""

    filename: Field8 = "ghostport-probe.txt"
    mode: Literal["octet", "netascii", "mail"] = "octet"


def tftp_rrq(args: TftpRrqArgs) -> bytes:
    """TFTP read request (RFC 1350), built by scapy. A server answers from a new port with
    DATA or ERROR."""
    from scapy.layers.tftp import TFTP, TFTP_RRQ  # noqa: PLC0415

    return bytes(TFTP() / TFTP_RRQ(filename=args.filename.encode(), mode=args.mode.encode()))


class FingerArgs(BuilderArgs):
    """finger: the query (empty lists the users logged in)."""

    query: Line = ""


def finger(args: FingerArgs) -> bytes:
    """A finger query (RFC 1288): empty lists the users logged in."""
    return args.query.encode("latin-1") + b"\r\n"


class HttpGetArgs(BuilderArgs):
    """http-get: the path and an optional Host header."""

    path: Annotated[Line, Field(pattern=r"^[^ \t]+$")] = "/"
    host: Annotated[Line, Field(pattern=r"^[^ \t]*$")] | None = None


def http_get(args: HttpGetArgs) -> bytes:
    """A plain HTTP/1.0 GET; TLS servers answer it with an alert, which names them too."""
    head = f"GET {args.path} HTTP/1.0\r\n"
    if args.host:
        head += f"Host: {args.host}\r\n"
    return (head + "User-Agent: ghostport\r\n\r\n").encode("latin-1")


class RmcpPingArgs(BuilderArgs):
    """rmcp-ping: the message tag (0-255) the pong carries back."""

    tag: Byte = 0x47


def rmcp_ping(args: RmcpPingArgs) -> bytes:
    """ASF RMCP presence ping (DMTF DSP0136): RMCP v6, sequence 0xff (no ack), class ASF;
    ASF IANA enterprise 4542, message type 0x80. IPMI BMCs answer with a presence pong."""
    head = struct.pack(">BBBB", 6, 0, 0xFF, 6)
    return head + struct.pack(">IBBBB", 4542, 0x80, args.tag, 0, 0)


class AgentxOpenArgs(BuilderArgs):
    """agentx-open: the subagent's description and its timeout in seconds (0-255)."""

    subagent: Field8 = "ghostport"
    timeout: Byte = 5


def agentx_open(args: AgentxOpenArgs) -> bytes:
    """AgentX Open-PDU (RFC 2741 6.2.1), network byte order. A master agent answers with a
    Response-PDU (type 18)."""
    descr = args.subagent.encode()
    padded = descr + b"\x00" * (-len(descr) % 4)
    oid = struct.pack(">BBBB", 0, 0, 0, 0)  # null OID
    body = struct.pack(">B3x", args.timeout) + oid + struct.pack(">I", len(descr)) + padded
    flags = 0x10  # NETWORK_BYTE_ORDER
    header = struct.pack(">BBBBIIII", 1, 1, flags, 0, 0, 1, 1, len(body))
    return header + body


def x11_setup(args: NoArgs) -> bytes:
    """X11 connection setup, little-endian, protocol 11.0, no authorisation. A server
    answers success (1), failure (0) or authenticate (2) with its protocol version."""
    return struct.pack("<cxHHHH2x", b"l", 11, 0, 0, 0)


def smart_install_hello(args: NoArgs) -> bytes:
    """Cisco Smart Install director message (the 4-word header used by Cisco's own checker):
    a client on 4786 answers with a header beginning 0x00000004."""
    return struct.pack(">IIIIII", 1, 1, 4, 8, 1, 0)


class RexecArgs(BuilderArgs):
    """rexec: user, password and command."""

    user: Field8 = "ghostport"
    password: Field8 = "not-a-password"
    command: Field8 = "true"


def rexec(args: RexecArgs) -> bytes:
    """rexec request: stderr port (0: none), user, password, command, NUL-separated."""
    return b"0\x00" + f"{args.user}\x00{args.password}\x00{args.command}\x00".encode()


class RloginArgs(BuilderArgs):
    """rlogin: user and terminal/speed."""

    user: Field8 = "ghostport"
    terminal: Field8 = "vt100/9600"


def rlogin(args: RloginArgs) -> bytes:
    """rlogin handshake: NUL, client user, server user, terminal/speed, NUL-separated."""
    return f"\x00{args.user}\x00{args.user}\x00{args.terminal}\x00".encode()


class RshArgs(BuilderArgs):
    """rsh: user and command."""

    user: Field8 = "ghostport"
    command: Field8 = "true"


def rsh(args: RshArgs) -> bytes:
    """rsh request: stderr port (0), client user, server user, command. From an unprivileged
    source port rshd refuses with an \\x01 error line, which is what recognises it."""
    return f"0\x00{args.user}\x00{args.user}\x00{args.command}\x00".encode()


class EchoTokenArgs(BuilderArgs):
    """echo-token: the token an echo service sends back."""

    token: Annotated[Field8, Field(min_length=1)] = "ghostport-echo-7f3a"


def echo_token(args: EchoTokenArgs) -> bytes:
    """A distinctive token an echo service sends back unchanged."""
    return args.token.encode()


def _builders(*entries: Builder[Any]) -> dict[str, Builder[Any]]:
    return {entry.name: entry for entry in entries}


BUILDERS: dict[str, Builder[Any]] = _builders(
    Builder("null", NoArgs, null),
    Builder("text", TextArgs, text),
    Builder("snmp-get", SnmpGetArgs, snmp_get),
    Builder("snmpv3-discovery", SnmpV3DiscoveryArgs, snmpv3_discovery),
    Builder("snmp-inform", SnmpInformArgs, snmp_inform),
    Builder("tftp-rrq", TftpRrqArgs, tftp_rrq),
    Builder("finger", FingerArgs, finger),
    Builder("http-get", HttpGetArgs, http_get),
    Builder("rmcp-ping", RmcpPingArgs, rmcp_ping),
    Builder("agentx-open", AgentxOpenArgs, agentx_open),
    Builder("x11-setup", NoArgs, x11_setup),
    Builder("smart-install-hello", NoArgs, smart_install_hello),
    Builder("rexec", RexecArgs, rexec),
    Builder("rlogin", RloginArgs, rlogin),
    Builder("rsh", RshArgs, rsh),
    Builder("echo-token", EchoTokenArgs, echo_token),
)
"""Every builder a profile may name, by name."""
