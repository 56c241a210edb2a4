"""nmap's spellings of the scan's flags: understood where they make sense, refused plainly
where they do not.

`translate_argv` runs before argparse. It splits nmap's glued forms (`-oXout.xml`, `-v3`), and
refuses the nmap flags ghostport does not have, naming the flag and what to use instead, so
`-oX out.xml` can never again become `-o X` plus a target `out.xml`. `add_nmap_flags` defines
the spellings argparse then parses (`-oX/-oN/-oG/-oA`, `-T0`..`-T5`, `-v`, `-n`, `-Pn`, `-sV`,
`--open`, `--reason`, `-F`, `--top-ports`, `--max-retries`, `--excludefile`, `--max-rate`), and
`parse_scan_args` applies the timing presets. This module imports no more than argparse: it is
part of the light parser (`scan --help` must not load the scan layer). What the flags mean
for a scan (`-iL -`, target checks, top ports, the opening line) is in `nmapflags`.
"""

from __future__ import annotations

import argparse
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from scanner.cli.options import count, positive_float
from scanner.errors import UsageError

FAST_PORTS = 100
"""How many top ports per transport -F scans (as --top-ports 100)."""

_EXAMPLE = {"-oX": "out.xml", "-oN": "out.nmap", "-oG": "out.gnmap", "-oA": "out"}
"""nmap's output flags, with an example value for the error when the value is missing."""

_NO_DISCOVERY = "ghostport never pings first and probes every target's ports (nmap's -Pn)"
_CRAFTING = "ghostport crafts no packets but the SYN of -sS; use -sT (connect) or -sS (SYN)"
_PROFILES = "ghostport's probes are its profiles: use --profile ID|FILE.yaml (`ghostport profiles`)"

UNSUPPORTED: dict[str, str] = {
    "-sA": _CRAFTING,
    "-sW": _CRAFTING,
    "-sM": _CRAFTING,
    "-sN": _CRAFTING,
    "-sF": _CRAFTING,
    "-sX": _CRAFTING,
    "-sI": _CRAFTING,
    "-sY": "there is no SCTP; use -sT or -sU",
    "-sZ": "there is no SCTP; use -sT or -sU",
    "-sO": "there is no IP protocol scan; use -sT or -sU",
    "-sC": _PROFILES,
    "-sR": "services are identified from their answers",
    "-sn": f"there is no ping-only scan: {_NO_DISCOVERY}",
    "-sL": "there is no list scan: ghostport resolves names only to probe them",
    "--script": _PROFILES,
    "--script-args": _PROFILES,
    "-O": "there is no OS detection; services are identified from their answers",
    "--osscan-guess": "there is no OS detection",
    "-A": "there is no -A: services are always identified (no -sV needed); add probes with "
    "--profile ID|FILE.yaml",
    "--traceroute": "there is no traceroute; the probes are TCP connects and UDP datagrams",
    "-6": "there is no -6: give IPv6 addresses (::1, 2001:db8::/120) as targets directly",
    "-PE": _NO_DISCOVERY,
    "-PP": _NO_DISCOVERY,
    "-PM": _NO_DISCOVERY,
    "-PS": _NO_DISCOVERY,
    "-PA": _NO_DISCOVERY,
    "-PU": _NO_DISCOVERY,
    "-PY": _NO_DISCOVERY,
    "-PO": _NO_DISCOVERY,
    "-PR": _NO_DISCOVERY,
    "-r": "ports are always probed in a seeded random order; use --seed N to repeat one",
    "-R": "addresses are never resolved back to names",
    "-iR": "ghostport scans only the targets you name",
    "-f": _CRAFTING,
    "--mtu": _CRAFTING,
    "-D": _CRAFTING,
    "-S": _CRAFTING,
    "-e": "the system's routing chooses the interface",
    "-g": _CRAFTING,
    "--source-port": _CRAFTING,
    "--data-length": _CRAFTING,
    "--ttl": _CRAFTING,
    "--badsum": _CRAFTING,
    "--spoof-mac": _CRAFTING,
    "-d": "use --debug for tracebacks of errors",
    "--packet-trace": "use --json FILE: it records every probe's answer",
    "--min-rate": "there is no minimum rate; --rate N sets the most probes per second",
    "--max-parallelism": "use --max-inflight N (and --per-host N for one host)",
    "--min-parallelism": "use --max-inflight N (and --per-host N for one host)",
    "--max-rtt-timeout": "use --timeout SECONDS",
    "--initial-rtt-timeout": "use --timeout SECONDS",
    "--host-timeout": "use --timeout SECONDS (per attempt) and --retries N",
    "--scan-delay": "use --rate N (probes per second)",
    "--version-intensity": "identification is always on, with every probe of the profiles",
    "--version-all": "identification is always on, with every probe of the profiles",
    "-oS": "there is no script kiddie output; use -oN FILE",
    "-oM": "use -oG FILE (grepable)",
    "--resume": "there is no resume here; scan again (--seed N repeats the order)",
    "--append-output": "outputs are always written whole",
}
"""nmap flags ghostport does not have -> what to use instead."""

_PREFIX_FAMILIES = ("-PS", "-PA", "-PU", "-PY", "-PO", "-d")
"""Unsupported flags nmap writes with a value glued on (`-PS22,80`, `-d2`)."""


@dataclass(frozen=True, slots=True)
class TimingTemplate:
    """What -T0..-T5 set, unless --rate, --timeout or --retries are given."""

    name: str
    rate: float | None
    timeout: float
    retries: int


TIMING_TEMPLATES: tuple[TimingTemplate, ...] = (
    TimingTemplate("paranoid", 1.0, 5.0, 3),
    TimingTemplate("sneaky", 10.0, 3.0, 2),
    TimingTemplate("polite", 100.0, 2.0, 2),
    TimingTemplate("normal", None, 1.0, 1),
    TimingTemplate("aggressive", None, 0.5, 1),
    TimingTemplate("insane", None, 0.25, 0),
)
"""-T0 .. -T5. -T3 is ghostport's default; nmap's -T0 waits minutes between probes, here the
slowest rate is one probe per second."""


def _timing_table() -> str:
    rows = [
        f"  -T{number} {t.name:<11}"
        f"rate {'unlimited' if t.rate is None else f'{t.rate:g}/s':<10}"
        f"timeout {t.timeout:g} s, retries {t.retries}"
        for number, t in enumerate(TIMING_TEMPLATES)
    ]
    return "\n".join(rows)


NMAP_HELP = f"""\
transports:
  Without -sT/--tcp or -sU/--udp ghostport probes TCP AND UDP (obsolete services live on UDP
  as much as on TCP), unlike nmap's TCP-only default: -p- is then 65,535 ports on each.

timing templates (explicit --rate, --timeout, --retries win):
{_timing_table()}

more nmap habits:
  -iL - reads the targets from stdin. A target that looks like a file name (out.xml,
  hosts.txt) is refused before anything is sent. nmap flags ghostport does not have (-sA,
  -O, -A, -sC/--script, -sn, -PE/-PS..., --traceroute, -6, ...) are errors saying what to use.
"""


def timing_template(text: str) -> int:
    """-T's value: 0-5 or a template's name (argparse type)."""
    names = [t.name for t in TIMING_TEMPLATES]
    if text.isdigit() and int(text) < len(TIMING_TEMPLATES):
        return int(text)
    if text.lower() in names:
        return names.index(text.lower())
    raise argparse.ArgumentTypeError(
        f"{text!r} is not a timing template: give 0-5 or {', '.join(names)}"
    )


def _refusal(arg: str) -> str | None:
    """The advice for an unsupported nmap flag, or None when `arg` is not one."""
    flag = arg.split("=", 1)[0] if arg.startswith("--") else arg
    if flag in UNSUPPORTED:
        return f"{flag} is not supported: {UNSUPPORTED[flag]}"
    for prefix in _PREFIX_FAMILIES:
        if arg.startswith(prefix) and arg != "-Pn" and not arg.startswith("--"):
            return f"{arg} is not supported: {UNSUPPORTED[prefix]}"
    return None


_PORT_FLAGS = frozenset({"-p", "--ports"})


def translate_argv(argv: Sequence[str], takes_value: Collection[str] = ()) -> list[str]:
    """argv with nmap's glued forms split (`-oXout.xml` -> `-oX out.xml`, `-v3` -> `-v -v -v`);
    UsageError for an nmap flag ghostport does not have. `takes_value` are the options whose
    next word is a value (never a flag), so `--title -O` stays a title."""
    out: list[str] = []
    index = 0
    while index < len(argv):
        arg = argv[index]
        index += 1
        if arg == "--":
            out.extend(argv[index - 1 :])
            break
        if arg in takes_value:
            if index < len(argv):
                value = argv[index]
                index += 1
                # `-p -1024` (an open range) and `-p -5-3` (a mistake to name): a port value
                # that starts with '-' is still the value, which argparse would take for an
                # option
                glued = arg in _PORT_FLAGS and value.startswith("-")
                out += [f"{arg}={value}"] if glued else [arg, value]
            else:
                out.append(arg)
            continue
        refusal = _refusal(arg)
        if refusal is not None:
            raise UsageError(refusal)
        head = arg[:3]
        if head in _EXAMPLE and len(arg) > 3:
            out += [head, arg[3:]]
        elif head in _EXAMPLE:
            if index >= len(argv):
                raise UsageError(f"{head} needs a file name, e.g. `{head} {_EXAMPLE[head]}`")
            out += [head, argv[index]]
            index += 1
        elif arg.startswith("-v") and arg[2:].isdigit():
            out += ["-v"] * int(arg[2:])
        else:
            out.append(arg)
    return out


def add_nmap_flags(parser: argparse.ArgumentParser) -> None:
    """The nmap spellings the scan understands, as one group of --help."""
    group = parser.add_argument_group("nmap spellings")
    group.add_argument(
        "-oX", dest="xml", metavar="FILE", default=argparse.SUPPRESS, help="the same as --xml"
    )
    group.add_argument(
        "-oN",
        "--nmap-normal",
        dest="nmap_normal",
        metavar="FILE",
        help="write nmap's normal text output ('-' for stdout)",
    )
    group.add_argument(
        "-oG",
        "--nmap-grepable",
        dest="nmap_grepable",
        metavar="FILE",
        help="write nmap's grepable output ('-' for stdout)",
    )
    group.add_argument(
        "-oA",
        "--nmap-all",
        dest="nmap_all",
        metavar="BASE",
        help="write BASE.xml, BASE.nmap and BASE.gnmap",
    )
    group.add_argument(
        "-T",
        "--timing",
        dest="timing",
        type=timing_template,
        metavar="0-5",
        help="timing template: rate, timeout and retries (see below)",
    )
    group.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="say the plan at start: -v ports, seed and timing; -vv also profiles and limits",
    )
    group.add_argument(
        "--open",
        dest="open_only",
        action="store_true",
        help="nmap outputs list only open and open|filtered ports (the terminal lists only "
        "open ones anyway; the JSON keeps everything)",
    )
    group.add_argument(
        "--top-ports",
        dest="top_ports",
        type=count(1),
        metavar="N",
        help="the N top ports per transport: the profiles' own first, then the most common "
        "services, then registered well-known ports",
    )
    group.add_argument(
        "-F",
        dest="top_ports",
        action="store_const",
        const=FAST_PORTS,
        help=f"fast: --top-ports {FAST_PORTS}",
    )
    group.add_argument(
        "--max-retries",
        dest="retries",
        type=count(0),
        metavar="N",
        default=argparse.SUPPRESS,
        help="the same as --retries",
    )
    group.add_argument(
        "--max-rate",
        dest="rate",
        type=positive_float,
        metavar="N",
        default=argparse.SUPPRESS,
        help="the same as --rate",
    )
    group.add_argument(
        "--excludefile",
        dest="exclude_file",
        metavar="FILE",
        default=argparse.SUPPRESS,
        help="the same as --exclude-file",
    )
    accepted = {
        "-n": ("no_reverse_dns", "accepted: addresses are never resolved back to names"),
        "-Pn": (
            "no_ping",
            "accepted: ghostport never pings first; every target's ports are probed",
        ),
        "-sV": ("service_version", "accepted: services are always identified from their answers"),
        "--reason": ("reason", "accepted: every port state's reason is always recorded and shown"),
    }
    for flag, (dest, text) in accepted.items():
        group.add_argument(flag, action="store_true", dest=dest, help=text)
    parser.epilog = f"{parser.epilog or ''}\n{NMAP_HELP}"


def _value_flags(parser: argparse.ArgumentParser) -> frozenset[str]:
    """Every option string of `parser` that takes a value."""
    return frozenset(
        option
        for action in parser._actions  # argparse has no public list of its actions
        if action.nargs != 0
        for option in action.option_strings
    )


def parse_scan_args(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace:
    """Parse the scan's argv, nmap spellings included: a -T template fills the timing flags
    not given; `-iL -` reads the targets from stdin; every target given is checked (a file
    name as a target is refused) before anything else happens."""
    translated = translate_argv(argv, _value_flags(parser))
    args = parser.parse_args(translated)
    if args.timing is not None:
        template = TIMING_TEMPLATES[args.timing]
        parser.set_defaults(timeout=template.timeout, retries=template.retries, rate=template.rate)
        args = parser.parse_args(translated)
    if args.top_ports is not None and args.ports is not None:
        raise UsageError("-F/--top-ports and -p both choose the ports: give one of them")
    return args
