"""Command line: argv -> ScanConfig -> scan. The one place that prints, reads the terminal or exits.

Exit codes: 0 scan completed; 2 a user mistake (one line on stderr); 3 an internal error
(partial results are kept); 130 interrupted (partial results are kept, marked incomplete).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import tempfile
import traceback
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn, TextIO

from scanner import __version__
from scanner.audit import run_local_audit
from scanner.engine import EngineOptions
from scanner.errors import InputFileError, ScannerError, ScanOptionError
from scanner.lab.layout import DEFAULT_BASE, Lab, lab_hosts
from scanner.lab.namespace import (
    INSIDE_FLAG,
    bring_loopback_up,
    needs_private_namespace,
    reexec_in_private_namespace,
)
from scanner.models import (
    Finding,
    PortResult,
    PortState,
    ScanDocument,
    ScanInfo,
    Transport,
    UnresolvedTargetResult,
)
from scanner.ports import compress_ports, parse_port_spec
from scanner.profiles import (
    Profile,
    ServiceStatus,
    Severity,
    bundled_profile_ids,
    load_profiles,
    merged,
    profile_ports,
    profile_registry_facts,
)
from scanner.registry import (
    IANA_CSV_URL,
    Registry,
    RegistryEntry,
    describe_source,
    load_registry,
    update_cache,
)
from scanner.report.csvfile import render_csv
from scanner.report.html import render_html
from scanner.report.jsonfile import JsonResultWriter, load_document
from scanner.report.pdf import HOW_TO_GET_CHROMIUM, find_chromium, print_pdf
from scanner.report.xmlfile import render_nmap_xml
from scanner.runner import ScanConfig, ScanTally, execute, inflight_cap, new_seed, run_scan
from scanner.targets import AddressBlock, parse_scope, read_spec_file, split_specs

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

DEFAULT_PROFILE = "legacy-mgmt"

SCAN_EXAMPLES = """\
examples:
  scan 127.0.0.1                         the legacy-mgmt profile's ports, TCP and UDP
  scan --profile registry-orphans --fail-on high 127.0.0.0/28
  scan -p 23,161,391-392 127.0.0.0/28    these ports on both transports
  scan -p T:23,412,U:161,391 ::1         per transport, nmap style
  scan --udp -p 161 -iL hosts.txt --exclude 127.0.0.5 --json out.json
  scan --rate 2000 --timeout 0.5 --retries 2 127.0.0.1-40
"""


class UsageError(ScannerError):
    """A command-line mistake reported by argparse."""


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage and exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number")
    return value


def _count(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text!r} must be at least {minimum}")
        return value

    return parse


def build_scan_parser(prog: str) -> argparse.ArgumentParser:
    """The `scan` command's options."""
    parser = _Parser(
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
    parser.add_argument(
        "--registry", metavar="FILE", help="IANA port registry CSV (see `ghostport registry info`)"
    )
    parser.add_argument(
        "--profile",
        action="append",
        default=[],
        metavar="ID|FILE.yaml",
        help="profile to probe and classify with; repeat for several (default: legacy-mgmt)",
    )
    parser.add_argument(
        "--fail-on",
        choices=[s.value for s in Severity],
        metavar="SEVERITY",
        help="exit 1 when a finding at or above this severity exists (info..critical)",
    )
    parser.add_argument("--tcp", "-sT", action="store_true", help="probe TCP only")
    parser.add_argument("--udp", "-sU", action="store_true", help="probe UDP only")
    parser.add_argument("--seed", type=_count(0), help="seed of the probe order (repeatable)")
    parser.add_argument("--rate", type=_positive_float, help="at most this many probes per second")
    parser.add_argument(
        "--timeout", type=_positive_float, default=1.0, help="seconds to wait per attempt (1.0)"
    )
    parser.add_argument(
        "--retries",
        type=_count(0),
        default=1,
        help="extra attempts for silent probes, each waiting twice as long (1)",
    )
    parser.add_argument(
        "--max-inflight",
        type=_count(1),
        metavar="N",
        help="probes in flight at once (default 4096, within the descriptor limit)",
    )
    parser.add_argument(
        "--per-host",
        type=_count(1),
        default=256,
        metavar="N",
        help="probes in flight to one host at once (256)",
    )
    parser.add_argument(
        "--banner-wait",
        type=_positive_float,
        metavar="SECONDS",
        help="on open TCP ports, read what the server says first for up to this long",
    )
    parser.add_argument("--json", metavar="FILE", help="write results as JSON ('-' for stdout)")
    parser.add_argument("--html", metavar="FILE", help="write the HTML findings report")
    parser.add_argument("--csv", metavar="FILE", help="write the findings as CSV")
    parser.add_argument("--xml", metavar="FILE", help="write the results as nmap XML")
    parser.add_argument("--pdf", metavar="FILE", help="print the report to PDF (headless Chromium)")
    parser.add_argument(
        "-o",
        dest="output_base",
        metavar="BASE",
        help="write BASE.html, BASE.json, BASE.csv and BASE.xml",
    )
    parser.add_argument("--title", help="report title")
    parser.add_argument("--org", help="organisation shown under the report title")
    parser.add_argument(
        "--all-states", action="store_true", help="list closed ports too, not only count them"
    )
    parser.add_argument(
        "--loop",
        choices=("auto", "asyncio", "uvloop"),
        default="auto",
        help="event loop: uvloop where installed (auto), or the standard asyncio loop",
    )
    parser.add_argument(
        "--local",
        action="store_true",
        help="audit this machine instead: which process holds which orphaned port",
    )
    parser.add_argument("--no-probe", action="store_true", help="with --local: do not probe")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress line")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    parser.add_argument("--version", action="version", version=f"ghostport {__version__}")
    return parser


def _scopes(flag_values: Sequence[str]) -> list[tuple[AddressBlock, ...]]:
    """Each scope (the flag's, the environment's) must hold: together they can only narrow."""
    return [
        tuple(parse_scope(specs))
        for specs in (
            [spec for item in flag_values for spec in split_specs(item)],
            split_specs(os.environ.get("GHOSTPORT_SCOPE", "")),
        )
        if specs
    ]


def _config_from_args(args: argparse.Namespace, argv: Sequence[str]) -> ScanConfig:
    targets = list(args.targets)
    if args.input_list:
        targets += read_spec_file(args.input_list)
    if not targets:
        raise UsageError(
            "no target given: name hosts to scan, e.g. `scan 127.0.0.1` or `scan -iL hosts.txt`"
        )
    excludes = [spec for item in args.exclude for spec in split_specs(item)]
    if args.exclude_file:
        excludes += read_spec_file(args.exclude_file)
    scopes = _scopes(args.scope)
    transports: tuple[Transport, ...]
    if args.tcp == args.udp:
        transports = (Transport.TCP, Transport.UDP)
    else:
        transports = (Transport.TCP,) if args.tcp else (Transport.UDP,)
    profiles = tuple(load_profiles(args.profile or [DEFAULT_PROFILE]))
    registry = load_registry(args.registry, profile_registry_facts)
    ports = parse_port_spec(args.ports or profile_ports(profiles), transports, registry.ports_for)
    if args.rate is not None and args.rate < 1:
        raise ScanOptionError(f"--rate {args.rate:g} is below one probe per second")
    engine = EngineOptions(
        timeout=args.timeout,
        retries=args.retries,
        rate=args.rate,
        max_inflight=inflight_cap(args.max_inflight),
        per_host=args.per_host,
        banner_wait=args.banner_wait or 0.0,
    )
    return ScanConfig(
        targets=tuple(targets),
        excludes=tuple(excludes),
        ports=ports,
        engine=engine,
        seed=args.seed if args.seed is not None else new_seed(),
        all_states=args.all_states,
        event_loop=args.loop,
        command_line=tuple(argv),
        scopes=tuple(scopes),
        registry=registry,
        profiles=profiles,
    )


class _ConsoleObserver:
    """JSON writer, streamed open-port lines and the progress line."""

    def __init__(self, json_path: str | None, show_progress: bool, list_ports: bool) -> None:
        self.json_path = json_path
        self.writer: JsonResultWriter | None = None
        self.tally: ScanTally | None = None
        self.show_progress = show_progress
        self.list_ports = list_ports
        self._progress_shown = False
        self._out: TextIO = sys.stdout
        self.worst: Severity | None = None

    def scan_started(
        self, info: ScanInfo, unresolved: list[UnresolvedTargetResult], tally: ScanTally
    ) -> None:
        self.tally = tally
        for item in unresolved:
            self._message(f"warning: {item.target} did not resolve ({item.error}); skipped")
        if self.json_path:
            self.writer = JsonResultWriter(self.json_path, info, unresolved, tally.summary)

    def result(self, result: PortResult) -> None:
        if self.writer is not None:
            self.writer.add(result)
        if self.list_ports and result.state is PortState.OPEN:
            self._clear_progress()
            name = f" ({result.hostname})" if result.hostname else ""
            registered = result.registry
            known = f"\t{registered.name} ({registered.description})" if registered else ""
            self._out.write(
                f"{result.host}{name}\t{result.port}/{result.proto}\t{result.state}\t"
                f"{result.reason}{known}\n"
            )

    def finding(self, finding: Finding) -> None:
        if self.writer is not None:
            self.writer.add_finding(finding)
        severity = Severity(finding.severity)
        if self.worst is None or severity.rank > self.worst.rank:
            self.worst = severity
        if self.list_ports:
            self._clear_progress()
            self._out.write(
                f"FINDING [{finding.severity}] {finding.verdict}: {finding.host} "
                f"{finding.port}/{finding.proto}: {finding.title}\n"
            )

    def progress(self, tally: ScanTally) -> None:
        if self.writer is not None:
            self.writer.tick()
        if not self.show_progress:
            return
        elapsed = tally.elapsed()
        rate = tally.done / elapsed if elapsed > 0 else 0.0
        left = (tally.total - tally.done) / rate if rate > 0 else 0.0
        percent = 100.0 * tally.done / tally.total if tally.total else 100.0
        sys.stderr.write(
            f"\r\x1b[K{tally.done:,}/{tally.total:,} probes ({percent:.1f}%)  {rate:,.0f}/s  "
            f"ETA {int(left) // 60}:{int(left) % 60:02d}  open {tally.count(PortState.OPEN)}"
        )
        sys.stderr.flush()
        self._progress_shown = True

    def _clear_progress(self) -> None:
        if self._progress_shown:
            sys.stderr.write("\r\x1b[K")
            self._progress_shown = False

    def _message(self, text: str) -> None:
        self._clear_progress()
        sys.stderr.write(text + "\n")

    def finish(self, complete: bool) -> None:
        """Close the JSON document and print the summary line."""
        self._clear_progress()
        if self.writer is not None:
            self.writer.close(complete)
        tally = self.tally
        if tally is None:
            return
        states = (
            ", ".join(f"{tally.count(s)} {s}" for s in PortState if tally.count(s)) or "nothing"
        )
        status = "done" if complete else "INTERRUPTED"
        print(
            f"{status}: {tally.done:,} of {tally.total:,} probes on {tally.hosts:,} hosts in "
            f"{tally.elapsed():.2f} s: {states}",
            file=sys.stderr,
        )


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _drive(
    scan: Callable[[str], Coroutine[Any, Any, object]], event_loop: str, observer: _ConsoleObserver
) -> bool:
    """Run a scan coroutine; True when it completed. Ctrl-C and SIGTERM keep what was gathered."""
    complete = False
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        execute(scan, event_loop)
        complete = True
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        observer.finish(complete)
    return complete


def _write_text(path: str, text: str) -> None:
    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InputFileError(f"cannot write {path!r}: {exc.strerror}") from None


def _write_reports(json_path: str, args: argparse.Namespace) -> None:
    """Every report the arguments ask for, from the saved JSON document."""
    document = load_document(json_path)
    if args.html:
        _write_text(args.html, render_html(document, args.title, args.org))
    if args.csv:
        _write_text(args.csv, render_csv(document))
    if args.xml:
        _write_text(args.xml, render_nmap_xml(document))
    if args.pdf:
        if args.html:
            print_pdf(args.html, args.pdf)
        else:
            with tempfile.TemporaryDirectory(prefix="ghostport-") as folder:
                page = str(Path(folder) / "report.html")
                _write_text(page, render_html(document, args.title, args.org))
                print_pdf(page, args.pdf)


def _wants_reports(args: argparse.Namespace) -> bool:
    return bool(args.html or args.csv or args.xml or args.pdf)


def _scan(argv: Sequence[str], prog: str) -> int:
    args = build_scan_parser(prog).parse_args(argv)
    if args.local:
        if args.targets or args.input_list:
            raise UsageError("--local audits this machine: give no targets with it")
        return _run_local(args, [*prog.split(), *argv])
    if args.output_base:
        base = args.output_base
        args.html, args.json = args.html or f"{base}.html", args.json or f"{base}.json"
        args.csv, args.xml = args.csv or f"{base}.csv", args.xml or f"{base}.xml"
    if args.pdf and find_chromium() is None:
        raise ScannerError(HOW_TO_GET_CHROMIUM)  # say it before the scan, not after
    config = _config_from_args(args, [*prog.split(), *argv])
    json_path = args.json
    spare: str | None = None
    if _wants_reports(args) and (not json_path or json_path == "-"):
        handle, spare = tempfile.mkstemp(prefix="ghostport-", suffix=".json")
        os.close(handle)
    observer = _ConsoleObserver(
        spare or json_path,
        show_progress=not args.quiet and sys.stderr.isatty(),
        list_ports=args.json != "-",
    )
    try:
        complete = _drive(
            lambda loop: run_scan(config, observer, loop), config.event_loop, observer
        )
        if _wants_reports(args) and observer.writer is not None:
            _write_reports(spare or json_path, args)
        if spare and json_path == "-" and observer.writer is not None:
            sys.stdout.write(Path(spare).read_text(encoding="utf-8"))
    finally:
        if spare:
            os.unlink(spare)
    if not complete:
        return EXIT_INTERRUPTED
    threshold = Severity(args.fail_on) if args.fail_on else None
    if threshold and observer.worst and observer.worst.rank >= threshold.rank:
        return EXIT_FINDINGS
    return EXIT_OK


def _run_local(args: argparse.Namespace, command_line: Sequence[str]) -> int:
    """The local audit with the scan's own output options."""
    profiles = tuple(load_profiles(args.profile or [DEFAULT_PROFILE]))
    registry = load_registry(args.registry, profile_registry_facts)
    options = EngineOptions(timeout=args.timeout, retries=args.retries, max_inflight=64)
    document = execute(
        lambda loop: run_local_audit(
            profiles=profiles,
            registry=registry,
            options=options,
            probe=not args.no_probe,
            event_loop=loop,
            command_line=tuple(command_line),
        ),
        args.loop,
    )
    text = document.model_dump_json(indent=1)
    spare: str | None = None
    json_path = args.json
    if _wants_reports(args) and (not json_path or json_path == "-"):
        handle, spare = tempfile.mkstemp(prefix="ghostport-local-", suffix=".json")
        os.close(handle)
    try:
        if json_path and json_path != "-":
            _write_text(json_path, text)
        if spare:
            _write_text(spare, text)
        if _wants_reports(args):
            _write_reports(spare or json_path, args)
    finally:
        if spare:
            os.unlink(spare)
    if json_path == "-":
        print(text)
    else:
        _print_local(document)
    threshold = Severity(args.fail_on) if args.fail_on else None
    worst = max((Severity(f.severity).rank for f in document.findings), default=-1)
    if threshold and worst >= threshold.rank:
        return EXIT_FINDINGS
    return EXIT_OK


def _print_local(document: ScanDocument) -> None:
    audit = document.local
    assert audit is not None
    print(f"{len(audit.sockets)} listening sockets on {audit.hostname}:")
    for sock in audit.sockets:
        process = sock.process
        who = f"pid {process.pid} {process.name or '?'}" if process.pid else "owner unknown"
        flags = [
            name
            for name, on in (
                ("all interfaces", sock.all_interfaces),
                ("loopback only", sock.loopback_only),
                ("deleted executable", process.exe_deleted),
                ("outside system paths", process.outside_system_paths),
                ("started recently", process.started_recently),
                ("holds several orphaned ports", sock.holds_several_orphans),
            )
            if on
        ]
        registered = f"  [{sock.registry.name}]" if sock.registry else ""
        mark = "FINDING " if sock.finding else "        "
        print(
            f"  {mark}{sock.port}/{sock.proto.value:<3} {sock.address:<15} {who}"
            f"{registered}{'  (' + ', '.join(flags) + ')' if flags else ''}"
        )
    if audit.note:
        print(f"note: {audit.note}")
    for finding in document.findings:
        print(f"FINDING [{finding.severity}] {finding.verdict.value}: {finding.title}")


def _local(argv: Sequence[str]) -> int:
    parser = _Parser(
        prog="ghostport local",
        description="Which process on this machine holds a port of an obsolete service.",
    )
    parser.add_argument("--profile", action="append", default=[], metavar="ID|FILE.yaml")
    parser.add_argument("--registry", metavar="FILE", help="IANA port registry CSV")
    parser.add_argument("--no-probe", action="store_true", help="do not probe over loopback")
    parser.add_argument("--timeout", type=_positive_float, default=1.0)
    parser.add_argument("--retries", type=_count(0), default=1)
    parser.add_argument("--loop", choices=("auto", "asyncio", "uvloop"), default="auto")
    for flag in ("json", "html", "csv", "xml", "pdf"):
        parser.add_argument(f"--{flag}", metavar="FILE")
    parser.add_argument("--title")
    parser.add_argument("--org")
    parser.add_argument("--fail-on", choices=[s.value for s in Severity], metavar="SEVERITY")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    args = parser.parse_args(argv)
    return _run_local(args, ["ghostport", "local", *argv])


def _report(argv: Sequence[str]) -> int:
    parser = _Parser(
        prog="ghostport report",
        description="Render a saved scan (also an interrupted one) as an HTML report.",
    )
    parser.add_argument("results", metavar="RESULTS.json")
    parser.add_argument("--html", metavar="OUT", help="write the HTML report")
    parser.add_argument("--csv", metavar="OUT", help="write the findings as CSV")
    parser.add_argument("--xml", metavar="OUT", help="write the results as nmap XML")
    parser.add_argument("--pdf", metavar="OUT", help="print the report to PDF (headless Chromium)")
    parser.add_argument("--title", help="report title")
    parser.add_argument("--org", help="organisation shown under the title")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    args = parser.parse_args(argv)
    if not _wants_reports(args):
        raise UsageError("say what to write: --html, --csv, --xml or --pdf")
    if not Path(args.results).is_file():
        raise InputFileError(f"results file {args.results!r} does not exist")
    _write_reports(args.results, args)
    for kind in ("html", "csv", "xml", "pdf"):
        if getattr(args, kind):
            print(f"{kind}: {getattr(args, kind)}")
    return EXIT_OK


def _lab_base_parser(prog: str, description: str) -> argparse.ArgumentParser:
    parser = _Parser(prog=prog, description=description)
    parser.add_argument(
        "--base", default=DEFAULT_BASE, help=f"the lab uses base+1 to base+5 ({DEFAULT_BASE})"
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    parser.add_argument(INSIDE_FLAG, action="store_true", help=argparse.SUPPRESS)
    return parser


def _private_network(verb: str, argv: Sequence[str], inside: bool) -> None:
    """As a normal user, move into a private user + network namespace (see lab.namespace)."""
    if inside:
        bring_loopback_up()
    elif needs_private_namespace():
        reexec_in_private_namespace([verb, *argv])


async def _started_lab(base: str) -> Lab:
    try:
        return await Lab(base).start()
    except PermissionError:
        raise ScanOptionError(
            "the lab binds privileged ports (23, 69, 79, 161, ...): run it as root"
        ) from None
    except OSError as exc:
        raise ScanOptionError(
            f"the lab cannot bind its services under {base} ({exc.strerror}): is another lab "
            "running? choose another --base"
        ) from None


def _lab(argv: Sequence[str]) -> int:
    args = _lab_base_parser(
        "ghostport lab", "Run the emulated legacy services in the foreground until Ctrl-C."
    ).parse_args(argv)
    hosts = lab_hosts(args.base)
    _private_network("lab", argv, args.inside_private_namespace)

    async def run() -> None:
        lab = await _started_lab(args.base)
        try:
            for service in lab.services:
                print(
                    f"{service.host:<15} {service.port:>5}/{service.transport:<4} "
                    f"{service.name:<42} expect: {service.expect}"
                )
            print(f"{hosts[-1]:<15}     -      nothing: every port closed")
            print("lab running; Ctrl-C stops it", flush=True)
            await asyncio.Event().wait()
        finally:
            await lab.close()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())
    return EXIT_OK


def _demo(argv: Sequence[str]) -> int:
    parser = _lab_base_parser(
        "ghostport demo",
        "Start the emulated lab, scan it with legacy-mgmt, and write an HTML and JSON report.",
    )
    parser.add_argument("--out", default=".", metavar="DIR", help="where to write the report (.)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress line")
    parser.add_argument("--loop", choices=("auto", "asyncio", "uvloop"), default="auto")
    args = parser.parse_args(argv)
    lab_hosts(args.base)  # a bad base is an error before anything else happens
    _private_network("demo", argv, args.inside_private_namespace)
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputFileError(
            f"cannot create the output directory {args.out!r}: {exc.strerror}"
        ) from None
    json_path, html_path = out / "ghostport-demo.json", out / "ghostport-demo.html"
    profiles = tuple(load_profiles([DEFAULT_PROFILE]))
    config = ScanConfig(
        targets=tuple(lab_hosts(args.base)),
        excludes=(),
        ports=parse_port_spec(profile_ports(profiles)),
        engine=EngineOptions(timeout=1.0, retries=1, max_inflight=inflight_cap(None)),
        seed=new_seed(),
        event_loop=args.loop,
        command_line=("ghostport", "demo", *[a for a in argv if a != INSIDE_FLAG]),
        scopes=tuple(_scopes([])),
        registry=load_registry(None, profile_registry_facts),
        profiles=profiles,
    )
    observer = _ConsoleObserver(
        str(json_path), show_progress=not args.quiet and sys.stderr.isatty(), list_ports=False
    )

    async def demo(loop_name: str) -> object:
        lab = await _started_lab(args.base)
        try:
            return await run_scan(config, observer, loop_name)
        finally:
            await lab.close()

    complete = _drive(demo, config.event_loop, observer)
    _write_text(
        str(html_path),
        render_html(load_document(str(json_path)), "ghostport demo: the emulated legacy lab"),
    )
    document = load_document(str(json_path))
    print(f"{len(document.findings)} findings on the emulated lab:")
    for finding in sorted(document.findings, key=lambda f: (f.host, f.port, f.proto)):
        print(
            f"  [{finding.severity:>8}] {finding.verdict.value:<8} {finding.host} "
            f"{finding.port}/{finding.proto}: {finding.title}"
        )
    print(f"report: {html_path.resolve()}\nresults: {json_path.resolve()}")
    return EXIT_OK if complete else EXIT_INTERRUPTED


REGISTRY_EXAMPLES = """\
examples:
  ghostport registry 391                 what port 391 is registered to (every transport)
  ghostport registry 3416/udp            one port and transport
  ghostport registry synoptics           words in the name, description or assignee
  ghostport registry 'synotics-*'        a service name or glob
  ghostport registry info                which registry is in use, how big, how recent
  ghostport registry update              download IANA's registry into the user cache
"""


def _entry_json(entry: RegistryEntry) -> dict[str, object]:
    return {
        "port": entry.ports or None,
        "transport": entry.transport or None,
        "name": entry.name,
        "description": entry.description,
        "assignee": entry.assignee or None,
        "contact": entry.contact or None,
        "registration_date": entry.registration_date or None,
        "modification_date": entry.modification_date or None,
        "reference": entry.reference or None,
        "notes": entry.notes or None,
    }


def _print_entries(entries: Sequence[RegistryEntry]) -> None:
    rows = [
        (
            f"{e.ports or '-'}/{e.transport or '-'}",
            e.name,
            " ".join(e.description.split()),
            e.assignee or "-",
            e.contact or "-",
            e.registration_date or "-",
        )
        for e in entries
    ]
    header = ("PORT", "NAME", "DESCRIPTION", "ASSIGNEE", "CONTACT", "REGISTERED")
    widths = [min(48, max(len(r[i]) for r in [header, *rows])) for i in range(len(header))]
    for row in [header, *rows]:
        cells = [
            cell if len(cell) <= widths[i] else cell[: widths[i] - 1] + "~"
            for i, cell in enumerate(row)
        ]
        print("  ".join(c.ljust(widths[i]) for i, c in enumerate(cells)).rstrip())


def _print_registry_info(registry: Registry, as_json: bool, status: str) -> None:
    facts = {
        "source": registry.source.kind,
        "path": registry.source.path,
        "entries": len(registry),
        "newest_date": registry.newest_date(),
    }
    if as_json:
        print(json.dumps(facts, indent=2))
        return
    print(f"registry {status}: {describe_source(registry)}")
    print(f"entries: {len(registry):,}")
    print(f"newest date: {facts['newest_date'] or 'none recorded'}")


def _registry(argv: Sequence[str]) -> int:
    parser = _Parser(
        prog="ghostport registry",
        description="Look up the IANA port registry; show or update the copy in use.",
        epilog=REGISTRY_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "query", nargs="*", help="PORT, PORT/PROTO, NAME, GLOB or words; or info, update"
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--registry", metavar="FILE", help="IANA registry CSV to use")
    parser.add_argument("--url", default=IANA_CSV_URL, help="where `update` downloads from")
    parser.add_argument(
        "--timeout", type=_positive_float, default=60.0, help="seconds for `update` (60)"
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    args = parser.parse_args(argv)
    if args.query == ["update"]:
        _print_registry_info(update_cache(args.url, args.timeout), args.json, "updated")
        return EXIT_OK
    registry = load_registry(args.registry, profile_registry_facts)
    if args.query == ["info"]:
        _print_registry_info(registry, args.json, "in use")
        return EXIT_OK
    if not args.query:
        raise UsageError("give a port (391), port/proto (3416/udp), a name, a glob or words")
    entries = registry.query(" ".join(args.query))
    if args.json:
        print(json.dumps([_entry_json(e) for e in entries], indent=2))
    elif entries:
        _print_entries(entries)
    else:
        print(
            f"nothing in the registry ({describe_source(registry)}) matches "
            f"{' '.join(args.query)!r}",
            file=sys.stderr,
        )
    return EXIT_OK


def _print_profile(profile: Profile) -> None:
    probes = {p.id: p for p in profile.probes}
    print(f"{profile.id}: {profile.title}")
    if profile.includes:
        print(f"  includes: {', '.join(profile.includes)}")
    print(f"  file: {profile.path}\n  sha256: {profile.sha256}")
    for service in profile.services:
        ports = ", ".join(
            f"{name}/{compress_ports(found)}"
            for name, found in (("tcp", service.ports.tcp), ("udp", service.ports.udp))
            if found
        )
        print(f"\n  {service.id}  [{service.status}, {service.severity}]  {service.name}")
        print(f"    ports: {ports or 'any (recogniser)'}   protocol: {service.protocol}")
        for probe_id in service.probes:
            probe = probes[probe_id]
            how = probe.builder or ("hex" if probe.payload_hex else "text")
            print(f"    probe {probe_id}: {probe.transport} {how}, wait {probe.wait:g} s")


def _profiles(argv: Sequence[str]) -> int:
    parser = _Parser(
        prog="ghostport profiles",
        description="List the bundled profiles, or show one: services, ports, probes.",
    )
    parser.add_argument("profile", nargs="*", metavar="ID|FILE.yaml")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    args = parser.parse_args(argv)
    names = args.profile or bundled_profile_ids()
    profiles = load_profiles(names)
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "id": p.id,
                        "title": p.title,
                        "path": p.path,
                        "sha256": p.sha256,
                        "includes": list(p.includes),
                        "services": [s.model_dump(mode="json") for s in p.services],
                        "probes": [q.model_dump(mode="json") for q in p.probes],
                    }
                    for p in profiles
                ],
                indent=2,
            )
        )
        return EXIT_OK
    if args.profile:
        for profile in profiles:
            _print_profile(profile)
        return EXIT_OK
    for profile in profiles:
        _, services = merged([profile])
        obsolete = sum(1 for s in services if s.status is not ServiceStatus.CURRENT)
        print(f"{profile.id:<20} {profile.title} ({obsolete} services)")
    return EXIT_OK


_COMMANDS: dict[str, Callable[[Sequence[str]], int]] = {
    "scan": lambda argv: _scan(argv, "ghostport scan"),
    "registry": _registry,
    "profiles": _profiles,
    "report": _report,
    "local": _local,
    "lab": _lab,
    "demo": _demo,
}


def _ghostport(argv: Sequence[str]) -> int:
    parser = _Parser(
        prog="ghostport",
        description="ghostport: find legacy and orphaned registry services on your network.",
        epilog="commands:\n"
        "  scan      probe hosts: the `scan` command (see `ghostport scan -h`)\n"
        "  registry  look up the IANA port registry; show or update the copy in use\n"
        "  profiles  list the profiles of obsolete services, or show one\n"
        "  report    render a saved scan (RESULTS.json) as an HTML report\n"
        "  local     which process on this machine holds an orphaned registry port\n"
        "  lab       run the emulated legacy services until Ctrl-C\n"
        "  demo      start the lab, scan it, write ghostport-demo.html and .json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"ghostport {__version__}")
    parser.add_argument("command", nargs="?", choices=tuple(_COMMANDS), help="what to do")
    if not argv:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    command = _COMMANDS.get(argv[0])
    if command is not None:
        return command(argv[1:])
    parser.parse_args(argv)
    return EXIT_USAGE


def _guarded(run: Callable[[], int], argv: Sequence[str], prog: str) -> int:
    """The error boundary: user mistakes are one line and exit 2; nothing shows a traceback
    unless --debug was given."""
    debug = "--debug" in argv or bool(os.environ.get("GHOSTPORT_DEBUG"))
    try:
        return run()
    except ScannerError as exc:
        if debug:
            traceback.print_exc()
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as exc:
        if debug:
            traceback.print_exc()
        print(
            f"{prog}: internal error: {type(exc).__name__}: {exc} (rerun with --debug)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


def scan_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `scan` command."""
    args = list(sys.argv[1:] if argv is None else argv)
    return _guarded(lambda: _scan(args, "scan"), args, "scan")


def ghostport_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `ghostport` command."""
    args = list(sys.argv[1:] if argv is None else argv)
    return _guarded(lambda: _ghostport(args), args, "ghostport")
