"""Results in nmap's XML format, valid against nmap's own DTD, for tools that import it.

nmap's DTD allows only scanner="nmap" on <nmaprun>; we keep to it so importers and validators
accept the file, and name the real producer where the format lets us: a leading comment,
`profile_name`, `args` and `version` (ghostport's).
"""

from __future__ import annotations

import calendar
import time
import xml.etree.ElementTree as ET
from collections import defaultdict
from datetime import datetime

from scanner import __version__
from scanner.models import PortResult, PortState, ScanDocument, Transport

_DOCTYPE = "<!DOCTYPE nmaprun>"


def _epoch(stamp: str | None) -> int:
    if not stamp:
        return int(time.time())
    moment = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ")
    return calendar.timegm(moment.utctimetuple())


def _clean(text: str) -> str:
    """XML 1.0 cannot carry control characters: drop them (they stay in the JSON)."""
    return "".join(ch for ch in text if ch in "\t\n\r" or ord(ch) >= 0x20)[:256]


def _service(result: PortResult) -> ET.Element | None:
    if result.service and result.service.protocol:
        name = result.service.protocol
        element = ET.Element("service", name=_clean(name), method="probed", conf="10")
        extracted = result.service.extracted
        product = extracted.get("sysDescr") or extracted.get("server") or extracted.get("banner")
        if product:
            element.set("product", _clean(product))
        if extracted.get("version"):
            element.set("version", _clean(extracted["version"]))
        return element
    if result.registry:
        return ET.Element("service", name=_clean(result.registry.name), method="table", conf="3")
    return None


def render_nmap_xml(document: ScanDocument) -> str:
    """The scan as an nmap XML document (xmloutputversion 1.05)."""
    scan = document.scan
    start, end = _epoch(scan.started_at), _epoch(scan.finished_at)
    root = ET.Element(
        "nmaprun",
        scanner="nmap",
        args=_clean(" ".join(scan.command_line)),
        start=str(start),
        startstr=time.strftime("%a %b %d %H:%M:%S %Y", time.gmtime(start)),
        version=__version__,
        profile_name=f"ghostport {__version__}",
        xmloutputversion="1.05",
    )
    for proto, kind in (("tcp", "connect"), ("udp", "udp")):
        selected = scan.ports.get(Transport(proto))
        if selected:
            ET.SubElement(
                root,
                "scaninfo",
                type=kind,
                protocol=proto,
                numservices=str(scan.port_counts.get(Transport(proto), 0)),
                services=selected,
            )
    ET.SubElement(root, "verbose", level="0")
    ET.SubElement(root, "debugging", level="0")
    by_host: dict[str, list[PortResult]] = defaultdict(list)
    for result in document.results:
        by_host[result.host].append(result)
    for host, results in sorted(by_host.items()):
        element = ET.SubElement(root, "host", starttime=str(start), endtime=str(end))
        ET.SubElement(element, "status", state="up", reason="user-set", reason_ttl="0")
        ET.SubElement(element, "address", addr=host, addrtype="ipv6" if ":" in host else "ipv4")
        hostnames = ET.SubElement(element, "hostnames")
        if results[0].hostname:
            ET.SubElement(hostnames, "hostname", name=_clean(results[0].hostname), type="user")
        ports = ET.SubElement(element, "ports")
        for result in sorted(results, key=lambda r: (r.proto.value, r.port)):
            port = ET.SubElement(
                ports, "port", protocol=result.proto.value, portid=str(result.port)
            )
            ET.SubElement(
                port, "state", state=result.state.value, reason=result.reason.value, reason_ttl="0"
            )
            service = _service(result)
            if service is not None:
                port.append(service)
    summary = document.summary
    finished = ET.SubElement(root, "runstats")
    ET.SubElement(
        finished,
        "finished",
        time=str(end),
        timestr=time.strftime("%a %b %d %H:%M:%S %Y", time.gmtime(end)),
        elapsed=f"{summary.duration_s:.2f}",
        summary=f"ghostport done: {summary.hosts} hosts scanned in {summary.duration_s:.2f} "
        f"seconds; {summary.states[PortState.OPEN]} open ports",
        exit="success" if document.complete else "error",
    )
    ET.SubElement(
        finished,
        "hosts",
        up=str(len(by_host)),
        down=str(max(0, summary.hosts - len(by_host))),
        total=str(summary.hosts),
    )
    ET.indent(root)
    body = ET.tostring(root, encoding="unicode")
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"{_DOCTYPE}\n<!-- written by ghostport {__version__} in nmap's XML format -->\n{body}\n"
    )
