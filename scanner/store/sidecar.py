"""The history writer as a process of its own, started beside the scan.

Importing SQLAlchemy and opening the database take a few hundred milliseconds: for a small
scan, as long as everything else it does. So a recorded scan starts this writer first, as
soon as its arguments are parsed; the writer loads SQLAlchemy and opens (and migrates) the
database on the second core while the scan loads its own modules, profiles and targets. The
scan waits for the writer's `ready` before its first probe (a bad URL or an unreachable
database is still an error that costs nothing) and for its last commit before it exits.

What crosses the pipe, one line each (JSON never holds a raw newline):

    u<url>          first: the database URL, or empty for $GHOSTPORT_DB / the default
    s<json>         scan started: {"info": ScanInfo, "unresolved": [...]}
    r<json>         a result (PortResult), queued
    f<json>         a finding, queued
    c<json>         commit what is queued with {"checkpoint": ..., "done": N}, one transaction
    e<json>         end: commit the rest and stamp the scan {"complete": bool, "summary": ...}

The writer answers `ready` or `error <kind>\\t<message>` once the database is open, and
`done` or an error after `e`. If the scan process dies (SIGKILL), the writer reads the end
of its input: it commits what it was sent without a checkpoint (a resume probes those ports
again and overwrites them by key) and exits, so a crash loses at most what was still in the
pipe. It runs in a session of its own: Ctrl-C at the terminal reaches the scan, which ends
the writer in order. The URL crosses the pipe, never the command line (`ps` shows that).

This module's top level imports nothing heavy: the scan imports it before anything else.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterable
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from scanner.store.store import Store

_ERRORS = ("StoreURLError", "StoreUnavailableError", "StoreError")


class WriterProcess:
    """The scan's side of a running history writer."""

    def __init__(self, url: str | None) -> None:
        import subprocess  # noqa: PLC0415 - not in the writer, which imports read_url

        self._process = subprocess.Popen(
            [sys.executable, "-m", "scanner.cli.history_writer"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C goes to the scan, which ends us in order
            bufsize=1 << 16,
        )
        assert self._process.stdin is not None and self._process.stdout is not None
        self._in: IO[bytes] = self._process.stdin
        self._out: IO[bytes] = self._process.stdout
        self._send(b"u", (url or "").encode())
        self._in.flush()
        self.url = url

    def ready(self) -> None:
        """Wait until the database is open; raise its error (StoreError) if it cannot be."""
        self._expect(b"ready")

    def send(self, kind: bytes, body: bytes, flush: bool = False) -> None:
        """One message; `flush` for a commit, so the writer sees it now."""
        try:
            self._send(kind, body)
            if flush:
                self._in.flush()
        except (BrokenPipeError, ValueError):  # the writer died: say why
            self._failed()

    def end(self, body: bytes) -> None:
        """The last message; returns once everything is committed."""
        self.send(b"e", body, flush=True)
        try:
            self._in.close()
        except BrokenPipeError:
            self._failed()
        self._expect(b"done")
        self._process.wait()

    def check(self) -> None:
        """Raise the writer's error if it has stopped before the end (cheap: no read)."""
        if self._process.poll() is not None:
            self._failed()

    def abandon(self) -> None:
        """The scan stopped before it started (or ended in order): close our end, and end the
        writer if it still runs (it has recorded nothing: it may still be opening the
        database, which a transaction keeps whole)."""
        for stream in (self._in, self._out):
            with contextlib.suppress(OSError):
                stream.close()
        if self._process.poll() is None:
            self._process.terminate()
        self._process.wait()

    def _send(self, kind: bytes, body: bytes) -> None:
        self._in.write(kind + body + b"\n")

    def _expect(self, word: bytes) -> None:
        line = self._out.readline().rstrip(b"\n")
        if line != word:
            self._raise(line)

    def _failed(self) -> None:
        try:
            line = self._out.readline().rstrip(b"\n")
        except (OSError, ValueError):
            line = b""
        self._raise(line)

    def _raise(self, line: bytes) -> None:
        from scanner import errors  # noqa: PLC0415

        self._process.wait()
        kind, _, message = line.decode("utf-8", "replace").partition("\t")
        kind = kind.removeprefix("error ")
        if kind in _ERRORS and message:
            raise getattr(errors, kind)(message)
        raise errors.StoreUnavailableError(
            "the history writer stopped unexpectedly "
            f"(exit code {self._process.returncode}); rerun with --no-db to scan without it"
        )


# ------------------------------------------------------------------ the writer's side


def serve(store: Store, lines: Iterable[bytes]) -> bool:
    """Apply the scan's messages to the store until `e` (True: the caller replies `done`) or
    the end of input (False: the scan died; what it sent is committed without a
    checkpoint)."""
    from scanner.models import Finding, PortResult, ScanInfo, ScanSummary  # noqa: PLC0415
    from scanner.models import UnresolvedTargetResult as Unresolved  # noqa: PLC0415
    from scanner.store.writer import StoreWriter  # noqa: PLC0415

    for model in (ScanInfo, Unresolved, PortResult, Finding, ScanSummary):
        model.model_rebuild()  # their validators now, while the scan still starts up
    writer: StoreWriter | None = None
    for line in lines:
        kind, data = line[:1], json.loads(line[1:])
        if kind == b"s":
            info = ScanInfo.model_validate(data["info"])
            store.begin_scan(info, [Unresolved.model_validate(u) for u in data["unresolved"]])
            writer = StoreWriter(store, info.id, batch=sys.maxsize, interval_s=float("inf"))
        elif writer is None:
            raise ValueError(f"message {kind!r} before the scan started")
        elif kind == b"r":
            writer.add_result(PortResult.model_validate(data))
        elif kind == b"f":
            writer.add_finding(Finding.model_validate(data))
        elif kind == b"c":
            writer.flush(data["checkpoint"], data["done"])
        elif kind == b"e":
            writer.close(data["complete"], ScanSummary.model_validate(data["summary"]))
            return True
    if writer is not None:
        writer.flush()
    return False


def read_url(lines: IO[bytes]) -> str | None:
    """The first message: the database URL (None: $GHOSTPORT_DB or the default)."""
    first = lines.readline()
    if not first.startswith(b"u"):
        raise ValueError("the history writer was started without its URL")
    return first[1:].rstrip(b"\n").decode() or None
