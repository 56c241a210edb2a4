"""The scan's JSON document, written while the scan runs.

Results and findings arrive interleaved, but the document holds them in two arrays, one after
the other; a file that only ever grows at its end cannot keep both arrays growing and stay
valid JSON. So results, the bulk, are appended to the document itself and never rewritten,
and findings go to a spill file (anonymous, in the temporary directory) until the end:

- on a seekable file the document on disk is valid JSON at every flush: the header, every
  result flushed so far, then a small trailer (`"findings": []`, the `summary`,
  `"complete": false`) that is the only part rewritten. At the end (also after Ctrl-C or
  SIGTERM) the findings are copied from the spill file in place of that trailer, followed by
  the final trailer; `finished_at` is reserved as `null` plus padding in the header and
  overwritten in place. A process killed outright (SIGKILL, the OOM killer) leaves a valid
  document with its results and without its findings.
- on a stream that cannot seek (stdout, a pipe) nothing can be rewritten, so results spill
  too, and the document is spliced together once, at the end.

Memory stays flat in the number of results and findings: at most one batch of results waits
in memory. The writer is given its stream; it never opens or names a file.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Callable
from typing import IO

from pydantic import ValidationError

from scanner.errors import InputFileError
from scanner.models import (
    SCHEMA_VERSION,
    Finding,
    PortResult,
    ScanDocument,
    ScanInfo,
    ScanSummary,
    UnresolvedTargetResult,
    utc_timestamp,
)

_PLACEHOLDER = "__finished_at__"
_TIMESTAMP_WIDTH = len('"2026-01-01T00:00:00.000000Z"')
_FLUSH_INTERVAL_S = 0.25
_FLUSH_BATCH = 2048
_FLUSH_BYTES = 4 << 20  # a batch of results waiting in memory is also capped by size
_COPY_CHUNK = 1 << 20


class _Spill:
    """An append-only JSON array body in an anonymous temporary file."""

    def __init__(self) -> None:
        # closed by close(), at the end of the document
        self.file: IO[bytes] = tempfile.TemporaryFile(prefix="ghostport-")  # noqa: SIM115
        self.count = 0

    def append(self, items: list[str]) -> None:
        if items:
            text = ",\n".join(items)
            self.file.write(((",\n" if self.count else "") + text).encode())
            self.count += len(items)

    def copy_to(self, stream: IO[bytes]) -> None:
        self.file.flush()
        self.file.seek(0)
        shutil.copyfileobj(self.file, stream, _COPY_CHUNK)

    def close(self) -> None:
        self.file.close()


class JsonResultWriter:
    """Streams one scan's document to a binary stream (appended to where it seeks)."""

    def __init__(
        self,
        stream: IO[bytes],
        info: ScanInfo,
        unresolved: list[UnresolvedTargetResult],
        summary: Callable[[], ScanSummary],
    ) -> None:
        self._stream = stream
        self._info = info
        self._unresolved = unresolved
        self._summary = summary
        self._pending: list[str] = []
        self._pending_bytes = 0
        self._findings = _Spill()
        self._results: _Spill | None = None  # a stream that cannot seek: results spill too
        self._count = 0
        self._last_flush = time.monotonic()
        self._closed = False
        self._file: IO[bytes] | None = None
        if _seekable(stream):
            self._file = stream
            header = self._header()
            marker = header.index(json.dumps(_PLACEHOLDER))
            self._finished_offset = len(header[:marker].encode())
            header = header.replace(json.dumps(_PLACEHOLDER), "null".ljust(_TIMESTAMP_WIDTH))
            self._file.write(header.encode())
            self._trailer_offset = self._file.tell()
            self._write_trailer(self._interim_trailer())
        else:
            self._results = _Spill()

    def _header(self) -> str:
        info = self._info.model_copy(update={"finished_at": _PLACEHOLDER})
        unresolved = json.dumps([u.model_dump(mode="json") for u in self._unresolved])
        return (
            f'{{"schema_version": {json.dumps(SCHEMA_VERSION)},\n'
            f'"scan": {info.model_dump_json()},\n'
            f'"unresolved": {unresolved},\n'
            '"results": [\n'
        )

    def _interim_trailer(self) -> str:
        return '\n],\n"findings": [],\n' + self._closing(complete=False)

    def _closing(self, complete: bool) -> str:
        return (
            f'"summary": {self._summary().model_dump_json()},\n'
            f'"complete": {json.dumps(complete)}\n}}\n'
        )

    def _write_trailer(self, trailer: str) -> None:
        assert self._file is not None
        self._file.write(trailer.encode())
        self._file.truncate()
        self._file.flush()

    def add(self, result: PortResult) -> None:
        """Queue one result; it reaches the file at the next flush."""
        text = result.model_dump_json()
        self._pending.append(text)
        self._pending_bytes += len(text)
        if len(self._pending) >= _FLUSH_BATCH or self._pending_bytes >= _FLUSH_BYTES:
            self.flush()

    def add_finding(self, finding: Finding) -> None:
        """Append one finding to the spill file; the document gets them all at the end."""
        self._findings.append([finding.model_dump_json()])

    def tick(self) -> None:
        """Called periodically: flush if results have waited long enough."""
        if time.monotonic() - self._last_flush >= _FLUSH_INTERVAL_S:
            self.flush()

    def flush(self) -> None:
        """Append queued results and a fresh trailer; the file stays a valid document."""
        self._last_flush = time.monotonic()
        if self._results is not None:
            self._results.append(self._pending)
        elif self._file is not None:
            self._file.seek(self._trailer_offset)
            if self._pending:
                text = ",\n".join(self._pending)
                self._file.write(((",\n" if self._count else "") + text).encode())
            self._trailer_offset = self._file.tell()
            self._write_trailer(self._interim_trailer())
        self._count += len(self._pending)
        self._pending.clear()
        self._pending_bytes = 0

    def close(self, complete: bool) -> None:
        """Write everything, stamp finished_at, and say whether the scan completed."""
        if self._closed:
            return
        self._closed = True
        finished_at = json.dumps(utc_timestamp())
        try:
            self.flush()
            if self._results is not None:
                header = self._header().replace(json.dumps(_PLACEHOLDER), finished_at)
                self._stream.write(header.encode())
                self._stream.flush()
                self._results.copy_to(self._stream)
            else:
                assert self._file is not None
                self._file.seek(self._trailer_offset)
            self._stream.write(b'\n],\n"findings": [')
            self._stream.flush()
            self._findings.copy_to(self._stream)
            self._stream.write(("],\n" + self._closing(complete)).encode())
            if self._file is not None:
                self._file.truncate()
                self._file.seek(self._finished_offset)
                self._file.write(finished_at.encode())
            self._stream.flush()
        finally:
            self._findings.close()
            if self._results is not None:
                self._results.close()


def _seekable(stream: IO[bytes]) -> bool:
    """Rewritable in place: a regular file (or an in-memory one), at its start. /dev/null and
    other devices seek but cannot be truncated: they are written as a stream."""
    try:
        if not (stream.seekable() and stream.tell() == 0):
            return False
        fileno = stream.fileno()
    except io.UnsupportedOperation:
        return True  # in memory (BytesIO): seeks and truncates
    except OSError:
        return False
    try:
        return stat.S_ISREG(os.fstat(fileno).st_mode)
    except OSError:
        return False


def load_document(path: str) -> ScanDocument:
    """Read and validate a scan's JSON document; a broken file is one clear error."""
    try:
        with open(path, encoding="utf-8") as handle:
            return ScanDocument.model_validate_json(handle.read())
    except OSError as exc:
        raise InputFileError(f"results file {path!r} cannot be read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise InputFileError(f"results file {path!r} is not UTF-8 text") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(document)"
        raise InputFileError(
            f"results file {path!r} is not a ghostport scan document: {where}: {first['msg']}"
        ) from None
