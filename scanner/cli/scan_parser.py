"""The `scan` and `ghostport local` parsers, apart from the commands they start.

`scan --version`, `scan --help` and every usage error end inside these parsers, so this module
imports no more than argparse and the flag helpers: the scan layer (pydantic, profiles,
registry, scapy, the engine) is imported only once the arguments are parsed.
"""

from __future__ import annotations

import argparse

from scanner import __version__
from scanner.cli import options as opt
from scanner.cli.nmap_argv import add_nmap_flags

SCAN_EXAMPLES = """\
examples:
  scan 127.0.0.1                         the legacy-mgmt profile's ports, TCP and UDP
  scan --profile registry-orphans --fail-on high 127.0.0.0/28
  scan -p 23,161,391-392 127.0.0.0/28    these ports on both transports
  scan -p T:23,412,U:161,391 ::1         per transport, nmap style
  scan --udp -p 161 -iL hosts.txt --exclude 127.0.0.5 --json out.json
  scan --rate 2000 --timeout 0.5 --retries 2 127.0.0.1-40
"""


def build_scan_parser(prog: str) -> argparse.ArgumentParser:
    """The `scan` command's options."""
    parser = opt.Parser(
        prog=prog,
        description="Probe TCP and UDP ports for legacy and orphaned registry services.",
        epilog=SCAN_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "targets",
        nargs="*",
        metavar="TARGET",
        help="address, CIDR (127.0.0.0/24), range (127.0.0.1-40, 127.0.0.1-127.0.1.5), hostname",
    )
    parser.add_argument("-iL", dest="input_list", metavar="FILE", help="read targets from FILE")
    parser.add_argument(
        "--exclude", action="append", default=[], metavar="SPEC[,SPEC]", help="skip these targets"
    )
    parser.add_argument("--exclude-file", metavar="FILE", help="skip the targets in FILE")
    parser.add_argument(
        "--scope",
        action="append",
        default=[],
        metavar="SPEC[,SPEC]",
        help="refuse to scan any address outside these blocks (also $GHOSTPORT_SCOPE)",
    )
    parser.add_argument(
        "-p",
        "--ports",
        metavar="SPEC",
        help="ports in nmap syntax: 23,161,391-392 or T:23,412,U:161,391, and registry names: "
        "registry:synotics-*, T:registry:synoptics-trap (default: legacy-mgmt)",
    )
    opt.add_profile_flags(parser)
    opt.add_fail_on_flag(parser)
    parser.add_argument("--tcp", "-sT", action="store_true", help="probe TCP only")
    parser.add_argument("--udp", "-sU", action="store_true", help="probe UDP only")
    parser.add_argument(
        "--syn",
        "-sS",
        action="store_true",
        help="find open TCP ports with raw SYN packets (root or CAP_NET_RAW), then identify "
        "them by connect; a TCP scan like -sT: add -sU for UDP too",
    )
    parser.add_argument("--seed", type=opt.count(0), help="seed of the probe order (repeatable)")
    opt.add_timing_flags(parser, sweep=True)
    opt.add_output_flags(parser)
    parser.add_argument(
        "-o",
        dest="output_base",
        metavar="BASE",
        help="write BASE.html, BASE.json, BASE.csv and BASE.xml",
    )
    parser.add_argument(
        "--all-states", action="store_true", help="list closed ports too, not only count them"
    )
    opt.add_loop_flag(parser)
    add_nmap_flags(parser)
    parser.add_argument(
        "--local",
        action="store_true",
        help="audit this machine instead: which process holds which orphaned port",
    )
    parser.add_argument("--no-probe", action="store_true", help="with --local: do not probe")
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="print nothing but errors (and the lines --format grepable asks for)",
    )
    parser.add_argument(
        "--format",
        dest="line_format",
        choices=("text", "grepable", "lines"),
        default="text",
        help="stdout: `text` (a line per open port on a terminal, then a table per host) or "
        "`grepable` (also `lines`): one tab-separated line per result as it arrives, no "
        "colour; fields: host port proto state reason service verdict severity registry "
        "hostname title, '-' where empty",
    )
    parser.add_argument(
        "--db",
        metavar="URL",
        help="record the scan in this history database: sqlite:///PATH or postgresql://... "
        "(default $GHOSTPORT_DB, else $XDG_DATA_HOME/ghostport/scans.db)",
    )
    parser.add_argument("--no-db", action="store_true", help="do not record the scan")
    parser.add_argument(
        "--resume",
        metavar="ID",
        help="continue the interrupted scan ID with its own seed and options",
    )
    add_distribution_flags(parser)
    opt.add_debug_flag(parser)
    parser.add_argument("--version", action="version", version=f"ghostport {__version__}")
    return parser


def add_distribution_flags(parser: argparse.ArgumentParser) -> None:
    """--workers (local processes) and --broker and its companions (Celery shards)."""
    group = parser.add_argument_group("distribution")
    group.add_argument(
        "--workers",
        type=opt.count(1),
        metavar="N",
        help="split the scan into N slices, one local process each (default: the number of "
        "cores, for scans of 16,384 probes or more; 1 runs in this process)",
    )
    group.add_argument(
        "--broker",
        metavar="URL",
        help="run the scan as shards on Celery workers through this broker: redis://..., "
        "rediss://..., redis+socket:///PATH (also $GHOSTPORT_BROKER)",
    )
    group.add_argument(
        "--shards", type=opt.count(1), metavar="N", help="with --broker: slices per vantage (2)"
    )
    group.add_argument(
        "--vantage",
        action="append",
        default=[],
        metavar="NAME=TARGETS",
        help="with --broker: scan TARGETS (comma-separated) from the workers of vantage NAME "
        "(repeatable; instead of positional targets)",
    )
    group.add_argument(
        "--shard-timeout",
        type=opt.positive_float,
        default=120.0,
        metavar="S",
        help="with --broker: fail when a shard has no word from a worker for S seconds (120)",
    )


def build_local_parser() -> argparse.ArgumentParser:
    """`ghostport local`'s options."""
    parser = opt.Parser(
        prog="ghostport local",
        description="Which process on this machine holds a port of an obsolete service.",
    )
    opt.add_profile_flags(parser)
    parser.add_argument("--no-probe", action="store_true", help="do not probe over loopback")
    parser.add_argument(
        "--scope",
        action="append",
        default=[],
        metavar="SPEC[,SPEC]",
        help="probe only local addresses inside these blocks (also $GHOSTPORT_SCOPE)",
    )
    opt.add_timing_flags(parser, sweep=False)
    opt.add_loop_flag(parser)
    opt.add_output_flags(parser)
    opt.add_fail_on_flag(parser)
    opt.add_debug_flag(parser)
    return parser
