"""Payload builders: named recipes that turn a probe's arguments into bytes, once per scan.

scapy builds what it knows (SNMP v1/v2c, TFTP); the rest are small, documented encodings of
their RFCs and specifications. Builders run while the scan is planned, never per probe.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from scanner.errors import ProfileError
from scanner.probes import builders

Builder = Callable[..., bytes]

BUILDERS: dict[str, Builder] = {
    "null": builders.null,
    "text": builders.text,
    "snmp-get": builders.snmp_get,
    "snmpv3-discovery": builders.snmpv3_discovery,
    "tftp-rrq": builders.tftp_rrq,
    "finger": builders.finger,
    "http-get": builders.http_get,
    "rmcp-ping": builders.rmcp_ping,
    "agentx-open": builders.agentx_open,
    "x11-setup": builders.x11_setup,
    "smart-install-hello": builders.smart_install_hello,
    "rexec": builders.rexec,
    "rlogin": builders.rlogin,
    "rsh": builders.rsh,
    "echo-token": builders.echo_token,
}


def build_payload(builder: str, args: dict[str, Any], where: str) -> bytes:
    """Run a named builder; a wrong name or argument is a ProfileError naming the probe."""
    recipe = BUILDERS.get(builder)
    if recipe is None:
        raise ProfileError(f"{where}: unknown builder {builder!r} (known: {', '.join(BUILDERS)})")
    try:
        return recipe(**args)
    except (TypeError, ValueError) as exc:
        raise ProfileError(f"{where}: builder {builder!r}: {exc}") from None
