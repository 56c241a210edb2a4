"""Matchers: (matcher, response, request) -> a match with extracted fields, or None.

Pure functions: no I/O, and nothing a hostile host sends can raise out of here (every decoder
is guarded; a decoding error is simply no match). Hard matches name a protocol with the
matcher's confidence; soft matches (nmap's softmatch) only suggest one.

An echo guard runs first: a response equal to the request is an echo service, never the
protocol the request was written in (an SNMP GetRequest echoed back is not SNMP).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache

from scanner.models import Severity
from scanner.profiles import MatcherModel

EXTRACT_LIMIT = 256
_SNMP_OIDS = {
    "1.3.6.1.2.1.1.1.0": "sysDescr",
    "1.3.6.1.2.1.1.2.0": "sysObjectID",
    "1.3.6.1.2.1.1.3.0": "sysUpTime",
    "1.3.6.1.2.1.1.5.0": "sysName",
}
_TELNET_COMMANDS = frozenset({0xFA, 0xFB, 0xFC, 0xFD, 0xFE})
_RFC868_2000 = 3_155_673_600  # 2000-01-01 in seconds since 1900
_RFC868_TO_UNIX = 2_208_988_800
# RFC 864's rotating pattern: the 95 printing ASCII characters, space to tilde, in a ring
_CHARGEN_RING = bytes(range(0x20, 0x7F))
_CHARGEN_MIN = 64  # characters of the rotation needed before a response is called chargen
_LINE_END = re.compile(rb"\r?\n")


@dataclass(frozen=True, slots=True)
class Match:
    """A matcher that recognised a response."""

    matcher: str
    protocol: str
    confidence: float
    soft: bool
    extracted: dict[str, str] = field(default_factory=dict)
    severity: Severity | None = None


def printable(data: bytes, limit: int = EXTRACT_LIMIT) -> str:
    """Text for a report: control characters become spaces, length is capped."""
    text = data.decode("utf-8", errors="replace")
    cleaned = "".join(ch if ch.isprintable() else " " for ch in text)
    return " ".join(cleaned.split())[:limit]


@lru_cache(maxsize=512)
def _compiled(pattern: str) -> re.Pattern[bytes]:
    return re.compile(pattern.encode("latin-1"), re.DOTALL)


def _decode_snmp(response: bytes) -> dict[str, str] | None:
    if response[:1] != b"\x30":
        return None
    if re.match(rb"\x30[\x00-\x7f\x81\x82][\x00-\xff]{0,2}?\x02\x01\x03", response[:8]):
        return {"version": "3"}  # SNMPv3: a message scapy does not decode; the header says it
    from scapy.layers.snmp import (  # noqa: PLC0415 - scapy loads slowly; only when used
        SNMP,
        SNMPinform,
        SNMPresponse,
        SNMPtrapv1,
        SNMPtrapv2,
    )

    packet = SNMP(response)
    pdu = packet.PDU
    if not isinstance(pdu, SNMPresponse | SNMPinform | SNMPtrapv1 | SNMPtrapv2):
        return None
    fields = {
        "version": {0: "1", 1: "2c"}.get(int(packet.version.val), str(packet.version.val)),
        "community": printable(bytes(packet.community.val)),
    }
    for bind in getattr(pdu, "varbindlist", []):
        name = _SNMP_OIDS.get(str(bind.oid.val))
        if name:
            value = bind.value.val
            fields[name] = printable(value if isinstance(value, bytes) else str(value).encode())
    return fields


def _decode_tftp(response: bytes) -> dict[str, str] | None:
    if len(response) < 4:
        return None
    opcode = struct.unpack(">H", response[:2])[0]
    if opcode == 3:  # DATA: block number, then data
        return {"tftp": "data", "block": str(struct.unpack(">H", response[2:4])[0])}
    if opcode == 5 and response.endswith(b"\x00"):  # ERROR: code, message, NUL
        code = struct.unpack(">H", response[2:4])[0]
        if code <= 8:
            return {"tftp": "error", "error": printable(response[4:-1])}
    return None


def _strip_iac(data: bytes) -> bytes:
    out = bytearray()
    index = 0
    while index < len(data):
        byte = data[index]
        if byte == 0xFF and index + 1 < len(data):
            command = data[index + 1]
            if command == 0xFA:  # subnegotiation up to IAC SE
                end = data.find(b"\xff\xf0", index)
                index = len(data) if end < 0 else end + 2
            elif command in _TELNET_COMMANDS:
                index += 3
            else:
                index += 2
            continue
        out.append(byte)
        index += 1
    return bytes(out)


def _decode_telnet(response: bytes) -> dict[str, str] | None:
    if len(response) < 3 or response[0] != 0xFF or response[1] not in _TELNET_COMMANDS:
        return None
    banner = printable(_strip_iac(response))
    return {"banner": banner} if banner else {}


def _decode_http(response: bytes) -> dict[str, str] | None:
    if not re.match(rb"HTTP/\d\.\d \d{3}", response):
        return None
    head = response.split(b"\r\n\r\n", 1)[0]
    fields = {"status": printable(head.split(b"\r\n", 1)[0])}
    server = re.search(rb"(?im)^server:[ \t]*([^\r\n]+)", head)
    if server:
        fields["server"] = printable(server.group(1))
    return fields


def _decode_ssh(response: bytes) -> dict[str, str] | None:
    if not response.startswith(b"SSH-"):
        return None
    return {"version": printable(response.split(b"\n", 1)[0])}


def _decode_tls(response: bytes) -> dict[str, str] | None:
    if len(response) >= 5 and response[0] in (0x15, 0x16) and response[1] == 3 and response[2] <= 4:
        return {"record": "alert" if response[0] == 0x15 else "handshake"}
    return None


def _decode_time(response: bytes) -> dict[str, str] | None:
    # RFC 868 says 4 bytes; inetutils-inetd on 64-bit hosts writes a C long: the same 4 bytes
    # and then 4 zero bytes (recorded in tests/samples/recorded.json).
    if len(response) not in (4, 8) or (len(response) == 8 and response[4:] != b"\0\0\0\0"):
        return None
    seconds = struct.unpack(">I", response[:4])[0]
    if seconds < _RFC868_2000:
        return None
    moment = datetime.fromtimestamp(seconds - _RFC868_TO_UNIX, UTC)
    return {"time": moment.strftime("%Y-%m-%dT%H:%M:%SZ")}


def _chargen_run(data: bytes, start: int) -> bool:
    """Whether data is the ring read from position `start` on (wrapping around)."""
    offset = start % len(_CHARGEN_RING)
    laps = (offset + len(data)) // len(_CHARGEN_RING) + 1
    return (_CHARGEN_RING * laps)[offset : offset + len(data)] == data


def _decode_chargen(response: bytes) -> dict[str, str] | None:
    """RFC 864 chargen, recognised by its structure rather than a substring.

    A chargen service sends lines of one width (72 in the RFC and in inetd) cut from the ring
    of the 95 printing characters, each line starting one character further round the ring,
    ended by CRLF. The whole response must be that: full lines, then perhaps the start of the
    next one where a TCP read stopped (a UDP reply is one line, or one chunk of the ring).
    Junk that merely contains the alphabet is not chargen.
    """
    *lines, tail = _LINE_END.split(response)
    if not lines:  # one chunk with no line end
        if len(tail) < _CHARGEN_MIN or tail[0] not in _CHARGEN_RING:
            return None
        return {"width": str(len(tail))} if _chargen_run(tail, tail[0] - 0x20) else None
    first = lines[0]
    if not first or first[0] not in _CHARGEN_RING:
        return None
    start, width = first[0] - 0x20, len(first)
    for index, line in enumerate(lines):
        if len(line) != width or not _chargen_run(line, start + index):
            return None
    tail = tail.removesuffix(b"\r")  # a read that stopped between CR and LF
    if len(tail) > width or not _chargen_run(tail, start + len(lines)):
        return None
    if width * len(lines) + len(tail) < _CHARGEN_MIN:
        return None
    return {"width": str(width)}


def _decode_rmcp(response: bytes) -> dict[str, str] | None:
    if len(response) >= 12 and response[0] == 6 and response[3] == 6 and response[8] == 0x40:
        return {"asf": "presence-pong"}
    return None


def _decode_agentx(response: bytes) -> dict[str, str] | None:
    if len(response) >= 20 and response[0] == 1 and response[1] == 18:
        return {"pdu": "response"}
    return None


def _decode_x11(response: bytes) -> dict[str, str] | None:
    if len(response) >= 8 and response[0] in (0, 1, 2):
        major, minor = struct.unpack("<HH", response[2:6])
        if major == 11:
            status = {0: "failed", 1: "success", 2: "authenticate"}[response[0]]
            return {"x11": status, "version": f"{major}.{minor}"}
    return None


def _decode_smart_install(response: bytes) -> dict[str, str] | None:
    if response[:12] == bytes.fromhex("000000040000000000000003"):
        return {"smart_install": "client"}
    return None


def _decode_rcmd(response: bytes) -> dict[str, str] | None:
    if len(response) >= 2 and response[0] == 1 and 32 <= response[1] < 127:
        return {"error": printable(response[1:])}
    return None


_DECODERS: dict[str, Callable[[bytes], dict[str, str] | None]] = {
    "snmp": _decode_snmp,
    "tftp": _decode_tftp,
    "telnet": _decode_telnet,
    "http": _decode_http,
    "ssh": _decode_ssh,
    "tls": _decode_tls,
    "time": _decode_time,
    "rmcp": _decode_rmcp,
    "agentx": _decode_agentx,
    "x11": _decode_x11,
    "smart-install": _decode_smart_install,
    "rcmd": _decode_rcmd,
    "chargen": _decode_chargen,
}


def _recognised(matcher: MatcherModel, response: bytes, request: bytes) -> dict[str, str] | None:
    kind = matcher.type
    if kind == "echo":
        return {} if response and response == request else None
    if kind == "silent":
        return {} if not response else None
    if not response or response == request:  # the echo guard
        return None
    if kind == "regex":
        assert matcher.pattern is not None
        return {} if _compiled(matcher.pattern).search(response) else None
    if kind == "bytes":
        assert matcher.hex is not None
        return {} if response.startswith(bytes.fromhex(matcher.hex)) else None
    return _DECODERS[kind](response)


def match(matcher: MatcherModel, response: bytes, request: bytes) -> Match | None:
    """Apply one matcher to a response; never raises on hostile input."""
    try:
        found = _recognised(matcher, response, request)
    except Exception:  # a decoder choking on hostile bytes is no match, never a crash
        return None
    if found is None:
        return None
    extracted = dict(found)
    for name, pattern in matcher.extract.items():
        hit = _compiled(pattern).search(response)
        if hit and hit.group(1):
            extracted[name] = printable(hit.group(1))
    confidence = matcher.confidence or (0.5 if matcher.soft else 1.0)
    return Match(
        matcher.name, matcher.protocol, confidence, matcher.soft, extracted, matcher.severity
    )
