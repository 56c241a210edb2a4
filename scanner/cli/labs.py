"""`ghostport lab` and `ghostport demo`: the emulated legacy services, and a scan of them."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from scanner.cli import options as opt
from scanner.cli.console import ConsoleObserver, err, out, stderr_is_terminal
from scanner.cli.outputs import open_for_writing, write_text
from scanner.cli.scanning import drive
from scanner.engine import EngineOptions
from scanner.errors import OutputFileError, UsageError
from scanner.lab.layout import DEFAULT_BASE, Lab, lab_hosts
from scanner.lab.namespace import (
    INSIDE_FLAG,
    bring_loopback_up,
    needs_private_namespace,
    private_namespace_command,
)
from scanner.limits import inflight_cap
from scanner.ports import parse_port_spec
from scanner.profiles import load_profiles, profile_ports
from scanner.report.html import render_html
from scanner.report.jsonfile import load_document
from scanner.report.text import render_findings_list
from scanner.scan import ScanConfig, new_seed, run_scan


def _lab_parser(prog: str, description: str) -> argparse.ArgumentParser:
    parser = opt.Parser(prog=prog, description=description)
    parser.add_argument(
        "--base", default=DEFAULT_BASE, help=f"the lab uses base+1 to base+5 ({DEFAULT_BASE})"
    )
    opt.add_debug_flag(parser)
    parser.add_argument(INSIDE_FLAG, action="store_true", help=argparse.SUPPRESS)
    return parser


def _private_network(verb: str, argv: Sequence[str], inside: bool) -> None:
    """As a normal user, re-run this command in a private user + network namespace."""
    if inside:
        bring_loopback_up()
    elif needs_private_namespace():
        command = private_namespace_command([verb, *argv])
        os.execv(command[0], command)


def _split_inner_scan(argv: Sequence[str]) -> tuple[list[str], list[str] | None]:
    """`lab [OPTIONS] -- scan ARGS`: the lab's own options, and the scan to run inside it."""
    argv = list(argv)
    if "--" not in argv:
        return argv, None
    at = argv.index("--")
    inner = argv[at + 1 :]
    if not inner or inner[0] != "scan":
        raise UsageError(
            f"after `--`, ghostport lab runs a scan: `ghostport lab -- scan ARGS`, not "
            f"{' '.join(inner) or 'nothing'!r}"
        )
    return argv[:at], inner[1:]


def _lab_notes(hosts: Sequence[str], base: str, private: bool) -> str:
    """Where the lab can be scanned from: a private namespace is reachable only from inside."""
    targets = f"{hosts[0]}-{hosts[-1].rsplit('.', 1)[1]}"
    lab = "ghostport lab" if base == DEFAULT_BASE else f"ghostport lab --base {base}"
    if private:
        return (
            "the lab runs in a private user and network namespace (you are not root): no other "
            "process can reach it, so a scan from another terminal finds every port closed.\n"
            f"to scan it, run the scan inside the same namespace: `{lab} -- scan {targets}` "
            "(any scan options after `scan`; the lab stops when the scan ends)"
        )
    return (
        f"scan it from another terminal: `scan {targets}`, or start the lab, scan it and stop "
        f"it in one step: `{lab} -- scan {targets}`"
    )


async def _scan_inside(scan_argv: Sequence[str]) -> int:
    """The scan as a child process: it shares the lab's network namespace. Ctrl-C reaches the
    child too (one process group); it stops and writes what it found, and the lab waits."""
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "scanner", "scan", *scan_argv
    )
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, lambda: None)
    try:
        return await child.wait()
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        if child.returncode is None:
            child.terminate()
            await child.wait()


def lab_command(argv: Sequence[str]) -> int:
    """`ghostport lab`: run the emulators until Ctrl-C; `ghostport lab -- scan ARGS`: run
    them, scan them with ARGS from inside the lab's network, and stop."""
    lab_argv, scan_argv = _split_inner_scan(argv)
    args = _lab_parser(
        "ghostport lab",
        "Run the emulated legacy services in the foreground until Ctrl-C; with "
        "`-- scan ARGS`, run them, scan them (from inside the lab's private network namespace "
        "when not root) and stop.",
    ).parse_args(lab_argv)
    hosts = lab_hosts(args.base)
    _private_network("lab", argv, args.inside_private_namespace)
    private = args.inside_private_namespace

    async def run() -> int:
        lab = await Lab(args.base).start()
        try:
            if scan_argv is not None:
                where = " in a private network namespace" if private else ""
                err(f"lab running on {hosts[0]}-{hosts[-1]}{where}; scanning it")
                return await _scan_inside(scan_argv)
            out(
                "\n".join(
                    f"{service.host:<15} {service.port:>5}/{service.transport:<4} "
                    f"{service.name:<42} expect: {service.expect}"
                    for service in lab.services
                )
            )
            out(f"{hosts[-1]:<15}     -      nothing: every port closed")
            out(_lab_notes(hosts, args.base, private))
            out("lab running; Ctrl-C stops it")
            await asyncio.Event().wait()
            return opt.EXIT_OK
        finally:
            await lab.close()

    try:
        return asyncio.run(run())
    except KeyboardInterrupt:
        return opt.EXIT_OK


def _writable_directory(folder: str) -> Path:
    """Create the demo's output directory and prove it writable, before anything starts."""
    out_dir = Path(folder)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputFileError(
            f"cannot create the output directory {folder!r}: {exc.strerror}"
        ) from None
    try:
        with tempfile.TemporaryFile(dir=out_dir):
            pass
    except OSError as exc:
        raise OutputFileError(
            f"cannot write in the output directory {folder!r}: {exc.strerror}"
        ) from None
    return out_dir


def demo_command(argv: Sequence[str]) -> int:
    """`ghostport demo`: start the lab, scan it, write the report."""
    parser = _lab_parser(
        "ghostport demo",
        "Start the emulated lab, scan it with legacy-mgmt, and write an HTML and JSON report.",
    )
    parser.add_argument("--out", default=".", metavar="DIR", help="where to write the report (.)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress line")
    opt.add_loop_flag(parser)
    args = parser.parse_args(argv)
    lab_hosts(args.base)  # a bad base is an error before anything else happens
    _private_network("demo", argv, args.inside_private_namespace)
    out_dir = _writable_directory(args.out)
    json_path, html_path = out_dir / "ghostport-demo.json", out_dir / "ghostport-demo.html"
    profiles = tuple(load_profiles([opt.DEFAULT_PROFILE]))
    config = ScanConfig(
        targets=tuple(lab_hosts(args.base)),
        excludes=(),
        ports=parse_port_spec(profile_ports(profiles)),
        engine=EngineOptions(timeout=1.0, retries=1, max_inflight=inflight_cap(None)),
        seed=new_seed(),
        event_loop=args.loop,
        command_line=("ghostport", "demo", *[a for a in argv if a != INSIDE_FLAG]),
        scopes=opt.scopes_from([]),
        scope_specs=opt.scope_specs_from([]),
        registry=opt.registry_from(argparse.Namespace(registry=None)),
        profiles=profiles,
    )
    stream = open_for_writing(str(json_path), "the demo's JSON")
    observer = ConsoleObserver(
        stream, show_progress=not args.quiet and stderr_is_terminal(), list_ports=False
    )

    async def demo(loop_name: str) -> object:
        lab = await Lab(args.base).start()
        try:
            return await run_scan(config, observer, loop_name)
        finally:
            await lab.close()

    try:
        complete = drive(demo, config.event_loop, observer)
    finally:
        stream.close()
    document = load_document(str(json_path))
    write_text(
        str(html_path), render_html(document, "ghostport demo: the emulated legacy lab"), "report"
    )
    out(render_findings_list(document, f"{len(document.findings)} findings on the emulated lab:"))
    out(f"report: {html_path.resolve()}\nresults: {json_path.resolve()}")
    return opt.EXIT_OK if complete else opt.EXIT_INTERRUPTED
