"""What nmap's spellings mean for a scan: `-iL -`, file names refused as targets, top ports,
the opening line that says what is scanned. The flags themselves are in `nmap_argv`."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Sequence

from scanner.cli.nmap_argv import (
    FAST_PORTS,
    NMAP_HELP,
    TIMING_TEMPLATES,
    UNSUPPORTED,
    add_nmap_flags,
    parse_scan_args,
    timing_template,
    translate_argv,
)
from scanner.errors import ProfileError
from scanner.ports import PortSpec, compress_ports, parse_port_spec, top_ports
from scanner.profiles import Profile, profile_ports
from scanner.registry import Registry, describe_source
from scanner.scan import ScanConfig
from scanner.targets import parse_spec_lines, parse_target_spec

__all__ = [
    "FAST_PORTS",
    "NMAP_HELP",
    "TIMING_TEMPLATES",
    "UNSUPPORTED",
    "add_nmap_flags",
    "check_targets",
    "describe_plan",
    "parse_scan_args",
    "plan_announcer",
    "ports_text_from",
    "stdout_taken",
    "timing_template",
    "translate_argv",
]


def check_targets(args: argparse.Namespace) -> None:
    """`-iL -` reads the targets from stdin; every target given is checked (a file name as a
    target is refused) before anything else happens."""
    if args.input_list == "-":
        args.targets = [*args.targets, *parse_spec_lines(sys.stdin.read())]
        args.input_list = None
    for spec in args.targets:
        parse_target_spec(spec)


def ports_text_from(
    args: argparse.Namespace, profiles: Sequence[Profile], registry: Registry
) -> str:
    """The port spec to scan: -p's, else --top-ports/-F's, else the profiles' own ports."""
    if args.ports is not None:
        return str(args.ports)
    if getattr(args, "top_ports", None) is None:
        return profile_ports(profiles)
    try:
        own = parse_port_spec(profile_ports(profiles))
    except ProfileError:
        own = PortSpec()
    spec = top_ports(args.top_ports, own, lambda port, t: bool(registry.at(port, t.value)))
    return f"T:{compress_ports(spec.tcp)},U:{compress_ports(spec.udp)}"


def stdout_taken(args: argparse.Namespace) -> bool:
    """True when an output file is '-' (stdout): the terminal listing then stays off it."""
    return any(
        getattr(args, kind, None) == "-" for kind in ("json", "xml", "nmap_normal", "nmap_grepable")
    )


def _plural(number: int, word: str) -> str:
    return f"{number:,} {word}" + ("" if number == 1 else "s")


def describe_plan(
    config: ScanConfig, hosts: int, *, default_transports: bool, verbosity: int = 0
) -> str:
    """The line (more with verbosity) a scan starts with: what it probes on which transports.
    Says so when TCP and UDP both come from ghostport's default, the nmap user's surprise."""
    ports = config.ports
    counts = [(name, n) for name, n in (("tcp", len(ports.tcp)), ("udp", len(ports.udp))) if n]
    on = " and ".join(name for name, _ in counts)
    each = ", ".join(f"{n:,} {name}" for name, n in counts)
    line = f"scanning {_plural(len(ports), 'port')} on {on} ({each}) of {_plural(hosts, 'host')}"
    if default_transports and len(counts) == 2:
        line += "; tcp and udp is ghostport's default: -sT or -sU for one"
        if len(ports.tcp) == 65535:
            line += " (nmap's -p- is tcp only: add -sT for that)"
    lines = [line]
    if verbosity >= 1:
        described = ports.describe()
        for name, _ in counts:
            lines.append(f"  {name} ports: {described[name]}")
        engine = config.engine
        rate = "unlimited" if engine.rate is None else f"{engine.rate:g}/s"
        lines.append(
            f"  seed {config.seed}; timeout {engine.timeout:g} s, retries {engine.retries}, "
            f"rate {rate}"
        )
    if verbosity >= 2:
        lines.append(f"  profiles: {', '.join(p.id for p in config.profiles) or '-'}")
        if config.registry is not None:
            lines.append(f"  registry: {describe_source(config.registry)}")
        engine = config.engine
        lines.append(
            f"  at most {engine.max_inflight:,} probes in flight, {engine.per_host:,} per host; "
            f"event loop {config.event_loop}"
        )
    return "\n".join(lines)


def plan_announcer(args: argparse.Namespace, config: ScanConfig) -> Callable[[int], str] | None:
    """What the terminal says when the scan starts, given the number of hosts (None with -q)."""
    if args.quiet:
        return None
    # -p T:23,U:161 chooses its transports itself; only a choice left to the default is news
    per_transport = re.search(r"(^|,)\s*[TU]:", str(args.ports or ""), re.IGNORECASE)
    default_transports = (args.tcp or args.syn) == args.udp and per_transport is None
    verbosity = int(getattr(args, "verbose", 0))
    return lambda hosts: describe_plan(
        config, hosts, default_transports=default_transports, verbosity=verbosity
    )
