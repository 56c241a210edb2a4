"""Every flag that more than one command takes, defined once, and the shared finishing steps.

Each `add_*` function adds one group of flags to a parser; each `*_from` function turns the
parsed values into what the scan layer takes.

Start-up: the parsers are built from this module before anything else runs (`scan --version`
and `--help` end there), so it imports only argparse and the error tree at the top; the scan
layer (pydantic models, profiles, registry, engine) is imported by the `*_from` functions.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NoReturn, cast

from scanner.errors import ScanOptionError, UsageError

if TYPE_CHECKING:
    from scanner.engine import EngineOptions
    from scanner.models import Severity
    from scanner.profiles import Profile
    from scanner.registry import Registry
    from scanner.targets import AddressBlock

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
DEFAULT_PROFILE = "legacy-mgmt"
LOOPS = ("auto", "asyncio", "uvloop")
REPORT_KINDS = ("html", "csv", "xml", "pdf", "nmap_normal", "nmap_grepable")
"""Outputs rendered from the scan's JSON document, by their argparse dest (`--nmap-normal`)."""
PAPERS = ("a4", "letter")
"""Page sizes of the printed report (CSS @page names)."""
# Severity's values, lowest first, spelt out so that building a parser needs no pydantic;
# tests/test_startup.py holds them equal to scanner.models.Severity.
SEVERITIES = ("info", "low", "medium", "high", "critical")


class Parser(argparse.ArgumentParser):
    """argparse that raises UsageError instead of printing usage and exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)

    def _get_formatter(self) -> argparse.HelpFormatter:
        # argparse builds a formatter for every argument added, and asks shutil for the
        # terminal's width; importing shutil imports lzma and bz2, a cost in every scan's
        # start-up. The same width from the same sources ($COLUMNS, then the terminal).
        factory = cast("Callable[..., argparse.HelpFormatter]", self.formatter_class)
        return factory(prog=self.prog, width=terminal_columns() - 2)


def terminal_columns() -> int:
    """The terminal's width as shutil.get_terminal_size() finds it (80 when unknown)."""
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


def positive_float(text: str) -> float:
    """A number above zero (argparse type)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number")
    return value


def count(minimum: int) -> Callable[[str], int]:
    """A whole number of at least `minimum` (argparse type)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text!r} must be at least {minimum}")
        return value

    return parse


def add_debug_flag(parser: argparse.ArgumentParser) -> None:
    """--debug: tracebacks for errors."""
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")


def add_profile_flags(parser: argparse.ArgumentParser) -> None:
    """--profile and --registry: what to probe for and how ports are named."""
    parser.add_argument(
        "--profile",
        action="append",
        default=[],
        metavar="ID|FILE.yaml",
        help=f"profile to probe and classify with; repeat for several (default: {DEFAULT_PROFILE})",
    )
    parser.add_argument(
        "--registry", metavar="FILE", help="IANA port registry CSV (see `ghostport registry info`)"
    )


def profiles_from(args: argparse.Namespace) -> tuple[Profile, ...]:
    """The profiles the flags name (the default profile when none)."""
    from scanner.profile_cache import load_profiles_cached  # noqa: PLC0415 - see the docstring

    return tuple(load_profiles_cached(args.profile or [DEFAULT_PROFILE]))


def registry_from(args: argparse.Namespace) -> Registry:
    """The registry the flags name, or the first source found."""
    from scanner.profiles import profile_registry_facts  # noqa: PLC0415
    from scanner.registry import load_registry  # noqa: PLC0415

    return load_registry(args.registry, profile_registry_facts)


def add_timing_flags(parser: argparse.ArgumentParser, *, sweep: bool) -> None:
    """--timeout and --retries; with `sweep`, also the rate and in-flight limits."""
    parser.add_argument(
        "--timeout", type=positive_float, default=1.0, help="seconds to wait per attempt (1.0)"
    )
    parser.add_argument(
        "--retries",
        type=count(0),
        default=1,
        help="extra attempts for silent probes, each waiting twice as long (1)",
    )
    if not sweep:
        return
    parser.add_argument("--rate", type=positive_float, help="at most this many probes per second")
    parser.add_argument(
        "--max-inflight",
        type=count(1),
        metavar="N",
        help="probes in flight at once (default 4096, within the descriptor limit)",
    )
    parser.add_argument(
        "--per-host",
        type=count(1),
        default=256,
        metavar="N",
        help="probes in flight to one host at once (256)",
    )
    parser.add_argument(
        "--banner-wait",
        type=positive_float,
        metavar="SECONDS",
        help="on open TCP ports, read what the server says first for up to this long",
    )


def engine_options_from(args: argparse.Namespace) -> EngineOptions:
    """The engine settings the timing flags ask for."""
    from scanner.engine import EngineOptions  # noqa: PLC0415
    from scanner.limits import inflight_cap  # noqa: PLC0415

    rate = getattr(args, "rate", None)
    if rate is not None and rate < 1:
        raise ScanOptionError(f"--rate {rate:g} is below one probe per second")
    return EngineOptions(
        timeout=args.timeout,
        retries=args.retries,
        rate=rate,
        max_inflight=inflight_cap(getattr(args, "max_inflight", None)),
        per_host=getattr(args, "per_host", 256),
        banner_wait=getattr(args, "banner_wait", None) or 0.0,
    )


def add_loop_flag(parser: argparse.ArgumentParser) -> None:
    """--loop: which asyncio event loop."""
    parser.add_argument(
        "--loop",
        choices=LOOPS,
        default="auto",
        help="event loop: uvloop where installed (auto), or the standard asyncio loop",
    )


def add_output_flags(parser: argparse.ArgumentParser, *, json: bool = True) -> None:
    """--json, --html, --csv, --xml, --pdf, --paper, --title, --org."""
    if json:
        parser.add_argument("--json", metavar="FILE", help="write results as JSON ('-' for stdout)")
    parser.add_argument("--html", metavar="FILE", help="write the HTML findings report")
    parser.add_argument("--csv", metavar="FILE", help="write the findings as CSV")
    parser.add_argument("--xml", metavar="FILE", help="write the results as nmap XML")
    parser.add_argument("--pdf", metavar="FILE", help="print the report to PDF (headless Chromium)")
    parser.add_argument(
        "--paper",
        choices=PAPERS,
        default="a4",
        help="page size of the printed report and --pdf (default a4)",
    )
    parser.add_argument("--title", help="report title")
    parser.add_argument("--org", help="organisation shown under the report title")


def add_fail_on_flag(parser: argparse.ArgumentParser) -> None:
    """--fail-on SEVERITY: exit 1 when a finding reaches it."""
    parser.add_argument(
        "--fail-on",
        choices=SEVERITIES,
        metavar="SEVERITY",
        help="exit 1 when a finding at or above this severity exists (info..critical)",
    )


def wants_reports(args: argparse.Namespace) -> bool:
    """True when any report (not only JSON) is asked for."""
    return any(getattr(args, kind, None) for kind in REPORT_KINDS)


def exit_for(severities: Sequence[Severity], fail_on: str | None) -> int:
    """EXIT_FINDINGS when a finding reaches --fail-on, else EXIT_OK."""
    if fail_on is None:
        return EXIT_OK
    from scanner.models import Severity  # noqa: PLC0415

    threshold = Severity(fail_on).rank
    return EXIT_FINDINGS if any(s.rank >= threshold for s in severities) else EXIT_OK


def scopes_from(flag_values: Sequence[str]) -> tuple[tuple[AddressBlock, ...], ...]:
    """Each scope (the flag's, the environment's) must hold: together they can only narrow."""
    from scanner.targets import parse_scope, split_specs  # noqa: PLC0415

    return tuple(
        tuple(parse_scope(specs))
        for specs in (
            [spec for item in flag_values for spec in split_specs(item)],
            split_specs(os.environ.get("GHOSTPORT_SCOPE", "")),
        )
        if specs
    )


def scope_specs_from(flag_values: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """The scopes as the user wrote them, with where each came from, for the scan's record."""
    found = [("--scope", value) for value in flag_values]
    if os.environ.get("GHOSTPORT_SCOPE", "").strip():
        found.append(("GHOSTPORT_SCOPE", os.environ["GHOSTPORT_SCOPE"]))
    return tuple(found)


def without_flags(argv: Sequence[str], flags: dict[str, int]) -> list[str]:
    """argv less the given flags and their values (`flags`: how many values each takes);
    `--flag=value` counts as one word."""
    kept: list[str] = []
    skip = 0
    for item in argv:
        if skip:
            skip -= 1
            continue
        name = item.split("=", 1)[0]
        if name in flags:
            skip = flags[name] if "=" not in item else 0
            continue
        kept.append(item)
    return kept
