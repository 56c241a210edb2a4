"""`scan` (also `ghostport scan`) and `ghostport local`: argv -> config -> scan -> outputs."""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import signal
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import replace
from types import FrameType
from typing import TYPE_CHECKING, Any, TypeVar

from scanner.cli import nmapflags
from scanner.cli import options as opt
from scanner.cli.console import ConsoleObserver, out, stderr_is_terminal
from scanner.cli.outputs import Outputs, prepare_outputs
from scanner.cli.recording import FinishingObserver, History, ObserverHub
from scanner.cli.scan_parser import build_local_parser, build_scan_parser
from scanner.engine import EngineOptions
from scanner.errors import UsageError
from scanner.local_audit import LocalAuditConfig, run_local_audit
from scanner.models import Transport
from scanner.ports import parse_port_spec
from scanner.report.text import render_local
from scanner.scan import ScanConfig, execute, new_seed, run_scan
from scanner.targets import read_spec_file, split_specs

if TYPE_CHECKING:
    from scanner.store.sidecar import WriterProcess

T = TypeVar("T")
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


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
    nmapflags.refuse_lookups(args, targets, excludes)
    if args.syn:  # before anything else is read or sent: without raw sockets, nothing to do
        from scanner.packets import require_raw_sockets  # noqa: PLC0415

        require_raw_sockets()
    tcp = args.tcp or args.syn  # -sS is a TCP scan type, as -sT
    transports: tuple[Transport, ...]
    if tcp == args.udp:
        transports = (Transport.TCP, Transport.UDP)
    else:
        transports = (Transport.TCP,) if tcp else (Transport.UDP,)
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
        scope_specs=opt.scope_specs_from(args.scope),
        registry=registry,
        profiles=profiles,
        syn=args.syn,
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


def run_scan_command(
    argv: Sequence[str],
    prog: str,
    args: argparse.Namespace | None = None,
    writer: WriterProcess | None = None,
) -> int:
    """The `scan` command (`args`: argv already parsed by the caller's build_scan_parser;
    `writer`: the history writer the caller started for it, if any)."""
    if args is None:
        args = nmapflags.parse_scan_args(build_scan_parser(prog), argv)
    if args.resume and "--seed" not in argv:
        # `scan --resume ID`: the scan's own command line and seed, as `ghostport resume ID`
        from scanner.cli.history import resume_argv  # noqa: PLC0415

        return run_scan_command(resume_argv(args.resume, args.db, args.broker), prog)
    nmapflags.check_targets(args)
    command_line = [*prog.split(), *argv]
    distributed = args.broker or args.vantage or args.workers or os.environ.get("GHOSTPORT_BROKER")
    if distributed:
        from scanner.cli import distributed as dist  # noqa: PLC0415
        from scanner.cluster.urls import redact_argv  # noqa: PLC0415

        dist.prepare_targets(args)
        command_line = redact_argv(command_line)
    if args.local:
        if args.targets or args.input_list:
            raise UsageError("--local audits this machine: give no targets with it")
        return run_local_command(args, command_line)
    if args.line_format != "text" and nmapflags.stdout_taken(args):
        raise UsageError(
            f"--format {args.line_format} prints to stdout, and so does an output file '-': "
            "choose one"
        )
    config = config_from_args(args, command_line)
    history = History.open(args, writer)
    if history.store is not None and args.resume:
        config = replace(config, resume=history.resume_state(args.resume))
    config = replace(config, checkpoints=history.recording)
    outputs = prepare_outputs(args)
    console = ConsoleObserver(
        outputs.stream,
        show_progress=not args.quiet and stderr_is_terminal(),
        list_ports=not nmapflags.stdout_taken(args),
        announce=nmapflags.plan_announcer(args, config),
        replay=history.replay,
        quiet=args.quiet,
        line_format=args.line_format,
    )
    observer = ObserverHub([console, *history.observers()])
    # What is loaded by now (modules, profiles, registry, config) lives as long as the scan:
    # the collector need not walk it again and again while probes allocate, nor touch (and
    # so copy) its pages in forked workers
    gc.freeze()
    from scanner.cli.distributed import sharded_scan  # noqa: PLC0415

    scan = sharded_scan(args, argv, config, observer, history) or (
        lambda loop: run_scan(config, observer, loop)
    )
    try:
        complete = drive(scan, config.event_loop, observer)
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
        scope_specs=opt.scope_specs_from(getattr(args, "scope", [])),
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


def local_command(argv: Sequence[str], args: argparse.Namespace | None = None) -> int:
    """`ghostport local` (`args`: argv already parsed by the caller's build_local_parser)."""
    if args is None:
        args = build_local_parser().parse_args(argv)
    return run_local_command(args, ["ghostport", "local", *argv])
