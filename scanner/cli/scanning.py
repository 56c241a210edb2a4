"""`scan` (also `ghostport scan`) and `ghostport local`: argv -> config -> scan -> outputs."""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import replace
from types import FrameType
from typing import Any, TypeVar

from scanner import __version__
from scanner.cli import nmapflags
from scanner.cli import options as opt
from scanner.cli.console import ConsoleObserver, out, stderr_is_terminal
from scanner.cli.outputs import Outputs, prepare_outputs
from scanner.cli.recording import FinishingObserver, History, ObserverHub
from scanner.engine import EngineOptions
from scanner.errors import UsageError
from scanner.models import Transport
from scanner.ports import parse_port_spec
from scanner.report.text import render_local
from scanner.scan import LocalAuditConfig, ScanConfig, execute, new_seed, run_local_audit, run_scan
from scanner.targets import read_spec_file, split_specs

T = TypeVar("T")
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

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
    nmapflags.add_nmap_flags(parser)
    parser.add_argument(
        "--local",
        action="store_true",
        help="audit this machine instead: which process holds which orphaned port",
    )
    parser.add_argument("--no-probe", action="store_true", help="with --local: do not probe")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress line")
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
    opt.add_debug_flag(parser)
    parser.add_argument("--version", action="version", version=f"ghostport {__version__}")
    return parser


def config_from_args(args: argparse.Namespace, argv: Sequence[str]) -> ScanConfig:
    """Validate every input of a network scan; nothing is sent before this returns."""
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
    transports: tuple[Transport, ...]
    if args.tcp == args.udp:
        transports = (Transport.TCP, Transport.UDP)
    else:
        transports = (Transport.TCP,) if args.tcp else (Transport.UDP,)
    profiles = opt.profiles_from(args)
    registry = opt.registry_from(args)
    ports_text = nmapflags.ports_text_from(args, profiles, registry)
    ports = parse_port_spec(ports_text, transports, registry.ports_for)
    return ScanConfig(
        targets=tuple(targets),
        excludes=tuple(excludes),
        ports=ports,
        engine=opt.engine_options_from(args),
        seed=args.seed if args.seed is not None else new_seed(),
        all_states=args.all_states,
        event_loop=args.loop,
        command_line=tuple(argv),
        scopes=opt.scopes_from(args.scope),
        registry=registry,
        profiles=profiles,
    )


class _Interrupts:
    """Ctrl-C and SIGTERM as requests, never as exceptions thrown into the middle of a result:
    the handler only asks the scan task to stop, so any sequence of signals leaves the
    results and the summary consistent."""

    def __init__(self) -> None:
        self.count = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[Any] | None = None

    def handle(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        loop, task = self._loop, self._task
        if loop is not None and task is not None and not loop.is_closed():
            loop.call_soon_threadsafe(task.cancel)

    async def watch(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run the scan coroutine as the task a signal cancels."""
        self._loop, self._task = asyncio.get_running_loop(), asyncio.current_task()
        try:
            if self.count:
                raise asyncio.CancelledError
            return await coro
        finally:
            self._loop = self._task = None
            coro.close()


def drive(
    scan: Callable[[str], Coroutine[Any, Any, object]],
    event_loop: str,
    observer: FinishingObserver,
) -> bool:
    """Run a scan coroutine; True when it completed. Ctrl-C and SIGTERM keep what was gathered."""
    interrupts = _Interrupts()
    handlers = {sig: signal.signal(sig, interrupts.handle) for sig in _STOP_SIGNALS}
    complete = False
    try:
        execute(lambda loop: interrupts.watch(scan(loop)), event_loop)
        complete = True
    except (KeyboardInterrupt, asyncio.CancelledError):
        if not interrupts.count:
            raise
    finally:
        try:
            observer.finish(complete)
        finally:
            for sig, previous in handlers.items():
                signal.signal(sig, previous)
    return complete


def run_scan_command(argv: Sequence[str], prog: str) -> int:
    """The `scan` command."""
    args = nmapflags.parse_scan_args(build_scan_parser(prog), argv)
    if args.resume and "--seed" not in argv:
        # `scan --resume ID`: the scan's own command line and seed, as `ghostport resume ID`
        from scanner.cli.history import resume_argv  # noqa: PLC0415

        return run_scan_command(resume_argv(args.resume, args.db), prog)
    command_line = [*prog.split(), *argv]
    if args.local:
        if args.targets or args.input_list:
            raise UsageError("--local audits this machine: give no targets with it")
        return run_local_command(args, command_line)
    config = config_from_args(args, command_line)
    history = History.open(args)
    if history.store is not None and args.resume:
        config = replace(config, resume=history.resume_state(args.resume))
    config = replace(config, checkpoints=history.store is not None)
    outputs = prepare_outputs(args)
    console = ConsoleObserver(
        outputs.stream,
        show_progress=not args.quiet and stderr_is_terminal(),
        list_ports=not nmapflags.stdout_taken(args),
        announce=nmapflags.plan_announcer(args, config),
        replay=history.replay,
    )
    observer = ObserverHub([console, *history.observers()])
    try:
        complete = drive(lambda loop: run_scan(config, observer, loop), config.event_loop, observer)
        outputs.changes = history.changes_since_previous
        outputs.finish(document_ready=console.writer is not None)
    finally:
        outputs.close_stream()
        history.close()
    if not complete:
        return opt.EXIT_INTERRUPTED
    return opt.exit_for(console.severities, args.fail_on)


def run_local_command(args: argparse.Namespace, command_line: Sequence[str]) -> int:
    """The local audit with the scan's own output options."""
    config = LocalAuditConfig(
        profiles=opt.profiles_from(args),
        registry=opt.registry_from(args),
        engine=EngineOptions(timeout=args.timeout, retries=args.retries, max_inflight=64),
        probe=not args.no_probe,
        command_line=tuple(command_line),
        scopes=opt.scopes_from(getattr(args, "scope", [])),
    )
    outputs: Outputs = prepare_outputs(args)
    try:
        document = execute(lambda loop: run_local_audit(config, loop), args.loop)
        if outputs.stream is not None:
            outputs.stream.write(document.model_dump_json(indent=1).encode() + b"\n")
            outputs.stream.flush()
        outputs.finish(document_ready=True)
    finally:
        outputs.close_stream()
    if args.json != "-":
        out(render_local(document))
    return opt.exit_for([f.severity for f in document.findings], args.fail_on)


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


def local_command(argv: Sequence[str]) -> int:
    """`ghostport local`."""
    args = build_local_parser().parse_args(argv)
    return run_local_command(args, ["ghostport", "local", *argv])
