"""Output files: proven writable before the first probe, written after it, never lost.

Every path (`--json`, `--html`, `--csv`, `--xml`, `--pdf`, `-o BASE`, nmap's `-oX`, `-oN`,
`-oG`, `-oA BASE`) is opened or checked before the scan starts, so a typo costs nothing.
Reports are rendered from the scan's JSON document; when no JSON file was asked for, a
temporary one carries the results, and it is kept (and its path said) if a report then
fails, so results are never lost to an output.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import stat
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from pydantic import BaseModel

from scanner.cli.console import err, out
from scanner.cli.options import REPORT_KINDS, wants_reports
from scanner.errors import MissingToolError, OutputFileError
from scanner.models import ScanDocument
from scanner.report.csvfile import render_csv
from scanner.report.jsonfile import load_document
from scanner.report.nmaptext import only_open, render_nmap_grepable, render_nmap_normal
from scanner.report.pdf import HOW_TO_GET_CHROMIUM, find_chromium, print_pdf


def _is_regular_or_new(path: str) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except FileNotFoundError:
        return True
    except OSError:
        return False


def _why(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def open_for_writing(path: str, flag: str) -> IO[bytes]:
    """Open (create or truncate) an output file; OutputFileError names the flag and path."""
    if Path(path).is_dir():
        raise OutputFileError(f"{flag} {path!r} is a directory; give a file name")
    try:
        return open(path, "wb")
    except OSError as exc:
        raise OutputFileError(f"{flag} {path!r} cannot be written: {_why(exc)}") from None


def check_writable(path: str, flag: str) -> None:
    """Prove a report path writable now, without leaving a file behind."""
    existed = os.path.lexists(path)
    handle = open_for_writing(path, flag) if not existed else None
    if handle is not None:
        handle.close()
        with contextlib.suppress(OSError):
            os.unlink(path)
        return
    if not _is_regular_or_new(path):
        raise OutputFileError(f"{flag} {path!r} is not a regular file; give a file name")
    if not os.access(path, os.W_OK):
        raise OutputFileError(f"{flag} {path!r} cannot be written: permission denied")


def write_text(path: str, text: str, flag: str = "output") -> None:
    """Write a whole text file; OutputFileError on failure."""
    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise OutputFileError(f"cannot write {flag} {path!r}: {_why(exc)}") from None


@dataclass
class Outputs:
    """The scan's output files: the JSON stream and the reports rendered from it."""

    args: argparse.Namespace
    json_path: str | None = None
    stream: IO[bytes] | None = None
    spare: str | None = None
    mirror: IO[bytes] | None = None  # gets the spare's document at the end (stdout, a device)
    changes: Callable[[ScanDocument], BaseModel | None] | None = None
    _owned: list[IO[bytes]] = field(default_factory=list)

    @property
    def document_path(self) -> str | None:
        """The file the finished JSON document is read back from for the reports."""
        return self.spare or (self.json_path if self.json_path != "-" else None)

    def close_stream(self) -> None:
        """Close the JSON file (the writer flushed it)."""
        for handle in self._owned:
            handle.close()
        self._owned.clear()

    def finish(self, document_ready: bool) -> None:
        """Write every report from the JSON document. If a report fails, the spare JSON is
        kept and its path added to the error."""
        path = self.document_path
        if self.spare and self.mirror is not None and document_ready:
            self.mirror.write(Path(self.spare).read_bytes())
            self.mirror.flush()
        self.close_stream()
        if not (wants_reports(self.args) and document_ready and path):
            self.discard_spare()
            return
        try:
            document = load_document(path)
            wants_changes = self.changes is not None and (self.args.html or self.args.pdf)
            changes = self.changes(document) if self.changes and wants_changes else None
            write_reports(document, self.args, changes)
        except OutputFileError as exc:
            if self.spare:
                raise OutputFileError(f"{exc}; the results are kept in {self.spare!r}") from None
            raise
        except BaseException:
            if self.spare:
                err(f"the results are kept in {self.spare!r}")
                self.spare = None
            raise
        self.discard_spare()

    def discard_spare(self) -> None:
        """Remove the temporary JSON document, if there is one."""
        if self.spare:
            with contextlib.suppress(OSError):
                os.unlink(self.spare)
            self.spare = None


STDOUT_KINDS = ("json", "xml", "nmap_normal", "nmap_grepable")
"""The outputs that can go to stdout ('-')."""

NMAP_ALL = (("xml", "xml"), ("nmap_normal", "nmap"), ("nmap_grepable", "gnmap"))
"""-oA BASE: each output and its file's ending, as nmap names them."""


def flag_of(kind: str) -> str:
    """The long flag of an output's argparse dest: nmap_normal -> --nmap-normal."""
    return f"--{kind.replace('_', '-')}"


def _expand_bases(args: argparse.Namespace) -> None:
    """-o BASE and -oA BASE name the outputs not named on their own."""
    base = getattr(args, "output_base", None)
    if base:
        for kind in ("html", "json", "csv", "xml"):
            if not getattr(args, kind, None):
                setattr(args, kind, f"{base}.{kind}")
    nmap_base = getattr(args, "nmap_all", None)
    if nmap_base == "-":
        raise OutputFileError("-oA '-': -oA writes three files; give a base name, e.g. -oA scan")
    if nmap_base:
        for kind, ending in NMAP_ALL:
            if not getattr(args, kind, None):
                setattr(args, kind, f"{nmap_base}.{ending}")
    to_stdout = [flag_of(kind) for kind in STDOUT_KINDS if getattr(args, kind, None) == "-"]
    if len(to_stdout) > 1:
        raise OutputFileError(f"{' and '.join(to_stdout)} all ask for stdout ('-'); only one can")


def prepare_outputs(args: argparse.Namespace) -> Outputs:
    """Expand -o BASE and -oA BASE, check every report path and open the JSON stream, before
    any probe."""
    _expand_bases(args)
    if getattr(args, "pdf", None) and find_chromium() is None:
        raise MissingToolError(HOW_TO_GET_CHROMIUM)
    for kind in REPORT_KINDS:
        path = getattr(args, kind, None)
        if path and not (path == "-" and kind in STDOUT_KINDS):
            check_writable(path, flag_of(kind))
    outputs = Outputs(args, json_path=getattr(args, "json", None))
    if outputs.json_path == "-":
        outputs.stream = sys.stdout.buffer
    elif outputs.json_path:
        outputs.stream = open_for_writing(outputs.json_path, "--json")
        outputs._owned.append(outputs.stream)
    json_is_file = outputs.json_path not in (None, "-") and _is_regular_or_new(
        str(outputs.json_path)
    )
    if wants_reports(args) and not json_is_file:
        handle, outputs.spare = tempfile.mkstemp(prefix="ghostport-", suffix=".json")
        spare_stream = os.fdopen(handle, "wb")
        outputs._owned.insert(0, spare_stream)
        outputs.mirror, outputs.stream = outputs.stream, spare_stream
    return outputs


def _emit(path: str, text: str, flag: str) -> None:
    """A rendered output to its file, or to stdout for '-'."""
    if path == "-":
        out(text.rstrip("\n"))
    else:
        write_text(path, text, flag)


def write_reports(
    document: ScanDocument, args: argparse.Namespace, changes: BaseModel | None = None
) -> None:
    """Every report the arguments ask for, from one scan document."""
    from scanner.report.html import render_html  # noqa: PLC0415 - jinja2: only for a report

    title, org = getattr(args, "title", None), getattr(args, "org", None)
    paper = getattr(args, "paper", None) or "a4"
    if args.html:
        write_text(args.html, render_html(document, title, org, changes, paper), "--html")
    if args.csv:
        write_text(args.csv, render_csv(document), "--csv")
    open_only = bool(getattr(args, "open_only", False))
    if args.xml:
        from scanner.report.xmlfile import render_nmap_xml  # noqa: PLC0415 - only with --xml

        _emit(args.xml, render_nmap_xml(only_open(document) if open_only else document), "--xml")
    if getattr(args, "nmap_normal", None):
        _emit(args.nmap_normal, render_nmap_normal(document, open_only), "--nmap-normal")
    if getattr(args, "nmap_grepable", None):
        _emit(args.nmap_grepable, render_nmap_grepable(document, open_only), "--nmap-grepable")
    if args.pdf:
        if args.html:
            print_pdf(args.html, args.pdf)
            return
        with tempfile.TemporaryDirectory(prefix="ghostport-") as folder:
            page = str(Path(folder) / "report.html")
            write_text(page, render_html(document, title, org, changes, paper), "the PDF's page")
            print_pdf(page, args.pdf)
