"""Positive samples of the current-protocol recognisers (profiles/common-protocols.yaml).

Each is the reply of a real Debian daemon when record_protocols.py could record it (the key
below is its name in recorded.json), else a reply constructed from the protocol's
specification and labelled so. NEGATIVES are recorded replies that must name nothing.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from scanner.models import Transport

if TYPE_CHECKING:
    from tests.samples import Sample


def _bson(*items: tuple[str, object]) -> bytes:
    out = b""
    for key, value in items:
        name = key.encode() + b"\0"
        if isinstance(value, bool):
            out += b"\x08" + name + (b"\x01" if value else b"\x00")
        elif isinstance(value, int):
            out += b"\x10" + name + struct.pack("<i", value)
        elif isinstance(value, float):
            out += b"\x01" + name + struct.pack("<d", value)
        else:
            text = str(value).encode() + b"\0"
            out += b"\x02" + name + struct.pack("<i", len(text)) + text
    return struct.pack("<i", len(out) + 5) + out + b"\0"


def _mongodb_hello_reply() -> bytes:
    doc = _bson(("isWritablePrimary", True), ("maxWireVersion", 21), ("ok", 1.0))
    body = struct.pack("<I", 0) + b"\0" + doc
    return struct.pack("<iiii", 16 + len(body), 0x1234, 0x676D5047, 2013) + body


def _amqp_connection_start() -> bytes:
    def short(text: bytes) -> bytes:
        return bytes([len(text)]) + text

    def long(text: bytes) -> bytes:
        return struct.pack(">I", len(text)) + text

    table = (
        short(b"product") + b"S" + long(b"RabbitMQ") + short(b"version") + b"S" + long(b"3.10.8")
    )
    args = (
        struct.pack(">HHBB", 10, 10, 0, 9) + long(table) + long(b"AMQPLAIN PLAIN") + long(b"en_US")
    )
    return struct.pack(">BHI", 1, 0, len(args)) + args + b"\xce"


def _netbios_nbstat_reply() -> bytes:
    name = b"HUB-3F".ljust(15) + b"\x00" + b"\x04\x00"  # unique workstation name, active
    stats = bytes.fromhex("001122334455") + b"\0" * 40
    rdata = b"\x01" + name + stats
    return (
        b"GP\x84\x00\x00\x00\x00\x01\x00\x00\x00\x00"
        + b"\x20"
        + b"CK"
        + b"A" * 30
        + b"\x00\x00\x21\x00\x01\x00\x00\x00\x00"
        + struct.pack(">H", len(rdata))
        + rdata
    )


def _mdns_reply() -> bytes:
    question = b"\x09_services\x07_dns-sd\x04_udp\x05local\x00\x00\x0c\x00\x01"
    answer = b"\xc0\x0c\x00\x0c\x00\x01\x00\x00\x00\x0a" + struct.pack(">H", 12)
    return (
        b"\x00\x00\x84\x00\x00\x01\x00\x01\x00\x00\x00\x00"
        + question
        + answer
        + (b"\x04_ssh\x04_tcp\xc0\x23")
    )


def _ntp_control_reply() -> bytes:
    text = b'version="ntpd ntpsec-1.2.2 2023-01-01T00:00:00Z", leap=00, stratum=2'
    padded = text + b"\0" * (-len(text) % 4)
    return struct.pack(">BBHHHHH", 0x16, 0x82, 1, 0x0618, 0, 0, len(text)) + padded


def _ipmi_channel_auth_reply() -> bytes:
    message = bytes.fromhex("811c632000380001970402000000005b")
    return bytes.fromhex("0600ff0700000000000000000010") + message[:16]


def _postgres_md5_request() -> bytes:
    return b"R" + struct.pack(">II", 12, 5) + b"\x5a\x11\xf3\x07"


def protocol_samples() -> list[Sample]:
    """One sample or more per current-protocol recogniser."""
    from tests.samples import Sample, recorded_or

    T, U = Transport.TCP, Transport.UDP  # noqa: N806 - keeps the table readable

    def sample(  # noqa: PLR0917 - one row of the table below
        service: str,
        transport: Transport,
        port: int,
        probe: str,
        key: str,
        protocol: str,
        constructed: bytes = b"",
        source: str = "",
    ) -> Sample:
        response, origin = recorded_or(key, constructed, source)
        return Sample(service, transport, port, probe, response, origin, protocol)

    return [
        sample("http", T, 80, "http-get", "proto-http", "http"),
        sample("tls", T, 443, "tls-client-hello", "proto-tls-server-hello", "tls"),
        sample("ssh", T, 22, "tcp-null", "proto-ssh-openssh", "ssh"),
        sample("ssh", T, 2222, "tcp-null", "proto-ssh-dropbear", "ssh"),
        sample(
            "ftp",
            T,
            21,
            "tcp-null",
            "proto-ftp",
            "ftp",
            b"220 (vsFTPd 3.0.3)\r\n",
            "vsftpd 3.0.3's greeting",
        ),
        sample("smtp", T, 25, "tcp-null", "proto-smtp", "smtp"),
        sample(
            "pop3",
            T,
            110,
            "tcp-null",
            "proto-pop3",
            "pop3",
            b"+OK Dovecot (Debian) ready.\r\n",
            "Dovecot's POP3 greeting (RFC 1939 4)",
        ),
        sample(
            "imap",
            T,
            143,
            "tcp-null",
            "proto-imap",
            "imap",
            b"* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ "
            b"AUTH=PLAIN] Dovecot (Debian) ready.\r\n",
            "Dovecot's IMAP greeting (RFC 9051 7.1.1)",
        ),
        sample(
            "nntp",
            T,
            119,
            "tcp-null",
            "proto-nntp",
            "nntp",
            b"200 news.lab.test InterNetNews NNRP server INN 2.7.1 ready (posting ok)\r\n",
            "INN's nnrpd greeting (RFC 3977 5.1)",
        ),
        sample("mysql", T, 3306, "tcp-null", "proto-mysql", "mysql"),
        sample(
            "vnc",
            T,
            5900,
            "tcp-null",
            "proto-vnc",
            "vnc",
            b"RFB 003.008\n",
            "RFC 6143 7.1.1 (ProtocolVersion)",
        ),
        sample("nats", T, 4222, "tcp-null", "proto-nats", "nats"),
        sample("rsync", T, 873, "tcp-null", "proto-rsync", "rsync"),
        sample("bind-shell", T, 4444, "shell-echo", "proto-shell-sh", "shell"),
        sample("bind-shell", T, 4445, "shell-echo", "proto-shell-bash-pty", "shell"),
        sample("redis", T, 6379, "redis-ping", "proto-redis", "redis"),
        sample("memcached", T, 11211, "memcached-version", "proto-memcached", "memcache"),
        sample("memcached", U, 11211, "memcached-version-udp", "proto-memcached-udp", "memcache"),
        sample("mqtt", T, 1883, "mqtt-connect", "proto-mqtt", "mqtt"),
        sample(
            "postgresql",
            T,
            5432,
            "postgres-startup",
            "proto-postgresql",
            "postgresql",
            _postgres_md5_request(),
            "PostgreSQL's AuthenticationMD5Password (protocol 3.0)",
        ),
        sample("dns", T, 53, "dns-version-bind-tcp", "proto-dns-tcp", "domain"),
        sample("dns", U, 53, "dns-version-bind-udp", "proto-dns-udp", "domain"),
        sample("dns", U, 53, "dns-a-localhost-udp", "proto-dns-a-udp", "domain"),
        sample("http-proxy", T, 8888, "http-proxy-connect", "proto-http-proxy", "http-proxy"),
        sample("socks5", T, 1081, "socks5-greeting", "proto-socks5-dante", "socks"),
        sample("socks5", T, 1080, "socks5-greeting", "proto-socks5-microsocks", "socks"),
        sample("socks4", T, 1081, "socks4-connect", "proto-socks4-dante", "socks4"),
        sample("smb", T, 445, "smb2-negotiate", "proto-smb", "microsoft-ds"),
        sample(
            "rdp",
            T,
            3389,
            "rdp-x224-cr",
            "proto-rdp",
            "ms-wbt-server",
            bytes.fromhex("030000130ed000001234000201080001000000"),
            "MS-RDPBCGR 2.2.1.2 (X.224 Connection Confirm, RDP_NEG_RSP: TLS)",
        ),
        sample("ldap", T, 389, "ldap-bind", "proto-ldap", "ldap"),
        sample("sip", T, 5060, "sip-options-tcp", "proto-sip-tcp", "sip"),
        sample("sip", U, 5060, "sip-options-udp", "proto-sip-udp", "sip"),
        sample(
            "rtsp",
            T,
            554,
            "rtsp-options",
            "proto-rtsp",
            "rtsp",
            b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nPublic: OPTIONS, DESCRIBE, SETUP, TEARDOWN, PLAY, "
            b"PAUSE\r\nServer: GStreamer RTSP server\r\n\r\n",
            "RFC 2326 10.1 (OPTIONS response)",
        ),
        sample(
            "amqp",
            T,
            5672,
            "amqp-header",
            "proto-amqp",
            "amqp",
            _amqp_connection_start(),
            "AMQP 0-9-1 Connection.Start as RabbitMQ sends it",
        ),
        sample(
            "mongodb",
            T,
            27017,
            "mongodb-hello",
            "proto-mongodb",
            "mongodb",
            _mongodb_hello_reply(),
            "MongoDB's OP_MSG reply to hello (not packaged by Debian)",
        ),
        sample(
            "xmpp",
            T,
            5222,
            "xmpp-stream",
            "proto-xmpp",
            "xmpp-client",
            b"<?xml version='1.0'?><stream:stream xmlns:db='jabber:server:dialback' "
            b"xmlns:stream='http://etherx.jabber.org/streams' version='1.0' from='localhost' "
            b"id='6c1f2a2e-64d4-4b8c-9d1e-0f5b7f3c8a11' xml:lang='en' xmlns='jabber:client'>",
            "RFC 6120 4.2 (Prosody's response stream header)",
        ),
        sample("irc", T, 6667, "irc-nick", "proto-irc", "ircd"),
        sample("git-daemon", T, 9418, "git-upload-pack", "proto-git", "git"),
        sample(
            "zookeeper",
            T,
            2181,
            "zookeeper-srvr",
            "proto-zookeeper",
            "zookeeper",
            b"Zookeeper version: 3.8.0-5a02a05eddb59aee6ac762f7ea82e92a68eb9c0f, built on "
            b"2022-02-25 08:49 UTC\nLatency min/avg/max: 0/0.0/0\nReceived: 1\nSent: 0\n"
            b"Connections: 1\nOutstanding: 0\nZxid: 0x0\nMode: standalone\nNode count: 5\n",
            "ZooKeeper 3.8's srvr four-letter word",
        ),
        sample("beanstalkd", T, 11300, "beanstalkd-stats", "proto-beanstalkd", "beanstalkd"),
        sample(
            "sunrpc",
            T,
            111,
            "rpc-null-tcp",
            "proto-sunrpc-tcp",
            "sunrpc",
            bytes.fromhex("80000018") + b"GPrc" + bytes.fromhex("00000001" + "00" * 16),
            "RFC 5531 (accepted reply, AUTH_NULL verifier, SUCCESS)",
        ),
        sample(
            "sunrpc",
            U,
            111,
            "rpc-null-udp",
            "proto-sunrpc-udp",
            "sunrpc",
            b"GPrc" + bytes.fromhex("00000001" + "00" * 16),
            "RFC 5531 (accepted reply, AUTH_NULL verifier, SUCCESS)",
        ),
        sample("stun", T, 3478, "stun-binding-tcp", "proto-stun-tcp", "stun"),
        sample("stun", U, 3478, "stun-binding-udp", "proto-stun-udp", "stun"),
        sample("ntp", U, 123, "ntp-client", "proto-ntp", "ntp"),
        sample(
            "ntp",
            U,
            123,
            "ntp-control-readvar",
            "proto-ntp-control",
            "ntp",
            _ntp_control_reply(),
            "RFC 9327 (READVAR response as ntpsec sends it)",
        ),
        sample(
            "netbios-ns",
            U,
            137,
            "netbios-nbstat",
            "proto-netbios-ns",
            "netbios-ns",
            _netbios_nbstat_reply(),
            "RFC 1002 4.2.18 (node status response; nmbd needs a non-loopback interface)",
        ),
        sample(
            "ssdp",
            U,
            1900,
            "ssdp-msearch",
            "proto-ssdp",
            "ssdp",
            b"HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=1800\r\nEXT:\r\nLOCATION: "
            b"http://127.0.0.1:8200/rootDesc.xml\r\nSERVER: Debian DLNADOC/1.50 UPnP/1.0 "
            b"MiniDLNA/1.3.0\r\nST: upnp:rootdevice\r\nUSN: uuid:4d696e69-444c-164e-9d41-"
            b"001122334455::upnp:rootdevice\r\n\r\n",
            "UPnP Device Architecture 1.1 1.3.3 (search response, as MiniDLNA sends it)",
        ),
        sample(
            "mdns",
            U,
            5353,
            "mdns-services",
            "proto-mdns",
            "mdns",
            _mdns_reply(),
            "RFC 6762 6.7 (legacy unicast response)",
        ),
        sample("coap", U, 5683, "coap-well-known-core", "proto-coap", "coap"),
        sample("ike", U, 500, "ike-main-mode", "proto-ike", "isakmp"),
        sample("openvpn", U, 1194, "openvpn-hard-reset", "proto-openvpn", "openvpn"),
        sample(
            "ipmi-lan",
            U,
            6623,
            "ipmi-channel-auth",
            "proto-ipmi",
            "asf-rmcp",
            _ipmi_channel_auth_reply(),
            "IPMI 2.0 22.13 (Get Channel Authentication Capabilities response)",
        ),
    ]


# Recorded replies that must name nothing of their probe's protocol (key, probe, not-protocol)
NEGATIVES = [
    ("proto-shell-echo-negative", "shell-echo", "shell"),
    ("proto-http-proxy-negative", "http-proxy-connect", "http-proxy"),
]
