"""Command line: argv -> config -> scan. The one place that prints, reads the terminal or exits.

    __init__   the entry points `scan_main` and `ghostport_main`, the error boundary, exit codes
    options    every shared flag, defined once; --fail-on; scopes
    console    the progress line, live lines and messages: the only writer to the terminal
    outputs    output files: checked before the first probe, never losing results
    scan_parser  the `scan` and `local` parsers: light, so --version and --help import no scan
    scanning   `scan` and `ghostport local`
    nmapflags  nmap's spellings of the scan's flags (-oX, -T4, -F...), and refusals by name
    lookups    `ghostport registry` and `ghostport profiles`
    history    `ghostport history`, `diff`, `resume` and `import`: the scan history database
    reports    `ghostport report`
    labs       `ghostport lab` and `ghostport demo`
    distributed  `scan --workers` / `scan --broker` as shards, and `ghostport worker`

Exit codes: 0 scan completed; 1 a finding reached --fail-on; 2 a user mistake (one line on
stderr); 3 an internal error (partial results are kept); 130 interrupted (partial results are
kept, marked incomplete).
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import os
import sys
import traceback
import types
from collections.abc import Callable, Sequence
from typing import NoReturn

from scanner import __version__
from scanner.cli import options as opt
from scanner.errors import ScannerError

EXIT_OK, EXIT_USAGE, EXIT_INTERNAL, EXIT_INTERRUPTED = (
    opt.EXIT_OK,
    opt.EXIT_USAGE,
    opt.EXIT_INTERNAL,
    opt.EXIT_INTERRUPTED,
)

COMMANDS_HELP = """\
commands:
  scan      probe hosts: the `scan` command (see `ghostport scan -h`)
  registry  look up the IANA port registry; show or update the copy in use
  profiles  list the profiles of obsolete services, or show one
  report    render a saved scan (RESULTS.json) as an HTML report
  local     which process on this machine holds an orphaned registry port
  history   list recorded scans, or a host's or port's timeline across them
  diff      compare two scans (ids, last, previous, or JSON files); exit 1 when they differ
  resume    continue an interrupted scan with its seed and options
  import    store saved scans (JSON) in the history
  lab       run the emulated legacy services until Ctrl-C
  demo      start the lab, scan it, write ghostport-demo.html and .json
  worker    run shards of distributed scans (`scan --broker`) from this vantage point"""


def _scan(argv: Sequence[str], prog: str) -> int:
    """`scan`: parsed by the light parser first, so --version, --help and usage errors end
    before the scan layer (pydantic, profiles, scapy, the engine) is imported."""
    from scanner.cli.nmap_argv import parse_scan_args  # noqa: PLC0415
    from scanner.cli.scan_parser import build_scan_parser  # noqa: PLC0415

    args = parse_scan_args(build_scan_parser(prog), argv)
    writer = None
    if not (args.no_db or args.resume or args.local):
        # A new recorded scan: its history writer loads SQLAlchemy on the other core while
        # the scan layer loads here (scanner/store/sidecar.py)
        from scanner.store.sidecar import WriterProcess  # noqa: PLC0415

        writer = WriterProcess(args.db)
    try:
        from scanner.cli.scanning import run_scan_command  # noqa: PLC0415

        return run_scan_command(argv, prog, args, writer)
    finally:
        if writer is not None:
            writer.abandon()  # ended in order already, or the scan stopped before it began


def _local(argv: Sequence[str]) -> int:
    """`ghostport local`, parsed before the audit is imported (as `_scan`)."""
    from scanner.cli.scan_parser import build_local_parser  # noqa: PLC0415

    args = build_local_parser().parse_args(argv)
    from scanner.cli.scanning import local_command  # noqa: PLC0415

    return local_command(argv, args)


def _command(name: str) -> Callable[[Sequence[str]], int] | None:
    """The verb's function, imported only when it runs (start-up stays light)."""
    if name == "scan":
        return lambda argv: _scan(argv, "ghostport scan")
    if name == "local":
        return _local
    if name in ("registry", "profiles"):
        from scanner.cli import lookups  # noqa: PLC0415

        return lookups.registry_command if name == "registry" else lookups.profiles_command
    if name == "report":
        from scanner.cli.reports import report_command  # noqa: PLC0415

        return report_command
    if name in ("history", "diff", "resume", "import"):
        from scanner.cli import history  # noqa: PLC0415

        return {
            "history": history.history_command,
            "diff": history.diff_command,
            "resume": history.resume_command,
            "import": history.import_command,
        }[name]
    if name == "worker":
        from scanner.cli.distributed import worker_command  # noqa: PLC0415

        return worker_command
    if name in ("lab", "demo"):
        from scanner.cli import labs  # noqa: PLC0415

        return labs.lab_command if name == "lab" else labs.demo_command
    return None


_VERBS = (
    "scan",
    "registry",
    "profiles",
    "report",
    "local",
    "history",
    "diff",
    "resume",
    "import",
    "lab",
    "demo",
    "worker",
)


def _ghostport(argv: Sequence[str]) -> int:
    parser = opt.Parser(
        prog="ghostport",
        description="ghostport: find legacy and orphaned registry services on your network.",
        epilog=COMMANDS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"ghostport {__version__}")
    parser.add_argument("command", nargs="?", choices=_VERBS, help="what to do")
    if not argv:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    command = _command(argv[0]) if argv[0] in _VERBS else None
    if command is not None:
        return command(argv[1:])
    parser.parse_args(argv)
    return EXIT_USAGE


def err(text: str) -> None:
    """console.err, imported only when there is something to say (console imports the scan's
    models, which --version and --help never need)."""
    from scanner.cli.console import err as write  # noqa: PLC0415

    write(text)


def _guarded(run: Callable[[], int], argv: Sequence[str], prog: str) -> int:
    """The error boundary: user mistakes are one line and exit 2; nothing shows a traceback
    unless --debug was given."""
    debug = "--debug" in argv or bool(os.environ.get("GHOSTPORT_DEBUG"))
    try:
        return run()
    except ScannerError as exc:
        if debug:
            traceback.print_exc()
        err(f"{prog}: error: {' '.join(str(exc).splitlines())}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as exc:
        if debug:
            traceback.print_exc()
        err(f"{prog}: internal error: {type(exc).__name__}: {exc} (rerun with --debug)")
        return EXIT_INTERNAL


_PLUGIN_LOADER = "pydantic.plugin._loader"
_ALL_PLUGINS_OFF = ("__all__", "1", "true")  # as pydantic.plugin._loader reads it


def _quiet_pydantic() -> None:
    """No pydantic plugins for ghostport's own models: finding them means reading the entry
    points of every installed distribution, at the first model used (10-20 ms of each
    start-up). An explicit $PYDANTIC_DISABLE_PLUGINS is kept.

    With every plugin off, pydantic's plugin loader would still import importlib.metadata
    (and email, zipfile, csv: 25-30 ms of a one-port scan) only to return no plugins; its one
    function is given in advance as what it returns then. Any other setting loads the real
    loader (tests/test_startup.py holds both)."""
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    if os.environ["PYDANTIC_DISABLE_PLUGINS"] in _ALL_PLUGINS_OFF:
        sys.modules.setdefault(_PLUGIN_LOADER, no_plugins_loader())


def no_plugins_loader() -> types.ModuleType:
    """pydantic's plugin loader as it answers with every plugin off: no plugins."""
    loader = types.ModuleType(_PLUGIN_LOADER, "pydantic's plugin loader, every plugin off")
    loader.get_plugins = tuple  # type: ignore[attr-defined]
    return loader


def scan_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `scan` command."""
    args = list(sys.argv[1:] if argv is None else argv)
    _quiet_pydantic()
    return _guarded(lambda: _scan(args, "scan"), args, "scan")


def ghostport_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `ghostport` command."""
    args = list(sys.argv[1:] if argv is None else argv)
    _quiet_pydantic()
    return _guarded(lambda: _ghostport(args), args, "ghostport")


def scan_entry() -> NoReturn:
    """The `scan` console script: scan_main, then a quick exit (`_leave`)."""
    _leave(scan_main())


def ghostport_entry() -> NoReturn:
    """The `ghostport` console script (and `python -m scanner`): ghostport_main; a scan then
    leaves quickly (`_leave`), any other verb exits as usual."""
    code = ghostport_main()
    if sys.argv[1:2] == ["scan"]:
        _leave(code)
    sys.exit(code)


def _leave(code: int) -> NoReturn:
    """Exit once a scan returned: the atexit handlers run and the standard streams are
    flushed, but the interpreter's teardown (freeing every module and object one by one,
    10-15 ms of a one-port scan, for memory the kernel takes back at once) is skipped. Every
    output file and the history are closed by then (cli/outputs.py, cli/recording.py)."""
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)
