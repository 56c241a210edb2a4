"""`ghostport history`, `diff`, `resume` and `import`: the scan history database."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from scanner.cli import options as opt
from scanner.cli.console import out
from scanner.cli.outputs import check_writable, write_text
from scanner.errors import InputFileError, ScanRefError, UsageError
from scanner.models import ScanDocument, Transport
from scanner.report.jsonfile import load_document
from scanner.report.text import render_history, render_timeline


def add_db_flag(parser: argparse.ArgumentParser) -> None:
    """--db URL: which history database (default $GHOSTPORT_DB, else SQLite in the data dir)."""
    parser.add_argument(
        "--db",
        metavar="URL",
        help="history database: sqlite:///PATH or postgresql://... "
        "(default $GHOSTPORT_DB, else $XDG_DATA_HOME/ghostport/scans.db)",
    )


def _parser(prog: str, description: str) -> argparse.ArgumentParser:
    parser = opt.Parser(prog=prog, description=description)
    add_db_flag(parser)
    opt.add_debug_flag(parser)
    return parser


def history_command(argv: Sequence[str]) -> int:
    """`ghostport history [HOST[:PORT[/PROTO]]]`."""
    from scanner.store.database import open_store  # noqa: PLC0415 - SQLAlchemy only here

    parser = _parser("ghostport history", "List recorded scans, or the timeline of a host or port.")
    parser.add_argument("where", nargs="?", metavar="HOST[:PORT[/PROTO]]")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args(argv)
    with open_store(args.db) as store:
        if args.where is None:
            rows = store.scans()
            if args.json:
                out(json.dumps([r.model_dump(mode="json") for r in rows], indent=2))
            else:
                out(render_history(rows))
            return opt.EXIT_OK
        host, port, proto = _port_ref(args.where)
        timeline = store.timeline(host, port, proto)
    if args.json:
        out(json.dumps([r.model_dump(mode="json") for r in timeline], indent=2))
    else:
        out(render_timeline(timeline, args.where))
    return opt.EXIT_OK


def _port_ref(text: str) -> tuple[str, int | None, Transport | None]:
    """HOST, HOST:PORT, HOST:PORT/PROTO, [V6]:PORT/PROTO, or a bare IPv6 address."""
    rest, proto = text.strip(), None
    for name in ("tcp", "udp"):
        if rest.lower().endswith("/" + name):
            rest, proto = rest[: -len(name) - 1], Transport(name)
    port_text = ""
    if rest.startswith("["):
        host, _, after = rest[1:].partition("]")
        port_text = after.removeprefix(":")
    elif rest.count(":") == 1:
        host, port_text = rest.split(":")
    else:
        host = rest
    if not host or (port_text and not (port_text.isascii() and port_text.isdigit())):
        raise UsageError(
            f"{text!r} is not HOST, HOST:PORT or HOST:PORT/PROTO (e.g. 127.0.0.1:391/udp)"
        )
    port = int(port_text) if port_text else None
    if port is not None and not 1 <= port <= 65535:
        raise UsageError(f"port {port} in {text!r} is outside 1-65535")
    return host, port, proto


def _document(ref: str, db: str | None) -> ScanDocument:
    """A scan by id, prefix, `last` or `previous`, or a saved JSON file."""
    if ref.endswith(".json") or Path(ref).is_file():
        if not Path(ref).is_file():
            raise InputFileError(f"results file {ref!r} does not exist")
        return load_document(ref)
    from scanner.store.database import open_store  # noqa: PLC0415

    with open_store(db) as store:
        return store.document(store.resolve_ref(ref))


def diff_command(argv: Sequence[str]) -> int:
    """`ghostport diff OLD NEW`: exit 0 when equal, 1 when different, 2 on error (as ndiff)."""
    from scanner.store.diff import diff_documents, render_diff_text  # noqa: PLC0415

    parser = _parser(
        "ghostport diff",
        "Compare two scans by (host, proto, port): scan ids, prefixes, last, previous, or "
        "saved JSON files. Exit 0 when equal, 1 when different, 2 on error.",
    )
    parser.add_argument("old", metavar="OLD")
    parser.add_argument("new", metavar="NEW")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--html", metavar="FILE", help="write the differences as an HTML page")
    args = parser.parse_args(argv)
    if args.html:
        check_writable(args.html, "--html")
    old, new = _document(args.old, args.db), _document(args.new, args.db)
    diff = diff_documents(old, new)
    if args.html:
        from scanner.report.html import render_diff_html  # noqa: PLC0415

        write_text(args.html, render_diff_html(diff), "--html")
    if args.json:
        out(diff.model_dump_json(indent=2))
    elif not args.html:
        out(render_diff_text(diff).rstrip("\n"))
    return opt.EXIT_OK if diff.equal else opt.EXIT_FINDINGS


def import_command(argv: Sequence[str]) -> int:
    """`ghostport import FILE.json ...`: saved scans join the history."""
    from scanner.store.database import open_store  # noqa: PLC0415

    parser = _parser("ghostport import", "Store saved scans (their JSON) in the history.")
    parser.add_argument("files", nargs="+", metavar="FILE.json")
    args = parser.parse_args(argv)
    documents = [load_document(path) for path in args.files]  # every file read before storing
    with open_store(args.db) as store:
        for path, document in zip(args.files, documents, strict=True):
            out(f"{store.import_document(document)}  {path}")
    return opt.EXIT_OK


def resume_argv(ref: str, db: str | None, broker: str | None = None) -> list[str]:
    """The `scan` arguments that continue a recorded scan: its own command line, its seed;
    `broker` instead of the recorded one (recorded without its password, if at all)."""
    from scanner.store.database import open_store  # noqa: PLC0415

    with open_store(db) as store:
        scan_id = store.resolve_ref(ref)
        row = next(r for r in store.scans() if r.id == scan_id)
        document = store.document(scan_id)
    if row.complete:
        raise ScanRefError(f"scan {scan_id} completed; there is nothing to resume")
    stored = list(document.scan.command_line)
    if document.scan.targets == ["local"]:
        raise ScanRefError(f"scan {scan_id} is a local audit; run it again instead")
    for prog in (["ghostport", "scan"], ["scan"]):
        if stored[: len(prog)] == prog:
            stored = stored[len(prog) :]
            break
    dropped = {"--resume": 1, "--seed": 1, **({"--broker": 1} if broker else {})}
    kept = opt.without_flags(stored, dropped)
    extra = ["--db", db] if db and "--db" not in kept else []
    extra += ["--broker", broker] if broker else []
    return [*kept, *extra, "--seed", str(document.scan.options.seed), "--resume", scan_id]


def resume_command(argv: Sequence[str]) -> int:
    """`ghostport resume ID`: continue an interrupted scan with its seed and options."""
    from scanner.cli.scanning import run_scan_command  # noqa: PLC0415

    parser = _parser(
        "ghostport resume",
        "Continue an interrupted scan: same seed and options, only the probes with no result.",
    )
    parser.add_argument("scan", metavar="ID", help="scan id, a unique prefix, last or previous")
    parser.add_argument(
        "--broker",
        metavar="URL",
        help="a distributed scan's broker (also $GHOSTPORT_BROKER): its URL is never "
        "recorded with its password",
    )
    args = parser.parse_args(argv)
    return run_scan_command(resume_argv(args.scan, args.db, args.broker), "ghostport scan")
