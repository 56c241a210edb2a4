"""`ghostport report`: render a saved scan (also an interrupted one) again."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from scanner.cli import options as opt
from scanner.cli.console import out
from scanner.cli.outputs import check_writable, write_reports
from scanner.errors import InputFileError, UsageError
from scanner.report.jsonfile import load_document


def report_command(argv: Sequence[str]) -> int:
    """`ghostport report RESULTS.json --html OUT ...`."""
    parser = opt.Parser(
        prog="ghostport report",
        description="Render a saved scan (also an interrupted one) as an HTML report.",
    )
    parser.add_argument("results", metavar="RESULTS.json")
    opt.add_output_flags(parser, json=False)
    opt.add_debug_flag(parser)
    args = parser.parse_args(argv)
    if not opt.wants_reports(args):
        raise UsageError("say what to write: --html, --csv, --xml or --pdf")
    if not Path(args.results).is_file():
        raise InputFileError(f"results file {args.results!r} does not exist")
    for kind in opt.REPORT_KINDS:
        if getattr(args, kind, None):
            check_writable(getattr(args, kind), f"--{kind}")
    write_reports(load_document(args.results), args)
    for kind in opt.REPORT_KINDS:
        if getattr(args, kind, None):
            out(f"{kind}: {getattr(args, kind)}")
    return opt.EXIT_OK
